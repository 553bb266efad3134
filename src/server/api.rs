//! The JSON API: every engine command (`POST /api/commands`) and every read
//! (`GET /api/status`, `GET /api/tickets/{number}`), login and devices.
//! Documented in docs/api.md; every error is [`ApiError`] JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use madoguchi_core::model::{Command, Event, Millis};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Role, DEVICE_COOKIE, SESSION_COOKIE};
use super::error::ApiError;
use super::{views, App};

const STAFF: &[Role] = &[Role::Staff, Role::Admin];
const READERS: &[Role] = &[
    Role::Staff,
    Role::Admin,
    Role::Auditor,
    Role::Kiosk,
    Role::Display,
];

/// Parses a JSON body ourselves, so that every failure is our JSON error.
pub fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest("the body could not be read".into())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn roles_for(command: &Command) -> &'static [Role] {
    match command {
        Command::IssueTicket { .. } => &[Role::Kiosk, Role::Staff, Role::Admin],
        _ => STAFF,
    }
}

/// `POST /api/commands`: one engine command, answered once it is durable.
pub async fn command(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    if app.is_standby() {
        return Err(ApiError::Standby);
    }
    // Who asks comes first: an anonymous caller learns nothing, not even
    // whether its body parses.
    let caller = app
        .auth
        .require(&method, &headers, &[Role::Kiosk, Role::Staff, Role::Admin])?;
    let command: Command = parse_body(body)?;
    caller.allow(roles_for(&command))?;
    if let (Role::Kiosk, Command::IssueTicket { category, .. }) = (caller.role, &command) {
        let (kiosk, category) = (caller.name.clone(), category.clone());
        let offered = app
            .engine
            .read(move |e| e.config().kiosk_offers(&kiosk, &category))
            .map_err(ApiError::from)?;
        if !offered {
            return Err(ApiError::Forbidden);
        }
    }
    let handle = app.engine.clone();
    let is_issue = matches!(command, Command::IssueTicket { .. });
    let by = caller.name.clone();
    let outcome = tokio::task::spawn_blocking(move || handle.execute(None, command, Some(by)))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .inspect_err(|e| {
            if let madoguchi_core::engine::ExecError::Engine(inner) = e {
                if super::error::is_disk_full(inner.as_ref()) {
                    app.faults.record(
                        "disk",
                        format!("disk full: a command could not be recorded and was refused; nothing was lost ({inner})"),
                    );
                } else {
                    app.faults.record(
                        "record",
                        format!("a command could not be recorded (disk damaged?): {inner}"),
                    );
                }
            }
        })?;
    let mut answer = json!({
        "ok": true,
        "seq": outcome.seq,
        "ticket": outcome.ticket,
        "events": outcome.events,
    });
    if is_issue {
        if let Some(n) = outcome.ticket {
            let issued = app.printed_ticket(n).await?;
            let mut network = false;
            if caller.role == Role::Kiosk && outcome.seq.is_some() {
                network = print_on_network_printer(&app, &caller.name, n, &issued).await?;
            }
            answer["issued"] = issued;
            answer["printed"] = if network {
                "network".into()
            } else {
                "browser".into()
            };
        }
    }
    Ok(Json(answer))
}

