//! Device health (issue 18, R18): when each kiosk, display and standby
//! last reached this server, and what that means for what it shows. Kept
//! in memory and, so that a restart does not forget a device that has gone
//! quiet, in `device-contacts.json` in the data folder: a device's contact
//! is written at most once a minute (its first after a start at once), by
//! a background task, never on the request's path.

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
/// A device's contact is written to disk at most this often.
const PERSIST_EVERY_MS: i64 = 60_000;
/// The last contacts kept across restarts, in the data folder.
pub const CONTACTS_FILE: &str = "device-contacts.json";

#[derive(Debug, Default)]
pub struct Contacts {
    /// Device name → unix milliseconds of its last request.
    seen: Mutex<HashMap<String, i64>>,
    /// Device name → the contact last handed to the writer.
    persisted: Mutex<HashMap<String, i64>>,
    /// Wakes the writer (`spawn_writer`).
    wake: tokio::sync::Notify,
    /// Kiosk → why its printer cannot print now (last status asked).
    printers: Mutex<HashMap<String, Blocked>>,
    /// Why no command can be recorded now (the last one failed to be).
    storage: Mutex<Option<Blocked>>,
}

/// Why a kiosk cannot issue now, in the words its screen shows: each of
/// the kiosk's languages (R12), Chinese and Korean in their own words, not
/// English (issue 24).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub ja: String,
    pub easy: String,
    pub en: String,
    pub zh: String,
    pub ko: String,
}

impl Blocked {
    fn of(ja: impl Into<String>, easy: &str, en: &str, zh: &str, ko: &str) -> Blocked {
        Blocked {
            ja: ja.into(),
            easy: easy.into(),
            en: en.into(),
            zh: zh.into(),
            ko: ko.into(),
        }
    }

    /// The day is not open: closed for today once it was opened today,
    /// otherwise not started yet (browser red team F9: never "closed for
    /// today" in the morning).
    pub fn day_closed(opened_today: bool) -> Blocked {
        if opened_today {
            Blocked::of(
                "本日の受付は終了しました。",
                "きょうの うけつけは おわりました。",
                "Reception has closed for today.",
                "今天的受理已经结束。",
                "오늘 접수는 마감되었습니다.",
            )
        } else {
            Blocked::of(
                "本日の受付はまだ始まっていません。",
                "きょうの うけつけは まだ はじまって いません。",
                "Reception has not opened yet today.",
                "今天的受理尚未开始。",
                "오늘 접수는 아직 시작되지 않았습니다.",
            )
        }
    }

    pub fn storage() -> Blocked {
        Blocked::of(
            "受付の記録装置に障害があり、番号を記録できません。",
            "きかいが こわれて います。",
            "The reception records cannot be written (a storage fault).",
            "受理记录装置发生故障，无法记录号码。",
            "접수 기록 장치에 장애가 있어 번호를 기록할 수 없습니다.",
        )
    }

