//! The audit log page (R11): auditors (and admins) read the event log —
//! every command, configuration change, sign-in and account change, with
//! who and when — filtered by date, counter, staff account or ticket, a page
//! at a time (newest first), and export what they filtered.
//!
//! Views answer from the audit index (`madoguchi_core::audit`), kept as
//! records are written: a subscriber to the commit feed catches it up off
//! the engine thread, and each view catches up the few records since. A
//! page reads only its own records (with their neighbours) from the log and
//! shows the hash-chain check of what it read; the export of one day reads
//! only that day.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, Method};
use axum::response::{Html, IntoResponse, Response};
use chrono::NaiveDate;
use madoguchi_core::audit::{self as index, AuditIndex, ChainCheck};
use madoguchi_core::engine::RecordBody;
use madoguchi_core::model::Event;
use madoguchi_core::store::hex;
use madoguchi_renderer::context;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Role;
use super::error::ApiError;
use super::App;

const AUDITORS: &[Role] = &[Role::Auditor, Role::Admin];
/// Rows on one page (the export has them all).
const PAGE_ROWS: usize = 50;

/// The server's audit index: opened on first use (a year of history
/// without a sidecar takes seconds to index once), then kept caught up.
#[derive(Debug, Default)]
pub struct Index(Mutex<Option<AuditIndex>>);

/// Runs `f` on the audit index caught up with the log. Blocking: call it
/// off the async threads.
fn with_index<T>(
    app: &App,
    f: impl FnOnce(&AuditIndex) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let offset = app.status_offset();
    let internal = |e: index::AuditError| ApiError::Internal(e.to_string());
    let mut slot = app
        .audit_index
        .0
        .lock()
        .map_err(|_| ApiError::Internal("the audit index is unusable".into()))?;
    if slot.as_ref().is_some_and(|i| i.utc_offset() != offset) {
        // The office's time zone changed: every date is different.
        *slot = None;
    }
    let index = match slot.as_mut() {
        Some(i) => {
            i.catch_up().map_err(internal)?;
            i
        }
        None => {
            let i = AuditIndex::open(
                &app.data.join("log"),
                &app.data.join(index::INDEX_FILE),
                offset,
            )
            .map_err(internal)?;
            if let Some(why) = i.repaired() {
                tracing::info!(reason = why, records = i.len(), "audit index ready");
            }
            slot.insert(i)
        }
    };
    f(index)
}

/// Keeps the audit index caught up with every commit, off the engine
/// thread (a burst of commits is taken in one go).
pub fn spawn(app: Arc<App>) {
    tokio::spawn(async move {
        let mut sub = app.feed.subscribe();
        loop {
            let a = app.clone();
            let done = tokio::task::spawn_blocking(move || with_index(&a, |_| Ok(()))).await;
            if !matches!(done, Ok(Ok(()))) {
                tracing::warn!("the audit index could not catch up with the log");
            }
            if sub.changed().await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            sub.skip_to_latest();
        }
    });
}

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    date: Option<String>,
    counter: Option<String>,
    staff: Option<String>,
    ticket: Option<String>,
    page: Option<String>,
}

fn parse(f: &Filter) -> Result<index::Query, ApiError> {
    let opt = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let bad = super::extract::bad_field;
    Ok(index::Query {
        date: opt(&f.date)
            .map(|d| d.parse::<NaiveDate>().map_err(|_| bad("date")))
            .transpose()?,
        counter: opt(&f.counter)
            .map(|c| c.parse().map_err(|_| bad("counter")))
            .transpose()?,
        by: opt(&f.staff),
        ticket: opt(&f.ticket)
            .map(|t| t.parse().map_err(|_| bad("ticket")))
            .transpose()?,
    })
}

/// One page of rows (newest first), or every matching row (oldest first),
/// with the total and the check of what was read.
struct Found {
    rows: Vec<Value>,
    total: usize,
    check: ChainCheck,
}