/// Prints a kiosk's new ticket on its network printer, if it has one. A
/// failed print voids the ticket (cancelled, by the printer) and the
/// visitor is told to ask staff: no phantom number waits in the queue.
async fn print_on_network_printer(
    app: &App,
    kiosk: &str,
    number: u32,
    issued: &Value,
) -> Result<bool, ApiError> {
    let name = kiosk.to_string();
    let printer = app
        .engine
        .read(move |e| {
            e.config()
                .printers
                .iter()
                .find(|p| p.kiosk == name)
                .map(|p| p.address)
        })
        .map_err(ApiError::from)?;
    let Some(address) = printer else {
        return Ok(false);
    };
    let text = super::escpos::TicketText {
        office: app.status().await?.office.ja,
        category: issued["category_name"]["ja"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        number,
        meta: format!(
            "{} {} 発券 ・ 前に {} 人 ・ 約 {} 分",
            issued["date"].as_str().unwrap_or_default(),
            issued["time"].as_str().unwrap_or_default(),
            issued["people_ahead"],
            issued["expected_wait_min"]
        ),
        url: issued["mobile_url"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let printed = tokio::task::spawn_blocking(move || super::escpos::print(address, &text))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Err(e) = printed {
        tracing::warn!(kiosk, number, error = %e, "ticket not printed; voiding it");
        app.faults.record(
            "printer",
            format!("{kiosk}: ticket {number} not printed and voided: {e}"),
        );
        let handle = app.engine.clone();
        let by = format!("printer:{kiosk}");
        tokio::task::spawn_blocking(move || {
            handle.execute(None, Command::Cancel { number }, Some(by))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        return Err(ApiError::PrintFailed);
    }
    Ok(true)
}

/// `GET /api/status`: the day, every queue with its waits, every counter.
pub async fn status(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<views::StatusView>, ApiError> {
    app.auth.require(&method, &headers, READERS)?;
    Ok(Json(app.status().await?))
}

#[derive(Debug, Deserialize)]
pub struct DateQuery {
    date: Option<NaiveDate>,
}

/// `GET /api/tickets/{number}?date=…`: a ticket's whole path (R8).
pub async fn ticket(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(number): Path<u32>,
    Query(q): Query<DateQuery>,
) -> Result<Json<Value>, ApiError> {
    app.auth.require(
        &method,
        &headers,
        &[Role::Staff, Role::Admin, Role::Auditor],
    )?;
    let ticket = app
        .engine
        .read(move |e| e.ticket(q.date, number).map_err(|x| x.to_string()))
        .map_err(ApiError::from)?
        .map_err(ApiError::Internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(
        serde_json::to_value(ticket).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
}

/// `POST /api/login`: opens a session (cookie) and returns its CSRF token.
pub async fn login(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let l: Login = parse_body(body)?;
    let auth = app.clone();
    let (token, caller) = tokio::task::spawn_blocking(move || {
        let result = auth.auth.login(&l.username, &l.password);
        if result.is_ok() || auth.auth.knows(&l.username) {
            let event = Event::Login {
                account: l.username.clone(),
                ok: result.is_ok(),
            };
            auth.audit(Some(l.username.clone()), event);
        }
        result
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let body =
        Json(json!({"username": caller.name, "role": caller.role, "csrf_token": caller.csrf()}));
    Ok(([(header::SET_COOKIE, session_cookie(&token))], body).into_response())
}

/// `POST /api/logout`.
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.auth.logout(&headers);
    (
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Json(json!({"ok": true})),
    )
        .into_response()
}

/// `GET /api/me`: who the caller is, and the CSRF token to send back.
pub async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let c = app
        .auth
        .identify(&headers)
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(
        json!({"name": c.name, "role": c.role, "csrf_token": c.csrf()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    name: String,
    role: Role,
}

/// `POST /api/devices` (admin): an enrolment link for a kiosk or display.
pub async fn new_device(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    app.auth.require(&method, &headers, &[Role::Admin])?;
    let d: NewDevice = parse_body(body)?;
    if !matches!(d.role, Role::Kiosk | Role::Display | Role::Standby)
        || d.name.is_empty()
        || d.name.len() > 64
    {
        return Err(ApiError::BadRequest(
            "a device is a kiosk or a display, with a name of 1–64 characters".into(),
        ));
    }
    let code = app
        .auth
        .new_enrolment(&d.name, d.role, std::time::Duration::from_secs(24 * 3600));
    Ok(Json(
        json!({"enrol_url": format!("{}/enrol/{code}", app.base_url), "valid_hours": 24}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    role: Role,
    password: String,
}

/// `POST /api/users` (admin): adds or replaces a staff account.
pub async fn new_user(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = app.auth.require(&method, &headers, &[Role::Admin])?;
    let u: NewUser = parse_body(body)?;
    let auth = app.clone();
    tokio::task::spawn_blocking(move || {
        auth.auth.set_user(&u.username, u.role, &u.password)?;
        let role = serde_json::to_value(u.role)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let event = Event::AccountChanged {
            account: u.username,
            role,
        };
        auth.audit(Some(caller.name), event);
        Ok::<(), ApiError>(())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(json!({"ok": true})))
}

/// `GET /enrol/{code}`: makes this browser the device the code was for.
pub async fn enrol(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let (token, role, name) = app.auth.enrol(&code)?;
    let a = app.clone();
    let role_name = serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let event = Event::AccountChanged {
        account: name,
        role: role_name,
    };
    tokio::task::spawn_blocking(move || a.audit(None, event))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let to = if role == Role::Kiosk { "/kiosk" } else { "/" };
    let cookie =
        format!("{DEVICE_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=315360000");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, to.to_string()),
        ],
    )
        .into_response())
}

/// The command's time for views: the engine's clock.
pub fn wall_now() -> Millis {
    Millis(chrono::Utc::now().timestamp_millis())
}

/// What the kiosk shows and prints for an issued ticket.
pub fn printed(engine: &madoguchi_core::engine::Engine, number: u32, base: &str) -> Option<Value> {
    let t = engine.state().ticket(number)?;
    let config = engine.config();
    let q = config.queue(&t.category)?;
    let offset = config.office.utc_offset;
    let date = t.date;
    let url = format!("{base}/m#{date}/{number}");
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(140, 140)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    let issued = t.history.first().map(|s| s.at).unwrap_or(t.issued_at);
    Some(json!({
        "number": number,
        "category": q.id,
        "category_name": q.name,
        "colour": q.colour,
        "date": date,
        "time": issued.to_datetime(offset).format("%H:%M").to_string(),
        "people_ahead": t.people_ahead_at_issue,
        "expected_wait_min": t.expected_wait_s_at_issue.div_ceil(60),
        "mobile_url": url,
        "qr_svg": qr,
    }))
}
