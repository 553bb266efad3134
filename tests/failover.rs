//! Switching to the spare (issue 24; R9, R10, R19), through the real
//! binaries on loopback: accounts, devices and sessions reach a standby
//! and a restored backup, so the primary's admin password, staff accounts
//! and kiosk and display tokens work there with nothing enrolled again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::Server;
use crate::util::{bin, ok};

/// A server started on an existing data folder (no first-start lines to
/// wait for): `madoguchi --data D serve --listen 127.0.0.1:0 ARGS`.
pub struct Office {
    child: Child,
    pub base: String,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Office {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Office {
    pub fn start(data: &Path, args: &[&str]) -> Office {
        let mut child = Command::new(bin())
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("the server did not start");
            if let Some(b) = line.strip_prefix("listening on ") {
                break b.trim().to_string();
            }
        };
        Office {
            child,
            base,
            lines: rx,
        }
    }
}

/// Signs in on `base`; the client and its CSRF token, or the status.
pub fn sign_in(base: &str, user: &str, password: &str) -> Result<(Client, String), StatusCode> {
    let c = Server::client();
    let r = c
        .post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .expect("login");
    if r.status() != StatusCode::OK {
        return Err(r.status());
    }
    let v: Value = r.json().expect("json");
    Ok((c, v["csrf_token"].as_str().unwrap_or_default().to_string()))
}

/// Opens an enrolment link as a device would; the device token.
pub fn enrol(link: &str) -> String {
    let r = Server::client().get(link).send().expect("enrol");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{link}");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("madoguchi_device="))
        .and_then(|c| c.split(';').next())
        .expect("device cookie")
        .to_string()
}

/// A command sent with a device's token (as a kiosk sends it).
pub fn device_cmd(base: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let r = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
        .post(format!("{base}/api/commands"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .expect("command");
    let st = r.status();
    (st, r.json().unwrap_or(Value::Null))
}

/// Who the server says a device token is (401 when it does not know it).
pub fn whoami(base: &str, token: &str) -> StatusCode {
    Server::client()
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .expect("me")
        .status()
}

/// A primary with a staff account, an enrolled kiosk and display, and
/// today open with one ticket issued by the kiosk.
pub struct Enrolled {
    pub primary: Server,
    pub kiosk: String,
    pub display: String,
}

pub fn enrolled_primary() -> Enrolled {
    let primary = Server::start();
    let (c, csrf) = primary.admin();
    let r = c
        .post(primary.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "sato", "role": "staff", "password": "sato-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    crate::server::open_today(&c, &primary, &csrf, &[10]);
    let kiosk = enrol(&primary.kiosk_enrol);
    let display = enrol(&primary.display_enrol);
    let (st, v) = device_cmd(
        &primary.base,
        &kiosk,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    Enrolled {
        primary,
        kiosk,
        display,
    }
}

/// The primary's people and devices all work at `base`.
pub fn same_people_and_devices(e: &Enrolled, base: &str) {
    sign_in(base, "admin", &e.primary.admin_password).expect("the primary's admin password");
    sign_in(base, "sato", "sato-password-1").expect("the primary's staff account");
    assert_eq!(whoami(base, &e.display), StatusCode::OK, "display token");
    let (st, v) = device_cmd(
        base,
        &e.kiosk,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "the primary's kiosk token: {v}");
}

fn data_of(s: &Server) -> PathBuf {
    s.data_dir().join("data")
}

#[test]
fn a_restored_backup_signs_in_the_same_people_and_devices() {
    let e = enrolled_primary();
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    // Taken while the server runs, as the timer does.
    let out = ok(
        &data_of(&e.primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    assert!(out.contains("accounts and devices: carried"), "{out}");
    let spare = dir.path().join("spare");
    let out = ok(&spare, &["restore", &bak.display().to_string()]);
    assert!(
        out.contains("accounts, devices and sessions restored"),
        "{out}"
    );
    let office = Office::start(&spare, &[]);
    // No new admin at first start: the office's own accounts are there.
    let printed: Vec<String> = office.lines.try_iter().collect();
    assert!(
        !printed.iter().any(|l| l.contains("admin password")),
        "{printed:?}"
    );
    same_people_and_devices(&e, &office.base);
    let (st, v) = device_cmd(
        &office.base,
        &e.kiosk,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], 1003, "numbering goes on from the backup");
}

#[test]
fn a_backup_writes_the_relay_key_as_a_separate_secret_and_restore_takes_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    ok(&data, &["status"]);
    ok(&data, &["keys", "generate"]);
    let key = std::fs::read_to_string(data.join("relay-signing.key")).expect("key");
    let bak = dir.path().join("full.bak");
    ok(&data, &["backup", "--out", &bak.display().to_string()]);
    let secret = dir.path().join("full.bak.relay-key");
    assert_eq!(std::fs::read_to_string(&secret).expect("secret"), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    // The backup itself holds no key.
    let bytes = std::fs::read(&bak).expect("bak");
    assert!(!String::from_utf8_lossy(&bytes).contains(key.trim()));
    let spare = dir.path().join("spare");
    ok(&spare, &["restore", &bak.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(spare.join("relay-signing.key")).expect("restored key"),
        key
    );
}

#[test]
fn the_standby_holds_the_primarys_accounts_and_devices_and_they_work_after_promotion() {
    let e = enrolled_primary();
    let (pc, pcsrf) = e.primary.admin();
    let link: Value = pc
        .post(e.primary.url("/api/devices"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"name": "standby-1", "role": "standby"}))
        .send()
        .expect("device")
        .json()
        .expect("json");
    let link = link["enrol_url"].as_str().expect("link").to_string();
    let standby = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &e.primary.base,
            "--enrol-link",
            &link,
        ],
    );
    // The standby's own first-start admin is gone once it follows; the
    // primary's admin signs in there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sign_in(&standby.base, "admin", &e.primary.admin_password).is_err() {
        assert!(Instant::now() < deadline, "the accounts never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        sign_in(&standby.base, "admin", &standby.admin_password).err(),
        Some(StatusCode::UNAUTHORIZED),
        "the standby's own first-start admin is replaced"
    );
    // An account made on the primary now reaches the standby within seconds.
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sign_in(&standby.base, "suzuki", "suzuki-password-1").is_err() {
        assert!(Instant::now() < deadline, "the new account never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The admin's browser session, opened on the primary, also holds.
    let (session_cookie, admin_csrf) =
        session_of(&e.primary.base, "admin", &e.primary.admin_password);
    std::thread::sleep(Duration::from_millis(500));
    let mut primary = e.primary;
    let kiosk = e.kiosk.clone();
    primary.stop();
    // Promoted by the primary's admin, with the session opened on the
    // primary, the way staff press 主機に昇格.
    let r = Server::client()
        .post(standby.url("/api/promote"))
        .header("cookie", format!("madoguchi_session={session_cookie}"))
        .header("X-CSRF-Token", &admin_csrf)
        .timeout(Duration::from_secs(60))
        .send()
        .expect("promote");
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text());
    let e = Enrolled {
        primary,
        kiosk,
        display: e.display,
    };
    same_people_and_devices(&e, &standby.base);
    sign_in(&standby.base, "suzuki", "suzuki-password-1").expect("suzuki");
}

/// Signs in by hand: the session cookie's value and the CSRF token, to
/// send to another server.
fn session_of(base: &str, user: &str, password: &str) -> (String, String) {
    let r = Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("madoguchi_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let v: Value = r.json().expect("json");
    (cookie, v["csrf_token"].as_str().expect("csrf").to_string())
}