    /// This server takes no commands now (`App::may_command`): replaced,
    /// a standby, held (a revoked standby, a restore, an unverified epoch
    /// claim) or without its standby's lease (issue 24).
    pub fn fenced(e: &super::error::ApiError) -> Blocked {
        use super::error::ApiError as E;
        const PAUSED_EASY: &str = "いま ばんごうを だせません。";
        match e {
            E::Replaced(_) => Blocked::of(
                "この機械は主機ではなくなりました（予備機が主機に昇格しました）。",
                "この きかいは もう つかえません。",
                "This server is no longer the primary (its standby was promoted).",
                "本机已不再是主服务器（备用服务器已切换为主服务器）。",
                "이 기기는 더 이상 주 서버가 아닙니다(예비 서버가 주 서버로 전환되었습니다).",
            ),
            E::PrimaryBehind { .. } => Blocked::of(
                "この主機は記録の一部を失ったため、受付を止めています。予備機を主機に昇格してください。",
                PAUSED_EASY,
                "This primary lost records its standby holds; issuing is stopped. Promote the standby.",
                "本服务器丢失了部分记录，已暂停取号。",
                "이 서버는 기록의 일부를 잃어 번호표 발급을 멈추었습니다.",
            ),
            E::Plain {
                code: "revoked_standby_unconfirmed",
                ..
            } => Blocked::of(
                "取り消した予備機の停止が確認できていないため、番号の二重発行を防ぐために受付を止めています。",
                PAUSED_EASY,
                "The revoked standby is not known to be off; issuing is stopped so that no number is given twice.",
                "尚未确认已撤销的备用服务器是否停止，为防止同一号码发放两次，现已暂停取号。",
                "등록을 취소한 예비 서버가 멈췄는지 확인되지 않아, 같은 번호가 두 번 발급되지 않도록 번호표 발급을 멈추었습니다.",
            ),
            E::Plain {
                code: "restored_unconfirmed",
                ..
            } => Blocked::of(
                "バックアップから復元した直後のため、番号の二重発行を防ぐために受付を止めています。",
                PAUSED_EASY,
                "This server was restored from a backup; issuing is stopped so that no number is given twice.",
                "本服务器刚从备份恢复，为防止同一号码发放两次，现已暂停取号。",
                "이 서버는 백업에서 복원된 직후라, 같은 번호가 두 번 발급되지 않도록 번호표 발급을 멈추었습니다.",
            ),
            E::Plain {
                code: "unverified_epoch_claim",
                ..
            } => Blocked::of(
                "別の機械が主機として動いている可能性があるため、番号の二重発行を防ぐために受付を止めています。",
                PAUSED_EASY,
                "Another server may be acting as the primary; issuing is stopped so that no number is given twice.",
                "可能有其他服务器正在作为主服务器运行，为防止同一号码发放两次，现已暂停取号。",
                "다른 기기가 주 서버로 작동하고 있을 수 있어, 같은 번호가 두 번 발급되지 않도록 번호표 발급을 멈추었습니다.",
            ),
            E::Standby => Blocked::of(
                "この機械は予備機です。",
                "この きかいは よびの きかいです。",
                "This is the standby server.",
                "本机是备用服务器。",
                "이 기기는 예비 서버입니다.",
            ),
            _ => Blocked::of(
                "予備機と連絡が取れないため、番号の二重発行を防ぐために受付を止めています。",
                PAUSED_EASY,
                "The standby server cannot be reached; issuing is stopped so that no number is given twice.",
                "无法与备用服务器联系，为防止同一号码发放两次，现已暂停取号。",
                "예비 서버와 연결할 수 없어, 같은 번호가 두 번 발급되지 않도록 번호표 발급을 멈추었습니다.",
            ),
        }
    }

    pub fn printer(e: &super::escpos::PrintError) -> Blocked {
        use super::escpos::PrintError as P;
        let (easy, en, zh, ko) = match e {
            P::PaperOut(_) => (
                "かみが なくなりました。",
                "The printer is out of paper.",
                "打印机没有纸了。",
                "프린터 용지가 떨어졌습니다.",
            ),
            P::CoverOpen(_) => (
                "プリンターの ふたが あいて います。",
                "The printer's cover is open.",
                "打印机盖子开着。",
                "프린터 덮개가 열려 있습니다.",
            ),
            P::Offline(_) => (
                "プリンターが とまって います。",
                "The printer is offline.",
                "打印机已停止。",
                "프린터가 멈춰 있습니다.",
            ),
            P::Unreachable(..) | P::Io(_) => (
                "プリンターに つながりません。",
                "The printer cannot be reached.",
                "无法连接打印机。",
                "프린터에 연결할 수 없습니다.",
            ),
        };
        Blocked::of(format!("{}。", e.reason_ja()), easy, en, zh, ko)
    }
}

