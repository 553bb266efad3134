//! Displays in real Chromium: a guidance display shows a call made through
//! the API and announces it; it shows that it lost the connection when the
//! server stops, and recovers when it comes back. Every surface passes
//! axe-core.

use crate::util::today;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::{cmd, Server};
use crate::webdriver::{Driver, Session};

fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"));
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/{name}"), png).expect("write screenshot");
    }
}

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.eval(script, json!([])) != true {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_guidance_display_follows_calls_and_shows_a_lost_connection() {
    let mut s = Server::start_args(None, &["--listen", "127.0.0.1:0", "--stale-after", "4"]);
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 11}),
    );
    let driver = Driver::start();
    let d = driver.session();
    d.enrol(&s.display_enrol);
    d.goto(&s.url("/displays/guidance/idou.html"));
    d.wait_text("#surface", "住民異動の受付");
    let v = d.axe();
    assert!(v.is_empty(), "guidance display: {v:#?}");
    // A call through the API appears and is announced.
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    d.wait_text(".calls", "1001");
    d.wait_text(
        "#announce",
        "受付番号 1001 番の方、10 番窓口へお越しください",
    );
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 11}),
    );
    d.wait_text(".calls", "1002");
    save("display-guidance.png", &d.screenshot());
    // The mobile ticket page from the QR code: the number stays in the
    // fragment; the page finds its place in the public lists.
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let phone = driver.session();
    phone.goto(&s.url(&format!("/m#{}/1003", today())));
    // The page follows the phone's language; the visitor can switch.
    phone.wait_text("#mine-state", "wait");
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-state", "お待ちください");
    assert_eq!(phone.text("#mine-ahead").trim(), "0 人");
    let v = phone.axe();
    assert!(v.is_empty(), "mobile ticket page: {v:#?}");
    save("mobile-ticket.png", &phone.screenshot());
    phone.goto(&s.url(&format!("/m#{}/1002", today())));
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-state", "11 番窓口へお越しください");
    phone.click("button[data-set-lang=en]");
    phone.wait_text("#mine-state", "counter 11");
    // Served: the visit is over — not "your number has passed" (F4).
    cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 11}));
    phone.wait_text("#mine-state", "Your visit is complete");
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-state", "受付は終わりました");
    // The other surfaces, for accessibility and screenshots.
    for (topic, shot, want) in [
        ("counter/10", "display-counter.png", "1001"),
        ("board", "display-board.png", "住民記録係"),
        ("status", "display-status.png", "住民異動の受付"),
    ] {
        let o = driver.session();
        if topic != "status" {
            // The enrolment link worked once, for the first display: this
            // browser signs in as staff instead.
            o.goto(&s.url("/login"));
            o.type_into("#username", "admin");
            o.type_into("#password", &s.admin_password);
            o.click("button[type=submit]");
            // Signing in hashes the password (Argon2): wait for the page
            // to leave /login rather than for a fixed time.
            wait_for(&o, "return location.pathname !== '/login'", "signed in");
        }
        o.goto(&s.url(&format!("/displays/{topic}.html")));
        o.wait_text("#surface", want);
        let v = o.axe();
        assert!(v.is_empty(), "{topic}: {v:#?}");
        save(shot, &o.screenshot());
    }
    // Stop the server: the display says it is not up to date.
    s.stop();
    wait_for(&d, "return document.body.classList.contains('stale') && !document.getElementById('stale').hidden", "stale indicator");
    assert!(d.text("#stale").contains("接続が切れています"));
    // Back again: it reconnects and catches up.
    s.restart();
    wait_for(
        &d,
        "return !document.body.classList.contains('stale')",
        "recovery",
    );
    let (c, csrf) = s.admin();
    cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    d.wait_text(".calls", "1003");
}

/// Outside tester pages-rt8 F2: the enrolment page promises 「表示機の一覧に
/// 移ります」, but an enrolled display landed on the start page, which lists
/// no display. Now it lands on the list and a click opens a display.
#[test]
fn an_enrolled_display_lands_on_the_list_of_displays_and_opens_one() {
    let s = Server::start();
    let driver = Driver::start();
    let d = driver.session();
    d.goto(&s.display_enrol);
    assert!(
        d.text("main").contains("表示機の一覧に移ります"),
        "the promise: {}",
        d.text("main")
    );
    d.enrol(&s.display_enrol);
    assert!(d.url().contains("/preview"), "landed on {}", d.url());
    d.wait_text("main", "現在の表示");
    let v = d.axe();
    assert!(v.is_empty(), "the list of displays: {v:#?}");
    d.click("a[href='/displays/board.html']");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.url().ends_with("/displays/board.html") {
        assert!(Instant::now() < deadline, "still on {}", d.url());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The display itself, not the 403 an unenrolled screen gets.
    wait_for(
        &d,
        "return document.body.dataset.topic === 'board'",
        "the board shows",
    );
}
