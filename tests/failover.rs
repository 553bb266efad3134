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
use crate::util::ok;

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
        let mut child = crate::util::office()
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

/// Waits until the standby holds the primary's accounts, read from both
/// data folders, then signs in there once. Polling by signing in spent
/// the tries the throttle counts (five wrong for one account from one
/// address wait a minute, `throttle.rs`): on a slower machine the
/// accounts came after the fifth try and the wait outlasted the test
/// (CI of stop 33, "the accounts never arrived").
pub fn sign_in_once_followed(
    primary: &Server,
    standby: &Server,
    user: &str,
    password: &str,
    secs: u64,
) -> Result<(Client, String), String> {
    let users = |s: &Server| -> Option<Value> {
        let text = std::fs::read_to_string(data_of(s).join("accounts.json")).ok()?;
        serde_json::from_str::<Value>(&text)
            .ok()
            .map(|v| v["users"].clone())
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let held = users(standby);
        if held.is_some() && held == users(primary) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the accounts never arrived in {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The file is written just before the store is swapped in memory:
    // two tries at most, far below the throttle's five.
    sign_in(&standby.base, user, password).or_else(|_| {
        std::thread::sleep(Duration::from_millis(300));
        sign_in(&standby.base, user, password).map_err(|st| format!("{user} cannot sign in: {st}"))
    })
}

/// Opens an enrolment link as a device would; the device token.
pub fn enrol(link: &str) -> String {
    let r = Server::client().post(link).send().expect("enrol");
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

/// Enrols a standby link as `serve --standby-of` does, by the link's id
/// with a proof of the key made from `seed` (outside tester insider-rt11
/// H1: a standby link is no plain link); the device token.
pub fn enrol_standby(link: &str, seed: [u8; 32]) -> String {
    use ed25519_dalek::Signer;
    let sha = |s: &str| -> [u8; 32] {
        ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
            .as_ref()
            .try_into()
            .expect("32 bytes")
    };
    let hexs = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };
    let (base, code) = link.rsplit_once('/').expect("an enrolment link");
    let id = hexs(&sha(&format!("madoguchi-standby-link-id-v1\n{code}")));
    let link_key = ed25519_dalek::SigningKey::from_bytes(&sha(&format!(
        "madoguchi-standby-link-key-v1\n{code}"
    )));
    let key = hexs(
        &ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes(),
    );
    let proof = link_key.sign(format!("madoguchi-standby-key-v1\n{id}\n{key}").as_bytes());
    enrol(&format!(
        "{base}/{id}?as=standby&key={key}&proof={}",
        hexs(&proof.to_bytes())
    ))
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

pub fn data_of(s: &Server) -> PathBuf {
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
    // Restored, it holds until an admin confirms no standby enrolled
    // after the backup runs (outside tester replay4 N1).
    let (st, v) = issue(&office.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "restored_unconfirmed", "{v}");
    // A page echoes back this server's own numbers: that bounds nothing
    // given after the backup, so the admin is still asked.
    let own = Server::client()
        .get(format!("{}/api/status", office.base))
        .bearer_auth(&e.display)
        .send()
        .expect("status")
        .headers()
        .get("madoguchi-issued")
        .and_then(|v| v.to_str().ok())
        .expect("issued")
        .to_string();
    let r = Server::client()
        .get(format!("{}/api/status", office.base))
        .bearer_auth(&e.display)
        .header("Madoguchi-Issued", &own)
        .send()
        .expect("status");
    assert_eq!(r.status(), StatusCode::OK);
    let (st, v) = office_admin_send(
        &office.base,
        &e.primary.admin_password,
        "/api/standby/confirm-off",
        json!({"hold": "restored"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "highest_number_needed", "{v}");
    // The admin enters the highest number seen on a ticket: no device
    // told this one what was given after the backup.
    let (st, v) = office_admin_send(
        &office.base,
        &e.primary.admin_password,
        "/api/standby/confirm-off",
        json!({"hold": "restored", "highest": {"idou": 1001}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    same_people_and_devices(&e, &office.base);
    let (st, v) = device_cmd(
        &office.base,
        &e.kiosk,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], 1003, "numbering goes on from the backup");
}

/// An admin's JSON `POST` to a server started on a folder (`Office`).
pub fn office_admin_send(
    base: &str,
    password: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let (c, csrf) = sign_in(base, "admin", password).expect("admin sign-in");
    let r = c
        .post(format!("{base}{path}"))
        .header("X-CSRF-Token", csrf)
        .json(&body)
        .send()
        .expect("post");
    let st = r.status();
    (st, r.json().unwrap_or(Value::Null))
}

/// A page or fragment as a signed-in person (or, with `device`, a device
/// cookie) sees it.
pub fn page_text(
    base: &str,
    path: &str,
    person: Option<(&str, &str)>,
    device: Option<&str>,
) -> String {
    let c = match person {
        Some((user, password)) => sign_in(base, user, password).expect("sign-in").0,
        None => Server::client(),
    };
    let mut req = c.get(format!("{base}{path}"));
    if let Some(d) = device {
        req = req.header("cookie", format!("madoguchi_device={d}"));
    }
    req.send().expect("page").text().expect("html")
}

/// Outside tester replay4 N1 (numbers twice): a backup taken before the
/// standby enrolled, restored as the primary on a new disk, knows no
/// standby; the standby, promoted while cut off, gave 3 and 4 beside it.
/// Now `restore` says so loudly and the restored primary holds its
/// commands (also its staff station and kiosks say so, in their
/// languages, and /admin's fault list) until an admin confirms; an admin
/// who confirms wrongly is caught by the first device that has seen the
/// promoted machine (its claim cannot be verified here, so it holds).
#[test]
fn a_backup_from_before_the_standby_restored_as_the_primary_never_gives_a_number_twice() {
    let mut e = enrolled_primary();
    let mut issued = vec![1001];
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("before-standby.bak");
    ok(
        &data_of(&e.primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    issued.push(number(&v));
    cable.cut();
    e.primary.stop();
    // The primary's disk is lost: last night's backup onto a spare.
    let spare = dir.path().join("spare");
    let out = crate::util::run(&spare, &["restore", &bak.display().to_string()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let restored = Office::start(&spare, &[]);
    let pw = e.primary.admin_password.clone();
    assert_eq!(promote(&standby)["epoch"], 1);
    for _ in 0..2 {
        let (st, v) = issue(&standby.base, &e.kiosk);
        assert_eq!(st, StatusCode::OK, "the promoted standby issues: {v}");
        issued.push(number(&v));
        let (st, v) = issue(&restored.base, &e.kiosk);
        if st == StatusCode::OK {
            issued.push(number(&v));
        }
        assert_no_number_twice(&issued);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "restored_unconfirmed", "{v}");
    }
    assert!(
        said.contains("の後に登録された予備機")
            && said.contains("予備機の停止を確認")
            && said.contains("なし / none"),
        "restore says it loudly: {said}"
    );
    // Staff see a standing banner: what happened, paused, who resumes.
    let panel = page_text(
        &restored.base,
        "/fragments/staff?counter=10",
        Some(("sato", "sato-password-1")),
        None,
    );
    assert!(
        panel.contains("id=\"command-hold\"")
            && panel.contains("バックアップから戻したばかり")
            && panel.contains("番号の発行と窓口の操作を止めています")
            && panel.contains("管理者")
            && panel.contains("予備機の停止を確認"),
        "{panel}"
    );
    let station = page_text(
        &restored.base,
        "/staff?counter=10",
        Some(("sato", "sato-password-1")),
        None,
    );
    assert!(station.contains("id=\"command-hold\""), "{station}");
    // The kiosk says it in Chinese and Korean too, not in English.
    let kiosk = page_text(&restored.base, "/kiosk", None, Some(&e.kiosk));
    assert!(
        kiosk.contains("lang=\"zh\" hidden>本服务器刚从备份恢复")
            && kiosk.contains("lang=\"ko\" hidden>이 서버는 백업에서 복원된 직후"),
        "{kiosk}"
    );
    // /admin: the section with its button, and the fault list.
    let admin = page_text(&restored.base, "/admin", Some(("admin", &pw)), None);
    assert!(
        admin.contains("id=\"restored-backup\"")
            && admin.contains("id=\"confirm-restored\"")
            && admin.contains("受付を止めました（restored_unconfirmed）"),
        "{admin}"
    );
    // The offline tools refuse the folder as the server holds.
    let lines = dir.path().join("lines.jsonl");
    std::fs::write(&lines, "").expect("write");
    let out = crate::util::run(&spare, &["import", lines.to_str().expect("path")]);
    assert!(!out.status.success(), "import wrote to the restored folder");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("バックアップの後に登録された予備機"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An admin confirms without looking; the station there has seen the
    // promoted machine and carries its epoch and proof: not verifiable
    // here (no standby key), so it holds instead of being ignored.
    let (st, v) = office_admin_send(
        &restored.base,
        &pw,
        "/api/standby/confirm-off",
        json!({"hold": "restored", "highest": {"idou": 1002}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let proof = epoch_proof(&standby.base, &e.kiosk);
    let r = Client::new()
        .post(format!("{}/api/commands", restored.base))
        .bearer_auth(&e.kiosk)
        .header("Madoguchi-Epoch", "1")
        .header("Madoguchi-Epoch-Proof", &proof)
        .json(&json!({"command": "issue_ticket", "category": "idou"}))
        .send()
        .expect("command");
    let st = r.status();
    let v: Value = r.json().expect("json");
    if st == StatusCode::OK {
        issued.push(number(&v));
    }
    assert_no_number_twice(&issued);
    assert_eq!(v["error"]["code"], "unverified_epoch_claim", "{v}");
    let (st, v) = issue(&restored.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "held: {v}");
    assert_eq!(v["error"]["code"], "unverified_epoch_claim", "{v}");
    let admin = page_text(&restored.base, "/admin", Some(("admin", &pw)), None);
    assert!(
        admin.contains("id=\"epoch-claims\"") && admin.contains("kiosk-1：第1期"),
        "{admin}"
    );
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    issued.push(number(&v));
    assert_no_number_twice(&issued);
}

/// Outside tester failover-rt5 F4 (R10): the promoted standby issued
/// numbers the restored primary never saw, then died; the admin truthfully
/// confirms that no other machine runs. The numbers a device saw given
/// there (its `Madoguchi-Issued`, kept with its epoch) raise each queue
/// above them before issuing resumes, and the answer says so in Japanese
/// (old code: the dead machine's 1003 was given again).
#[test]
fn a_dead_promoted_machines_numbers_are_not_given_again_after_the_confirmation() {
    let mut e = enrolled_primary();
    let mut issued = vec![1001];
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("before-standby.bak");
    ok(
        &data_of(&e.primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    let cable = Cable::to(&e.primary.base);
    let mut standby = pair(&e, &cable.addr);
    cable.cut();
    e.primary.stop();
    assert_eq!(promote(&standby)["epoch"], 1);
    // The kiosk issues on the promoted machine and remembers what it
    // answered (as common.js does): its epoch, proof and numbers.
    let mut seen = String::new();
    for _ in 0..3 {
        let r = Client::new()
            .post(format!("{}/api/commands", standby.base))
            .bearer_auth(&e.kiosk)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("command");
        assert_eq!(r.status(), StatusCode::OK);
        seen = r
            .headers()
            .get("madoguchi-issued")
            .and_then(|v| v.to_str().ok())
            .expect("every answer names the numbers given")
            .to_string();
        let v: Value = r.json().expect("json");
        issued.push(number(&v));
    }
    assert!(seen.ends_with(" idou=1004"), "{seen}");
    let proof = epoch_proof(&standby.base, &e.kiosk);
    // The promoted machine dies; last night's backup onto a spare.
    standby.stop();
    let spare = dir.path().join("spare");
    let out = crate::util::run(&spare, &["restore", &bak.display().to_string()]);
    assert!(out.status.success());
    let restored = Office::start(&spare, &[]);
    let pw = e.primary.admin_password.clone();
    let carried = |base: &str| {
        let r = Client::new()
            .post(format!("{base}/api/commands"))
            .bearer_auth(&e.kiosk)
            .header("Madoguchi-Epoch", "1")
            .header("Madoguchi-Epoch-Proof", &proof)
            .header("Madoguchi-Issued", &seen)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("command");
        let st = r.status();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    let (st, v) = carried(&restored.base);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "held: {v}");
    // /admin shows the device's report beside the box as a hint, with who
    // sent it, and fills nothing in (outside tester insider-rt9 F7).
    let admin = page_text(&restored.base, "/admin", Some(("admin", &pw)), None);
    assert!(
        admin.contains("id=\"highest-seen\"")
            && admin.contains("端末の知らせ：1004番（kiosk-1")
            && !admin.contains("value=\"1004\""),
        "{admin}"
    );
    // A report alone resumes nothing: the admin enters the number.
    let (st, v) = office_admin_send(
        &restored.base,
        &pw,
        "/api/standby/confirm-off",
        json!({"hold": "restored"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "highest_number_needed", "{v}");
    // The admin confirms truthfully: no other machine runs now, and the
    // number checked on a ticket is the one the kiosk reported.
    let (st, v) = office_admin_send(
        &restored.base,
        &pw,
        "/api/standby/confirm-off",
        json!({"hold": "restored", "highest": {"idou": 1004}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["resume_from"], json!({"idou": 1005}), "{v}");
    let said = v["message_ja"].as_str().unwrap_or_default().to_string();
    assert!(
        said.contains("1005番以降から発券を再開します")
            && said.contains("kiosk-1")
            && said.contains("番号札を持つ来庁者がいるかもしれません"),
        "{said}"
    );
    let (st, v) = office_admin_send(
        &restored.base,
        &pw,
        "/api/standby/confirm-off",
        json!({"hold": "epoch_claim", "highest": {"idou": 1004}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    for _ in 0..2 {
        let (st, v) = carried(&restored.base);
        assert_eq!(st, StatusCode::OK, "{v}");
        issued.push(number(&v));
        assert_no_number_twice(&issued);
    }
    assert_eq!(issued[issued.len() - 2], 1005, "{issued:?}");
    let faults = std::fs::read_to_string(spare.join("faults.jsonl")).unwrap_or_default();
    assert!(
        faults.contains("1005番以降から発券を再開します"),
        "{faults}"
    );
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
    // The standby printed no first-start admin of its own (the harness
    // checks); the primary's admin signs in there.
    sign_in_once_followed(&e.primary, &standby, "admin", &e.primary.admin_password, 30)
        .expect("the accounts never arrived");
    // An account made on the primary now reaches the standby within seconds.
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    sign_in_once_followed(&e.primary, &standby, "suzuki", "suzuki-password-1", 10)
        .expect("the new account never arrived");
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

/// A TCP proxy on loopback that can cut the line: the standby's view of
/// the primary in a partition.
struct Cable {
    addr: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The standby's bytes to the primary are dropped (a one-way cut).
    deaf: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    /// What crossed it towards the primary, as an on-path sniffer sees it
    /// (the first 4 MB; outside tester insider-rt11 M1, H2).
    heard: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// What crossed it towards the standby (the first 16 MB; issue 23/24
    /// D1: the account store in the primary's answers).
    answered: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Cable {
    /// The replication request lines that crossed the cable (path and
    /// query, as sent), oldest first.
    fn replication_lines(&self) -> Vec<String> {
        let heard = self.heard.lock().map(|h| h.clone()).unwrap_or_default();
        String::from_utf8_lossy(&heard)
            .lines()
            .filter_map(|l| l.strip_prefix("GET "))
            .filter_map(|l| l.split(' ').next())
            .filter(|p| p.starts_with("/api/replication"))
            .map(str::to_string)
            .collect()
    }

    fn to(target: &str) -> Cable {
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let deaf = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, o, d, h, a) = (
            cut.clone(),
            open.clone(),
            deaf.clone(),
            heard.clone(),
            answered.clone(),
        );
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { break };
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(outbound) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let pairs = [
                    (inbound.try_clone(), outbound.try_clone()),
                    (outbound.try_clone(), inbound.try_clone()),
                ];
                if let Ok(mut held) = o.lock() {
                    held.push(inbound);
                    held.push(outbound);
                }
                for (up, pair) in pairs.into_iter().enumerate() {
                    let deaf = (up == 0).then(|| d.clone());
                    let (heard, cap) = if up == 0 {
                        (h.clone(), 4 << 20)
                    } else {
                        (a.clone(), 16 << 20)
                    };
                    if let (Ok(mut from), Ok(mut to)) = pair {
                        std::thread::spawn(move || {
                            use std::io::{Read, Write};
                            let mut buf = [0u8; 8192];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                if deaf.as_ref().is_some_and(|d| d.load(Ordering::SeqCst)) {
                                    continue;
                                }
                                if let Ok(mut h) = heard.lock() {
                                    if h.len() < cap {
                                        h.extend_from_slice(&buf[..n]);
                                    }
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            }
        });
        Cable {
            addr,
            cut,
            deaf,
            open,
            heard,
            answered,
        }
    }

    /// Drops the standby's bytes to the primary from now on; the
    /// primary's still reach the standby (outside tester insider-rt10 N6).
    fn deafen(&self) {
        self.deaf.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Joins the line again (after [`Cable::cut`]).
    fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut held) = self.open.lock() {
            for s in held.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// A primary with its standby following through `via` (the primary's
/// address, or a cable to it); the standby's admin client.
pub fn pair(e: &Enrolled, via: &str) -> Server {
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
    let mut standby = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            via,
            "--enrol-link",
            &link,
        ],
    );
    sign_in_once_followed(&e.primary, &standby, "admin", &e.primary.admin_password, 30)
        .expect("the accounts never arrived");
    standby.admin_password = e.primary.admin_password.clone();
    // The accounts can arrive before the first lease (every answer is
    // signed and checked now): wait until the primary's /admin no longer
    // says commands are stopped for want of the standby, as staff would.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = pc
            .get(e.primary.url("/admin"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        if page.contains("<h1") && !page.contains("id=\"no-lease-h\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the primary never got its standby's lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    standby
}

pub fn issue(base: &str, kiosk: &str) -> (StatusCode, Value) {
    device_cmd(
        base,
        kiosk,
        json!({"command": "issue_ticket", "category": "idou"}),
    )
}

/// Promotes through `POST /api/promote`, as the 主機に昇格 button does.
pub fn promote(standby: &Server) -> Value {
    let (c, csrf) = standby.admin();
    let r = c
        .post(standby.url("/api/promote"))
        .header("X-CSRF-Token", &csrf)
        .timeout(Duration::from_secs(60))
        .send()
        .expect("promote");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().expect("json")
}

/// Every number issued on either machine, with no repeat.
fn assert_no_number_twice(issued: &[u64]) {
    let mut seen = std::collections::BTreeSet::new();
    for n in issued {
        assert!(seen.insert(*n), "number {n} issued twice: {issued:?}");
    }
}

pub fn number(v: &Value) -> u64 {
    v["ticket"].as_u64().expect("ticket")
}

#[test]
fn a_frozen_primary_that_comes_back_after_the_promotion_gives_no_number() {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base.clone());
    let mut issued = vec![1001];
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(
        st,
        StatusCode::OK,
        "the paired primary holds its lease: {v}"
    );
    issued.push(number(&v));
    std::thread::sleep(Duration::from_millis(500));
    // The primary hangs (SIGSTOP); staff press 主機に昇格 on the standby.
    let pid = e.primary.pid().to_string();
    let stop = Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill");
    assert!(stop.success());
    let promoted = promote(&standby);
    assert_eq!(promoted["epoch"], 1, "{promoted}");
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "the promoted standby issues: {v}");
    issued.push(number(&v));
    // The old primary runs again; a kiosk still pointed at it is refused.
    let cont = Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill");
    assert!(cont.success());
    for _ in 0..3 {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
        assert!(code == "no_standby_lease" || code == "replaced", "{v}");
        assert!(v["error"]["message_ja"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let (st, v) = issue(&standby.base, &e.kiosk);
        assert_eq!(st, StatusCode::OK, "{v}");
        issued.push(number(&v));
    }
    assert_no_number_twice(&issued);
    // The promoted standby tells the old primary, which then says so.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, v) = issue(&e.primary.base, &e.kiosk);
        if v["error"]["code"] == "replaced" {
            assert!(
                v["error"]["message_ja"]
                    .as_str()
                    .is_some_and(|m| m.contains("主機ではなくなりました")),
                "{v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never told: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (pc, _) = e.primary.admin();
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("この機械は主機ではなくなりました"),
        "{admin}"
    );
}

#[test]
fn a_partition_both_ways_never_gives_a_number_twice() {
    // 1. The standby cannot reach the primary; kiosks can.
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let mut issued = vec![1001];
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    issued.push(number(&v));
    cable.cut();
    let promoted = promote(&standby);
    assert_eq!(promoted["epoch"], 1, "{promoted}");
    // The old primary cannot be told, but its lease is gone: it refuses.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_standby_lease", "{v}");
    for _ in 0..3 {
        let (st, v) = issue(&standby.base, &e.kiosk);
        assert_eq!(st, StatusCode::OK, "{v}");
        issued.push(number(&v));
        let (st, _) = issue(&e.primary.base, &e.kiosk);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_no_number_twice(&issued);
    drop(standby);

    // 2. Kiosks cannot reach the primary (they are moved to the standby);
    // the standby can. The primary is alive and would issue if asked.
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base.clone());
    let mut issued = vec![1001];
    let promoted = promote(&standby);
    assert_eq!(promoted["epoch"], 1, "{promoted}");
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    issued.push(number(&v));
    // A stray request reaching the old primary is refused: it was told.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        if v["error"]["code"] == "replaced" {
            break;
        }
        assert!(Instant::now() < deadline, "never told: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_no_number_twice(&issued);
}

/// `GET path` on `base` with a device token and an optional epoch header:
/// the status, the `Madoguchi-Epoch` the server answered with, the body.
fn get_with_epoch(
    base: &str,
    path: &str,
    token: Option<&str>,
    epoch: Option<u64>,
) -> (StatusCode, Option<u64>, String) {
    let mut req = Server::client().get(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(n) = epoch {
        req = req.header("Madoguchi-Epoch", n.to_string());
    }
    let r = req.send().expect("get");
    let st = r.status();
    let answered = r
        .headers()
        .get("madoguchi-epoch")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (st, answered, r.text().unwrap_or_default())
}

/// The `Madoguchi-Epoch-Proof` a promoted machine hands a device.
fn epoch_proof(base: &str, token: &str) -> String {
    Server::client()
        .get(format!("{base}/api/status"))
        .bearer_auth(token)
        .send()
        .expect("status")
        .headers()
        .get("madoguchi-epoch-proof")
        .and_then(|v| v.to_str().ok())
        .expect("a promoted machine gives the proof of its epoch")
        .to_string()
}

/// A standby started on a folder restored from the primary's backup (as a
/// standby of an archived log starts) has the restored hold too; once it
/// has followed and is promoted, its log and accounts are the primary's,
/// so the promotion ends the hold and it takes commands at once.
#[test]
fn a_standby_started_from_a_restored_backup_takes_commands_once_promoted() {
    let e = enrolled_primary();
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    ok(
        &data_of(&e.primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    let folder = dir.path().join("standby");
    ok(&folder, &["restore", &bak.display().to_string()]);
    assert!(folder.join("restored-backup").exists());
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let link = v["enrol_url"].as_str().expect("link").to_string();
    let standby = Office::start(
        &folder,
        &["--standby-of", &e.primary.base, "--enrol-link", &link],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK {
            break v;
        }
        assert!(Instant::now() < deadline, "the standby never followed: {v}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut issued = vec![1001, number(&v)];
    let (c, csrf) = sign_in(&standby.base, "admin", &e.primary.admin_password).expect("admin");
    let r = c
        .post(format!("{}/api/promote", standby.base))
        .header("X-CSRF-Token", csrf)
        .timeout(Duration::from_secs(60))
        .send()
        .expect("promote");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("json");
    assert_eq!(v["accepting"], true, "{v}");
    assert!(!folder.join("restored-backup").exists());
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    issued.push(number(&v));
    assert_no_number_twice(&issued);
}

/// Outside tester failover-rt5 F3: a restored folder started as the
/// standby of an office whose log it cannot follow, then promoted with the
/// override, kept nobody's log but the backup's; the promotion dropped the
/// restored hold and it issued. Only a standby that followed its primary to
/// the end loses the hold at its promotion.
#[test]
fn a_restored_folder_that_never_followed_keeps_its_hold_when_promoted() {
    let e = enrolled_primary();
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    ok(
        &data_of(&e.primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    let folder = dir.path().join("restored");
    ok(&folder, &["restore", &bak.display().to_string()]);
    // An unrelated, younger office: the restored log is ahead of it.
    let other = Server::start();
    let (st, v) = admin_send(
        &other,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let link = v["enrol_url"].as_str().expect("link").to_string();
    let standby = Office::start(
        &folder,
        &["--standby-of", &other.base, "--enrol-link", &link],
    );
    let (c, csrf) = sign_in(&standby.base, "admin", &e.primary.admin_password).expect("admin");
    let r = c
        .post(format!("{}/api/promote", standby.base))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"override_not_of_record": true}))
        .timeout(Duration::from_secs(60))
        .send()
        .expect("promote");
    let st = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    if st == StatusCode::OK {
        assert!(
            folder.join("restored-backup").exists(),
            "the promotion dropped the hold of a folder that never followed: {v}"
        );
        let (st, v) = issue(&standby.base, &e.kiosk);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "restored_unconfirmed", "{v}");
    } else {
        assert!(folder.join("restored-backup").exists(), "{st} {v}");
    }
}

/// Red team F1: an enrolled device — here a kiosk (a display's unproven
/// claim holds nothing since insider-rt9 F6:
/// `a_stolen_display_stops_nothing_and_a_report_burns_no_numbers`) —
/// claiming a newer epoch, bare or with a forged proof, fences nothing for good (no
/// `replaced`). It is not ignored either (outside tester replay4 e19: a
/// primary cannot tell a forgery from a standby it does not know): the
/// primary holds (also after a restart), /admin and the fault record name
/// the device, and an admin's confirmation clears it; the same claims do
/// not hold again.
#[test]
fn a_device_claiming_an_epoch_without_proof_holds_until_an_admin_clears_it() {
    let mut e = enrolled_primary();
    let data = data_of(&e.primary);
    let forged = format!("7.{}", "ab".repeat(32));
    for (epoch, proof) in [
        (Some(7), None),
        (Some(u64::MAX), None),
        (None, Some(forged.as_str())),
    ] {
        let mut req = Server::client()
            .get(e.primary.url("/api/status"))
            .bearer_auth(&e.kiosk);
        if let Some(n) = epoch {
            req = req.header("Madoguchi-Epoch", n.to_string());
        }
        if let Some(p) = proof {
            req = req.header("Madoguchi-Epoch-Proof", p);
        }
        assert_eq!(req.send().expect("status").status(), StatusCode::OK);
    }
    assert!(!data.join("replaced").exists(), "a claim wrote the fence");
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "ignored: {v}");
    assert_eq!(v["error"]["code"], "unverified_epoch_claim", "{v}");
    e.primary.restart();
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(
        st,
        StatusCode::SERVICE_UNAVAILABLE,
        "forgotten by a restart: {v}"
    );
    let faults = std::fs::read_to_string(data.join("faults.jsonl")).unwrap_or_default();
    assert!(
        faults.contains("kiosk-1") && faults.contains("without a proof this server can check"),
        "the claim is a fault record naming the device: {faults}"
    );
    let (pc, _) = e.primary.admin();
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("id=\"epoch-claims\"") && admin.contains("kiosk-1："),
        "{admin}"
    );
    // No device said which numbers the other machine gave: the admin is
    // asked for the highest seen on a ticket, never resumed silently
    // (outside tester failover-rt5 F4).
    let (st, v) = admin_send(
        &e.primary,
        "/api/standby/confirm-off",
        json!({"hold": "epoch_claim"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "highest_number_needed", "{v}");
    assert!(
        v["error"]["message_ja"]
            .as_str()
            .is_some_and(|m| m.contains("番号札で見た最も大きい番号")),
        "{v}"
    );
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "still held: {v}");
    let (st, v) = admin_send(
        &e.primary,
        "/api/standby/confirm-off",
        json!({"hold": "epoch_claim", "highest": {"idou": 1009}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["confirmed"], json!(["kiosk-1"]), "{v}");
    assert_eq!(v["resume_from"], json!({"idou": 1010}), "{v}");
    assert!(
        v["message_ja"]
            .as_str()
            .is_some_and(|m| m.contains("1010番以降から発券を再開します")),
        "{v}"
    );
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "cleared: {v}");
    assert_eq!(number(&v), 1010, "above the number the admin entered");
    // The kiosk keeps sending what it sent: cleared claims hold no more.
    let r = Server::client()
        .get(e.primary.url("/api/status"))
        .bearer_auth(&e.kiosk)
        .header("Madoguchi-Epoch", "7")
        .send()
        .expect("status");
    assert_eq!(r.status(), StatusCode::OK);
    e.primary.restart();
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "cleared, also after a restart: {v}");
    // A cleared caller holds no more, not even with newer epochs (outside
    // tester failover-rt5 F2: a stolen token re-held the office after each
    // clearance, one fault record per epoch buried /admin's list).
    let lines = |d: &std::path::Path| {
        std::fs::read_to_string(d.join("faults.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = lines(&data);
    for n in 8..48 {
        let r = Server::client()
            .get(e.primary.url("/api/status"))
            .bearer_auth(&e.kiosk)
            .header("Madoguchi-Epoch", n.to_string())
            .send()
            .expect("status");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "re-held by a newer epoch: {v}");
    assert_eq!(
        lines(&data),
        before + 1,
        "one fault record for the cleared caller's claims"
    );
    let faults = std::fs::read_to_string(data.join("faults.jsonl")).unwrap_or_default();
    assert!(faults.contains("again after an admin cleared"), "{faults}");
}

/// Issue 24, devices carry the epoch: in a partition the old primary
/// cannot be told by the promoted machine, but a kiosk that has seen the
/// new primary's epoch reaches it and it fences itself; a stranger's
/// header changes nothing.
#[test]
fn a_kiosk_that_has_seen_the_new_epoch_fences_the_old_primary() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let (st, epoch, body) = get_with_epoch(&e.primary.base, "/api/status", Some(&e.kiosk), None);
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(epoch, Some(0), "every answer names the epoch");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["epoch"], 0, "the status names the epoch");
    cable.cut();
    assert_eq!(promote(&standby)["epoch"], 1);
    let (_, epoch, body) = get_with_epoch(&standby.base, "/api/status", Some(&e.kiosk), None);
    assert_eq!(epoch, Some(1), "the promoted machine's answers");
    let proof = epoch_proof(&standby.base, &e.kiosk);
    assert!(proof.starts_with("1."), "{proof}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["epoch"], 1);
    // A stranger claiming a newer epoch fences nothing.
    let (_, epoch, _) = get_with_epoch(&e.primary.base, "/api/status", None, Some(9));
    assert_eq!(epoch, Some(0));
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_standby_lease", "{v}");
    // The kiosk's bare claim of the epoch proves nothing (red team F1):
    // it holds (replay4 e19), it does not fence.
    let (_, epoch, _) = get_with_epoch(&e.primary.base, "/api/status", Some(&e.kiosk), Some(1));
    assert_eq!(epoch, Some(0));
    let (_, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(v["error"]["code"], "unverified_epoch_claim", "{v}");
    // The kiosk, carrying the epoch and its proof from the new primary.
    let r = Client::new()
        .post(format!("{}/api/commands", e.primary.base))
        .bearer_auth(&e.kiosk)
        .header("Madoguchi-Epoch", "1")
        .header("Madoguchi-Epoch-Proof", &proof)
        .json(&json!({"command": "issue_ticket", "category": "idou"}))
        .send()
        .expect("command");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().expect("json");
    assert_eq!(v["error"]["code"], "replaced", "{v}");
    assert!(
        v["error"]["message_ja"]
            .as_str()
            .is_some_and(|m| m.contains("主機ではなくなりました")),
        "{v}"
    );
    // Fenced for good: without the header too, and on its admin page.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["code"], "replaced", "{v}");
    let (pc, _) = e.primary.admin();
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("この機械は主機ではなくなりました"),
        "{admin}"
    );
    // The kiosk page there says so instead of offering buttons.
    let page = Server::client()
        .get(e.primary.url("/kiosk"))
        .header("cookie", format!("madoguchi_device={}", e.kiosk))
        .send()
        .expect("kiosk")
        .text()
        .expect("html");
    assert!(page.contains("主機ではなくなりました"), "{page}");
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "the new primary issues: {v}");
}

/// Issue 24: a primary whose standby is down refuses commands
/// (`no_standby_lease`) and says why and what to do — to staff and kiosks
/// through the API and the kiosk page, to the admin on /admin — until an
/// admin revokes the standby device.
#[test]
fn a_primary_whose_standby_is_down_says_what_to_do_until_the_standby_is_revoked() {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base.clone());
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut standby = standby;
    standby.stop();
    // Its folder started alone (a service line changed wrongly) is
    // refused: it would give numbers beside the primary.
    let alone = crate::util::run(&data_of(&standby), &["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&alone.stderr);
    assert!(!alone.status.success(), "a standby folder served alone");
    assert!(
        said.contains("予備機のもの") && said.contains("--standby-of"),
        "{said}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::SERVICE_UNAVAILABLE {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "still issuing without a standby: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(v["error"]["code"], "no_standby_lease", "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    for words in [
        "予備機と連絡が取れない",
        "二重発行を防ぐ",
        "電源とケーブル",
        "「端末」",
        "「取り消す」",
    ] {
        assert!(ja.contains(words), "{words} missing: {ja}");
    }
    let (pc, pcsrf) = e.primary.admin();
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("受付を止めています：予備機と連絡が取れません")
            && admin.contains("取り消す"),
        "{admin}"
    );
    let page = Server::client()
        .get(e.primary.url("/kiosk"))
        .header("cookie", format!("madoguchi_device={}", e.kiosk))
        .send()
        .expect("kiosk")
        .text()
        .expect("html");
    assert!(
        page.contains("番号の二重発行を防ぐために受付を止めています")
            && page.contains("職員に声をおかけください"),
        "{page}"
    );
    // The kiosk's Chinese and Korean banners are Chinese and Korean; the
    // staff station has a standing banner; /admin's fault list says when.
    assert!(
        page.contains("lang=\"zh\" hidden>无法与备用服务器联系")
            && page.contains("lang=\"ko\" hidden>예비 서버와 연결할 수 없어"),
        "{page}"
    );
    let staff = ("sato", "sato-password-1");
    let panel = page_text(
        &e.primary.base,
        "/fragments/staff?counter=10",
        Some(staff),
        None,
    );
    assert!(
        panel.contains("data-hold=\"no_standby_lease\"")
            && panel.contains("予備機と連絡が取れません")
            && panel.contains("番号の発行と窓口の操作を止めています")
            && panel.contains("管理者"),
        "{panel}"
    );
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("受付を止めました（no_standby_lease）"),
        "{admin}"
    );
    let r = pc
        .post(e.primary.url("/api/devices/standby-1/disabled"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"disabled": true}))
        .send()
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().expect("json");
    assert_eq!(v["held"], true, "{v}");
    let notice = v["notice_ja"].as_str().unwrap_or_default();
    assert!(notice.contains("予備機の停止を確認"), "{v}");
    // Outside tester N1-a, e4: the revoked standby may not know it (here
    // it is off, but the primary cannot tell that from a standby in its
    // promotion wait or cut off): commands wait until an admin confirms
    // it is off, also after a restart of the primary.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "issued: {v}");
    assert_eq!(v["error"]["code"], "revoked_standby_unconfirmed", "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    for words in [
        "取り消した予備機（standby-1）",
        "確認できていない",
        "電源を切",
        "「予備機の停止を確認」",
    ] {
        assert!(ja.contains(words), "{words} missing: {ja}");
    }
    let mut primary = e.primary;
    primary.restart();
    let (st, v) = issue(&primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "after a restart: {v}");
    assert_eq!(v["error"]["code"], "revoked_standby_unconfirmed", "{v}");
    let panel = page_text(
        &primary.base,
        "/fragments/staff?counter=10",
        Some(staff),
        None,
    );
    assert!(
        panel.contains("data-hold=\"revoked_standby_unconfirmed\"")
            && panel.contains("取り消した予備機（standby-1）")
            && panel.contains("「予備機の停止を確認」")
            && panel.contains("管理者"),
        "{panel}"
    );
    let kiosk = page_text(&primary.base, "/kiosk", None, Some(&e.kiosk));
    assert!(
        kiosk.contains("lang=\"zh\" hidden>尚未确认已撤销的备用服务器")
            && kiosk.contains("lang=\"ko\" hidden>등록을 취소한 예비 서버"),
        "{kiosk}"
    );
    let admin = page_text(
        &primary.base,
        "/admin",
        Some(("admin", &primary.admin_password)),
        None,
    );
    assert!(
        admin.contains("受付を止めました（revoked_standby_unconfirmed）"),
        "said again after the restart: {admin}"
    );
    // Outside tester replay3: no way around the hold.
    // F1: a kiosk link under the standby's name would replace its record
    // without a revocation: refused.
    let (st, v) = admin_send(
        &primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "kiosk"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "standby_name", "{v}");
    // F2: a backup carries the hold; the spare restored from it holds too.
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("held.bak");
    ok(
        &data_of(&primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    let spare = dir.path().join("spare");
    ok(&spare, &["restore", &bak.display().to_string()]);
    let held = std::fs::read_to_string(spare.join("revoked-standby")).unwrap_or_default();
    assert!(
        held.contains("standby-1"),
        "the spare keeps the hold: {held:?}"
    );
    // F3: the offline tools refuse the held folder.
    let lines = dir.path().join("lines.jsonl");
    std::fs::write(&lines, "").expect("write");
    for args in [vec!["apply"], vec!["import", lines.to_str().expect("path")]] {
        let out = crate::util::run(&spare, &args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} wrote to the held spare");
        assert!(said.contains("停止が確認できていない"), "{args:?}: {said}");
    }
    let (pc, _) = primary.admin();
    let admin = pc
        .get(primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("id=\"revoked-standby\"")
            && admin.contains("id=\"confirm-standby-off\"")
            && !admin.contains("予備機と連絡が取れません"),
        "{admin}"
    );
    let (st, v) = admin_send(&primary, "/api/standby/confirm-off", json!({}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["confirmed"], json!(["standby-1"]), "{v}");
    let (st, v) = issue(&primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "issuing again once confirmed: {v}");
    let panel = page_text(
        &primary.base,
        "/fragments/staff?counter=10",
        Some(staff),
        None,
    );
    assert!(!panel.contains("id=\"command-hold\""), "{panel}");
    let admin = pc
        .get(primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        !admin.contains("予備機と連絡が取れません") && !admin.contains("id=\"revoked-standby\""),
        "{admin}"
    );
    assert!(admin.contains("受付を再開しました"), "{admin}");
}

/// Issue 24, "the kill -9 and damaged-storage properties hold on the
/// promoted machine" (R10): a promoted standby issues under load and is
/// killed with SIGKILL mid-load, three times; every acknowledged ticket is
/// in its log, no number is given twice, and it comes back as the primary
/// though its service line still says `--standby-of`. Then a torn tail of
/// its last segment is refused loudly, as on a primary (`damage.rs`).
#[test]
fn the_promoted_standby_survives_kill_9_under_load_and_refuses_a_torn_log() {
    use rand::{Rng, SeedableRng};
    let mut e = enrolled_primary();
    let mut standby = pair(&e, &e.primary.base.clone());
    assert_eq!(promote(&standby)["epoch"], 1);
    e.primary.stop();
    let data = data_of(&standby);
    let seed: u64 = rand::rng().random();
    eprintln!("promoted crash test: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: Vec<(u64, Value)> = Vec::new();
    let mut numbers = vec![1001];
    let mut n = 0u32;
    for round in 0..3 {
        let (c, csrf) = standby.admin();
        let budget = rng.random_range(5..40);
        let delay = Duration::from_micros(rng.random_range(0..20_000));
        let mut sent = 0;
        crate::crash::kill_under_load(standby.pid(), budget, delay, || {
            if sent >= 300 {
                return false;
            }
            sent += 1;
            n += 1;
            let r = c
                .post(standby.url("/api/commands"))
                .header("X-CSRF-Token", &csrf)
                .json(&json!({"command": "issue_ticket", "category": "idou", "request_id": format!("load-{n}")}))
                .send();
            let Ok(r) = r else { return false };
            let status = r.status();
            let Ok(body) = r.json::<Value>() else {
                return false;
            };
            if status.is_success() {
                if let (Some(seq), Some(t)) = (body["seq"].as_u64(), body["ticket"].as_u64()) {
                    acked.push((seq, body["events"].clone()));
                    numbers.push(t);
                }
            }
            true
        });
        standby.stop();
        crate::crash::assert_acknowledged_in_log(
            &data,
            &acked,
            &format!("promoted, round {round}"),
        );
        assert_no_number_twice(&numbers);
        // Restarted with the same line (`--standby-of` the old primary):
        // it serves as the primary and numbering goes on.
        standby.restart();
        let (st, v) = issue(&standby.base, &e.kiosk);
        assert_eq!(
            st,
            StatusCode::OK,
            "round {round}: the restarted promoted machine: {v}"
        );
        numbers.push(number(&v));
        assert_no_number_twice(&numbers);
    }
    assert!(acked.len() >= 5, "the load got through: {}", acked.len());
    // Stopped cleanly, so its snapshot holds every record: the torn tail
    // then loses acknowledged records (after a kill the lost tail may be
    // one never acknowledged, which a restart rightly drops).
    standby.stop_cleanly();
    let seg = crate::damage::segments(&data).pop().expect("segment");
    let len = std::fs::metadata(&seg).expect("len").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(len - 3))
        .expect("cut");
    let msg = crate::damage::assert_refused(&data, "a torn tail on the promoted machine");
    assert!(msg.contains("may be lost"), "{msg}");
}

/// Promotion is refused while the standby is still catching up (issue 24;
/// found following the manual with a long history): the standby learns
/// the primary's position, the cable is cut before it has everything, and
/// 主機に昇格 answers `standby_behind` in Japanese with the way out. The
/// standby stays a standby and issues nothing.
#[test]
fn a_standby_still_catching_up_refuses_promotion_and_says_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = dir.path().join("history");
    let file = dir.path().join("days.jsonl");
    let f = file.to_str().expect("path");
    ok(
        &history,
        &[
            "simulate",
            "--days",
            "4",
            "--start",
            "2026-06-01",
            "--seed",
            "24",
            "--out",
            f,
        ],
    );
    ok(&history, &["import", f]);
    let primary = Server::start_prepared(None, &["--listen", "127.0.0.1:0"], |to| {
        crate::util::copy_dir(&history.join("log"), &to.join("log"));
        // The mark vouches for the log's end (a log alone is refused).
        std::fs::copy(history.join("HIGHWATER"), to.join("HIGHWATER")).expect("mark");
    });
    let kiosk = enrol(&primary.kiosk_enrol);
    let display = enrol(&primary.display_enrol);
    let e = Enrolled {
        primary,
        kiosk,
        display,
    };
    let cable = Cable::to(&e.primary.base);
    let mut standby = pair(&e, &cable.addr);
    let (sc, _) = standby.admin();
    let admin_page = |c: &Client| -> String {
        c.get(standby.url("/admin"))
            .send()
            .expect("admin")
            .text()
            .expect("html")
    };
    // Cut the cable the moment the standby knows it is behind.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = admin_page(&sc);
        if page.contains("id=\"standby-behind\"") {
            cable.cut();
            break;
        }
        assert!(
            !page.contains("id=\"standby-caught-up\""),
            "the standby caught up before the cable was cut: make the history longer"
        );
        assert!(
            Instant::now() < deadline,
            "the standby never said it was behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let page = admin_page(&sc);
    assert!(
        page.contains("受け取り終わるまで昇格できません"),
        "the page says to wait: {page}"
    );
    let (c, csrf) = standby.admin();
    let r = c
        .post(standby.url("/api/promote"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("promote");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().expect("json");
    assert_eq!(v["error"]["code"], "standby_behind", "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        ja.contains("受け取りきっていません") && ja.contains("バックアップから予備機に復旧"),
        "{ja}"
    );
    // Still the standby: it issues nothing.
    assert!(admin_page(&sc).contains("この機械は予備機です"));
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_ne!(st, StatusCode::OK, "a standby behind issued a number: {v}");
    // Restarted (the manual's 「予備機を再起動した後など」) with the primary
    // still out of reach: it has not forgotten how far the primary was
    // (red team F4: it was promoted with an old business day open).
    standby.restart();
    let (c, csrf) = standby.admin();
    let r = c
        .post(standby.url("/api/promote"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("promote");
    let st = r.status();
    let v: Value = r.json().expect("json");
    assert_eq!(st, StatusCode::CONFLICT, "promoted after a restart: {v}");
    assert_eq!(v["error"]["code"], "standby_behind", "{v}");
    let page = c
        .get(standby.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(page.contains("id=\"standby-behind\""), "{page}");
}

/// An admin request on `base` (`method` POST or DELETE) with a JSON body.
fn admin_send(s: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url(path))
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .expect("admin request");
    let st = r.status();
    (st, r.json().unwrap_or(Value::Null))
}

/// Red team F2: two standbys could both be promoted to epoch 1 and then
/// give the same numbers. One standby at a time: a second standby's link
/// is refused in Japanese with the way to replace it, and a revoked
/// standby is not enabled again beside a new one.
#[test]
fn a_second_standby_is_refused_with_the_way_to_replace_it() {
    let e = enrolled_primary();
    let _standby = pair(&e, &e.primary.base.clone());
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-2", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "a second standby link: {v}");
    assert_eq!(v["error"]["code"], "one_standby", "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        ja.contains("予備機は一台だけ") && ja.contains("「取り消す」を押してから"),
        "{ja}"
    );
    // Kiosks and displays are still enrolled as before.
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "kiosk-2", "role": "kiosk"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    // Replacing it: revoke, then a new link, which enrols.
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-2", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "after revoking: {v}");
    let token = enrol_standby(v["enrol_url"].as_str().expect("link"), [3; 32]);
    assert_eq!(whoami(&e.primary.base, &token), StatusCode::OK);
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": false}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "two standbys again: {v}");
    assert_eq!(v["error"]["code"], "one_standby", "{v}");
}

/// Red team F3: a primary whose log lost records its standby holds (here
/// an older copy of its folder put back) says `primary_behind` — promote
/// the standby — not the generic "standby unreachable" text that offers
/// 取り消す; revoking the standby is refused in Japanese (it would give
/// acknowledged numbers again), also after a restart.
#[test]
fn a_primary_behind_its_standby_says_promote_and_keeps_the_standby() {
    let mut e = enrolled_primary();
    let _standby = pair(&e, &e.primary.base.clone());
    let data = data_of(&e.primary);
    let old = tempfile::tempdir().expect("tmp");
    e.primary.stop_cleanly();
    crate::util::copy_dir(&data, old.path());
    e.primary.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked = Vec::new();
    while acked.len() < 3 {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK {
            acked.push(number(&v));
        } else {
            assert!(Instant::now() < deadline, "never issued: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    e.primary.stop_cleanly();
    std::fs::remove_dir_all(&data).expect("rm");
    crate::util::copy_dir(old.path(), &data);
    e.primary.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        assert_ne!(st, StatusCode::OK, "gave {v} again after losing {acked:?}");
        if v["error"]["code"] == "primary_behind" {
            break v;
        }
        assert!(Instant::now() < deadline, "never said it is behind: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        ja.contains("主機に昇格") && !ja.contains("「取り消す」を押すと"),
        "{ja}"
    );
    for round in 0..2 {
        let (st, v) = admin_send(
            &e.primary,
            "/api/devices/standby-1/disabled",
            json!({"disabled": true}),
        );
        assert_eq!(st, StatusCode::CONFLICT, "round {round}: revoked: {v}");
        assert_eq!(v["error"]["code"], "primary_behind", "{v}");
        let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
        assert!(ja.contains("取り消せません"), "{ja}");
        let (c, csrf) = e.primary.admin();
        let r = c
            .delete(e.primary.url("/api/devices/standby-1"))
            .header("X-CSRF-Token", &csrf)
            .send()
            .expect("delete");
        assert_eq!(r.status(), StatusCode::CONFLICT, "round {round}: deleted");
        let admin = c
            .get(e.primary.url("/admin"))
            .send()
            .expect("admin")
            .text()
            .expect("html");
        assert!(
            admin.contains("id=\"primary-behind\"") && !admin.contains("予備機と連絡が取れません"),
            "round {round}: {admin}"
        );
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        assert_eq!(
            v["error"]["code"], "primary_behind",
            "round {round}: {st} {v}"
        );
        // Kept across a restart, though the standby no longer asks.
        e.primary.restart();
    }
}

/// Red team F6: `madoguchi apply` and `import` refuse a replaced
/// primary's folder and a standby's folder as `serve` does, with the same
/// Japanese message (they gave a number the promoted machine also gave).
#[test]
fn writing_commands_refuse_a_replaced_or_standby_folder() {
    let mut e = enrolled_primary();
    let mut standby = pair(&e, &e.primary.base.clone());
    // The admin tells the primary it was replaced (as the promoted
    // machine does with its standby token).
    let (st, v) = admin_send(&e.primary, "/api/fence", json!({"epoch": 1}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["replaced"], 1, "{v}");
    e.primary.stop_cleanly();
    standby.stop_cleanly();
    let dir = tempfile::tempdir().expect("tmp");
    let lines = dir.path().join("lines.jsonl");
    std::fs::write(&lines, "").expect("write");
    for (data, says) in [
        (data_of(&e.primary), "主機ではなくなりました"),
        (data_of(&standby), "予備機のもの"),
    ] {
        for args in [vec!["apply"], vec!["import", lines.to_str().expect("path")]] {
            let out = crate::util::run(&data, &args);
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} wrote to {}",
                data.display()
            );
            assert!(said.contains(says), "{args:?}: {said}");
        }
    }
}

/// Red team F5: the promoted machine tells the old primary again after a
/// restart. The cable is cut while it is promoted (it cannot tell it), it
/// is killed and started again with its service line, the cable comes
/// back: the old primary learns it was replaced (before, it never did and
/// offered 取り消す). The restarted machine still hands out its proof.
#[test]
fn the_promoted_machine_tells_the_old_primary_again_after_a_restart() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let mut standby = pair(&e, &cable.addr);
    cable.cut();
    assert_eq!(promote(&standby)["epoch"], 1);
    standby.stop();
    cable.mend();
    standby.restart();
    assert!(epoch_proof(&standby.base, &e.kiosk).starts_with("1."));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        assert_ne!(st, StatusCode::OK, "the old primary issued: {v}");
        if v["error"]["code"] == "replaced" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old primary was never told: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "the promoted machine issues: {v}");
}

/// Runs `madoguchi` and waits at most `secs` for it to exit; fails the
/// test if it is still running then (a standby that should have refused
/// its link and stopped).
fn exits_within(mut cmd: Command, secs: u64) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "still running after {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// `serve --standby-of PRIMARY --enrol-link LINK` on a new data folder.
fn standby_command(data: &Path, primary: &str, link: &str) -> Command {
    let mut c = crate::util::office();
    c.arg("--data").arg(data).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--standby-of",
        primary,
        "--enrol-link",
        link,
    ]);
    c
}

/// `POST /api/promote` on `s` with `body`: the status and the answer.
fn try_promote(s: &Server, body: Value) -> (StatusCode, Value) {
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/promote"))
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .expect("promote");
    let st = r.status();
    (st, r.json().unwrap_or(Value::Null))
}

/// Outside tester N1 (R9 switching to the spare, R10 a correct state,
/// R11 revoking a device): a standby revoked and deleted on the primary
/// but left running was promoted beside the new standby, and both gave
/// the same numbers. Now the refused standby writes the refusal into its
/// data folder, stops following and says so on /admin; 主機に昇格 and
/// `madoguchi promote` refuse it with the cause and the way out (a new
/// link), also after a restart; the standby of record is promoted and no
/// number is given twice. Only the explicit override promotes the revoked
/// one (the new primary switched off for good), and says so loudly.
#[test]
fn a_revoked_standby_left_running_is_never_promoted_beside_the_new_one() {
    let e = enrolled_primary();
    let mut revoked = pair(&e, &e.primary.base.clone());
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.get("notice_ja").is_none(), "it is in touch: {v}");
    let (c, csrf) = e.primary.admin();
    let r = c
        .delete(e.primary.url("/api/devices/standby-1"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    // It learns it was refused, writes it down and says so.
    let refused_file = data_of(&revoked).join("standby-refused");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refused_file.exists() {
        assert!(Instant::now() < deadline, "the refusal was never noted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (rc, _) = revoked.admin();
    let page = rc
        .get(revoked.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        page.contains("id=\"standby-refused\"") && page.contains("登録用リンクを作り直し"),
        "{page}"
    );
    // The new standby of record follows; the primary issues under its lease.
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-2", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut new = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &e.primary.base,
            "--enrol-link",
            v["enrol_url"].as_str().expect("link"),
        ],
    );
    new.admin_password = e.primary.admin_password.clone();
    let mut issued = vec![1001];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK {
            issued.push(number(&v));
            break;
        }
        assert!(Instant::now() < deadline, "never issued: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The primary hangs; staff try to promote both standbys.
    let pid = e.primary.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill")
        .success());
    for round in 0..2 {
        let (st, v) = try_promote(&revoked, json!({}));
        assert_eq!(st, StatusCode::CONFLICT, "round {round}: promoted: {v}");
        assert_eq!(v["error"]["code"], "standby_refused", "{v}");
        let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
        assert!(
            ja.contains("昇格できません") && ja.contains("登録用リンクを作り直し"),
            "{ja}"
        );
        let out = crate::util::office()
            .args(["promote", "--url", &revoked.base])
            .env("MADOGUCHI_PASSWORD", &revoked.admin_password)
            .output()
            .expect("promote");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "round {round}: the CLI promoted it");
        assert!(said.contains("登録用リンクを作り直し"), "{said}");
        let (st, v) = issue(&revoked.base, &e.kiosk);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        // Kept in its data folder: a restart (its service line still
        // names the used link) changes nothing.
        revoked.restart();
    }
    let promoted = promote(&new);
    assert_eq!(promoted["epoch"], 1, "{promoted}");
    for _ in 0..3 {
        let (st, v) = issue(&new.base, &e.kiosk);
        assert_eq!(st, StatusCode::OK, "{v}");
        issued.push(number(&v));
        let (st, v) = issue(&revoked.base, &e.kiosk);
        assert_ne!(st, StatusCode::OK, "the revoked standby issued: {v}");
    }
    assert_no_number_twice(&issued);
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill")
        .success());
    // Last resort: the new primary is off for good; the override promotes
    // the revoked standby, and says so.
    new.stop();
    let (st, v) = try_promote(&revoked, json!({"override_not_of_record": true}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["overridden"], true, "{v}");
    assert!(
        v["message_ja"]
            .as_str()
            .is_some_and(|m| m.contains("強制昇格")),
        "{v}"
    );
    let page = rc.get(revoked.url("/admin")).send().expect("admin").text();
    let page = page.unwrap_or_default();
    assert!(
        page.contains("登録外の予備機を強制的に昇格しました"),
        "{page}"
    );
}

/// Outside tester N2 (R9, R11): a second standby link withdrew an unused
/// one silently, and the old link then said "used or expired"; a kiosk's
/// link given to `serve --standby-of` enrolled a kiosk. Now the answer
/// names the withdrawn link, the old link says it was replaced (page,
/// button and a standby started with it, which writes nothing), and a
/// standby refuses any link that is not a standby's, writing nothing and
/// leaving the link unused.
#[test]
fn a_withdrawn_standby_link_says_so_and_a_standby_takes_only_a_standby_link() {
    let primary = Server::start();
    let (st, a) = admin_send(
        &primary,
        "/api/devices",
        json!({"name": "standby-a", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(a["withdrawn"], json!([]), "{a}");
    let (st, b) = admin_send(
        &primary,
        "/api/devices",
        json!({"name": "standby-b", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["withdrawn"], json!(["standby-a"]), "{b}");
    let notice = b["notice_ja"].as_str().unwrap_or_default();
    assert!(
        notice.contains("standby-a") && notice.contains("置き換えられました"),
        "{b}"
    );
    let old = a["enrol_url"].as_str().expect("link");
    let page = Server::client().get(old).send().expect("page");
    assert_eq!(page.status(), StatusCode::GONE);
    let page = page.text().expect("text");
    assert!(page.contains("新しいリンクに置き換えられました"), "{page}");
    let r = Server::client().post(old).send().expect("button");
    assert_eq!(r.status(), StatusCode::GONE);
    let v: Value = r.json().expect("json");
    assert_eq!(v["error"]["code"], "enrolment_link_replaced", "{v}");
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("standby");
    let out = exits_within(standby_command(&data, &primary.base, old), 30);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("新しいリンクに置き換えられました"), "{said}");
    assert!(!data.exists(), "a refused link wrote {}", data.display());
    // A kiosk's link given to a standby: refused, nothing written, and
    // the link still enrols the kiosk.
    let out = exits_within(
        standby_command(&data, &primary.base, &primary.kiosk_enrol),
        30,
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("予備機の登録用リンクではありません"),
        "{said}"
    );
    assert!(!data.exists(), "a kiosk link wrote {}", data.display());
    let kiosk = enrol(&primary.kiosk_enrol);
    assert_eq!(whoami(&primary.base, &kiosk), StatusCode::OK);
    // The newer link enrols the standby.
    let standby = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &primary.base,
            "--enrol-link",
            b["enrol_url"].as_str().expect("link"),
        ],
    );
    sign_in_once_followed(&primary, &standby, "admin", &primary.admin_password, 30)
        .expect("the standby never followed");
}

/// N1, the other way out (R9, R11): a standby disabled on the primary is
/// refused (written down, not promotable) while the primary issues alone;
/// once an admin enables its device again, the primary knows its token
/// again and it follows again on its own (else that primary would take no
/// command without its lease), and the refusal is gone.
#[test]
fn a_standby_enabled_again_after_its_refusal_follows_again() {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base.clone());
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let refused_file = data_of(&standby).join("standby-refused");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refused_file.exists() {
        assert!(Instant::now() < deadline, "the refusal was never noted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, v) = try_promote(&standby, json!({}));
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "standby_refused", "{v}");
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "no standby enabled: {v}");
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": false}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK && !refused_file.exists() {
            break;
        }
        assert!(Instant::now() < deadline, "never followed again: {v}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (c, _) = standby.admin();
    let page = c
        .get(standby.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(!page.contains("id=\"standby-refused\""), "{page}");
}

/// N1, a standby out of touch (R9, R11): revoked while the cable to it is
/// cut, it cannot learn it, so the revoke's answer says so and what to do
/// (do not promote it, switch it off); once the cable is back it notes the
/// refusal and refuses promotion.
#[test]
fn revoking_a_standby_out_of_touch_says_it_does_not_know_yet() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    cable.cut();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = issue(&e.primary.base, &e.kiosk);
        if v["error"]["code"] == "no_standby_lease" {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never lapsed: {v}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let notice = v["notice_ja"].as_str().unwrap_or_default();
    assert!(
        notice.contains("まだ知りません") && notice.contains("昇格しないでください"),
        "{v}"
    );
    cable.mend();
    let refused_file = data_of(&standby).join("standby-refused");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !refused_file.exists() {
        assert!(Instant::now() < deadline, "the refusal was never noted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, v) = try_promote(&standby, json!({}));
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "standby_refused", "{v}");
}

/// N1, the way out the refusal names (R9, R11): a standby deleted on the
/// primary is refused; started again with a new standby link it enrols
/// again, the refusal is gone, it follows (the primary issues under its
/// lease again) and it is the standby of record, promotable.
#[test]
fn a_refused_standby_started_with_a_new_link_follows_again() {
    let e = enrolled_primary();
    let mut standby = pair(&e, &e.primary.base.clone());
    let (c, csrf) = e.primary.admin();
    let r = c
        .delete(e.primary.url("/api/devices/standby-1"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    let data = data_of(&standby);
    let refused_file = data.join("standby-refused");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refused_file.exists() {
        assert!(Instant::now() < deadline, "the refusal was never noted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    standby.stop();
    let again = Office::start(
        &data,
        &[
            "--standby-of",
            &e.primary.base,
            "--enrol-link",
            v["enrol_url"].as_str().expect("link"),
        ],
    );
    assert!(!refused_file.exists(), "still refused after a new link");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never followed again: {v}");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (c, csrf) = sign_in(&again.base, "admin", &e.primary.admin_password).expect("admin");
    let r = c
        .post(format!("{}/api/promote", again.base))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({}))
        .timeout(Duration::from_secs(60))
        .send()
        .expect("promote");
    let st = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(st, StatusCode::OK, "the standby of record again: {v}");
    assert_eq!(v["overridden"], false, "{v}");
}

/// Outside tester N1-a and N1-b (R9, R10): a standby promoted while the
/// primary revokes it (during its promotion wait, or at the same moment)
/// was promoted, its fence refused, and the primary, with no enabled
/// standby left, issued without a lease: both gave the same numbers. Now
/// the primary holds commands for the revoked standby until it knows, and
/// the standby asks the primary at the end of its wait and is refused.
/// Checked by issuing on both machines: never one number twice, and the
/// primary takes commands again once the standby has learned it.
fn revoked_while_promoting(revoke_after: Duration) {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base.clone());
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut issued = vec![number(&v)];
    let (c, csrf) = sign_in(&standby.base, "admin", &standby.admin_password).expect("admin");
    let base = standby.base.clone();
    let promoting = std::thread::spawn(move || {
        let r = c
            .post(format!("{base}/api/promote"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({}))
            .timeout(Duration::from_secs(60))
            .send()
            .expect("promote");
        let st = r.status();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    });
    std::thread::sleep(revoke_after);
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, promoted) = promoting.join().expect("promote thread");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut by_standby = Vec::new();
    let mut primary_again = false;
    while Instant::now() < deadline && !(primary_again && issued.len() >= 4) {
        for base in [&e.primary.base, &standby.base] {
            let (st, v) = issue(base, &e.kiosk);
            if st == StatusCode::OK {
                issued.push(number(&v));
                if *base == e.primary.base {
                    primary_again = true;
                } else {
                    by_standby.push(number(&v));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_no_number_twice(&issued);
    assert!(
        by_standby.is_empty(),
        "the revoked standby issued {by_standby:?}"
    );
    assert!(
        primary_again,
        "the primary never took commands again: {issued:?}"
    );
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "promoted beside the primary: {promoted}"
    );
    assert_eq!(promoted["error"]["code"], "standby_refused", "{promoted}");
    assert!(
        data_of(&standby).join("standby-refused").exists(),
        "the refusal is not written down"
    );
}

#[test]
fn a_standby_revoked_during_its_promotion_wait_is_not_promoted_beside_the_primary() {
    revoked_while_promoting(Duration::from_millis(1500));
}

#[test]
fn a_standby_revoked_as_it_is_promoted_is_not_promoted_beside_the_primary() {
    revoked_while_promoting(Duration::from_millis(20));
}

/// Outside tester e4 (R9, R10): a standby stopped, revoked a moment later
/// (its lease still ran, so nothing said it was out of touch) and
/// replaced by a new one, then started again with the cable to the
/// primary cut and promoted: it and the primary gave the same numbers.
/// Now the revoke's answer says it does not know, the primary holds its
/// commands for it beside the new standby, and no number is given twice.
#[test]
fn a_revoked_standby_restarted_cut_off_and_promoted_never_issues_beside_the_primary() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let mut old = pair(&e, &cable.addr);
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut issued = vec![number(&v)];
    old.stop();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let notice = v["notice_ja"].as_str().unwrap_or_default();
    assert!(
        notice.contains("まだ知りません") && notice.contains("予備機の停止を確認"),
        "{v}"
    );
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-2", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let _new = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &e.primary.base,
            "--enrol-link",
            v["enrol_url"].as_str().expect("link"),
        ],
    );
    cable.cut();
    old.restart();
    let (st, v) = try_promote(&old, json!({}));
    assert_eq!(st, StatusCode::OK, "the cut-off standby cannot know: {v}");
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut held = None;
    while Instant::now() < deadline {
        for base in [&e.primary.base, &old.base] {
            let (st, v) = issue(base, &e.kiosk);
            if st == StatusCode::OK {
                issued.push(number(&v));
            } else if *base == e.primary.base {
                held = Some(v);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_no_number_twice(&issued);
    let held = held.expect("the primary never held its commands");
    assert_eq!(
        held["error"]["code"], "revoked_standby_unconfirmed",
        "{held}"
    );
}

/// A stand-in follower with a copy of the standby's token (outside tester
/// insider-rt9 F11): asks for records after the last one it holds with
/// that record's hash (sha256 of the sequence number as 8 bytes LE, the
/// previous hash and the payload) and echoes every lease grant, exactly as
/// the standby does, but without the standby's own key. Runs until
/// `stop`; how many answers were 200.
fn stand_in_follower(
    base: String,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let (mut after, mut hash, mut grant) = (0u64, None::<String>, None::<String>);
        let mut answered = 0;
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len() / 2)
                .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
                .collect()
        };
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let mut url = format!("{base}/api/replication?after={after}");
            if let Some(h) = &hash {
                url.push_str(&format!("&hash={h}"));
            }
            if let Some(g) = &grant {
                url.push_str(&format!("&lease={g}"));
            }
            let Ok(r) = http.get(&url).bearer_auth(&token).send() else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            if r.status() != StatusCode::OK {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            answered += 1;
            let Ok(v) = r.json::<Value>() else { continue };
            if let Some(g) = v["grant"].as_str() {
                grant = Some(g.to_string());
            }
            for rec in v["records"].as_array().into_iter().flatten() {
                let (Some(seq), Some(prev), Some(payload)) = (
                    rec["seq"].as_u64(),
                    rec["prev"].as_str(),
                    rec["payload"].as_str(),
                ) else {
                    continue;
                };
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                ctx.update(&seq.to_le_bytes());
                ctx.update(&unhex(prev));
                ctx.update(payload.as_bytes());
                let h: String = ctx
                    .finish()
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                after = seq;
                hash = Some(h);
            }
        }
        answered
    })
}

#[cfg(unix)]
#[test]
fn a_copy_of_the_standby_token_keeps_no_lease_for_the_old_primary() {
    use std::os::unix::fs::PermissionsExt;
    // Outside tester insider-rt9 F11 (issue 24, R9, R11): the real
    // standby is cut off and promoted while a stand-in holding a copy of
    // its token follows the old primary and acknowledges every record.
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut issued = vec![1001, number(&v)];
    let token_file = data_of(&standby).join("standby-token");
    let token = std::fs::read_to_string(&token_file).expect("token");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stand_in = stand_in_follower(
        e.primary.base.clone(),
        token.trim().to_string(),
        stop.clone(),
    );
    std::thread::sleep(Duration::from_secs(1));
    cable.cut();
    let promoted = promote(&standby);
    assert_eq!(promoted["epoch"], 1, "{promoted}");
    for _ in 0..3 {
        let (st, v) = issue(&standby.base, &e.kiosk);
        assert_eq!(st, StatusCode::OK, "{v}");
        issued.push(number(&v));
        // The old primary holds no lease: the stand-in's echoes and
        // acknowledgements renew nothing (old code: 200, the promoted
        // machine's numbers given again).
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "no_standby_lease", "{v}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answered = stand_in.join().expect("stand-in");
    // Outside tester insider-rt10 N3: not signed with the standby's key,
    // it gets no records and no accounts at all (old code: answered).
    assert_eq!(answered, 0, "the stand-in was answered: it read the log");
    assert_no_number_twice(&issued);
    // F8: the token is the service user's only.
    let mode = std::fs::metadata(&token_file)
        .expect("standby-token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "standby-token is 0{mode:o}");
    // The promoted machine's link key is gone: a copy of its folder taken
    // now signs for nobody.
    assert!(!data_of(&standby).join("standby-key").exists());
    // The primary says what happened.
    let (pc, _) = e.primary.admin();
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(admin.contains("トークンが写された恐れ"), "{admin}");
    // F3: a standby's sign-ins reach its fault records in words, not
    // as Rust debug text (old code: `Some("admin"): Login { … }`).
    let (sc, _) = standby.admin();
    let page = sc
        .get(standby.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        page.contains("admin がログインしました") && !page.contains("Login {"),
        "{page}"
    );
    drop(cable);
}

/// The business day a server answers with (`Madoguchi-Issued: DATE …`).
fn office_day(base: &str, kiosk: &str) -> String {
    let r = Server::client()
        .get(format!("{base}/api/status"))
        .bearer_auth(kiosk)
        .send()
        .expect("status");
    let h = r
        .headers()
        .get("madoguchi-issued")
        .and_then(|v| v.to_str().ok())
        .expect("every answer names the numbers given")
        .to_string();
    h.split(' ').next().unwrap_or_default().to_string()
}

/// Outside tester insider-rt9 F7 and F6 (issue 23, 24; R10, R11): one GET
/// from a stolen display with a forged epoch and forged "numbers seen"
/// stopped all issuing, and /admin filled in 1998 as the number to resume
/// from; confirming used the category up for the day. Now a display's
/// unproven claim holds nothing, and a report from any device is only a
/// hint beside the box, with who sent it: the admin enters the number.
#[test]
fn a_stolen_display_stops_nothing_and_a_report_burns_no_numbers() {
    let e = enrolled_primary();
    let day = office_day(&e.primary.base, &e.kiosk);
    let forged = format!("{day} idou=1998");
    let r = Server::client()
        .get(e.primary.url("/api/status"))
        .bearer_auth(&e.display)
        .header("Madoguchi-Epoch", "130")
        .header("Madoguchi-Issued", &forged)
        .send()
        .expect("status");
    assert_eq!(r.status(), StatusCode::OK);
    // Old code: 503 unverified_epoch_claim.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "a display's claim held: {v}");
    let last = number(&v);
    let faults =
        std::fs::read_to_string(data_of(&e.primary).join("faults.jsonl")).unwrap_or_default();
    assert!(
        faults.contains("display-1") && faults.contains("not held"),
        "the claim is a fault record naming the display: {faults}"
    );
    // A stolen kiosk (it takes commands, so its claim holds) sends the
    // same forged report.
    let r = Server::client()
        .get(e.primary.url("/api/status"))
        .bearer_auth(&e.kiosk)
        .header("Madoguchi-Epoch", "130")
        .header("Madoguchi-Issued", &forged)
        .send()
        .expect("status");
    assert_eq!(r.status(), StatusCode::OK);
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "unverified_epoch_claim", "{v}");
    let (pc, _) = e.primary.admin();
    let admin = pc
        .get(e.primary.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    // Old code: value="1998" filled in ("端末（kiosk-1）が見た最も大きい番号を入れてあります").
    assert!(
        admin.contains("id=\"highest-seen\"")
            && !admin.contains("value=\"1998\"")
            && admin.contains("端末の知らせ：1998番（kiosk-1")
            && admin.contains("確かめられない知らせです"),
        "{admin}"
    );
    // Old code: 200, resuming from 1999, the category used up.
    let (st, v) = admin_send(
        &e.primary,
        "/api/standby/confirm-off",
        json!({"hold": "epoch_claim"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "highest_number_needed", "{v}");
    // The admin enters the highest number seen on a ticket.
    let (st, v) = admin_send(
        &e.primary,
        "/api/standby/confirm-off",
        json!({"hold": "epoch_claim", "highest": {"idou": last}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["resume_from"], json!({"idou": last + 1}), "{v}");
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(number(&v), last + 1, "not 1999: {v}");
}

/// Outside tester insider-rt9 F10 (issue 24, R11): one admin GET of the
/// replication link with a made-up position held a primary with no
/// standby as `primary_behind`, for good (also after a restart). Only the
/// standby's own signed requests hold it now.
#[test]
fn an_admin_reading_the_replication_link_holds_nothing() {
    let mut e = enrolled_primary();
    let (c, _) = e.primary.admin();
    let r = c
        .get(e.primary.url(&format!(
            "/api/replication?after=999999&hash={}",
            "ab".repeat(32)
        )))
        .send()
        .expect("replication");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Old code: 503 primary_behind 「…予備機を昇格…」, also after a restart.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    e.primary.restart();
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// Outside tester insider-rt9 F8 (R11): the account store, the sessions
/// and every backup (it carries them) were 0644, readable by any local
/// account; the standby's token is checked in
/// `a_copy_of_the_standby_token_keeps_no_lease_for_the_old_primary`.
#[cfg(unix)]
#[test]
fn password_hashes_and_sessions_are_the_service_users_only() {
    use std::os::unix::fs::PermissionsExt;
    let e = enrolled_primary();
    let data = data_of(&e.primary);
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    ok(&data, &["backup", "--out", &bak.display().to_string()]);
    let spare = dir.path().join("spare");
    let out = crate::util::run(&spare, &["restore", &bak.display().to_string()]);
    assert!(out.status.success());
    for f in [
        data.join("accounts.json"),
        data.join("sessions.json"),
        bak.clone(),
        spare.join("accounts.json"),
        spare.join("sessions.json"),
    ] {
        let mode = std::fs::metadata(&f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            .permissions()
            .mode();
        // Old code: 0644 for each.
        assert_eq!(mode & 0o077, 0, "{} is 0{mode:o}", f.display());
    }
}

/// Outside tester insider-rt9 F2 and F9 (issue 24, R10): a ticket the old
/// primary wrote but answered `no_standby_lease` (no ticket printed) was
/// listed at the rejoin as one a visitor may hold, in English with epoch
/// milliseconds; and `--rejoin` moved the relay signing key aside with
/// the old log. Now the listing is in Japanese with the machine's clock
/// and says that ticket was never handed out, and the key stays.
#[test]
fn a_rejoin_keeps_the_relay_key_and_lists_refused_tickets_as_never_handed_out() {
    let mut e = enrolled_primary();
    let data = data_of(&e.primary);
    ok(&data, &["keys", "generate"]);
    let key = std::fs::read(data.join("relay-signing.key")).expect("relay key");
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    cable.cut();
    // Within the lease: written, then refused when no acknowledgement came.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_standby_lease", "{v}");
    assert_eq!(promote(&standby)["epoch"], 1);
    e.primary.stop();
    let (sc, csrf) = standby.admin();
    let link: Value = sc
        .post(standby.url("/api/devices"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "standby-2", "role": "standby"}))
        .send()
        .expect("device")
        .json()
        .expect("json");
    let link = link["enrol_url"].as_str().expect("link").to_string();
    let rejoined = Office::start(
        &data,
        &[
            "--standby-of",
            &standby.base,
            "--enrol-link",
            &link,
            "--rejoin",
        ],
    );
    let listed = std::fs::read_to_string(data.join("diverged-tickets.txt")).expect("listing");
    // Old code: "record N: ticket 1002 (idou), issued at 1796…  — not in
    // the new primary's log", and no relay key in the rejoined folder.
    assert!(
        listed.contains("1002番") && listed.contains("渡っていません"),
        "{listed}"
    );
    assert!(!listed.contains("issued at 1"), "{listed}");
    assert_eq!(
        std::fs::read(data.join("relay-signing.key")).ok(),
        Some(key),
        "the relay signing key stays with the machine"
    );
    drop(rejoined);
}

/// Outside tester insider-rt9 F4: a standby pointed at a primary it cannot
/// speak TLS with stopped with 「ディスクの読み書きに失敗しました」 and the
/// steps for a failing disk (dmesg, recover). Here the primary speaks plain
/// HTTP behind an `https://` link, so the TLS handshake fails the same way.
#[test]
fn a_standby_that_cannot_reach_its_primary_over_tls_is_not_told_its_disk_fails() {
    let s = Server::start();
    let https = s.base.replacen("http://", "https://", 1);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("standby");
    let out = exits_within(
        standby_command(&data, &https, &format!("{https}/enrol/abc")),
        60,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Old code: 「ディスクの読み書きに失敗しました: … / reading or writing the disk failed」.
    assert!(
        !err.contains("ディスク") && !err.contains("dmesg") && err.contains("TLS"),
        "{err}"
    );
    assert!(!data.exists(), "nothing written for a refused start");
}

/// A replication request signed with `seed`'s Ed25519 key as a standby
/// signs one (`link_key.rs`): the answer's status and body.
fn signed_replication(
    base: &str,
    token: &str,
    seed: [u8; 32],
    refused: bool,
) -> (StatusCode, String) {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let kind = if refused {
        "madoguchi-replication-refused-v3\n"
    } else {
        "madoguchi-replication-v3\n"
    };
    // No nonce, position 0, no hash, no lease echo, no accounts digest.
    let sig = key.sign(format!("{kind}\n0\n\n\n").as_bytes());
    let hexs = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };
    let r = Server::client()
        .get(format!(
            "{base}/api/replication?after=0&refused={refused}&key={}&sig={}",
            hexs(&key.verifying_key().to_bytes()),
            hexs(&sig.to_bytes())
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(20))
        .send()
        .expect("replication");
    (r.status(), r.text().unwrap_or_default())
}

/// Issues on `base` until it answers `code` (or `secs` pass): the last
/// answer.
fn issue_until(base: &str, kiosk: &str, code: &str, secs: u64) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (st, v) = issue(base, kiosk);
        let reached = if code.is_empty() {
            st == StatusCode::OK
        } else {
            v["error"]["code"] == code
        };
        if reached || Instant::now() > deadline {
            return (st, v);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Outside tester insider-rt10 N1 (issue 24, R9, R11): a revoked standby
/// out of touch holds the primary (`revoked_standby_unconfirmed`); one
/// unsigned `refused=true` with a copy of its token lifted the hold, and
/// the cut-off standby, promoted, gave the same numbers. Now only the
/// standby's own key signs that statement: unsigned, or signed with
/// another key, it changes nothing; the standby itself, reconnected,
/// still lifts it.
#[test]
fn a_copy_of_a_revoked_standbys_token_does_not_lift_the_hold() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let token = std::fs::read_to_string(data_of(&standby).join("standby-token")).expect("token");
    let token = token.trim().to_string();
    cable.cut();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = issue_until(&e.primary.base, &e.kiosk, "revoked_standby_unconfirmed", 15);
    assert_eq!(v["error"]["code"], "revoked_standby_unconfirmed", "{v}");
    // A stand-in with the token: unsigned, and signed with its own key.
    let r = Server::client()
        .get(e.primary.url("/api/replication?after=0&refused=true"))
        .bearer_auth(&token)
        .send()
        .expect("replication");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (st, _) = signed_replication(&e.primary.base, &token, [7; 32], true);
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Old code: 200 (koseki/idou given again by the promoted standby).
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "revoked_standby_unconfirmed", "{v}");
    // The standby itself, back on the line, learns it and says so signed.
    cable.mend();
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "", 20);
    assert_eq!(st, StatusCode::OK, "the real standby's word lifts it: {v}");
    drop(cable);
}

/// Outside tester insider-rt10 N2 and N3 (issue 24, R9, R11): a stand-in
/// holding a copy of the standby token signed before the real standby and
/// owned the lease (43 numbers twice), and an unsigned request with the
/// token read every password hash. Now the standby's key is bound at
/// enrolment: a stand-in signing first, or not at all, gets no records and
/// no accounts; the real standby follows and holds the lease.
#[test]
fn a_stand_in_signing_first_gets_nothing_and_the_standby_keeps_the_lease() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    cable.cut();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let link = v["enrol_url"].as_str().expect("link").to_string();
    // Enrolled directly; its link to follow is cut at first.
    let standby = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &cable.addr,
            "--enrol-link",
            &link,
        ],
    );
    let token = std::fs::read_to_string(data_of(&standby).join("standby-token")).expect("token");
    let token = token.trim().to_string();
    // N2: the stand-in signs first with its own key (old code: 200, its
    // key registered as the standby's).
    let (st, body) = signed_replication(&e.primary.base, &token, [9; 32], false);
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("link_key_refused"), "{body}");
    assert!(!body.contains("argon2"), "{body}");
    // N3: unsigned, with the token.
    let r = Server::client()
        .get(e.primary.url("/api/replication?after=0"))
        .bearer_auth(&token)
        .send()
        .expect("replication");
    let st = r.status();
    let body = r.text().unwrap_or_default();
    assert!(
        !body.contains("argon2") && !body.contains("\"accounts\""),
        "old code: 200 with every password hash: {body}"
    );
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    // The real standby's line comes up: it follows and holds the lease.
    cable.mend();
    sign_in_once_followed(&e.primary, &standby, "admin", &e.primary.admin_password, 30)
        .expect("the accounts never arrived");
    std::thread::sleep(Duration::from_secs(7));
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "the real standby holds the lease: {v}");
    drop(cable);
}

/// Outside tester insider-rt10 N2 (issue 24, R9): a standby whose signed
/// requests the primary refuses (another key is kept for its token) saw
/// nothing wrong and was promoted. Now it writes the refusal down, says so
/// on its /admin, and 主機に昇格 refuses it without the override.
#[test]
fn a_standby_whose_key_the_primary_refuses_says_so_and_is_not_promoted() {
    let e = enrolled_primary();
    let mut standby = pair(&e, &e.primary.base);
    standby.stop();
    // Another key in the standby's key file: the primary keeps the one
    // bound at enrolment (or first registered, before this version).
    std::fs::write(
        data_of(&standby).join("standby-key"),
        "0505050505050505050505050505050505050505050505050505050505050505",
    )
    .expect("key");
    standby.restart();
    std::thread::sleep(Duration::from_secs(4));
    // The primary stops, and does not send staff to a cable that is fine
    // (old code: 「予備機の電源とケーブルを確かめてください」).
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "no_standby_lease", 15);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let said = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        said.contains("違う鍵") && !said.contains("ケーブルを確かめ"),
        "{v}"
    );
    let (st, v) = try_promote(&standby, json!({}));
    // Old code: 200, promoted while the primary kept issuing.
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "link_key_refused", "{v}");
    let (c, _) = standby.admin();
    let page = c
        .get(standby.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        page.contains("この予備機の鍵で署名した要求を受け付けません"),
        "{page}"
    );
}

/// Outside tester insider-rt10 N7 and N5 (issue 24, R9, R10): `--rejoin`
/// on the folder of a server still running used the link and moved the
/// folder, then blamed the disk; the manual's line with `--config` used
/// the link and moved the folder, then exited "leave out --config"; each
/// time the new primary stopped with `no_standby_lease`. Now the running
/// server is refused before anything happens, in Japanese, and the
/// manual's line with `--config` rejoins.
#[test]
fn a_rejoin_refuses_a_running_servers_folder_first_and_takes_the_manuals_config_line() {
    let mut e = enrolled_primary();
    let data = data_of(&e.primary);
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    cable.cut();
    assert_eq!(promote(&standby)["epoch"], 1);
    let (st, v) = admin_send(
        &standby,
        "/api/devices",
        json!({"name": "standby-2", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let link = v["enrol_url"].as_str().expect("link").to_string();
    let config = data.with_extension("office.toml");
    let text = ok(&data, &["default-config"]);
    std::fs::write(&config, text).expect("config");
    let rejoin = |config: Option<&Path>| {
        let mut c = crate::util::office();
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        c.arg("--data").arg(&data).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &standby.base,
            "--enrol-link",
            &link,
            "--rejoin",
        ]);
        c
    };
    // The old primary still runs (step 2 skipped).
    let out = exits_within(rejoin(None), 30);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // Old code: "rejoined as standby … ディスクの読み書きに失敗しました … dmesg".
    assert!(said.contains("動いているサーバー"), "{said}");
    assert!(
        !said.contains("ディスク") && !said.contains("dmesg"),
        "{said}"
    );
    assert!(data.join("log").exists(), "the folder was not moved");
    let (st, v) = issue(&standby.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "the link was not used: {v}");
    // Step 2 done; the manual's line, with --config.
    e.primary.stop();
    let mut c = rejoin(Some(&config));
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(8));
    // Old code: exited "leave out --config" after moving the folder.
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the rejoin exited"
    );
    let (st, v) = issue_until(&standby.base, &e.kiosk, "", 15);
    assert_eq!(st, StatusCode::OK, "the rejoined standby follows: {v}");
    let _ = child.kill();
    let _ = child.wait();
    drop(cable);
}

/// Outside tester insider-rt10 N6 (issue 24, R9, R10): only the standby's
/// acknowledgements are lost. The primary answers the kiosk
/// `no_standby_lease` (nothing printed), yet the ticket's record reached
/// the standby: promoted, it held the ticket as issued and waiting, and
/// nothing listed it. Now the promotion lists it as 「渡っていない可能性が
/// ある番号札」 (the answer, /admin's fault records).
#[test]
fn a_ticket_whose_acknowledgement_was_lost_is_listed_at_the_promotion() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    cable.deafen();
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_standby_lease", "{v}");
    let lost = v.to_string();
    let promoted = promote(&standby);
    // The ticket reached the standby (the primary's answer to the pending
    // request carried it): it is issued there.
    let (c, _) = standby.admin();
    let held = c
        .get(standby.url("/api/tickets/1003"))
        .send()
        .expect("ticket");
    assert_eq!(held.status(), StatusCode::OK, "{lost}");
    // Old code: no `unsure_tickets`, nothing on /admin.
    let unsure = promoted["unsure_tickets"].to_string();
    assert!(unsure.contains("1003番"), "{promoted}");
    let page = c
        .get(standby.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        page.contains("渡っていない可能性がある番号札") && page.contains("1003番"),
        "{page}"
    );
    drop(cable);
}

/// A man in the middle of one standby enrolment (outside tester
/// insider-rt11 H1): it swaps the standby's `key=` for its own, sends the
/// rest on to the primary and keeps any device token in the answer.
struct EnrolMitm {
    addr: String,
    /// The request paths it saw, as sent by the standby.
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// A device token the primary gave it.
    token: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

fn enrol_mitm(primary: &str, key: String) -> EnrolMitm {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let token = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (s, t, primary) = (seen.clone(), token.clone(), primary.to_string());
    std::thread::spawn(move || {
        use std::io::Write;
        for inbound in listener.incoming() {
            let Ok(mut inbound) = inbound else { break };
            let mut reader = BufReader::new(inbound.try_clone().expect("clone"));
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).map_or(true, |n| n == 0) || l.trim().is_empty() {
                    break;
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("/").to_string();
            s.lock().expect("seen").push(path.clone());
            let (route, query) = path.split_once('?').unwrap_or((&path, ""));
            let query: Vec<String> = query
                .split('&')
                .map(|p| {
                    if p.starts_with("key=") {
                        format!("key={key}")
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            let swapped = format!("{route}?{}", query.join("&"));
            let r = Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client")
                .post(format!("{primary}{swapped}"))
                .send()
                .expect("to the primary");
            let status = r.status();
            let cookies: Vec<String> = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            if let Some(tok) = cookies
                .iter()
                .find_map(|c| c.strip_prefix("madoguchi_device="))
                .and_then(|c| c.split(';').next())
            {
                *t.lock().expect("token") = Some(tok.to_string());
            }
            let body = r.text().unwrap_or_default();
            let mut head = format!(
                "HTTP/1.1 {} x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                status.as_u16(),
                body.len()
            );
            for c in &cookies {
                head.push_str(&format!("Set-Cookie: {c}\r\n"));
            }
            let _ = inbound.write_all(format!("{head}\r\n{body}").as_bytes());
        }
    });
    EnrolMitm { addr, seen, token }
}

/// Outside tester insider-rt11 H1 and L2 (issue 24, R9, R11): a man in
/// the middle of the standby's enrolment swapped in his own key, the
/// primary bound it and gave him the token in clear (58 numbers twice once
/// he re-signed the standby's requests); a standby link also enrolled from
/// a plain `POST /enrol/CODE`. Now the code never crosses the wire (the
/// standby names its link by a hash of it) and the key comes with a proof
/// only the code's holder can make: the swapped key is refused, nothing is
/// bound, no token given, the link stays unused; a plain POST of a standby
/// link is refused saying to use `--enrol-link`; a link from before proofs
/// says to make a new one.
#[test]
fn a_man_in_the_middle_at_the_standby_enrolment_binds_no_key_and_gets_no_token() {
    let e = enrolled_primary();
    let pdata = data_of(&e.primary);
    let hexs = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };
    let attacker = hexs(
        &ed25519_dalek::SigningKey::from_bytes(&[5; 32])
            .verifying_key()
            .to_bytes(),
    );
    let standby_link = || -> String {
        let (st, v) = admin_send(
            &e.primary,
            "/api/devices",
            json!({"name": "standby-1", "role": "standby"}),
        );
        assert_eq!(st, StatusCode::OK, "{v}");
        v["enrol_url"].as_str().expect("link").to_string()
    };
    let post = |url: &str| -> (StatusCode, Value) {
        let r = Server::client().post(url).send().expect("enrol");
        (r.status(), r.json().unwrap_or(Value::Null))
    };
    // A link from before proofs (what checks its proof is not there).
    let old = standby_link();
    let _ = std::fs::remove_file(pdata.join("standby-links.json"));
    let (st, v) = post(&old);
    // Old code: 303, the link used by a plain POST.
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "standby_link_old", "{v}");
    let link = standby_link();
    // L2: a plain POST (a browser's button), and an old standby's form.
    for url in [link.clone(), format!("{link}?as=standby&key={attacker}")] {
        let (st, v) = post(&url);
        assert_eq!(st, StatusCode::CONFLICT, "{url}: {v}");
        assert_eq!(v["error"]["code"], "standby_link_needs_enrol_link", "{v}");
        let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
        assert!(ja.contains("--enrol-link"), "{ja}");
    }
    // H1: the standby enrols through the man in the middle.
    let mitm = enrol_mitm(&e.primary.base, attacker.clone());
    let through = link.replace(&e.primary.base, &mitm.addr);
    let dir = tempfile::tempdir().expect("tmp");
    let out = exits_within(
        standby_command(&dir.path().join("s"), &e.primary.base, &through),
        30,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "enrolled with a swapped key: {stderr}"
    );
    assert!(stderr.contains("書き換えられた"), "{stderr}");
    let code = link.rsplit('/').next().expect("code");
    let seen = mitm.seen.lock().expect("seen").clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|p| !p.contains(code)),
        "old code: the link's code crossed the wire: {seen:?}"
    );
    assert_eq!(
        *mitm.token.lock().expect("token"),
        None,
        "old code: the man in the middle read the standby's token"
    );
    let keys = std::fs::read_to_string(pdata.join("standby-link-keys.json")).unwrap_or_default();
    assert!(
        !keys.contains(&attacker),
        "old code: the man in the middle's key was bound: {keys}"
    );
    // The link was not used: the standby enrols with it on a clean line.
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
    sign_in_once_followed(&e.primary, &standby, "admin", &e.primary.admin_password, 30)
        .expect("the accounts never arrived");
}

/// Outside tester insider-rt11 M1, H2 and L4 (issue 24, R9, R11): a signed
/// replication request sniffed on the LAN and sent again minutes later
/// with the token read every password hash and all records; a signed
/// `refused=true` sniffed at one revocation, sent again, lifted a later
/// revocation's hold (3, 4, 5 given twice); an admin session read every
/// password hash. Now every signed request carries a single-use nonce the
/// primary handed out: sent again it gets a new nonce only; an admin reads
/// records only.
#[test]
fn a_sniffed_signed_request_or_refusal_sent_again_reads_and_lifts_nothing() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let token = std::fs::read_to_string(data_of(&standby).join("standby-token")).expect("token");
    let token = token.trim().to_string();
    // L4.
    let (c, _) = e.primary.admin();
    let body = c
        .get(e.primary.url("/api/replication?after=0"))
        .send()
        .expect("replication")
        .text()
        .unwrap_or_default();
    assert!(body.contains("\"records\""), "{body}");
    assert!(
        !body.contains("argon2") && !body.contains("\"accounts\""),
        "old code: an admin read every password hash: {body}"
    );
    let again = |line: &str| -> (StatusCode, String) {
        let r = Server::client()
            .get(format!("{}{line}", e.primary.base))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(20))
            .send()
            .expect("replay");
        (r.status(), r.text().unwrap_or_default())
    };
    // M1: the standby's own signed lines, sent again.
    let lines = cable.replication_lines();
    let signed: Vec<&String> = lines.iter().filter(|l| l.contains("sig=")).collect();
    assert!(!signed.is_empty(), "{lines:?}");
    for line in signed.iter().take(4) {
        let (st, body) = again(line);
        assert!(
            !body.contains("argon2") && !body.contains("\"accounts\""),
            "old code: 200 with every password hash: {st} {body}"
        );
        assert_eq!(st, StatusCode::PRECONDITION_REQUIRED, "{line}: {body}");
        assert!(body.contains("link_nonce_needed"), "{body}");
    }
    // The standby follows on, unharmed by the replays.
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    // H2: revoked while connected, the standby says it knows (signed),
    // enabled again it follows again.
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let refused_file = data_of(&standby).join("standby-refused");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refused_file.exists() {
        assert!(Instant::now() < deadline, "the refusal was never noted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "", 15);
    assert_eq!(st, StatusCode::OK, "the standby's own word lifts it: {v}");
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": false}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK && !refused_file.exists() {
            break;
        }
        assert!(Instant::now() < deadline, "never followed again: {v}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let refusals: Vec<String> = cable
        .replication_lines()
        .into_iter()
        .filter(|l| l.contains("refused=true") && l.contains("sig="))
        .collect();
    assert!(!refusals.is_empty());
    // Cut off, revoked again: held until the standby itself knows.
    cable.cut();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices/standby-1/disabled",
        json!({"disabled": true}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = issue_until(&e.primary.base, &e.kiosk, "revoked_standby_unconfirmed", 15);
    assert_eq!(v["error"]["code"], "revoked_standby_unconfirmed", "{v}");
    for line in &refusals {
        again(line);
    }
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(
        v["error"]["code"], "revoked_standby_unconfirmed",
        "old code: 200, a refusal sent again lifted the hold: {st} {v}"
    );
    drop(cable);
}

/// Outside tester insider-rt11 M3 (issue 24, R10): a ticket the old
/// primary answered `no_standby_lease` whose record still reached the
/// standby (its acknowledgement was lost) waits on the promoted machine;
/// the old primary knows for certain it was never handed out, yet its
/// rejoin listed only the diverged tail. Now the rejoin lists it too, with
/// the step: cancel it on the new primary.
#[test]
fn a_rejoin_lists_a_ticket_the_new_primary_holds_that_was_never_handed_out() {
    let mut e = enrolled_primary();
    let data = data_of(&e.primary);
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    cable.deafen();
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(v["error"]["code"], "no_standby_lease", "{st} {v}");
    assert_eq!(promote(&standby)["epoch"], 1);
    e.primary.stop();
    let (st, v) = admin_send(
        &standby,
        "/api/devices",
        json!({"name": "standby-2", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let link = v["enrol_url"].as_str().expect("link").to_string();
    let rejoined = Office::start(
        &data,
        &[
            "--standby-of",
            &standby.base,
            "--enrol-link",
            &link,
            "--rejoin",
        ],
    );
    let listed = std::fs::read_to_string(data.join("diverged-tickets.txt")).expect("listing");
    assert!(
        listed.contains("1003番") && listed.contains("新しい主機で取消し"),
        "old code: the ticket waiting on the new primary is not listed: {listed}"
    );
    drop(rejoined);
    drop(cable);
}

/// Outside tester insider-rt12 A2 (issue 24, R9): with a copy of the
/// standby token, unsigned requests (263 a second) each got a new nonce;
/// only four are kept per token, so the standby's own was pushed out and
/// issuing stopped while the flood ran. Now a nonce goes only to a request
/// signed with the standby's key.
#[test]
fn a_copy_of_the_standby_token_gets_no_nonce_and_issuing_goes_on() {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base);
    let token = std::fs::read_to_string(data_of(&standby).join("standby-token")).expect("token");
    let token = token.trim().to_string();
    let c = Server::client();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(8) && sent < 2_000 {
        let r = c
            .get(e.primary.url("/api/replication?after=0&refused=true"))
            .bearer_auth(&token)
            .send()
            .expect("replication");
        assert!(
            r.headers().get("madoguchi-link-nonce").is_none(),
            "old code: a new nonce for an unsigned request ({})",
            r.status()
        );
        sent += 1;
        if sent % 400 == 0 {
            let (st, v) = issue(&e.primary.base, &e.kiosk);
            assert_eq!(st, StatusCode::OK, "issuing goes on during the flood: {v}");
        }
    }
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    drop(standby);
}

/// What [`answer_mitm`] does to the primary's answers.
const PASS: u8 = 0;
/// Every replication answer edited: `sato`'s role becomes `admin` in any
/// account store in clear, a byte of a sealed one changed, every issued
/// ticket's number +100 in the records.
const EDIT: u8 = 1;
/// Every replication answer replaced by the last one seen that carried an
/// account store while [`AnswerMitm::keeping`] was set (its status,
/// headers and body, as they were; the store is sealed for the standby,
/// so the mitm cannot read it: issue 23/24 D1).
const REPLAY: u8 = 2;
/// Outside tester insider-rt13 E1, the primary as a signing oracle: each
/// replication request's `sig=X` is asked of the primary by the man in
/// the middle himself, with no token (`?after=0&sig=X`: a 401), and that
/// answer, headers and all, goes to the standby.
const ORACLE_401: u8 = 3;
/// The same with the standby's token (it crosses the LAN in clear) and
/// its key, over another position (a 403).
const ORACLE_403: u8 = 4;
/// The same asked as the promotion's probe (`probe=true`, a 200).
const ORACLE_PROBE: u8 = 5;
/// Only the promotion's probe is answered, with the no-token 401.
const PROBE_401: u8 = 6;
/// Outside tester insider-rt14 R1 (`r1_race.sh`): a tap sends a copy of
/// each replication request to the primary itself, first; the standby's
/// own follows 100 ms later and gets its own answer.
const COPY_FIRST: u8 = 7;
/// Outside tester insider-rt14 R2 (`mitm_twice.py`): each replication
/// request goes to the primary twice, one after the other; the standby
/// gets the second answer.
const TWICE: u8 = 8;
/// Outside tester insider-rt14 R2 (`mitm_delay.py`): each replication
/// answer is handed to the standby [`AnswerMitm::delay_ms`] late (7 s:
/// more than the lease).
const DELAY: u8 = 9;
/// Outside tester insider-rt14 R2 with the new primary: each replication
/// request is first sent by the man in the middle himself (its answer
/// dropped), and the standby's own only 5.5 s after that answer, when the
/// primary no longer gives it again: every answer the standby gets is a
/// genuine, signed 428 (its nonce already used).
const COPY_THEN_LATE: u8 = 11;
/// Outside tester insider-rt14 R2 (`mitm_tok.py`): each replication
/// request goes on with the token in [`AnswerMitm::token`] instead of the
/// standby's.
const SWAP_TOKEN: u8 = 10;
/// Outside tester insider-rt15 N2 (`r7_case_race.sh`): [`COPY_FIRST`] with
/// the copy's signature spelt in upper case (the same bytes).
const COPY_FIRST_UPPER: u8 = 12;

/// A man in the middle on the standby link (outside tester insider-rt12
/// A1, `fa_mitm.py`): it passes every request of the standby untouched
/// (its signature and nonce stay valid) and answers it with what the
/// primary answered, edited or replaced as `mode` says.
struct AnswerMitm {
    addr: String,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    /// How many answers it edited or replaced.
    changed: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// The record payloads it made up, as sent to the standby.
    forged: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The token [`SWAP_TOKEN`] puts on the standby's requests.
    token: std::sync::Arc<std::sync::Mutex<String>>,
    /// How late [`DELAY`] hands over each answer.
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// While set, [`PASS`] keeps the last answer that carried an account
    /// store, for [`REPLAY`] (the store is sealed: issue 23/24 D1).
    keeping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// One byte of the sealed account store in `v` changed (the mitm cannot
/// read the store: issue 23/24 D1); whether there was one.
fn spoil_sealed(v: &mut Value) -> bool {
    let Some(b) = v.pointer_mut("/sealed_accounts/box") else {
        return false;
    };
    let Some(text) = b.as_str() else {
        return false;
    };
    let mut text = text.to_string();
    let first = if text.starts_with('0') { "1" } else { "0" };
    text.replace_range(0..1.min(text.len()), first);
    *b = Value::String(text);
    true
}

/// `sato` made admin in every account store of `v`; whether it changed.
fn make_sato_admin(v: &mut Value) -> bool {
    let mut changed = false;
    match v {
        Value::Object(m) => {
            if m.get("username").and_then(Value::as_str) == Some("sato")
                && m.get("role").and_then(Value::as_str) != Some("admin")
            {
                m.insert("role".into(), json!("admin"));
                changed = true;
            }
            for x in m.values_mut() {
                changed |= make_sato_admin(x);
            }
        }
        Value::Array(a) => {
            for x in a {
                changed |= make_sato_admin(x);
            }
        }
        _ => {}
    }
    changed
}

/// Every issued ticket's number +100 in the answer's records; the forged
/// payloads.
fn forge_numbers(v: &mut Value) -> Vec<String> {
    let mut forged = Vec::new();
    let records = v.get_mut("records").and_then(Value::as_array_mut);
    for r in records.into_iter().flatten() {
        let Some(mut p) = r
            .get("payload")
            .and_then(Value::as_str)
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
        else {
            continue;
        };
        let mut ch = false;
        let events = p.get_mut("events").and_then(Value::as_array_mut);
        for e in events.into_iter().flatten() {
            if e["type"] == "ticket_issued" {
                if let Some(n) = e["number"].as_u64() {
                    e["number"] = json!(n + 100);
                    ch = true;
                }
            }
        }
        if ch {
            let text = p.to_string();
            r["payload"] = json!(text);
            forged.push(text);
        }
    }
    forged
}

fn answer_mitm(primary: &str) -> AnswerMitm {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(PASS));
    let changed = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let forged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept: std::sync::Arc<std::sync::Mutex<Option<Answer>>> =
        std::sync::Arc::new(std::sync::Mutex::new(None));
    let token = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(7000));
    let keeping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (m, c, f, primary, swap, late, keep) = (
        mode.clone(),
        changed.clone(),
        forged.clone(),
        primary.to_string(),
        token.clone(),
        delay_ms.clone(),
        keeping.clone(),
    );
    std::thread::spawn(move || {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        for inbound in listener.incoming() {
            let Ok(mut inbound) = inbound else { break };
            let (http, m, c, f, kept, primary, swap, late) = (
                http.clone(),
                m.clone(),
                c.clone(),
                f.clone(),
                kept.clone(),
                primary.clone(),
                swap.clone(),
                late.clone(),
            );
            let keep = keep.clone();
            std::thread::spawn(move || {
                let Ok(clone) = inbound.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(clone);
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                let mut headers = Vec::new();
                let mut length = 0usize;
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).map_or(true, |n| n == 0) || l.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.trim().split_once(':') {
                        let (k, v) = (k.trim().to_string(), v.trim().to_string());
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let mut parts = first.split(' ');
                let method = parts.next().unwrap_or("GET").to_string();
                let path = parts.next().unwrap_or("/").to_string();
                // The signing oracle (insider-rt13 E1): what the man in the
                // middle asks of the primary in the standby's place.
                let param = |name: &str| {
                    path.split(['?', '&'])
                        .find_map(|p| p.strip_prefix(name))
                        .unwrap_or_default()
                        .to_string()
                };
                let (sig, key) = (param("sig="), param("key="));
                let is_probe = path.contains("probe=true");
                let oracle = match m.load(Ordering::SeqCst) {
                    _ if !path.starts_with("/api/replication") || sig.is_empty() => None,
                    ORACLE_401 if !is_probe => Some((format!("/api/replication?after=0&sig={sig}"), false)),
                    ORACLE_403 if !is_probe => Some((format!("/api/replication?after=0&key={key}&sig={sig}"), true)),
                    ORACLE_PROBE if !is_probe => Some((format!("/api/replication?after=0&probe=true&challenge={sig}&key={key}&sig={sig}"), true)),
                    PROBE_401 if is_probe => Some((format!("/api/replication?after=0&sig={sig}"), false)),
                    _ => None,
                };
                let asked = oracle.as_ref().map_or(path.as_str(), |(p, _)| p.as_str());
                let signed_request =
                    path.starts_with("/api/replication") && !is_probe && !sig.is_empty();
                let now = m.load(Ordering::SeqCst);
                if signed_request
                    && (now == COPY_FIRST
                        || now == TWICE
                        || now == COPY_THEN_LATE
                        || now == COPY_FIRST_UPPER)
                {
                    // The copy, sent by the tap itself with the token it
                    // read on the wire; its answer goes nowhere.
                    let auth = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let copied = if now == COPY_FIRST_UPPER {
                        path.replace(&sig, &sig.to_uppercase())
                    } else {
                        path.clone()
                    };
                    let (http, url) = (http.clone(), format!("{primary}{copied}"));
                    let copy = std::thread::spawn(move || {
                        let _ = http
                            .get(url)
                            .header("authorization", auth)
                            .send()
                            .and_then(|r| r.bytes());
                    });
                    c.fetch_add(1, Ordering::SeqCst);
                    if now == TWICE {
                        let _ = copy.join();
                    } else if now == COPY_THEN_LATE {
                        let _ = copy.join();
                        std::thread::sleep(Duration::from_millis(5500));
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                if signed_request && now == SWAP_TOKEN {
                    let t = swap.lock().expect("token").clone();
                    for (k, v) in headers.iter_mut() {
                        if k.eq_ignore_ascii_case("authorization") {
                            *v = format!("Bearer {t}");
                        }
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                }
                let mut req = http.request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET),
                    format!("{primary}{asked}"),
                );
                for (k, v) in &headers {
                    let token = k.eq_ignore_ascii_case("authorization");
                    if (token && oracle.as_ref().is_none_or(|(_, with)| *with))
                        || k.eq_ignore_ascii_case("content-type")
                    {
                        req = req.header(k.as_str(), v.as_str());
                    }
                }
                if oracle.is_some() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                let Ok(r) = req.body(body).send() else {
                    let _ = inbound.write_all(
                        b"HTTP/1.1 502 x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                };
                let mut answer: Answer = (
                    r.status().as_u16(),
                    r.headers()
                        .iter()
                        .filter(|(k, _)| {
                            !matches!(
                                k.as_str(),
                                "content-length" | "transfer-encoding" | "connection"
                            )
                        })
                        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                        .collect(),
                    r.bytes().map(|b| b.to_vec()).unwrap_or_default(),
                );
                let replication =
                    path.starts_with("/api/replication") && !path.contains("probe=true");
                if replication {
                    let mode = m.load(Ordering::SeqCst);
                    let mut v = serde_json::from_slice::<Value>(&answer.2).ok();
                    // The last answer with an account store, while kept.
                    if mode == PASS
                        && keep.load(Ordering::SeqCst)
                        && v.as_ref()
                            .is_some_and(|v| v.get("sealed_accounts").is_some())
                    {
                        *kept.lock().expect("kept") = Some(answer.clone());
                    }
                    if mode == EDIT {
                        if let Some(v) = v.as_mut() {
                            let admin = make_sato_admin(v);
                            let numbers = forge_numbers(v);
                            let sealed = spoil_sealed(v);
                            if admin || sealed || !numbers.is_empty() {
                                f.lock().expect("forged").extend(numbers);
                                answer.2 = v.to_string().into_bytes();
                                c.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    if mode == REPLAY {
                        if let Some(old) = kept.lock().expect("kept").clone() {
                            answer = old;
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                if signed_request && m.load(Ordering::SeqCst) == DELAY {
                    c.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(late.load(Ordering::SeqCst)));
                }
                let (status, headers, body) = answer;
                let mut head = format!(
                    "HTTP/1.1 {status} x\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = inbound.write_all(head.as_bytes());
                let _ = inbound.write_all(&body);
            });
        }
    });
    AnswerMitm {
        addr,
        mode,
        changed,
        forged,
        token,
        delay_ms,
        keeping,
    }
}

/// The users in a server's `accounts.json`: name → role.
fn roles_of(s: &Server) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(data_of(s).join("accounts.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            Some((
                u["username"].as_str()?.to_string(),
                u["role"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Whether any file of the log in `data` holds `text`.
fn log_holds(data: &Path, text: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(data.join("log")) else {
        return false;
    };
    dir.filter_map(Result::ok).any(|f| {
        std::fs::read(f.path()).is_ok_and(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
    })
}

/// Waits until the mitm has changed `n` answers.
fn mitm_changed(mitm: &AnswerMitm, n: u32, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while mitm.changed.load(std::sync::atomic::Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "the mitm changed fewer than {n} answers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the standby's fault records say when an answer is not its
/// primary's.
const NOT_SIGNED_JA: &str = "主機からの答えに主機の鍵の署名がないか、署名が合いません";

/// Outside tester insider-rt12 A1 (issue 23, issue 24; R11, R18): a man
/// in the middle on the plain-HTTP standby link passed the standby's
/// requests untouched and edited the primary's JSON answers: a staff
/// account became admin on the standby (and stayed admin after its
/// promotion), and a forged record (a ticket number +100) was stored.
/// Now every answer is signed by the primary's answer key over the
/// request it answers: nothing edited is taken, the standby says so on
/// /admin and keeps following, and sato is still staff once it is
/// promoted.
#[test]
fn a_man_in_the_middle_who_edits_the_primarys_answers_changes_nothing_on_the_standby() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    assert_eq!(
        roles_of(&standby).get("sato").map(String::as_str),
        Some("staff")
    );
    mitm.mode.store(EDIT, Ordering::SeqCst);
    // A changed store (a new account) and a new record with a ticket.
    let (pc, pcsrf) = e.primary.admin();
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    // Refused for want of the standby's acknowledgement now (the lease
    // lapses): the answer does not matter here.
    let _ = issue(&e.primary.base, &e.kiosk);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mitm.forged.lock().expect("forged").is_empty() {
        assert!(Instant::now() < deadline, "the mitm forged no record");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let roles = roles_of(&standby);
    assert_eq!(
        roles.get("sato").map(String::as_str),
        Some("staff"),
        "an edited account store was taken: {roles:?}"
    );
    assert!(!roles.contains_key("suzuki"), "{roles:?}");
    let forged = mitm.forged.lock().expect("forged").clone();
    for f in &forged {
        assert!(
            !log_holds(&data_of(&standby), f),
            "a forged record was stored: {f}"
        );
    }
    let faults =
        std::fs::read_to_string(data_of(&standby).join("faults.jsonl")).unwrap_or_default();
    assert!(faults.contains(NOT_SIGNED_JA), "{faults}");
    // Promoted once the primary is gone: sato is still staff there.
    let mut primary = e.primary;
    primary.stop();
    let v = promote(&standby);
    assert_eq!(v["promoted"], true, "{v}");
    let (c, _) = sign_in(&standby.base, "sato", "sato-password-1").expect("sato signs in");
    let me: Value = c
        .get(standby.url("/api/me"))
        .send()
        .expect("me")
        .json()
        .expect("json");
    assert_eq!(me["role"], "staff", "{me}");
}

/// Outside tester insider-rt12 A1, replay: an older answer of the primary
/// (its account store with a user since deleted), sent again in place of
/// later ones, brought the deleted account back on the standby. Now an
/// answer fits only the request it was signed for: nothing is taken.
#[test]
fn a_man_in_the_middle_who_replays_an_older_answer_changes_nothing_on_the_standby() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    let (pc, pcsrf) = e.primary.admin();
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "suzuki", "role": "admin", "password": "suzuki-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    // The answer carrying suzuki passes (and is kept by the mitm).
    sign_in_once_followed(&e.primary, &standby, "suzuki", "suzuki-password-1", 30)
        .expect("suzuki never arrived");
    mitm.keeping.store(false, Ordering::SeqCst);
    let r = pc
        .delete(e.primary.url("/api/users/suzuki"))
        .header("X-CSRF-Token", &pcsrf)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(30);
    while roles_of(&standby).contains_key("suzuki") {
        assert!(Instant::now() < deadline, "the deletion never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    mitm.mode.store(REPLAY, Ordering::SeqCst);
    mitm_changed(&mitm, 1, 60);
    // Long enough for the standby to ask again (1 s) and the primary's
    // long poll (3 s): another replayed answer.
    std::thread::sleep(Duration::from_secs(5));
    let roles = roles_of(&standby);
    assert!(
        !roles.contains_key("suzuki"),
        "a replayed answer brought a deleted admin back: {roles:?}"
    );
    let faults =
        std::fs::read_to_string(data_of(&standby).join("faults.jsonl")).unwrap_or_default();
    assert!(faults.contains(NOT_SIGNED_JA), "{faults}");
    // Passed through again, the standby follows the primary at once.
    mitm.mode.store(PASS, Ordering::SeqCst);
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "tanaka", "role": "staff", "password": "tanaka-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    sign_in_once_followed(&e.primary, &standby, "tanaka", "tanaka-password-1", 30)
        .expect("the standby follows again");
}

/// One replication request signed as the standby signs it (with the key
/// made from `seed`), naming the sealing key made from the same seed
/// (issue 23/24 D1): status, the next nonce, the body.
fn signed_get(
    base: &str,
    token: &str,
    seed: [u8; 32],
    nonce: &str,
    after: u64,
    hash: &str,
    accounts: &str,
) -> (StatusCode, String, Value) {
    let seal = seal_public(seed);
    signed_get_sealed(base, token, seed, nonce, after, hash, accounts, &seal)
}

/// The X25519 public half of the sealing secret `secret` (hex).
fn seal_public(secret: [u8; 32]) -> String {
    hex::encode(curve25519_dalek::MontgomeryPoint::mul_base_clamped(secret).to_bytes())
}

/// [`signed_get`] naming the sealing key `seal` (hex); none if empty (a
/// standby of the previous version).
#[allow(clippy::too_many_arguments)] // one request, as the standby makes it
fn signed_get_sealed(
    base: &str,
    token: &str,
    seed: [u8; 32],
    nonce: &str,
    after: u64,
    hash: &str,
    accounts: &str,
    seal: &str,
) -> (StatusCode, String, Value) {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let hexs = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };
    let mut msg = format!("madoguchi-replication-v3\n{nonce}\n{after}\n{hash}\n\n{accounts}");
    if !seal.is_empty() {
        msg.push_str(&format!("\nseal={seal}"));
    }
    let sig = key.sign(msg.as_bytes());
    let r = Server::client()
        .get(format!(
            "{base}/api/replication?after={after}&hash={hash}&accounts={accounts}&key={}&sig={}&nonce={nonce}&seal={seal}",
            hexs(&key.verifying_key().to_bytes()),
            hexs(&sig.to_bytes())
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(20))
        .send()
        .expect("replication");
    let st = r.status();
    let next = r
        .headers()
        .get("madoguchi-link-nonce")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (st, next, r.json().unwrap_or(Value::Null))
}

/// Outside tester insider-rt12 A1, the primary's side: the standby's
/// signed requests named an account store digest the primary never sent
/// (314 times) and a forged record's hash, and the primary said nothing
/// but "check the standby's power and cable". Now each is a fault record
/// on its /admin saying the line may have been changed.
#[test]
fn the_primary_says_so_when_its_standby_names_what_it_never_sent() {
    let e = enrolled_primary();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let seed = [11; 32];
    let token = enrol_standby(v["enrol_url"].as_str().expect("link"), seed);
    let base = &e.primary.base;
    // First: a nonce only.
    let (st, nonce, _) = signed_get(base, &token, seed, "", 0, "", "");
    assert_eq!(st, StatusCode::PRECONDITION_REQUIRED);
    // The records and the account store, sealed for the standby's key,
    // never in clear (issue 23/24 D1).
    let (st, nonce, v) = signed_get(base, &token, seed, &nonce, 0, "", "");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.get("sealed_accounts").is_some(), "{v}");
    assert!(v.get("accounts").is_none(), "{v}");
    assert!(!v.to_string().contains("argon2"), "{v}");
    // Names a store it was never sent.
    let made_up = "ab".repeat(32);
    let (st, nonce, v) = signed_get(base, &token, seed, &nonce, 0, "", &made_up);
    assert_eq!(st, StatusCode::OK, "{v}");
    let faults =
        || std::fs::read_to_string(data_of(&e.primary).join("faults.jsonl")).unwrap_or_default();
    assert!(
        faults().contains("予備機に届いた登録情報（アカウント）が、主機の送ったものと違います"),
        "{}",
        faults()
    );
    // Names a record hash this log does not hold.
    let (st, _, v) = signed_get(base, &token, seed, &nonce, 1, &"cd".repeat(32), &made_up);
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(
        faults().contains("予備機の記録が主機と一致しません"),
        "{}",
        faults()
    );
}

/// Every password hash and token hash in a server's `accounts.json` (the
/// values of the keys that name a hash).
fn hashes_of(s: &Server) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match v.as_str() {
                        Some(t)
                            if (k.contains("hash") || k.contains("sha256")) && t.len() >= 20 =>
                        {
                            out.push(t.to_string())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(data_of(s).join("accounts.json")).unwrap_or_default();
    let mut out = Vec::new();
    walk(
        &serde_json::from_str(&text).unwrap_or(Value::Null),
        &mut out,
    );
    out
}

/// Issue 23/24 D1 (outside tester insider-rt14, `./mode_run.sh acc`:
/// "SNIFFED password hash in answer"; R11): the link has no TLS, and the
/// primary's answers carried every argon2id password hash and device token
/// hash to its standby in clear, for anyone with a tap on the office LAN to
/// guess staff passwords offline. Now the store is sealed for the
/// standby's own key: nothing of it crosses the cable, in either direction,
/// while the promoted standby still signs in the primary's people and
/// takes its kiosk.
#[test]
fn no_password_or_token_hash_crosses_the_standby_link_and_the_promoted_standby_signs_in() {
    let mut e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    sign_in_once_followed(&e.primary, &standby, "admin", &e.primary.admin_password, 30)
        .expect("the accounts never arrived");
    // An account made while it follows arrives too, sealed.
    let (pc, pcsrf) = e.primary.admin();
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    sign_in_once_followed(&e.primary, &standby, "suzuki", "suzuki-password-1", 30)
        .expect("the new account never arrived");
    let hashes = hashes_of(&e.primary);
    // admin, sato, suzuki; the kiosk, the display, the standby.
    assert!(
        hashes.iter().filter(|h| h.starts_with("$argon2")).count() >= 3,
        "{hashes:?}"
    );
    assert!(hashes.len() >= 6, "{hashes:?}");
    let mut carried = cable.heard.lock().map(|h| h.clone()).unwrap_or_default();
    let answered = cable.answered.lock().map(|h| h.clone()).unwrap_or_default();
    carried.extend_from_slice(&answered);
    let on_the_line = |t: &str| carried.windows(t.len()).any(|w| w == t.as_bytes());
    // Old code: "crossed the standby link in clear: $argon2id$v=19$…".
    for h in &hashes {
        assert!(!on_the_line(h), "crossed the standby link in clear: {h}");
    }
    assert!(
        !on_the_line("argon2"),
        "an argon2 hash crossed the standby link"
    );
    assert!(
        String::from_utf8_lossy(&answered).contains("sealed_accounts"),
        "no account store crossed the cable"
    );
    // The promoted standby: the primary's people and devices.
    cable.cut();
    e.primary.stop();
    assert_eq!(promote(&standby)["epoch"], 1);
    same_people_and_devices(&e, &standby.base);
    sign_in(&standby.base, "suzuki", "suzuki-password-1").expect("suzuki");
}

/// Issue 23/24 D1, the upgrade: a standby of the previous version names
/// no sealing key. It gets the log but no account store (no password hash
/// in clear), and the primary's /admin says why and what to do.
#[test]
fn a_standby_without_a_sealing_key_gets_no_accounts_and_the_primary_says_so() {
    let e = enrolled_primary();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let seed = [12; 32];
    let token = enrol_standby(v["enrol_url"].as_str().expect("link"), seed);
    let base = &e.primary.base;
    let (st, nonce, _) = signed_get_sealed(base, &token, seed, "", 0, "", "", "");
    assert_eq!(st, StatusCode::PRECONDITION_REQUIRED);
    let (st, _, v) = signed_get_sealed(base, &token, seed, &nonce, 0, "", "", "");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["records"].as_array().is_some_and(|r| !r.is_empty()),
        "the log still goes: {v}"
    );
    assert!(v.get("accounts").is_none(), "{v}");
    assert!(v.get("sealed_accounts").is_none(), "{v}");
    assert!(!v.to_string().contains("argon2"), "{v}");
    let faults =
        std::fs::read_to_string(data_of(&e.primary).join("faults.jsonl")).unwrap_or_default();
    assert!(
        faults.contains(
            "予備機の暗号鍵がないため、アカウントを送っていません。予備機を新しい版にしてください"
        ),
        "{faults}"
    );
}

/// Outside tester insider-rt11 L3 (issue 24, R10): a backup carried the
/// account store but not the standby's key bound to its token, so a
/// primary restored from it took the next key that signed for the token
/// and said the standby "was enrolled without a key"; nor the primary's
/// answer key, whose public half its standby checks every answer with
/// (insider-rt12 A1). Both are restored now, the secret one 0600.
#[test]
fn a_restored_backup_keeps_the_standby_links_keys() {
    let e = enrolled_primary();
    let (st, v) = admin_send(
        &e.primary,
        "/api/devices",
        json!({"name": "standby-1", "role": "standby"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let _token = enrol_standby(v["enrol_url"].as_str().expect("link"), [7; 32]);
    let pdata = data_of(&e.primary);
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    ok(&pdata, &["backup", "--out", &bak.display().to_string()]);
    let spare = dir.path().join("spare");
    ok(&spare, &["restore", &bak.display().to_string()]);
    for name in ["standby-link-keys.json", "link-answer-key"] {
        let was = std::fs::read_to_string(pdata.join(name)).expect(name);
        let now = std::fs::read_to_string(spare.join(name))
            .unwrap_or_else(|e| panic!("{name} not restored: {e}"));
        assert_eq!(was, now, "{name}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(spare.join("link-answer-key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

/// Outside tester insider-rt13 E1 (issue 23, issue 24; R9, R11): the
/// primary signed its answer to any request carrying `sig=…`, a 401 to a
/// request with no token among them, so a man in the middle with no
/// credentials handed the standby a genuinely signed 401 (it wrote
/// `standby-refused`, stopped following for good and refused promotion),
/// a signed 403 (`link-key-refused`), or a signed empty probe answer (a
/// silent stall, no fault at all); answering the promotion's probe with
/// the no-token 401 refused the promotion (409 standby_refused). Now the
/// primary signs only an answer to a request whose signature holds, naming
/// its token, key and kind: each of these reaches the standby unsigned, is
/// said on its /admin, is written down nowhere, and the standby follows
/// on and is promoted.
#[test]
fn a_man_in_the_middle_using_the_primary_as_a_signing_oracle_revokes_nothing() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    // The oracle itself: no token, any `sig=`, no signature on the answer.
    let r = Server::client()
        .get(format!(
            "{}/api/replication?after=0&sig=abc",
            e.primary.base
        ))
        .send()
        .expect("replication");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers().get("madoguchi-link-answer-sig").is_none(),
        "the primary signed a 401 to a request with no token"
    );
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    let data = data_of(&standby);
    let faults = || std::fs::read_to_string(data.join("faults.jsonl")).unwrap_or_default();
    let mut seen = 0;
    // The probe first: on the old code it was taken with no fault at all.
    for mode in [ORACLE_PROBE, ORACLE_401, ORACLE_403] {
        mitm.mode.store(mode, Ordering::SeqCst);
        seen += 4;
        mitm_changed(&mitm, seen, 60);
        seen = mitm.changed.load(Ordering::SeqCst);
        for written in ["standby-refused", "link-key-refused"] {
            assert!(
                !data.join(written).exists(),
                "mode {mode}: the standby wrote {written}: {}",
                faults()
            );
        }
        assert!(
            faults().contains("主機からの答えに署名がありません"),
            "mode {mode}: {}",
            faults()
        );
    }
    // The line clean again: the standby still follows, the primary issues.
    mitm.mode.store(PASS, Ordering::SeqCst);
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "", 30);
    assert_eq!(st, StatusCode::OK, "{v}");
    // The promotion's probe answered with the no-token 401: no refusal.
    mitm.mode.store(PROBE_401, Ordering::SeqCst);
    let (st, v) = try_promote(&standby, json!({}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["promoted"], true, "{v}");
    assert!(!data.join("standby-refused").exists());
}

/// Outside tester insider-rt13 A2 (issue 23, issue 24; R9, R11): one
/// sniffed, validly signed replication request line (the standby's first)
/// sent again and again with the token (in clear) got a fresh 428 nonce
/// each time and pushed the standby's nonces out: issuing stopped
/// (`no_standby_lease`, 「予備機の電源とケーブル」) for as long as it ran. Now a
/// stale request gets a new nonce only while the token holds no fresh
/// unused one: the standby keeps its lease, issuing goes on, and the
/// primary's /admin says an old request is being sent again.
#[test]
fn one_sniffed_request_sent_again_and_again_stops_no_issuing() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let line = cable
        .replication_lines()
        .into_iter()
        .find(|l| l.contains("&sig="))
        .expect("a signed request crossed the cable");
    let token = std::fs::read_to_string(data_of(&standby).join("standby-token")).expect("token");
    let token = token.trim().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..3 {
        let (url, token, stop) = (e.primary.url(&line), token.clone(), stop.clone());
        flood.push(std::thread::spawn(move || {
            let c = Server::client();
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 5_000 {
                let _ = c
                    .get(&url)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(10))
                    .send();
                sent += 1;
            }
            sent
        }));
    }
    let started = Instant::now();
    let mut refused = Vec::new();
    while started.elapsed() < Duration::from_secs(12) {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st != StatusCode::OK && v["error"]["code"] == "no_standby_lease" {
            refused.push(v);
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent: u32 = flood.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    // Old code: 503 no_standby_lease from a few seconds into the flood.
    assert!(refused.is_empty(), "{sent} replays: {refused:?}");
    assert!(sent > 50, "the flood sent only {sent}");
    let faults =
        std::fs::read_to_string(data_of(&e.primary).join("faults.jsonl")).unwrap_or_default();
    assert!(
        faults.contains("予備機のトークンで古い要求が繰り返し送られています"),
        "{faults}"
    );
    drop(standby);
}

/// The fault records in a server's data folder.
fn faults_of(s: &Server) -> String {
    std::fs::read_to_string(data_of(s).join("faults.jsonl")).unwrap_or_default()
}

/// Waits until `s`'s fault records hold `text`; whether they did.
fn faults_say(s: &Server, text: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if faults_of(s).contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// Outside tester insider-rt13 C1 (issue 24; R9, R11): a man in the
/// middle edited the primary's answers; the standby refused them and kept
/// asking, signed, every second, never echoing a grant, and the primary
/// held with 「予備機と連絡が取れない…電源とケーブル」. Now it notices and says
/// the standby does not receive its answers, on /admin and in the hold.
#[test]
fn a_primary_whose_answers_its_standby_refuses_says_so_not_the_cable() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    mitm.mode.store(EDIT, Ordering::SeqCst);
    // A changed store: every answer carries it now, and each is edited.
    let (pc, pcsrf) = e.primary.admin();
    let r = pc
        .post(e.primary.url("/api/users"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-password-1"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    let said = "予備機は主機の答えを受け取れていません";
    // Old code: never said (only the cable text).
    assert!(
        faults_say(&e.primary, said, 60),
        "{}",
        faults_of(&e.primary)
    );
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(ja.contains(said) && !ja.contains("電源とケーブル"), "{v}");
    drop(standby);
}

/// Outside tester insider-rt13 C3 (issue 24; R9): the standby's /admin
/// said 「the primary cannot be reached: error sending request for url
/// (http://…/api/replication?…&key=…&sig=…」 — English only, nothing on
/// what to do, and the URL with its key and signature. Now Japanese
/// first, with what to do, and no URL.
#[test]
fn a_standby_that_cannot_reach_its_primary_says_so_in_japanese_without_the_url() {
    let e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    cable.cut();
    assert!(
        faults_say(
            &standby,
            "主機と連絡が取れません。主機の電源とケーブルを確かめてください",
            30
        ),
        "{}",
        faults_of(&standby)
    );
    let faults = faults_of(&standby);
    assert!(
        !faults.contains("sig=") && !faults.contains("/api/replication"),
        "{faults}"
    );
}

/// Outside tester insider-rt13 C4 (issue 24; R10): a primary whose
/// `link-answer-key` was lost (a damaged or hand-copied folder) made a new
/// one without a word; its standby refused every answer and both blamed
/// the cable. Now it says so at start, with the way out.
#[test]
fn a_primary_whose_answer_key_is_gone_says_so_at_start() {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base);
    let mut primary = e.primary;
    primary.stop();
    std::fs::remove_file(data_of(&primary).join("link-answer-key")).expect("remove the key");
    primary.restart();
    // Old code: nothing said, a new key made at the first answer.
    assert!(
        faults_say(
            &primary,
            "主機の答えの鍵（link-answer-key）がありません",
            20
        ),
        "{}",
        faults_of(&primary)
    );
    drop(standby);
}

/// Outside tester insider-rt13 C2 (issue 24; R9): a standby enrolled
/// before answer keys said to revoke it, make a new link and start it with
/// `--enrol-link`; doing exactly that left the primary stopped
/// (`revoked_standby_unconfirmed`) until 「予備機の停止を確認」, which the
/// instruction did not name. Now it names that step, before enrolling
/// again.
#[test]
fn an_old_standby_names_the_confirmation_step_before_enrolling_again() {
    let e = enrolled_primary();
    let mut standby = pair(&e, &e.primary.base);
    standby.stop();
    let data = data_of(&standby);
    // What a standby enrolled by the older version holds: no answer key.
    std::fs::remove_file(data.join("standby-answer-key")).expect("remove");
    let mut c = crate::util::office();
    c.arg("--data").arg(&data).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--standby-of",
        &e.primary.base,
    ]);
    let out = exits_within(c, 60);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("主機の答えを確かめる鍵を持っていません"),
        "{said}"
    );
    // Old code: revoke, new link, restart — nothing about the confirmation.
    assert!(said.contains("「予備機の停止を確認」を押す"), "{said}");
}

/// Sends `line` (a replication request as seen on the wire) to `base`
/// with `token`, from three threads, until `stop` (at most 20,000 each,
/// about 50 a second each): the replay of outside tester insider-rt13 A2
/// and insider-rt14 R1.
fn replay_flood(
    base: &str,
    line: &str,
    token: &str,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<u32>> {
    (0..3)
        .map(|_| {
            let (url, token, stop) = (format!("{base}{line}"), token.to_string(), stop.clone());
            std::thread::spawn(move || {
                let c = Server::client();
                let mut sent = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 20_000 {
                    let _ = c
                        .get(&url)
                        .bearer_auth(&token)
                        .timeout(Duration::from_secs(10))
                        .send();
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                sent
            })
        })
        .collect()
}

/// The kiosk issues once a second for `secs`: each answer's time (from
/// the start), status and error code.
fn issue_for(base: &str, kiosk: &str, secs: u64) -> Vec<(f64, StatusCode, String)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let (st, v) = issue(base, kiosk);
        seen.push((
            started.elapsed().as_secs_f64(),
            st,
            v["error"]["code"].as_str().unwrap_or_default().to_string(),
        ));
        std::thread::sleep(Duration::from_millis(1000));
    }
    seen
}

/// Outside tester insider-rt14 R1 (issue 23, issue 24; R9, R11): once the
/// standby had lost its nonce — here the primary restarted, as every
/// morning — one sniffed signed line of the standby (its first) replayed
/// about 30 times a second took every new nonce the moment the 3 s window
/// opened, and issuing stayed stopped (`no_standby_lease`) for as long as
/// the replay ran. Now a request the primary has answered gets only the
/// nonce it got then, and the standby's own request its own at once.
#[test]
fn a_primary_restarted_while_one_sniffed_line_is_replayed_issues_again_within_seconds() {
    let mut e = enrolled_primary();
    let cable = Cable::to(&e.primary.base);
    let standby = pair(&e, &cable.addr);
    let line = cable
        .replication_lines()
        .into_iter()
        .find(|l| l.contains("&sig="))
        .expect("a signed request crossed the cable");
    let token = std::fs::read_to_string(data_of(&standby).join("standby-token")).expect("token");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = replay_flood(&e.primary.base, &line, token.trim(), &stop);
    std::thread::sleep(Duration::from_secs(2));
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "before the restart: {v}");
    e.primary.restart();
    let seen = issue_for(&e.primary.base, &e.kiosk, 22);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent: u32 = flood.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    assert!(sent > 200, "the replay sent only {sent}");
    // Old code: 503 no_standby_lease from the restart to the end of the
    // replay (25 of 25 in the outside tester's run).
    let first = seen.iter().find(|(_, st, _)| *st == StatusCode::OK);
    assert!(
        first.is_some_and(|(at, _, _)| *at < 12.0),
        "{sent} replays; after the restart: {seen:?}"
    );
    let last: Vec<_> = seen.iter().rev().take(6).collect();
    assert!(
        last.iter().all(|(_, st, _)| *st == StatusCode::OK),
        "issuing stopped again during the replay: {seen:?}"
    );
    drop(standby);
}

/// Outside tester insider-rt14 R1, the race (`r1_race.sh`): a tap that
/// sends a copy of each replication request to the primary itself, first.
/// The copy used the standby's nonce; the standby's own request got a 428
/// without one, and issuing stopped for as long as it went on (25 of 25
/// `no_standby_lease`). Now the standby's own request, the same as the
/// copy, gets the answer the copy got (its records, grant and nonce).
#[test]
fn a_tap_whose_copy_of_each_request_arrives_first_stops_no_issuing() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    mitm.mode.store(COPY_FIRST, Ordering::SeqCst);
    let seen = issue_for(&e.primary.base, &e.kiosk, 16);
    assert!(
        mitm.changed.load(Ordering::SeqCst) > 5,
        "the tap copied too little"
    );
    // Old code: 503 no_standby_lease from a few seconds on, to the end.
    issuing_went_on(&seen);
    drop(standby);
}

/// After the first seconds every ticket was issued: 200, or the kiosk's
/// own issuing limit (429, not the link), and more than five issued.
fn issuing_went_on(seen: &[(f64, StatusCode, String)]) {
    let late: Vec<_> = seen.iter().filter(|(at, _, _)| *at > 4.0).collect();
    assert!(
        late.iter()
            .all(|(_, st, _)| *st == StatusCode::OK || *st == StatusCode::TOO_MANY_REQUESTS),
        "{seen:?}"
    );
    assert!(
        late.iter()
            .filter(|(_, st, _)| *st == StatusCode::OK)
            .count()
            > 5,
        "{seen:?}"
    );
}

/// Outside tester insider-rt15 N2 (`r7_case_race.sh`): the tap's copy of
/// each request carries the signature in upper case — the same bytes, so
/// it verified, but remembered by its text it was a request never seen
/// and took a fresh nonce: 503 no_standby_lease for as long as the tap ran.
/// Now only the lower-case spelling is a signature at all.
#[test]
fn a_tap_whose_upper_case_copy_arrives_first_stops_no_issuing() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    mitm.mode.store(COPY_FIRST_UPPER, Ordering::SeqCst);
    let seen = issue_for(&e.primary.base, &e.kiosk, 16);
    assert!(
        mitm.changed.load(Ordering::SeqCst) > 5,
        "the tap copied too little"
    );
    issuing_went_on(&seen);
    drop(standby);
}

/// Outside tester insider-rt14 R2 (`mitm_twice.py`): a man in the middle
/// who only sends each request twice and hands the standby the second
/// answer. Every answer the standby got was a genuine, signed 428 without
/// a nonce: it took nothing, said nothing, and the primary held
/// (`no_standby_lease`, 54 of 55). Now the second gets the first's answer.
#[test]
fn a_man_in_the_middle_who_sends_each_request_twice_stops_no_issuing() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    mitm.mode.store(TWICE, Ordering::SeqCst);
    let seen = issue_for(&e.primary.base, &e.kiosk, 14);
    assert!(
        mitm.changed.load(Ordering::SeqCst) > 3,
        "sent twice too little"
    );
    // Old code: 503 no_standby_lease throughout.
    issuing_went_on(&seen);
    // The standby holds what the primary issued.
    let numbers = seen
        .iter()
        .filter(|(_, st, _)| *st == StatusCode::OK)
        .count();
    assert!(numbers > 5, "{seen:?}");
    drop(standby);
}

/// Outside tester insider-rt14 R2 (`mitm_delay.py`): a man in the middle
/// who hands the standby each answer 7 s late (more than the lease). The
/// standby took every answer and said nothing (its /admin: 「主機の記録を
/// すべて受け取っています」); the primary held with 「電源とケーブル」 and named
/// answers "changed on the way" only after ~70 s. Now the standby says the
/// answers come late, on /admin instead of "all received", and the
/// primary names answers stopped or delayed.
#[test]
fn answers_held_back_longer_than_the_lease_are_said_on_both_machines() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    mitm.mode.store(DELAY, Ordering::SeqCst);
    // Old code: never said on the standby.
    assert!(
        faults_say(&standby, "主機の答えが遅れて届いています", 60),
        "{}",
        faults_of(&standby)
    );
    let page = page_text(
        &standby.base,
        "/admin",
        Some(("admin", &standby.admin_password)),
        None,
    );
    assert!(
        page.contains("主機の答えが遅れて届いています")
            && !page.contains("主機の記録をすべて受け取っています"),
        "{page}"
    );
    // Old code: 「電源とケーブル」 for ~70 s, then only 「書き換えられている」.
    assert!(
        faults_say(&e.primary, "遅らせている", 45),
        "{}",
        faults_of(&e.primary)
    );
    let (st, v) = issue(&e.primary.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        ja.contains("遅らせている") && !ja.contains("電源とケーブル"),
        "{v}"
    );
    mitm.mode.store(PASS, Ordering::SeqCst);
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "", 40);
    assert_eq!(st, StatusCode::OK, "{v}");
    drop(standby);
}

/// Outside tester insider-rt14 R2 (`mitm_tok.py`): a man in the middle
/// put a kiosk's token on the standby's signed requests; the primary,
/// which saw a kiosk token carrying its standby's valid signature, said
/// only 「電源とケーブル」. The standby's key never leaves it: that is a
/// device in between, and the primary says so.
#[test]
fn a_kiosk_token_on_the_standbys_signed_request_is_said_to_be_a_device_in_between() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    *mitm.token.lock().expect("token") = e.kiosk.clone();
    mitm.mode.store(SWAP_TOKEN, Ordering::SeqCst);
    let said = "予備機ではない端末のトークンで届きました";
    // Old code: nothing but the cable text.
    assert!(
        faults_say(&e.primary, said, 30),
        "{}",
        faults_of(&e.primary)
    );
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "no_standby_lease", 20);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(ja.contains(said) && !ja.contains("電源とケーブル"), "{v}");
    drop(standby);
}

/// Outside tester insider-rt14 R4 (issue 24; R10): a pair enrolled by a
/// version before answer keys, upgraded: the primary said at every start
/// 「…バックアップから戻すか、予備機を取り消して登録し直してください」; no
/// backup holds an answer key then, and restoring one would hold a working
/// primary. Now it names the upgrade step only; a folder that had an
/// answer key (`a_primary_whose_answer_key_is_gone_says_so_at_start`)
/// still names the backup.
#[test]
fn an_upgraded_primary_without_an_answer_key_names_the_upgrade_step_not_a_backup() {
    let e = enrolled_primary();
    let standby = pair(&e, &e.primary.base);
    let mut primary = e.primary;
    primary.stop();
    let data = data_of(&primary);
    // What a folder of the older version holds: no answer key, and links
    // that name none.
    std::fs::remove_file(data.join("link-answer-key")).expect("remove the key");
    let links = data.join("standby-links.json");
    let text = std::fs::read_to_string(&links).expect("links");
    let mut v: Value = serde_json::from_str(&text).expect("json");
    for (_, l) in v.as_object_mut().expect("object").iter_mut() {
        let l = l.as_object_mut().expect("link");
        l.remove("answer_key");
        l.remove("answer_tag");
    }
    std::fs::write(&links, v.to_string()).expect("write");
    primary.restart();
    assert!(
        faults_say(&primary, "以前の版で登録されています", 20),
        "{}",
        faults_of(&primary)
    );
    let faults = faults_of(&primary);
    // Old code: 「バックアップから戻すか、予備機を取り消して登録し直してください」.
    assert!(
        !faults.contains("バックアップから戻す") && faults.contains("「予備機の停止を確認」を押す"),
        "{faults}"
    );
    drop(standby);
}

/// Outside tester insider-rt14 R3 (issue 24; R9): while a new standby
/// copied a long log (here through a link that hands over each answer 1 s
/// late, `catchup_delay.sh`), the primary's hold said 「予備機の電源とケーブル」,
/// its fault list said 「受付を再開しました」 three seconds into a stop that
/// went on for a minute, and every ticket tried was written, refused and
/// never handed out (numbers 1–15 burnt). Now the hold says the standby is
/// copying (and how much is left), a command is refused before it is
/// written while it is far behind, and 「再開」 is said once one is answered.
#[test]
fn a_standby_copying_a_long_log_holds_with_what_is_left_and_burns_no_number() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tmp");
    let history = dir.path().join("history");
    let file = dir.path().join("days.jsonl");
    let f = file.to_str().expect("path");
    ok(
        &history,
        &[
            "simulate",
            "--days",
            "6",
            "--start",
            "2026-06-01",
            "--seed",
            "24",
            "--out",
            f,
        ],
    );
    ok(&history, &["import", f]);
    let primary = Server::start_prepared(None, &["--listen", "127.0.0.1:0"], |to| {
        crate::util::copy_dir(&history.join("log"), &to.join("log"));
        std::fs::copy(history.join("HIGHWATER"), to.join("HIGHWATER")).expect("mark");
    });
    let (c, csrf) = primary.admin();
    crate::server::open_today(&c, &primary, &csrf, &[10]);
    let kiosk = enrol(&primary.kiosk_enrol);
    let display = enrol(&primary.display_enrol);
    let e = Enrolled {
        primary,
        kiosk,
        display,
    };
    let mitm = answer_mitm(&e.primary.base);
    mitm.delay_ms.store(1000, Ordering::SeqCst);
    mitm.mode.store(DELAY, Ordering::SeqCst);
    let standby = pair(&e, &mitm.addr);
    let mut refusals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = loop {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK {
            break v;
        }
        let faults = faults_of(&e.primary);
        assert!(
            !faults.contains("受付を再開しました"),
            "old code: said resumed while commands were refused: {faults}"
        );
        refusals.push(v);
        assert!(Instant::now() < deadline, "never issued: {refusals:?}");
        std::thread::sleep(Duration::from_millis(1000));
    };
    let said: Vec<&str> = refusals
        .iter()
        .map(|v| v["error"]["message_ja"].as_str().unwrap_or_default())
        .collect();
    // Old code: 「…予備機の電源とケーブルを確かめてください…」 each time.
    assert!(
        said.iter()
            .any(|m| m.contains("予備機が主機の記録を受け取っている途中です（あと")),
        "{said:?}"
    );
    assert!(
        said.iter().all(|m| !m.contains("電源とケーブル")),
        "{said:?}"
    );
    // Old code: the first numbers (idou starts at 1001) were written and
    // refused; the first handed out was a later one.
    assert_eq!(number(&first), 1001, "{first} after {said:?}");
    let burnt = std::fs::read_to_string(data_of(&e.primary).join("refused-after-write"))
        .unwrap_or_default();
    assert!(burnt.trim().is_empty(), "burnt: {burnt}");
    assert!(
        faults_say(&e.primary, "受付を再開しました", 10),
        "{}",
        faults_of(&e.primary)
    );
    drop(standby);
}

/// Outside tester insider-rt14 R1, R2: while the standby's signed requests
/// were answered 428 (a replay or a copy had used its nonce; `mitm_twice`),
/// the standby wrote nothing and its /admin said 「主機の記録をすべて受け取って
/// います」. Now, after a few seconds of such answers, it says no usable
/// nonce arrives, on /admin and in its fault records.
#[test]
fn a_standby_answered_428_again_and_again_says_no_nonce_arrives() {
    use std::sync::atomic::Ordering;
    let e = enrolled_primary();
    let mitm = answer_mitm(&e.primary.base);
    let standby = pair(&e, &mitm.addr);
    mitm.mode.store(COPY_THEN_LATE, Ordering::SeqCst);
    let said = "主機から要求の番号（nonce）が届きません";
    // Old code: nothing on the standby.
    assert!(faults_say(&standby, said, 60), "{}", faults_of(&standby));
    let page = page_text(
        &standby.base,
        "/admin",
        Some(("admin", &standby.admin_password)),
        None,
    );
    assert!(
        page.contains(said) && !page.contains("主機の記録をすべて受け取っています"),
        "{page}"
    );
    mitm.mode.store(PASS, Ordering::SeqCst);
    let (st, v) = issue_until(&e.primary.base, &e.kiosk, "", 40);
    assert_eq!(st, StatusCode::OK, "{v}");
    drop(standby);
}
