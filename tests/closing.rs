//! 受付終了 through the real server (issue 19, R1, R6, R7): with the office
//! clock set past a category's last issuing time, the kiosk says so in
//! plain words (why, and when to come instead), a press is refused and
//! counted as turned away, the status and the public page show it, and
//! staff reopen issuing with one audited command.

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::{cmd, Server};

/// A Thursday, a minute past 住民異動's last issuing time.
const CLOCK: &str = "2026-11-26T16:46:00+09:00";

fn office() -> String {
    madoguchi_core::config::DEFAULT_OFFICE_TOML.replacen(
        "typical_service_minutes = 15\n",
        "typical_service_minutes = 15\nlast_issue = \"16:45\"\n",
        1,
    )
}

/// An enrolled kiosk and its CSRF token.
fn kiosk(s: &Server) -> (Client, String) {
    let k = Server::client();
    k.post(&s.kiosk_enrol).send().expect("enrol");
    let html = k
        .get(s.url("/kiosk"))
        .send()
        .expect("page")
        .text()
        .expect("html");
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("csrf")
        .to_string();
    (k, csrf)
}

fn press(k: &Client, s: &Server, csrf: &str, category: &str, id: &str) -> (StatusCode, Value) {
    cmd(
        k,
        s,
        csrf,
        json!({"command": "issue_ticket", "category": category, "request_id": id}),
    )
}

fn turned_away(c: &Client, s: &Server, csrf: &str) -> Vec<(String, String)> {
    let csv = c
        .post(s.url("/api/statistics/report"))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"from": "2026-11-26", "to": "2026-11-26", "by": "day", "format": "csv"}))
        .send()
        .expect("report")
        .bytes()
        .expect("bytes");
    let text = std::str::from_utf8(&csv[3..]).expect("utf-8");
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header.get(14), Some(&"受付終了で発券せず"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].to_string(), f[14].to_string())
        })
        .collect()
}

