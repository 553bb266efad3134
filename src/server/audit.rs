//! The audit log page (R11): auditors (and admins) read the event log —
//! every command, configuration change, sign-in and account change, with
//! who and when — filtered by date, counter, staff account or ticket, and
//! export what they filtered. It reads the append-only log files directly,
//! off the engine thread, so a long search never delays a counter.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use madoguchi_core::engine::RecordBody;
use madoguchi_core::model::Event;
use madoguchi_core::store::hex;
use minijinja::context;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Role;
use super::error::ApiError;
use super::App;

const AUDITORS: &[Role] = &[Role::Auditor, Role::Admin];
/// Rows shown on the page (the export has them all).
const PAGE_ROWS: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    date: Option<String>,
    counter: Option<String>,
    staff: Option<String>,
    ticket: Option<String>,
}

struct Parsed {
    date: Option<NaiveDate>,
    counter: Option<u16>,
    staff: Option<String>,
    ticket: Option<u32>,
}

fn parse(f: &Filter) -> Result<Parsed, ApiError> {
    let opt = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let bad = |what: &str| ApiError::BadRequest(format!("{what} is not valid"));
    Ok(Parsed {
        date: opt(&f.date)
            .map(|d| d.parse().map_err(|_| bad("date")))
            .transpose()?,
        counter: opt(&f.counter)
            .map(|c| c.parse().map_err(|_| bad("counter")))
            .transpose()?,
        staff: opt(&f.staff),
        ticket: opt(&f.ticket)
            .map(|t| t.parse().map_err(|_| bad("ticket")))
            .transpose()?,
    })
}

fn event_counter(e: &Event) -> Option<u16> {
    serde_json::to_value(e)
        .ok()?
        .get("counter")?
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
}