impl Contacts {
    /// The contacts kept in `data`. None when the file is missing; when it
    /// cannot be read or is damaged the server still starts (the file is
    /// only a convenience, the devices come back), but says so and moves
    /// the damaged file aside rather than overwriting it unseen.
    pub fn open(data: &std::path::Path) -> Contacts {
        let path = data.join(CONTACTS_FILE);
        let kept: HashMap<String, i64> = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(
                    "{} を読めません（{e}）。各端末の最終接続時刻は、次の接続まで空欄になります / cannot read {}: each device's last contact stays empty until it next connects",
                    path.display(),
                    path.display()
                );
                HashMap::new()
            }
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(kept) => kept,
                Err(e) => {
                    let aside = path.with_extension("json.damaged");
                    let moved = std::fs::rename(&path, &aside).is_ok();
                    tracing::warn!(
                        "{} が壊れています（{e}）。{}各端末の最終接続時刻は、次の接続まで空欄になります / {} is damaged; {}each device's last contact stays empty until it next connects",
                        path.display(),
                        if moved { format!("{} に移しました。", aside.display()) } else { String::new() },
                        path.display(),
                        if moved { format!("moved to {}; ", aside.display()) } else { String::new() },
                    );
                    HashMap::new()
                }
            },
        };
        Contacts {
            persisted: Mutex::new(kept.clone()),
            seen: Mutex::new(kept),
            ..Contacts::default()
        }
    }

    pub fn touch(&self, name: &str) {
        let now = chrono::Utc::now().timestamp_millis();
        if let Ok(mut s) = self.seen.lock() {
            s.insert(name.to_string(), now);
        }
        if let Ok(mut p) = self.persisted.lock() {
            if p.get(name).is_none_or(|&t| now - t >= PERSIST_EVERY_MS) {
                p.insert(name.to_string(), now);
                self.wake.notify_one();
            }
        }
    }

    pub fn last(&self, name: &str) -> Option<i64> {
        self.seen.lock().ok()?.get(name).copied()
    }

    /// Notes a kiosk printer's status; returns whether it changed (a
    /// change is a fault record, a steady state is not repeated).
    pub fn printer_status(&self, kiosk: &str, now: Option<Blocked>) -> bool {
        let Ok(mut p) = self.printers.lock() else {
            return false;
        };
        let before = p.get(kiosk).cloned();
        match &now {
            Some(b) => p.insert(kiosk.to_string(), b.clone()),
            None => p.remove(kiosk),
        };
        before != now
    }

    pub fn printer_fault(&self, kiosk: &str) -> Option<Blocked> {
        self.printers.lock().ok()?.get(kiosk).cloned()
    }

    /// A command could not be recorded (`Some`), or one was (`None`).
    pub fn storage_status(&self, now: Option<Blocked>) {
        if let Ok(mut s) = self.storage.lock() {
            *s = now;
        }
    }

    pub fn storage_fault(&self) -> Option<Blocked> {
        self.storage.lock().ok()?.clone()
    }
}

