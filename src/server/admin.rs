//! Administration without the API (issue 18, R11): the pages for staff
//! accounts (create, role, disable, reset password), devices (enrolment
//! link with its QR code, revoke, last contact) and sessions (list, end).
//! The pages are server-rendered from `layouts/admin_*.html`; their
//! buttons (site/admin.js) call the JSON routes of [`super::api`], so a
//! page can do nothing the API does not allow, and the same audit records
//! are written. The reads the pages need are here too (`GET /api/users`,
//! `/api/devices`, `/api/sessions`), and ending a session.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use madoguchi_core::model::Event;
use madoguchi_renderer::context;
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::{Caller, Role};
use super::error::ApiError;
use super::extract::{Admins, Authed, UrlPath};
use super::health::{self, role_ja};
use super::App;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/admin/accounts", get(accounts_page))
        .route("/admin/devices", get(devices_page))
        .route("/admin/sessions", get(sessions_page))
        .route("/api/users", get(list_users))
        .route("/api/devices", get(list_devices))
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{id}", delete(end_session))
        .route("/api/enrolments", get(list_enrolments))
        .route("/api/enrolments/{id}", delete(revoke_enrolment))
}

/// The administrator asking for a page; a browser that is not signed in
/// goes to the login page and comes back, anyone else is told they may not.
fn admin(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Result<Caller, Box<Response>> {
    super::gate::person(app, method, headers, &[Role::Admin], path)
}

/// Unix seconds as the office's clock shows them.
fn office_time(app: &App, secs: i64) -> String {
    let offset = app.status_offset();
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// [`office_time`] to the second: two sign-ins of one person within a
/// minute are told apart (pages-rt10 N1).
fn office_time_s(app: &App, secs: i64) -> String {
    let offset = app.status_offset();
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct PersonView {
    username: String,
    role: Role,
    role_ja: &'static str,
    disabled: bool,
    sessions: usize,
}

fn people(app: &App) -> Vec<PersonView> {
    let sessions = app.auth.sessions();
    let mut rows: Vec<PersonView> = app
        .auth
        .people()
        .into_iter()
        .map(|p| PersonView {
            sessions: sessions.iter().filter(|s| s.username == p.username).count(),
            role_ja: role_ja(p.role),
            username: p.username,
            role: p.role,
            disabled: p.disabled,
        })
        .collect();
    rows.sort_by(|a, b| a.username.cmp(&b.username));
    rows
}

#[derive(Debug, Serialize)]
struct SessionView {
    id: String,
    username: String,
    started: String,
    last_seen: String,
    own: bool,
    /// The page last opened, the browser and the address (pages-rt10 N1).
    page: String,
    agent: String,
    addr: String,
    /// Signed in before this server (re)started or took over as primary:
    /// where it was is not known, and the page says 「再起動後は未記録」
    /// instead of a bare 「—」 (issue 18, pages12 brief 4).
    unrecorded: bool,
}

fn sessions(app: &App, me: &Caller) -> Vec<SessionView> {
    let own = me.session_id();
    app.auth
        .sessions()
        .into_iter()
        .map(|s| {
            let seen = app.auth.seen(&s.id);
            (s, seen)
        })
        .map(|(s, seen)| SessionView {
            // Where a session is, is kept in memory only (auth.rs `seen`),
            // not in the sessions file: it changes with every page opened,
            // and the sessions file is written and sent to the standby
            // only when a session starts or ends. A sign-in on this run
            // always notes its address, so a session without one signed
            // in before the restart (or on the primary before promotion).
            unrecorded: seen.addr.is_empty(),
            own: own.as_deref() == Some(s.id.as_str()),
            started: office_time_s(app, s.started_at),
            last_seen: office_time_s(app, s.last_seen),
            page: seen.page,
            agent: seen.agent,
            addr: seen.addr,
            id: s.id,
            username: s.username,
        })
        .collect()
}

/// An outstanding enrolment link as the devices page lists it.
#[derive(Debug, Serialize)]
struct LinkView {
    id: String,
    name: String,
    role: Role,
    role_ja: &'static str,
    expires: String,
    made_by: String,
    /// A device of this name is enrolled now: using the link replaces it.
    replaces: bool,
}

/// Every link that would still enrol a device (outside tester pages-rt9
/// F2: the links printed at first start and those made on the page and
/// not used yet were nowhere to be seen, and one took over kiosk-1).
fn links(app: &App) -> Vec<LinkView> {
    app.auth
        .pending_enrolments()
        .into_iter()
        .map(|l| LinkView {
            replaces: app.auth.device_enrolled(&l.name),
            role_ja: role_ja(l.role),
            expires: office_time(app, l.expires_at),
            made_by: l
                .made_by
                .unwrap_or_else(|| "初回起動時（サーバーの画面に表示）".to_string()),
            id: l.id,
            name: l.name,
            role: l.role,
        })
        .collect()
}

async fn render(
    app: &Arc<App>,
    name: &str,
    caller: &Caller,
    extra: madoguchi_renderer::Value,
) -> Result<Response, ApiError> {
    let office = app.office_name().await?;
    // admin_accounts.html is /admin/accounts.
    let here = format!("/{}", name.trim_end_matches(".html").replace('_', "/"));
    let menu = super::gate::menu(Some(caller), &here);
    let page = app.pages.render(
        name,
        context! { office, user => caller.name, csrf => caller.csrf(), menu, ..extra },
    )?;
    Ok(page.into_response())
}

/// `GET /admin/accounts`.
async fn accounts_page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match admin(&app, &method, &headers, "/admin/accounts") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let rows = people(&app);
    render(
        &app,
        "admin_accounts.html",
        &caller,
        context! { people => rows },
    )
    .await
}

/// `GET /admin/devices`.
async fn devices_page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match admin(&app, &method, &headers, "/admin/devices") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let rows = health::devices(&app);
    render(
        &app,
        "admin_devices.html",
        &caller,
        context! { devices => rows, revoke => true, links => links(&app) },
    )
    .await
}

/// `GET /admin/sessions`.
async fn sessions_page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match admin(&app, &method, &headers, "/admin/sessions") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let rows = sessions(&app, &caller);
    let unrecorded = rows.iter().any(|r| r.unrecorded);
    render(
        &app,
        "admin_sessions.html",
        &caller,
        context! { sessions => rows, unrecorded },
    )
    .await
}