#[test]
fn issuing_closes_by_itself_is_counted_and_staff_reopen_it() {
    let s = Server::start_env(
        Some(&office()),
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_CLOCK", CLOCK)],
    );
    let (admin, csrf) = s.admin();
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_day", "date": "2026-11-26"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (k, kcsrf) = kiosk(&s);

    // The kiosk says why and when to come instead, in every language.
    let buttons = k
        .get(s.url("/fragments/kiosk"))
        .send()
        .expect("fragment")
        .text()
        .expect("html");
    assert!(buttons.contains("id=\"closed-idou\""), "{buttons}");
    assert!(
        buttons.contains("住民異動の受付は、本日の受付を終了しました（番号札の発行は 16:45 までです）。次は 11月27日（金）8:00 からお越しください。"),
        "{buttons}"
    );
    assert!(buttons.contains("つぎは 11がつ27にち（きんようび）の 8:00 から きて ください。"));
    assert!(
        !buttons.contains("id=\"closed-koseki\""),
        "koseki stays open"
    );

    // A press is refused in plain words, and counted.
    let (st, v) = press(&k, &s, &kcsrf, "idou", "a");
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "issuing_closed");
    assert!(v["error"]["message_ja"]
        .as_str()
        .is_some_and(|m| m.contains("本日の受付を終了しました")));
    let (st, _) = press(&k, &s, &kcsrf, "idou", "b");
    assert_eq!(st, StatusCode::CONFLICT);
    // Another category issues, its wait in words (no history: said so).
    let (st, v) = press(&k, &s, &kcsrf, "koseki", "c");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["issued"]["wait_words"]["kind"], "none", "{v}");
    assert!(v["issued"]["wait_words"]["easy"]
        .as_str()
        .is_some_and(|w| w.contains("わかりません")));

    // Status and the public page show the close.
    let status = crate::server::status(&admin, &s);
    let idou = status["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["id"] == "idou"))
        .expect("idou");
    assert_eq!(idou["issuing_closed"]["why"]["why"], "last_issue", "{idou}");
    let public = Server::client()
        .get(s.url("/displays/status.json"))
        .send()
        .expect("public")
        .text()
        .expect("json");
    assert!(public.contains("受付終了"), "{public}");

    // Two turned away, counted for the office and for 住民異動.
    let rows = turned_away(&admin, &s, &csrf);
    assert!(
        rows.contains(&("住民異動の受付".into(), "2".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("区役所 戸籍住民課".into(), "2".into())),
        "{rows:?}"
    );

    // The staff page offers the one action while issuing is closed.
    let staff_page = || {
        admin
            .get(s.url("/fragments/staff?counter=10"))
            .send()
            .expect("staff")
            .text()
            .expect("html")
    };
    let staff = staff_page();
    assert!(
        staff.contains("data-action=\"reopen_issuing\" data-category=\"idou\""),
        "{staff}"
    );

    // One action reopens it, recorded with who did it; issuing goes on.
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "reopen_issuing", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["type"], "issuing_reopened", "{v}");
    let (st, v) = press(&k, &s, &kcsrf, "idou", "d");
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "reopen_issuing", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "issuing_not_closed");
    // A kiosk may not reopen.
    let (st, _) = cmd(
        &k,
        &s,
        &kcsrf,
        json!({"command": "reopen_issuing", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(!staff_page().contains("data-action=\"reopen_issuing\""));
}

/// With history but no counter of a queue open, the kiosk, the guidance
/// display and the status say in words that there is no wait estimate until
/// a counter opens, instead of the replay's guess (issue 18, browser
/// finding F17: every waiting 戸籍 ticket showed the same 「およそ5分」);
/// once a counter opens, the range comes back and grows with the position.
#[test]
fn a_queue_with_no_counter_open_shows_no_wait_in_numbers() {
    let sim = tempfile::tempdir().expect("tmp");
    let file = sim.path().join("days.jsonl");
    let f = file.to_str().expect("path").to_string();
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |data| {
            crate::util::ok(
                data,
                &[
                    "simulate",
                    "--days",
                    "2",
                    "--start",
                    "2026-11-24",
                    "--seed",
                    "23",
                    "--out",
                    &f,
                ],
            );
            crate::util::ok(data, &["import", &f]);
        },
        &[("MADOGUCHI_CLOCK", "2026-11-26T10:00:00+09:00")],
    );
    let (admin, csrf) = s.admin();
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_day", "date": "2026-11-26"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (k, kcsrf) = kiosk(&s);
    for id in ["a", "b", "c"] {
        let (st, v) = press(&k, &s, &kcsrf, "koseki", id);
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let koseki = |status: &Value| {
        status["queues"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["id"] == "koseki"))
            .cloned()
            .expect("koseki")
    };
    let closed_words = "担当の窓口が開くまで、待ち時間の目安はお出しできません";
    // The 戸籍 button's wait line (every queue is closed at first; counter
    // 4 opens 戸籍 and 証明の交付 only).
    let buttons = |k: &Client| {
        let html = k
            .get(s.url("/fragments/kiosk"))
            .send()
            .expect("fragment")
            .text()
            .expect("html");
        html.split("id=\"wait-koseki\"")
            .nth(1)
            .and_then(|rest| rest.split("</span>\n  </span>").next())
            .map(str::to_string)
            .expect("the 戸籍 button's wait")
    };
    let guidance = || {
        admin
            .get(s.url("/displays/guidance/koseki.html"))
            .send()
            .expect("guidance")
            .text()
            .expect("html")
    };
    let q = koseki(&crate::server::status(&admin, &s));
    assert_eq!(q["wait_words"]["kind"], "none", "{q}");
    assert_eq!(q["wait_words"]["ja"], closed_words, "{q}");
    assert!(buttons(&k).contains(closed_words));
    assert!(guidance().contains(closed_words));
    // The phone's ticket page words the other languages by the queue's
    // basis (outside tester pages-rt5 F2: 中文, 한국어 and やさしい日本語
    // showed a number).
    let basis = || {
        let v: Value = admin
            .get(s.url("/displays/ticket.json"))
            .send()
            .expect("ticket.json")
            .json()
            .expect("json");
        v["data"]["queues"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["queue"] == "koseki"))
            .map(|q| q["wait_basis"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(basis(), "no_counter_open");
    // The staff station says so too, not the replay's guess on every row
    // (outside tester pages-rt5 F9: 「約 23 分」 for all).
    let station = || {
        admin
            .get(s.url("/fragments/staff?counter=4"))
            .send()
            .expect("staff fragment")
            .text()
            .expect("html")
    };
    let koseki_part = |html: &str| {
        html.split("data-part=\"queue-koseki\"")
            .nth(1)
            .and_then(|rest| rest.split("</div>").next())
            .map(str::to_string)
            .expect("the 戸籍 part of the station")
    };
    let part = koseki_part(&station());
    assert!(part.contains(closed_words), "{part}");
    assert!(!part.contains("約 "), "no minutes: {part}");

    // A staff member opens counter 4 (証明の交付 and 戸籍): numbers again,
    // and the second waiting ticket waits longer than the first.
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 4}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let status = crate::server::status(&admin, &s);
    let q = koseki(&status);
    assert_eq!(q["wait_words"]["kind"], "range", "{q}");
    // The pages follow the commit feed's next site build.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while buttons(&k).contains(closed_words) || !guidance().contains("予想待ち時間") {
        assert!(
            std::time::Instant::now() < deadline,
            "the kiosk and guidance display still say no counter is open"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(basis(), "estimate");
    let part = koseki_part(&station());
    assert!(
        part.contains("新規 約 ") && part.contains("<td>約 "),
        "{part}"
    );
    let waits: Vec<u64> = q["list"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["expected_wait_s"].as_u64())
        .collect();
    assert_eq!(waits.len(), 3, "{q}");
    assert!(waits[0] < waits[1] && waits[1] < waits[2], "{waits:?}");
}
