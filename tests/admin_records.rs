//! Administration through the real server (issue 18): settings errors name
//! the field in Japanese with English beside it, never the parser's text;
//! a settings change carries the administrator's name in the audit log;
//! a device's last contact is still on /admin/devices after a restart.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::Server;

#[test]
fn settings_errors_name_the_field_and_changes_name_the_admin() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let post = |path: &str, body: Value| {
        let r = c
            .post(s.url(path))
            .header("X-CSRF-Token", &csrf)
            .json(&body)
            .send()
            .expect("post");
        let st = r.status();
        (st, r.json::<Value>().expect("json"))
    };
    let toml = c
        .get(s.url("/api/settings"))
        .send()
        .expect("get")
        .json::<Value>()
        .expect("json")["toml"]
        .as_str()
        .expect("toml")
        .to_string();
    let cases = [
        (
            "a bad time",
            toml.replacen(
                "typical_service_minutes",
                "last_issue = \"25:70\"\ntypical_service_minutes",
                1,
            ),
            "受付「戸籍届出と証明発行の受付」の発券終了時刻: 時刻は「16:45」のように",
            "queue \"koseki\", last issue time: write a time as HH:MM",
        ),
        (
            "an unknown queue",
            toml.replacen("serves = [\"idou\"]", "serves = [\"nosuch\"]", 1),
            "の担当する受付: 設定にない受付を指しています（nosuch）",
            "queues served: names a queue that is not in the settings",
        ),
        (
            "a bad number",
            toml.replacen(
                "typical_service_minutes = 8",
                "typical_service_minutes = \"eight\"",
                1,
            ),
            "受付「戸籍届出と証明発行の受付」の標準の対応時間（分）: 数値で書いてください",
            "typical service minutes: write a number",
        ),
        (
            "a number out of range",
            toml.replacen(
                "typical_service_minutes = 8",
                "typical_service_minutes = 999",
                1,
            ),
            "受付「戸籍届出と証明発行の受付」の標準の対応時間（分）: 数値が使える範囲を外れています",
            "the number is out of range",
        ),
    ];
    for (what, bad, ja, en) in &cases {
        assert_ne!(bad, &toml, "{what}: the case changes the text");
        for path in ["/api/settings/validate", "/api/settings"] {
            let (st, v) = post(path, json!({ "toml": bad }));
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
            let mja = v["error"]["message_ja"].as_str().unwrap_or("");
            let men = v["error"]["message_en"].as_str().unwrap_or("");
            assert!(mja.contains(ja), "{what}: {mja}");
            assert!(men.contains(en), "{what}: {men}");
            for m in [mja, men] {
                assert!(
                    !m.contains("行目")
                        && !m.contains("line")
                        && !m.contains("TOML")
                        && !m.contains('`')
                        && !m.contains("expected"),
                    "{what}: no parser text: {m}"
                );
            }
            assert!(v["error"]["line"].as_u64().is_some_and(|l| l > 0), "{v}");
        }
    }
    // A change that applies is recorded with the administrator's name.
    let renamed = toml.replace("住民異動の受付", "住民異動（転入・転出）の受付");
    let (st, v) = post("/api/settings", json!({ "toml": renamed }));
    assert_eq!(st, StatusCode::OK, "{v}");
    let seq = v["seq"].as_u64().expect("seq");
    let export = c
        .get(s.url("/api/audit/export"))
        .send()
        .expect("export")
        .text()
        .expect("text");
    let row: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|r| r["seq"] == seq)
        .expect("the change's record");
    assert_eq!(row["by"], "admin", "{row}");
    assert_eq!(row["events"][0], "config_applied");
    // The demo kiosk enrols itself: its record names a device, not a
    // person (insider red team: rows did not tell the two apart).
    let kiosk = Server::client();
    let r = kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    assert!(r.status().is_success() || r.status().is_redirection());
    let page = c
        .get(s.url("/audit"))
        .send()
        .expect("page")
        .text()
        .expect("html");
    let tr = page
        .split("<tr data-kinds=\"config_applied\">")
        .nth(1)
        .expect("the change on the page");
    assert!(
        tr.split("</tr>")
            .next()
            .unwrap_or("")
            .contains("<td>admin（管理者アカウント）</td>"),
        "the operator in the row: {tr}"
    );
    assert!(
        page.contains("<td>端末 kiosk-1（発券機）</td>"),
        "the enrolled kiosk named as a device: {page}"
    );
}

