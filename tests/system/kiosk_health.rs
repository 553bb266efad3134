//! Device health seen from the kiosk and from /admin (issue 18, R18): the
//! kiosk's network printer (a loopback ESC/POS printer answering DLE EOT)
//! runs out of paper, has its cover opened and is mended; the kiosk's own
//! screen says 「ただいま発券できません」 with the reason in plain Japanese
//! and its buttons are off, /admin lists the fault on the kiosk's row, and
//! the fault records keep each change. Before the day is open the kiosk
//! says the same with that reason. Real Chromium; axe-core on the blocked
//! kiosk.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::printer::{office_with_printer, printer_with};
use crate::server::{cmd, Server};
use crate::util::today;
use crate::webdriver::{Driver, Session};

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    // The kiosk refreshes every 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.eval(script, json!([])) != true {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn buttons_off(k: &Session<'_>) -> bool {
    k.eval(
        "return Array.from(document.querySelectorAll('button[data-category]')).every(b => b.disabled)",
        json!([]),
    ) == true
}

#[test]
fn the_kiosk_says_why_it_cannot_issue_and_admin_sees_the_printer() {
    let (addr, _got, status) = printer_with([0x12, 0x12, 0x12]);
    let s = Server::start_with(Some(&office_with_printer(&addr)));
    let (c, csrf) = s.admin();
    let driver = Driver::start();
    let k = driver.session();
    k.enrol(&s.kiosk_enrol);
    assert!(k.url().ends_with("/kiosk"), "{}", k.url());

    // Day not open.
    k.wait_text("#blocked", "ただいま発券できません");
    assert!(k
        .text("#blocked")
        .contains("本日の受付はまだ始まっていません"));
    assert!(buttons_off(&k));

    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    k.goto(&s.url("/kiosk"));
    assert_eq!(
        k.eval(
            "return document.getElementById('blocked') === null",
            json!([])
        ),
        true
    );
    assert!(!buttons_off(&k));

    // Paper out: on the kiosk's screen at its next refresh.
    *status.lock().expect("lock") = [0x12, 0x12, 0x72];
    wait_for(
        &k,
        "const b = document.getElementById('blocked'); return b !== null && b.textContent.includes('紙がなくなりました')",
        "paper out on the kiosk",
    );
    assert!(buttons_off(&k));
    let v = k.axe();
    assert!(v.is_empty(), "blocked kiosk: {v:#?}");
    k.click("button[data-set-lang=easy]");
    k.wait_text("#blocked", "かみが なくなりました");
    k.click("button[data-set-lang=ja]");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/kiosk-paper-out.png"), k.screenshot()).expect("shot");
    }

    // /admin: the kiosk's row says so, and the fault is recorded.
    let a = driver.session();
    a.goto(&s.url("/login"));
    a.type_into("#username", "admin");
    a.type_into("#password", &s.admin_password);
    a.click("button[type=submit]");
    wait_for(&a, "return location.pathname !== '/login'", "signed in");
    a.goto(&s.url("/admin"));
    assert_eq!(
        a.eval(
            "const r = document.querySelector('tr[data-device=\"kiosk-1\"]'); return r && r.dataset.state",
            json!([])
        ),
        "fault"
    );
    let page = a.text("main");
    assert!(
        page.contains("発券できません: プリンターの紙がなくなりました"),
        "{page}"
    );
    assert!(
        page.contains("発券機 kiosk-1 のプリンター: プリンターの紙がなくなりました"),
        "{page}"
    );

    // Cover open, then mended.
    *status.lock().expect("lock") = [0x1a, 0x16, 0x12];
    wait_for(
        &k,
        "const b = document.getElementById('blocked'); return b !== null && b.textContent.includes('ふたが開いています')",
        "cover open on the kiosk",
    );
    *status.lock().expect("lock") = [0x12, 0x12, 0x12];
    wait_for(
        &k,
        "return document.getElementById('blocked') === null",
        "the kiosk issues again",
    );
    assert!(!buttons_off(&k));
    a.goto(&s.url("/admin"));
    let page = a.text("main");
    assert!(page.contains("ふたが開いています"), "{page}");
    assert!(page.contains("印刷できる状態に戻りました"), "{page}");
    assert_eq!(
        a.eval(
            "return document.querySelector('tr[data-device=\"kiosk-1\"]').dataset.state",
            json!([])
        ),
        "ok"
    );
}