/// Page `page` (1-based; `None`: every match, for the export).
fn search(
    app: &App,
    q: &index::Query,
    page: Option<usize>,
    names: Option<&Names>,
) -> Result<Found, ApiError> {
    let offset = app.status_offset();
    let (records, total, check) = with_index(app, |i| {
        let hits = i.find(q);
        let seqs = match page {
            Some(p) => hits.newest(p.saturating_sub(1) * PAGE_ROWS, PAGE_ROWS),
            None => hits.all(),
        };
        let (records, check) = i
            .read_checked(&seqs)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok((records, hits.len(), check))
    })?;
    // Who is a device and who a person, for the operator column (insider
    // red team: a row did not say whether a kiosk or a person acted).
    let kinds: HashMap<String, (bool, Role)> = if names.is_some() {
        app.auth
            .devices()
            .into_iter()
            .map(|d| (d.name, (true, d.role)))
            .chain(
                app.auth
                    .people()
                    .into_iter()
                    .map(|p| (p.username, (false, p.role))),
            )
            .collect()
    } else {
        HashMap::new()
    };
    let mut rows: Vec<Value> = records
        .into_iter()
        .map(|rec| {
            let hash = hex(&rec.hash());
            let body = RecordBody::decode(&rec).unwrap_or(RecordBody {
                at: madoguchi_core::model::Millis(0),
                by: None,
                events: Vec::new(),
            });
            let local = body.at.to_datetime(offset);
            // The recorded events as JSON text: the export's format since
            // the start.
            let mut row = json!({
                "seq": rec.seq,
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
                row["by_words"] = operator(body.by.as_deref(), &kinds).into();
                row["words"] = body
                    .events
                    .iter()
                    .map(|e| match (e, body.by.as_deref().and_then(sign_in_attempt)) {
                        // Refused for the wait: the password was not checked.
                        (Event::Login { account, ok: false }, Some((_, _, Some(_)))) => {
                            format!("{account} のログインを受け付けませんでした（失敗が続いたための待ち時間中。パスワードは確かめていません）")
                        }
                        _ => describe(e, names),
                    })
                    .collect::<Vec<_>>()
                    .into();
                row["kinds"] = body.events.iter().map(kind).collect::<Vec<_>>().into();
            }
            row
        })
        .collect();
    if page.is_some() {
        rows.reverse();
    }
    Ok(Found { rows, total, check })
}

/// A page link keeping the filter.
fn page_link(f: &Filter, page: usize) -> String {
    let enc = |s: &Option<String>| {
        s.as_deref()
            .unwrap_or("")
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "/audit?date={}&counter={}&staff={}&ticket={}&page={page}",
        enc(&f.date),
        enc(&f.counter),
        enc(&f.staff),
        enc(&f.ticket)
    )
}

/// `GET /audit`: the page.
pub async fn page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    super::extract::UrlQuery(f): super::extract::UrlQuery<Filter>,
) -> Result<Response, ApiError> {
    let caller = match super::gate::person(&app, &method, &headers, AUDITORS, "/audit") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let q = parse(&f)?;
    let asked = f
        .page
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<usize>()
                .map_err(|_| super::extract::bad_field("page"))
        })
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let names = queue_names(&app)?;
    let a = app.clone();
    let found = tokio::task::spawn_blocking(move || {
        // A page past the end shows the last one.
        let mut found = search(&a, &q, Some(asked), Some(&names))?;
        let last = found.total.div_ceil(PAGE_ROWS).max(1);
        if asked > last {
            found = search(&a, &q, Some(last), Some(&names))?;
        }
        Ok::<_, ApiError>(found)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let pages = found.total.div_ceil(PAGE_ROWS).max(1);
    let current = asked.min(pages);
    let link = |p: usize| (p >= 1 && p <= pages && p != current).then(|| page_link(&f, p));
    let check = context! {
        ok => found.check.ok(),
        links => found.check.links,
        broken => found.check.broken.as_ref().map(|(seq, _)| *seq),
    };
    let office = app.office_name().await?;
    let html: Html<String> = app.pages.render(
        "audit.html",
        context! {
            office, user => caller.name, menu => super::gate::menu(Some(&caller), "/audit"),
            csrf => caller.csrf(), rows => found.rows, total => found.total,
            shown => PAGE_ROWS, page => current, pages, check,
            newest => link(1), newer => link(current.saturating_sub(1)),
            older => link(current + 1), oldest => link(pages),
            date => f.date, counter => f.counter, staff => f.staff, ticket => f.ticket,
        },
    )?;
    Ok(html.into_response())
}

/// `GET /api/audit/export`: every matching record as JSON Lines, oldest
/// first.
pub async fn export(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    super::extract::UrlQuery(f): super::extract::UrlQuery<Filter>,
) -> Result<Response, ApiError> {
    app.auth.require(&method, &headers, AUDITORS)?;
    let q = parse(&f)?;
    let a = app.clone();
    let found = tokio::task::spawn_blocking(move || search(&a, &q, None, None))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    if let Some((seq, why)) = &found.check.broken {
        tracing::error!(record = seq, reason = %why, "the audit export found a broken hash chain");
    }
    let body: String = found.rows.iter().map(|r| format!("{r}\n")).collect();
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
/// A name the store still knows says whether it is a device or a person
/// and its role; a deleted one is shown as recorded.
pub fn operator(by: Option<&str>, kinds: &HashMap<String, (bool, Role)>) -> String {
    // A sign-in attempt is recorded as "name from address" (api.rs), one
    // refused while its wait runs with " (refused: waiting N min)": said in
    // Japanese (outside tester pages-rt8 F3: the page showed the English).
    if let Some((account, addr, wait)) = by.and_then(sign_in_attempt) {
        let wait = wait.map_or_else(String::new, |m| {
            format!("・待ち時間中のため拒否、あと {m} 分")
        });
        return format!("{account}（{addr} から{wait}）");
    }
    match by {
        Some(b) if b.starts_with("printer:") => {
            format!("発券機 {} のプリンター", &b["printer:".len()..])
        }
        Some(b) => {
            // An admin override is recorded as "name (override: …)".
            let name = b.split(" (").next().unwrap_or(b);
            match kinds.get(name) {
                Some((true, role)) => format!("端末 {b}（{}）", role_ja(role.name())),
                Some((false, role)) => format!("{b}（{}アカウント）", role_ja(role.name())),
                None => b.to_string(),
            }
        }
        None => "サーバー（自動）".to_string(),
    }
}

/// A sign-in attempt's `by` as api.rs records it: the typed name, the
/// address, and the minutes left to wait when it was refused for that.
fn sign_in_attempt(by: &str) -> Option<(&str, &str, Option<&str>)> {
    let (head, wait) = match by
        .strip_suffix(" min)")
        .and_then(|x| x.rsplit_once(" (refused: waiting "))
    {
        Some((h, m)) if m.chars().all(|c| c.is_ascii_digit()) => (h, Some(m)),
        _ => (by, None),
    };
    let (account, addr) = head.rsplit_once(" from ")?;
    addr.parse::<std::net::IpAddr>().ok()?;
    Some((account, addr, wait))
}

/// 「（内部メモ: …）」 after a transfer or hold that has one.
fn memo(note: Option<&str>) -> String {
    note.map(str::trim)
        .filter(|n| !n.is_empty())
        .map_or_else(String::new, |n| format!("（内部メモ: {n}）"))
}

/// A role's name in Japanese.
fn role_ja(r: &str) -> &'static str {
    serde_json::from_value::<super::auth::Role>(serde_json::Value::String(r.to_string()))
        .map_or("（不明な種類）", super::auth::Role::ja)
}

/// An account change's `role` field in words (see api.rs and admin.rs).
fn account_change(account: &str, role: &str) -> String {
    match role {
        "disabled" => format!("{account} を無効にしました"),
        "enabled" => format!("{account} を有効にしました"),
        "deleted" => format!("{account} を削除しました"),
        "session-ended" => format!("{account} のログインを終了させました"),
        "issuing-released" => format!("発券機「{account}」の発券を再開しました（停止の解除）"),
        r if r.starts_with("issuing-held:") => {
            let (count, secs) = r["issuing-held:".len()..]
                .split_once('/')
                .unwrap_or(("?", "?"));
            format!("発券機「{account}」の発券を止めました（{secs} 秒間に {count} 枚: 人が発券機で取れる数をはるかに超えています）")
        }
        r if r.starts_with("enrolment-link-revoked:") => format!(
            "{}「{account}」の登録用リンクを取り消しました（まだ使われていないリンク）",
            role_ja(&r["enrolment-link-revoked:".len()..])
        ),
        "enrolment-link-withdrawn" => format!(
            "予備機「{account}」の登録用リンクを無効にしました（新しい予備機のリンクを作ったため）"
        ),
        r if r.starts_with("enrolment-link:") => format!(
            "{}「{account}」の登録用リンクを作りました",
            role_ja(&r["enrolment-link:".len()..])
        ),
        r if r.starts_with("created:") => format!(
            "アカウント {account}（{}）を作りました",
            role_ja(&r["created:".len()..])
        ),
        r if r.starts_with("password-reset:") => {
            let (now, was) = r["password-reset:".len()..]
                .split_once(':')
                .unwrap_or((&r["password-reset:".len()..], ""));
            if now == was || was.is_empty() {
                format!("{account} のパスワードを設定し直しました")
            } else {
                format!(
                    "{account} のパスワードを設定し直し、役割を{}から{}に変えました",
                    role_ja(was),
                    role_ja(now)
                )
            }
        }
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
    let at = |c: Option<u16>| c.map(|c| format!(" {c} 番窓口で")).unwrap_or_default();
    match e {
        // `source` is the whole configuration text: the export has it.
        Event::ConfigApplied { .. } => {
            "設定を適用しました（内容は書き出しで確認できます）".to_string()
        }
        Event::DayOpened {
            date,
            special,
            after_wrong_day,
        } => {
            let special = if *special {
                "（特別開庁日）"
            } else {
                ""
            };
            if after_wrong_day.is_empty() {
                format!("{date} の受付を始めました{special}")
            } else {
                // insider-rt10 N8: the wrong day's numbers stay taken.
                let taken: Vec<String> = after_wrong_day
                    .iter()
                    .map(|(q, n)| format!("{}は {n} 番", names.queue(q)))
                    .collect();
                format!(
                    "{date} の受付を始めました{special}。誤って開始された日に{}まで発券したため、番号はその続きからです",
                    taken.join("、")
                )
            }
        }
        Event::DayClosed { date } => format!("{date} の業務を終了しました"),
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
        Event::CounterOpened { counter, .. } => format!("{counter} 番窓口を開きました"),
        Event::CounterClosed { counter } => format!("{counter} 番窓口を閉じました"),
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
            "{number} 番を {counter} 番窓口に呼び出しました{}",
            if *out_of_order { "（順番外）" } else { "" }
        ),
        Event::Recalled { number, counter } => {
            format!("{number} 番を {counter} 番窓口にもう一度呼び出しました")
        }
        Event::Started { number, counter } => {
            format!("{number} 番の対応を {counter} 番窓口で始めました")
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
            format!("{number} 番の対応を {counter} 番窓口で終えました{tags}")
        }
        Event::Absent { number, counter } => {
            format!("{number} 番を {counter} 番窓口で不在にしました")
        }
        Event::Returned { number } => format!("{number} 番が不在から戻りました"),
        // With its 内部メモ (outside tester pages-rt8 F9: only the export
        // had it); the audit page is for auditors and administrators.
        Event::Transferred {
            number,
            counter,
            to,
            note,
            ..
        } => format!(
            "{number} 番を{}「{}」へ回付しました{}",
            at(*counter),
            names.queue(to),
            memo(note.as_deref())
        ),
        Event::Held {
            number,
            counter,
            note,
        } => format!(
            "{number} 番を {counter} 番窓口で保留にしました{}",
            memo(note.as_deref())
        ),
        Event::Resumed { number, counter } => {
            format!("{number} 番の保留を {counter} 番窓口で再開しました")
        }
        Event::Cancelled { number, counter } => {
            format!("{number} 番を{}取り消しました", at(*counter))
        }
        // Recorded at 業務終了 for every ticket still open then — waiting,
        // called, absent or on hold (the event does not say which): so
        // never 「呼ばれませんでした」 (browser red team F20).
        Event::Unserved { number } => {
            format!("{number} 番は業務終了の時点で未対応でした（手続きが終わっていません）")
        }
        Event::Login { account, ok: true } => format!("{account} がログインしました"),
        Event::Login { account, ok: false } => {
            format!("{account} のログインに失敗しました（ID またはパスワードの誤り）")
        }
        Event::AccountChanged { account, role } => account_change(account, role),
        Event::LogArchived { through, .. } => {
            format!("記録 {through} 番までを保管用に書き出しました")
        }
        Event::NextDayRaised { after } => format!(
            "記録の損傷を受け入れたため、次に開く業務日の番号は {} より後から始めます",
            after
                .iter()
                .map(|(c, n)| format!("{} {n}", names.queue(c)))
                .collect::<Vec<_>>()
                .join("、")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside tester pages-rt8 F3: the operator column showed
    /// 「山田 太郎/<b> from 127.0.0.1 (refused: waiting 1 min)」.
    #[test]
    fn sign_in_attempts_are_said_in_japanese() {
        let kinds = HashMap::new();
        assert_eq!(
            operator(
                Some("山田 太郎/<b> from 127.0.0.1 (refused: waiting 1 min)"),
                &kinds
            ),
            "山田 太郎/<b>（127.0.0.1 から・待ち時間中のため拒否、あと 1 分）"
        );
        assert_eq!(
            operator(Some("admin from ::1"), &kinds),
            "admin（::1 から）"
        );
        // Not an address: left as it was recorded.
        assert_eq!(
            operator(Some("tanaka from home"), &kinds),
            "tanaka from home"
        );
        assert_eq!(operator(None, &kinds), "サーバー（自動）");
    }

    /// Outside tester pages-rt9 F7: a new account and a password set
    /// again both read 「…を職員として設定しました（役割・パスワード）」.
    #[test]
    fn a_new_account_and_a_reset_read_apart() {
        assert_eq!(
            account_change("yamada", "created:staff"),
            "アカウント yamada（職員）を作りました"
        );
        assert_eq!(
            account_change("yamada", "password-reset:staff:staff"),
            "yamada のパスワードを設定し直しました"
        );
        assert_eq!(
            account_change("yamada", "password-reset:auditor:staff"),
            "yamada のパスワードを設定し直し、役割を職員から監査担当に変えました"
        );
        assert_eq!(
            account_change("kiosk-2", "enrolment-link-revoked:kiosk"),
            "発券機「kiosk-2」の登録用リンクを取り消しました（まだ使われていないリンク）"
        );
        // Written before: as it was worded then.
        assert_eq!(
            account_change("yamada", "staff"),
            "yamada を職員として設定しました（役割・パスワード）"
        );
    }

    /// Outside tester pages-rt8 F9: the audit row of a transfer left its
    /// 内部メモ out (「1005 番を 13 番窓口で「証明の交付」へ回付しました」).
    #[test]
    fn a_transfer_row_carries_its_memo() {
        let names = Names {
            queues: [("koufu".to_string(), "証明の交付".to_string())].into(),
            tags: HashMap::new(),
        };
        let e = Event::Transferred {
            number: 1005,
            counter: Some(13),
            to: "koufu".into(),
            tags: Vec::new(),
            note: Some("書類確認済み".into()),
        };
        assert_eq!(
            describe(&e, &names),
            "1005 番を 13 番窓口で「証明の交付」へ回付しました（内部メモ: 書類確認済み）"
        );
    }

    /// insider-rt10 N8 (issue 23): today opened after a wrong day says
    /// which of that day's numbers stay taken.
    #[test]
    fn a_day_opened_after_a_wrong_day_names_the_numbers_kept() {
        let names = Names {
            queues: [("idou".to_string(), "住民異動".to_string())].into(),
            tags: HashMap::new(),
        };
        let e = Event::DayOpened {
            date: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap_or_default(),
            special: false,
            after_wrong_day: [("idou".to_string(), 1002)].into(),
        };
        assert_eq!(
            describe(&e, &names),
            "2026-12-07 の受付を始めました。誤って開始された日に住民異動は 1002 番まで発券したため、番号はその続きからです"
        );
    }
}
