//! The notice controls of the mobile ticket page in real Chromium (issue
//! 20; R2, R12), from outside tester push-rt6's findings: each button is
//! on screen exactly when it applies (F1: `.notify-button {display:block}`
//! beat the `hidden` attribute, so all three always showed); with no wait
//! estimate (every counter closed) the near notice names no minutes (F2:
//! 「約 NaN 分」); the banner names the number and does not cover it, and
//! the tab title follows the page's language (F6).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::relay_util;
use crate::server::{cmd, Server};
use crate::webdriver::Session;

/// Whether an element takes room on the page (not `display: none`).
fn shown(phone: &Session, css: &str) -> bool {
    phone.eval(
        "const e = document.querySelector(arguments[0]); \
         return !!e && getComputedStyle(e).display !== 'none' && e.getBoundingClientRect().height > 0;",
        json!([css]),
    ) == Value::Bool(true)
}

/// The three buttons' visibility: on, push, off.
fn buttons(phone: &Session) -> [bool; 3] {
    [
        shown(phone, "button[data-notify=on]"),
        shown(phone, "button[data-notify=push]"),
        shown(phone, "button[data-notify=off]"),
    ]
}

/// Waits (10 s at most) for the buttons to be as wanted.
fn wait_buttons(phone: &Session, want: [bool; 3], when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = buttons(phone);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: [on, push, off] shown {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn notices(phone: &Session) -> u64 {
    phone
        .eval(
            "return Number(document.body.dataset.notices || 0);",
            json!([]),
        )
        .as_u64()
        .unwrap_or(0)
}

fn wait_notices(phone: &Session, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while notices(phone) < want {
        assert!(Instant::now() < deadline, "{want} notices expected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(notices(phone), want);
}

fn title(phone: &Session) -> String {
    phone
        .eval("return document.title;", json!([]))
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Whether the banner's box and the number's box overlap on screen.
fn banner_covers_number(phone: &Session) -> bool {
    phone.eval(
        "const a = document.getElementById('notice').getBoundingClientRect(); \
         const b = document.getElementById('mine').getBoundingClientRect(); \
         return a.height > 0 && a.top < b.bottom && b.top < a.bottom;",
        json!([]),
    ) == Value::Bool(true)
}

#[test]
fn each_notice_button_shows_exactly_when_it_applies_and_the_banner_names_the_number() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start_on(
        &relay_util::office_key(&key_file),
        "",
        relay_util::free_port(),
    );
    let public = relay.public_url("");
    let s = Server::start_args(
        Some(&relay.office_config()),
        &[
            "--signing-key",
            key_file.to_str().expect("utf-8"),
            "--public-url",
            &public,
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    let mut numbers = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (st, v) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
        assert_eq!(st, 200, "{v}");
        numbers.push(v["ticket"].as_u64().expect("number"));
        urls.push(v["issued"]["mobile_url"].as_str().unwrap_or("").to_string());
    }
    // Every counter closed: the queue has no wait estimate.
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "close_counter", "counter": 10}),
    );
    assert_eq!(st, 200, "{v}");
    let mine = numbers[2];

    let driver = crate::webdriver::Driver::start();
    let phone = driver.session_with(&["--ignore-certificate-errors"]);
    phone.goto(&urls[2]);
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-ahead", "2 人");

    // Nothing on yet: only 「この画面でお知らせを受け取る」.
    std::thread::sleep(Duration::from_millis(500));
    wait_buttons(&phone, [true, false, false], "fresh page");
    assert_eq!(notices(&phone), 0);

    // On (3 人前, the default; 2 ahead): told at once, without minutes.
    phone.click("button[data-notify=on]");
    wait_notices(&phone, 1);
    let banner = phone.text("#notice-text");
    assert!(!banner.contains("NaN"), "{banner}");
    assert!(!banner.contains('分'), "no estimate, no minutes: {banner}");
    assert!(
        banner.contains(&format!("{mine} 番")) && banner.contains("あと 2 人"),
        "{banner}"
    );
    assert!(
        !banner_covers_number(&phone),
        "the banner covers the number"
    );
    assert!(
        title(&phone).starts_with("【まもなく順番】"),
        "{}",
        title(&phone)
    );
    // Now 「画面を閉じても…」 and 「お知らせをやめる」, not 「受け取る」 again.
    wait_buttons(&phone, [false, true, true], "after turning on");

    // English: the tab's title in English too.
    phone.click("button[data-set-lang=en]");
    phone.wait_text("#mine-ahead", "2");
    let t = title(&phone);
    assert!(
        t.starts_with("【Your turn is near】") && !t.contains("番号札"),
        "{t}"
    );
    phone.click("button[data-notify=dismiss]");
    assert_eq!(title(&phone), "Your ticket");
    wait_buttons(&phone, [false, true, true], "in English");

    // Off: back to the one button.
    phone.click("button[data-notify=off]");
    wait_buttons(&phone, [true, false, false], "after turning off");

    // Called: the banner names the number and the counter.
    phone.click("button[data-set-lang=ja]");
    phone.click("button[data-notify=on]");
    wait_buttons(&phone, [false, true, true], "on again");
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 10}),
    );
    for _ in 0..3 {
        cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "call_next", "counter": 10}),
        );
    }
    phone.wait_text("#mine-state", "10 番窓口へお越しください");
    wait_notices(&phone, 2);
    let banner = phone.text("#notice-text");
    assert!(
        banner.contains(&format!("{mine} 番")) && banner.contains("10 番窓口"),
        "{banner}"
    );
    assert!(
        !banner_covers_number(&phone),
        "the banner covers the number"
    );
}
