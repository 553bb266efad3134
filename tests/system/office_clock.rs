//! History and audit pages on the office's clock (issue 18; R8, R11):
//! Chromium runs with `TZ=America/New_York`, yet 業務開始 on the staff
//! station opens the office's today, and the station's history search and
//! the audit page show the office's times (its UTC offset, Asia/Tokyo here)
//! and Japanese status names, never raw ids.

use serde_json::{json, Value};

use crate::server::{cmd, Server};
use crate::util::today;
use crate::webdriver::{Driver, Session};

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while b.eval(script, json!([])) != true {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Milliseconds since the epoch as the office in Tokyo reads them.
fn tokyo(ms: i64, format: &str) -> String {
    let tz = chrono::FixedOffset::east_opt(9 * 3600).expect("jst");
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .with_timezone(&tz)
        .format(format)
        .to_string()
}

#[test]
fn history_and_audit_use_the_office_clock_in_another_browser_time_zone() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let driver = Driver::start_env(&[("TZ", "America/New_York")]);
    let b = driver.session();
    b.goto(&s.url("/login"));
    b.type_into("#username", "admin");
    b.type_into("#password", &s.admin_password);
    b.click("button[type=submit]");
    wait_for(&b, "return location.pathname !== '/login'", "signed in");
    // The browser really is elsewhere: 10:00 in Tokyo is the evening
    // before in New York.
    let browser_offset = b.eval("return new Date().getTimezoneOffset()", json!([]));
    assert_ne!(
        browser_offset,
        json!(-540),
        "the browser is not on Tokyo time"
    );

    // 業務開始 from the station opens the office's today, not the
    // browser's (CI failed when the two differed).
    b.goto(&s.url("/staff?counter=10"));
    b.wait_text("#panel", "本日の業務は開始されていません");
    b.keys("d");
    b.wait_text("#outcome", "業務を開始しました");
    let status: Value = c
        .get(s.url("/api/status"))
        .send()
        .expect("status")
        .json()
        .expect("json");
    assert_eq!(status["date"], json!(today()), "{status}");
    assert_eq!(status["day_open"], true);

    let (_, issued) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let number = issued["ticket"].as_u64().expect("number");
    let ticket: Value = c
        .get(s.url(&format!("/api/tickets/{number}")))
        .send()
        .expect("ticket")
        .json()
        .expect("json");
    let at = ticket["history"][0]["at"].as_i64().expect("issued at");

    b.goto(&s.url("/staff?counter=10"));
    b.wait_text("#panel", "");
    b.type_into("#number-input", &number.to_string());
    b.eval("document.activeElement.blur()", json!([]));
    b.keys("f");
    let history = b.wait_text("#history", &format!("{number} 番の履歴"));
    // A waiting number names its queue (pages-rt8 F7).
    assert!(
        history.contains("（待ち・住民異動の受付）"),
        "a Japanese status: {history}"
    );
    assert!(!history.contains("waiting"), "{history}");
    let want = tokyo(at, "%H:%M:%S");
    assert!(
        history.contains(&format!("{want} 発券")),
        "{want} in {history}"
    );

    b.goto(&s.url(&format!("/audit?ticket={number}")));
    let rows = b.text("table.audit-table tbody");
    let want = tokyo(at, "%Y-%m-%d %H:%M");
    assert!(rows.contains(&want), "{want} in {rows}");
    assert!(
        rows.contains(&format!("{number} 番を発券しました")),
        "{rows}"
    );
}