/// The matching records as JSON rows, newest first.
fn search(
    app: &App,
    p: &Parsed,
    limit: usize,
    names: Option<&Names>,
) -> Result<(Vec<Value>, usize), ApiError> {
    let offset = app.status_offset();
    // Only the newest `limit` matches are kept and turned into rows.
    let mut kept = std::collections::VecDeque::new();
    let mut total = 0;
    let records = madoguchi_core::log::read_live(&app.data.join("log"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    for r in records {
        let (_, rec) = r.map_err(|e| ApiError::Internal(e.to_string()))?;
        let Ok(body) = serde_json::from_slice::<RecordBody>(&rec.payload) else {
            continue;
        };
        let local = body.at.to_datetime(offset);
        if p.date.is_some_and(|d| local.date_naive() != d) {
            continue;
        }
        if p.staff
            .as_deref()
            .is_some_and(|s| body.by.as_deref() != Some(s))
        {
            continue;
        }
        if p.counter
            .is_some_and(|c| !body.events.iter().any(|e| event_counter(e) == Some(c)))
        {
            continue;
        }
        if p.ticket
            .is_some_and(|t| !body.events.iter().any(|e| e.ticket() == Some(t)))
        {
            continue;
        }
        total += 1;
        kept.push_back((rec.seq, local, body, hex(&rec.hash())));
        if kept.len() > limit {
            kept.pop_front();
        }
    }
    let rows = kept
        .into_iter()
        .rev()
        .map(|(seq, local, body, hash)| {
            // The recorded events as JSON text: the export's format since
            // the start.
            let mut row = json!({
                "seq": seq,
                "time": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                "by": body.by,
                "events": body
                    .events
                    .iter()
                    .map(|e| match e {
                        Event::ConfigApplied { .. } => "config_applied".to_string(),
                        other => serde_json::to_string(other).unwrap_or_default(),
                    })
                    .collect::<Vec<_>>(),
                "hash": hash,
            });
            // The page's rows: in words, with their kinds as a hook.
            if let Some(names) = names {
                row["by_words"] = operator(body.by.as_deref()).into();
                row["words"] = body
                    .events
                    .iter()
                    .map(|e| describe(e, names))
                    .collect::<Vec<_>>()
                    .into();
                row["kinds"] = body.events.iter().map(kind).collect::<Vec<_>>().into();
            }
            row
        })
        .collect();
    Ok((rows, total))
}

/// `GET /audit`: the page.
pub async fn page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Result<Response, ApiError> {
    let caller = match app.auth.require(&method, &headers, AUDITORS) {
        Ok(c) => c,
        Err(_) => return Ok(Redirect::to("/login?next=/audit").into_response()),
    };
    let p = parse(&f)?;
    let names = queue_names(&app)?;
    let a = app.clone();
    let (rows, total) =
        tokio::task::spawn_blocking(move || search(&a, &p, PAGE_ROWS, Some(&names)))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    let office = app.status().await?.office.ja;
    let html: Html<String> = app.pages.render(
        "audit.html",
        context! {
            office, user => caller.name, rows, total, shown => PAGE_ROWS,
            date => f.date, counter => f.counter, staff => f.staff, ticket => f.ticket,
        },
    )?;
    Ok(html.into_response())
}

/// `GET /api/audit/export`: every matching record as JSON Lines.
pub async fn export(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Result<Response, ApiError> {
    app.auth.require(&method, &headers, AUDITORS)?;
    let p = parse(&f)?;
    let a = app.clone();
    let (mut rows, _) = tokio::task::spawn_blocking(move || search(&a, &p, usize::MAX, None))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    rows.reverse();
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/x-ndjson; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"madoguchi-audit.jsonl\"".to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// Queue and tag ids with their Japanese names, for rows in words.
#[derive(Debug, Default)]
pub struct Names {
    queues: std::collections::HashMap<String, String>,
    tags: std::collections::HashMap<String, String>,
}

impl Names {
    fn queue<'a>(&'a self, id: &'a str) -> &'a str {
        self.queues.get(id).map(String::as_str).unwrap_or(id)
    }
    fn tags(&self, ids: &[String]) -> String {
        ids.iter()
            .map(|t| self.tags.get(t).map(String::as_str).unwrap_or(t))
            .collect::<Vec<_>>()
            .join("・")
    }
}

fn queue_names(app: &App) -> Result<Names, ApiError> {
    app.engine
        .read(|e| Names {
            queues: e
                .config()
                .queues
                .iter()
                .map(|q| (q.id.clone(), q.name.ja.clone()))
                .collect(),
            tags: e
                .config()
                .tags
                .iter()
                .map(|t| (t.id.clone(), t.name.ja.clone()))
                .collect(),
        })
        .map_err(ApiError::from)
}

/// An event's recorded type name (`called`, `login`…).
fn kind(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// Who made a record, in words: an account or device by name; a record
/// without one was made by the server itself (start-up configuration, the
/// end-of-day sweep).
pub fn operator(by: Option<&str>) -> String {
    match by {
        Some(b) if b.starts_with("printer:") => {
            format!("発券機 {} のプリンター", &b["printer:".len()..])
        }
        Some(b) => b.to_string(),
        None => "サーバー（自動）".to_string(),
    }
}

/// An account change's `role` field in words (see api.rs and admin.rs).
fn account_change(account: &str, role: &str) -> String {
    let role_ja = |r: &str| match r {
        "admin" => "管理者",
        "staff" => "職員",
        "auditor" => "監査担当",
        "kiosk" => "発券機",
        "display" => "表示機",
        "standby" => "予備機",
        _ => "（不明な種類）",
    };
    match role {
        "disabled" => format!("{account} を無効にしました"),
        "enabled" => format!("{account} を有効にしました"),
        "deleted" => format!("{account} を削除しました"),
        "session-ended" => format!("{account} のログインを終了させました"),
        r if r.starts_with("enrolment-link:") => format!(
            "{}「{account}」の登録用リンクを作りました",
            role_ja(&r["enrolment-link:".len()..])
        ),
        r @ ("kiosk" | "display" | "standby") => {
            format!("{}「{account}」が登録用リンクで登録されました", role_ja(r))
        }
        r => format!(
            "{account} を{}として設定しました（役割・パスワード）",
            role_ja(r)
        ),
    }
}

/// One event in plain Japanese, for the audit page (the export keeps the
/// recorded event as it is).
pub fn describe(e: &Event, names: &Names) -> String {
    let at = |c: Option<u16>| c.map(|c| format!("窓口 {c} で")).unwrap_or_default();
    match e {
        // `source` is the whole configuration text: the export has it.
        Event::ConfigApplied { .. } => {
            "設定を適用しました（内容は書き出しで確認できます）".to_string()
        }
        Event::DayOpened { date, special } => format!(
            "{date} の受付を始めました{}",
            if *special {
                "（特別開庁日）"
            } else {
                ""
            }
        ),
        Event::DayClosed { date } => format!("{date} の受付を終えました"),
        Event::DayReopened { date } => format!("{date} の受付を再開しました（番号は続きから）"),
        Event::Promoted { epoch } => {
            format!("予備機が主機に昇格しました（第{epoch}期）")
        }
        Event::IssuingReopened { category } => {
            format!(
                "{} の受付終了を解除し、受付を再開しました",
                names.queue(category)
            )
        }
        Event::TurnedAway {
            category, kiosk, ..
        } => format!(
            "{} は受付終了のため発券しませんでした{}",
            names.queue(category),
            kiosk
                .as_deref()
                .map(|k| format!("（発券機 {k}）"))
                .unwrap_or_default()
        ),
        Event::CounterOpened { counter, .. } => format!("窓口 {counter} を開きました"),
        Event::CounterClosed { counter } => format!("窓口 {counter} を閉じました"),
        Event::TicketIssued {
            number,
            category,
            kiosk,
            people_ahead,
            ..
        } => format!(
            "{number} 番を発券しました（{}、前に {people_ahead} 人{}）",
            names.queue(category),
            kiosk
                .as_deref()
                .map(|k| format!("、発券機 {k}"))
                .unwrap_or_default()
        ),
        Event::Called {
            number,
            counter,
            out_of_order,
        } => format!(
            "{number} 番を窓口 {counter} に呼び出しました{}",
            if *out_of_order { "（順番外）" } else { "" }
        ),
        Event::Recalled { number, counter } => {
            format!("{number} 番を窓口 {counter} にもう一度呼び出しました")
        }
        Event::Started { number, counter } => {
            format!("{number} 番の対応を窓口 {counter} で始めました")
        }
        Event::Completed {
            number,
            counter,
            tags,
        } => {
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!("（{}）", names.tags(tags))
            };
            format!("{number} 番の対応を窓口 {counter} で終えました{tags}")
        }
        Event::Absent { number, counter } => {
            format!("{number} 番を窓口 {counter} で不在にしました")
        }
        Event::Returned { number } => format!("{number} 番が不在から戻りました"),
        Event::Transferred {
            number,
            counter,
            to,
            ..
        } => format!(
            "{number} 番を{}「{}」へ回しました",
            at(*counter),
            names.queue(to)
        ),
        Event::Held {
            number, counter, ..
        } => format!("{number} 番を窓口 {counter} で保留にしました"),
        Event::Resumed { number, counter } => {
            format!("{number} 番の保留を窓口 {counter} で再開しました")
        }
        Event::Cancelled { number, counter } => {
            format!("{number} 番を{}取り消しました", at(*counter))
        }
        Event::Unserved { number } => format!("{number} 番は受付終了まで呼ばれませんでした"),
        Event::Login { account, ok: true } => format!("{account} がログインしました"),
        Event::Login { account, ok: false } => {
            format!("{account} のログインに失敗しました（ID またはパスワードの誤り）")
        }
        Event::AccountChanged { account, role } => account_change(account, role),
        Event::LogArchived { through, .. } => {
            format!("記録 {through} 番までを保管用に書き出しました")
        }
    }
}