#[test]
fn a_devices_last_contact_is_kept_across_a_restart() {
    let mut s = Server::start();
    let kiosk = Server::client();
    let r = kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let r = kiosk.get(s.url("/api/status")).send().expect("status");
    assert_eq!(r.status(), StatusCode::OK);
    let (c, _) = s.admin();
    let devices: Value = c
        .get(s.url("/api/devices"))
        .send()
        .expect("devices")
        .json()
        .expect("json");
    let kiosk_row = |devices: &Value| -> Value {
        devices["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["role"] == "kiosk")
            .cloned()
            .expect("the kiosk")
    };
    let before = kiosk_row(&devices);
    let when = before["last_contact"]
        .as_str()
        .expect("a contact")
        .to_string();
    // Written by a background task: wait for the file (bounded).
    let file = s.data_dir().join("data/device-contacts.json");
    for _ in 0..50 {
        if std::fs::read_to_string(&file).is_ok_and(|t| t.contains("kiosk")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.restart();
    let (c, _) = s.admin();
    let devices: Value = c
        .get(s.url("/api/devices"))
        .send()
        .expect("devices")
        .json()
        .expect("json");
    let after = kiosk_row(&devices);
    assert_eq!(after["last_contact"], when.as_str(), "{after}");
    let name = after["name"].as_str().expect("name").to_string();
    let page = c
        .get(s.url("/admin/devices"))
        .send()
        .expect("page")
        .text()
        .expect("html");
    let row = page
        .split(&format!("data-device=\"{name}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("the kiosk's row");
    assert!(row.contains(&when), "{row}");
}

/// Names that read as someone else are refused (insider red team, issue
/// 23): a bidi override or zero-width character, an account named like an
/// enrolled device, a device named like an account.
#[test]
fn names_that_pass_for_another_are_refused() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let kiosk = Server::client();
    let enrolled = kiosk.post(&s.kiosk_enrol).send().expect("enrol").status();
    assert!(
        enrolled.is_success() || enrolled.is_redirection(),
        "{enrolled}"
    );
    let device = c
        .get(s.url("/api/devices"))
        .send()
        .expect("devices")
        .json::<Value>()
        .expect("json");
    let kiosk_name = device["devices"]
        .as_array()
        .and_then(|l| l.iter().find(|d| d["role"] == "kiosk"))
        .and_then(|d| d["name"].as_str())
        .expect("an enrolled kiosk")
        .to_string();
    let user = |name: &str| {
        let r = c
            .post(s.url("/api/users"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"username": name, "role": "staff", "password": "a long password"}))
            .send()
            .expect("user");
        let st = r.status();
        (st, r.json::<Value>().unwrap_or_default())
    };
    for (name, status, code) in [
        ("ad\u{202E}nimda", StatusCode::BAD_REQUEST, "bad_name"),
        ("sa\u{200B}to", StatusCode::BAD_REQUEST, "bad_name"),
        (kiosk_name.as_str(), StatusCode::CONFLICT, "name_taken"),
        ("ADMIN", StatusCode::CONFLICT, "name_taken"),
        ("admin", StatusCode::CONFLICT, "account_exists"),
    ] {
        let (st, v) = user(name);
        assert_eq!(st, status, "{name:?}: {v}");
        assert_eq!(v["error"]["code"], code, "{name:?}: {v}");
        assert!(
            v["error"]["message_ja"]
                .as_str()
                .is_some_and(|m| !m.contains("形式が正しくありません")),
            "{name:?}: a specific Japanese message: {v}"
        );
    }
    let r = c
        .post(s.url("/api/devices"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "admin", "role": "display"}))
        .send()
        .expect("device");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // An ordinary new name still works.
    assert_eq!(user("suzuki").0, StatusCode::OK);
}

/// One account holds at most 16 sessions (insider red team: 300 sign-ins
/// kept 300 sessions, each rewriting a growing file); the least recently
/// used ends first.
#[test]
fn one_account_signing_in_again_and_again_keeps_a_bounded_number_of_sessions() {
    let s = Server::start();
    let sign_in = || {
        let c = Server::client();
        let r = c
            .post(s.url("/api/login"))
            .json(&json!({"username": "admin", "password": s.admin_password}))
            .send()
            .expect("login");
        assert_eq!(r.status(), StatusCode::OK);
        c
    };
    let first = sign_in();
    // Sessions are used at second resolution: the first is a second older
    // than the rest, so it is the least recently used.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut last = None;
    for _ in 0..20 {
        last = Some(sign_in());
    }
    let last = last.expect("signed in");
    let me = |c: &reqwest::blocking::Client| c.get(s.url("/api/me")).send().expect("me").status();
    assert_eq!(me(&last), StatusCode::OK);
    assert_eq!(
        me(&first),
        StatusCode::UNAUTHORIZED,
        "the oldest session ended"
    );
    let sessions: Value = last
        .get(s.url("/api/sessions"))
        .send()
        .expect("sessions")
        .json()
        .expect("json");
    let admins = sessions["sessions"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|x| x["username"] == "admin")
        .count();
    assert_eq!(admins, 16, "{sessions}");
}