/// `GET /api/users` (admin): every person's account (never a hash).
async fn list_users(State(app): State<Arc<App>>, _: Authed<Admins>) -> Json<Value> {
    Json(json!({ "users": people(&app) }))
}

/// `GET /api/devices` (admin): every device with its last contact.
async fn list_devices(State(app): State<Arc<App>>, _: Authed<Admins>) -> Json<Value> {
    Json(json!({ "devices": health::devices(&app) }))
}

/// `GET /api/sessions` (admin): the live sessions.
async fn list_sessions(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
) -> Json<Value> {
    Json(json!({ "sessions": sessions(&app, &caller) }))
}

/// `GET /api/enrolments` (admin): the links that would still enrol a
/// device (never their codes).
async fn list_enrolments(State(app): State<Arc<App>>, _: Authed<Admins>) -> Json<Value> {
    Json(json!({ "enrolments": links(&app) }))
}

/// `DELETE /api/enrolments/{id}` (admin): withdraws an unused enrolment
/// link (the 取り消す of the devices page, pages-rt9 F2); in the audit
/// log with the administrator's name, the device name and its kind.
async fn revoke_enrolment(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (name, role) = app
        .auth
        .revoke_enrolment(&id)
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?
        .ok_or(ApiError::NotFound)?;
    let a = app.clone();
    let event = Event::AccountChanged {
        account: name.clone(),
        role: format!("enrolment-link-revoked:{}", role.name()),
    };
    tokio::task::spawn_blocking(move || a.audit(Some(caller.name), event))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({"ok": true, "name": name, "role": role})))
}

/// `DELETE /api/sessions/{id}` (admin): ends a session at once, in the
/// audit log with the administrator's name.
async fn end_session(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let account = app.auth.end_session(&id)?.ok_or(ApiError::NotFound)?;
    let a = app.clone();
    let event = Event::AccountChanged {
        account,
        role: "session-ended".into(),
    };
    tokio::task::spawn_blocking(move || a.audit(Some(caller.name), event))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({"ok": true})))
}
