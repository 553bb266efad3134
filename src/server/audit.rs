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
fn search(app: &App, p: &Parsed, limit: usize) -> Result<(Vec<Value>, usize), ApiError> {
    let offset = app.status_offset();
    let mut rows = Vec::new();
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
        let summary: Vec<String> = body
            .events
            .iter()
            .map(|e| match e {
                Event::ConfigApplied { .. } => "config_applied".to_string(),
                other => serde_json::to_string(other).unwrap_or_default(),
            })
            .collect();
        rows.push(json!({
            "seq": rec.seq,
            "time": local.format("%Y-%m-%d %H:%M:%S").to_string(),
            "by": body.by,
            "events": summary,
            "hash": hex(&rec.hash()),
        }));
    }
    rows.reverse();
    rows.truncate(limit);
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
    let a = app.clone();
    let (rows, total) = tokio::task::spawn_blocking(move || search(&a, &p, PAGE_ROWS))
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
    let (mut rows, _) = tokio::task::spawn_blocking(move || search(&a, &p, usize::MAX))
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
