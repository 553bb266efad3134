//! Device health (issue 18, R18): when each kiosk, display and standby
//! last reached this server, and what that means for what it shows. Kept
//! in memory: a restart forgets it, and every device is back within its
//! polling interval (a kiosk every 10 s, a display at once over its
//! WebSocket).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use super::auth::{Role, DEVICE_COOKIE};
use super::App;

/// A kiosk asks for its buttons every 10 s: this long without a request
/// and it is no longer showing the office's state.
const KIOSK_QUIET_S: i64 = 30;

#[derive(Debug, Default)]
pub struct Contacts {
    /// Device name → unix milliseconds of its last request.
    seen: Mutex<HashMap<String, i64>>,
}

impl Contacts {
    pub fn touch(&self, name: &str) {
        if let Ok(mut s) = self.seen.lock() {
            s.insert(name.to_string(), chrono::Utc::now().timestamp_millis());
        }
    }

    pub fn last(&self, name: &str) -> Option<i64> {
        self.seen.lock().ok()?.get(name).copied()
    }
}

/// Notes the last contact of every request that carries a device's
/// credential (cookie or bearer token); people's requests pass untouched.
pub async fn note(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let cookie = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(DEVICE_COOKIE));
    let bearer = headers.contains_key(axum::http::header::AUTHORIZATION);
    if cookie || bearer {
        if let Some(c) = app.auth.identify(headers).filter(|c| c.is_device()) {
            app.contacts.touch(&c.name);
        }
    }
    next.run(req).await
}

/// A device's row on /admin and /admin/devices.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceHealth {
    pub name: String,
    pub role: Role,
    pub role_ja: &'static str,
    pub disabled: bool,
    /// Its last contact in office time, if any since the server started.
    pub last_contact: Option<String>,
    /// `ok`, `stale`, `unknown` or `revoked` (a CSS class and a test hook).
    pub state: &'static str,
    /// The state in words.
    pub state_ja: String,
    /// The token's end, office date.
    pub expires: Option<String>,
}

pub fn role_ja(role: Role) -> &'static str {
    match role {
        Role::Admin => "管理者",
        Role::Staff => "職員",
        Role::Auditor => "監査担当",
        Role::Kiosk => "発券機",
        Role::Display => "表示機",
        Role::Standby => "予備機",
    }
}

/// Every enrolled device with its last contact and whether what it shows
/// is current.
pub fn devices(app: &App) -> Vec<DeviceHealth> {
    let offset = app.status_offset();
    let now = chrono::Utc::now().timestamp_millis();
    let stale_ms = i64::from(app.displays.stale_after_s()) * 1000;
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
    };
    let mut rows: Vec<DeviceHealth> = app
        .auth
        .devices()
        .into_iter()
        .map(|d| {
            let connected = d.role == Role::Display && app.faults.display_online(&d.name);
            // A display on its WebSocket is in contact all along.
            let last = if connected {
                Some(now)
            } else {
                app.contacts.last(&d.name)
            };
            let quiet = match d.role {
                Role::Kiosk => KIOSK_QUIET_S * 1000,
                _ => stale_ms.max(5000),
            };
            let recent = last.is_some_and(|t| now - t <= quiet);
            let (state, state_ja) = if d.disabled {
                ("revoked", "取り消し済み（使えません）".to_string())
            } else if connected {
                ("ok", "接続中・最新の表示".to_string())
            } else if recent {
                ("ok", "最新の表示".to_string())
            } else if last.is_none() {
                (
                    "unknown",
                    "起動後まだ接続がありません（表示が古いおそれ）".to_string(),
                )
            } else if d.role == Role::Kiosk {
                (
                    "stale",
                    format!("{KIOSK_QUIET_S} 秒以上応答なし（発券できないおそれ）"),
                )
            } else {
                (
                    "stale",
                    "接続が切れています（古い表示のおそれ）".to_string(),
                )
            };
            DeviceHealth {
                role_ja: role_ja(d.role),
                last_contact: last.and_then(local),
                expires: d.expires_at.and_then(|s| local(s * 1000)),
                name: d.name,
                role: d.role,
                disabled: d.disabled,
                state,
                state_ja,
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.role.name(), &a.name).cmp(&(b.role.name(), &b.name)));
    rows
}