/// Writes the last contacts to the data folder whenever one is due
/// (temporary file and rename: a crash leaves the old file or the new).
pub fn spawn_writer(app: Arc<App>) {
    tokio::spawn(async move {
        loop {
            app.contacts.wake.notified().await;
            let Some(bytes) = app
                .contacts
                .persisted
                .lock()
                .ok()
                .and_then(|p| serde_json::to_vec(&*p).ok())
            else {
                continue;
            };
            let data = app.data.clone();
            let written = tokio::task::spawn_blocking(move || {
                let tmp = data.join(format!(".{CONTACTS_FILE}.tmp"));
                std::fs::write(&tmp, bytes)
                    .and_then(|()| std::fs::rename(&tmp, data.join(CONTACTS_FILE)))
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!("the devices' last contacts could not be written");
            }
        }
    });
}

/// Why this kiosk cannot issue a ticket now, if it cannot: the records
/// cannot be written, the day is not open, or its printer (asked now)
/// cannot print. A printer's change of state is a fault record.
pub async fn issue_blocked(
    app: &Arc<App>,
    kiosk: &super::auth::Caller,
    s: &super::views::StatusView,
) -> Option<Blocked> {
    if let Some(b) = app.contacts.storage_fault() {
        return Some(b);
    }
    if !s.day_open {
        return Some(Blocked::day_closed(s.date == Some(s.today)));
    }
    if let Err(e) = app.may_command() {
        return Some(Blocked::fenced(&e));
    }
    if kiosk.role != Role::Kiosk {
        return None;
    }
    let name = kiosk.name.clone();
    let address = app
        .host
        .printers
        .iter()
        .find(|p| p.kiosk == name)
        .map(|p| p.address)?;
    let checked = tokio::task::spawn_blocking(move || super::escpos::status(address))
        .await
        .ok()?;
    let now = checked.as_ref().err().map(Blocked::printer);
    note_printer(app, &kiosk.name, checked.err().as_ref());
    now
}

/// Records a printer's state after a status query or a print.
pub fn note_printer(app: &App, kiosk: &str, fault: Option<&super::escpos::PrintError>) {
    let now = fault.map(Blocked::printer);
    if app.contacts.printer_status(kiosk, now) {
        match fault {
            Some(e) => app.faults.record(
                "printer",
                format!("発券機 {kiosk} のプリンター: {}（{e}）", e.reason_ja()),
            ),
            None => app.faults.record(
                "printer",
                format!("発券機 {kiosk} のプリンター: 印刷できる状態に戻りました"),
            ),
        }
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
    /// A kiosk whose issuing is held (limits.rs): the row offers 発券を再開.
    pub held: bool,
    /// Its last contact in office time, if any (kept across restarts).
    pub last_contact: Option<String>,
    /// `ok`, `stale`, `fault`, `unknown` or `revoked` (a CSS class and a
    /// test hook).
    pub state: &'static str,
    /// The state in words.
    pub state_ja: String,
    /// The token's end, office date.
    pub expires: Option<String>,
}

pub fn role_ja(role: Role) -> &'static str {
    role.ja()
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
            let printer = (d.role == Role::Kiosk)
                .then(|| app.contacts.printer_fault(&d.name))
                .flatten();
            let held = app.issue_limits.held(&d.name).filter(|_| d.role == Role::Kiosk);
            let (state, state_ja) = if d.disabled {
                ("revoked", "取り消し済み（使えません）".to_string())
            } else if let Some(h) = held {
                (
                    "held",
                    format!(
                        "発券停止中: {}（盗まれた登録の悪用のおそれ。確かめてから再開してください）",
                        h.why_ja()
                    ),
                )
            } else if let Some(p) = printer.filter(|_| recent) {
                ("fault", format!("発券できません: {}", p.ja))
            } else if connected {
                ("ok", "接続中・最新の表示".to_string())
            } else if recent {
                ("ok", "最新の表示".to_string())
            } else if last.is_none() {
                (
                    "unknown",
                    "接続の記録がありません（表示が古いおそれ）".to_string(),
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
                held: held.is_some(),
                state,
                state_ja,
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.role.name(), &a.name).cmp(&(b.role.name(), &b.name)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_contacts_file_is_moved_aside_and_the_server_starts_without_it() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(CONTACTS_FILE), b"{\"kiosk-1\": 17").expect("write");
        let c = Contacts::open(dir.path());
        assert_eq!(c.last("kiosk-1"), None);
        assert!(!dir.path().join(CONTACTS_FILE).exists());
        assert_eq!(
            std::fs::read(dir.path().join("device-contacts.json.damaged")).expect("kept aside"),
            b"{\"kiosk-1\": 17"
        );
    }

    #[test]
    fn kept_contacts_are_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(CONTACTS_FILE), b"{\"kiosk-1\": 17}").expect("write");
        assert_eq!(Contacts::open(dir.path()).last("kiosk-1"), Some(17));
    }
}
