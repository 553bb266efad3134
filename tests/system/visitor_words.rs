//! What visitors and the administrator meet in the browser, as the outside
//! tester pages-rt5 left it (issue 18; R2, R11, R12): real Chromium clicks
//! the pages and the outcome is checked in the server's state.
//!
//! - A ticket still open when staff close the day is told, in every
//!   language of the phone page, that the day ended before its business was
//!   done and what to do — not thanked for a visit done (F3).
//! - With no counter of the queue open the phone page says there is no
//!   estimate in 中文, 한국어 and やさしい日本語 too; with one open, every
//!   language shows the server's range (one source of the words:
//!   `surfaces::wait_words`).
//! - /admin/devices: 発券を再開 clicked releases a held kiosk, which then
//!   issues again.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::{cmd, open_today, Server};
use crate::util::today;
use crate::webdriver::{Driver, Session};

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.eval(script, json!([])) != true {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn issue(c: &Client, s: &Server, csrf: &str, category: &str) -> u64 {
    let (st, v) = cmd(
        c,
        s,
        csrf,
        json!({"command": "issue_ticket", "category": category}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    v["ticket"].as_u64().expect("number")
}

fn ticket_status(c: &Client, s: &Server, n: u64) -> String {
    let v: Value = c
        .get(s.url(&format!("/api/tickets/{n}")))
        .send()
        .expect("ticket")
        .json()
        .expect("json");
    v["status"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_ticket_left_open_at_the_close_is_told_the_day_ended_first() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    let served = issue(&c, &s, &csrf, "idou");
    let called = issue(&c, &s, &csrf, "idou");
    let waiting = issue(&c, &s, &csrf, "idou");
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(ticket_status(&c, &s, served), "done");
    assert_eq!(ticket_status(&c, &s, called), "unserved");
    assert_eq!(ticket_status(&c, &s, waiting), "unserved");

    let driver = Driver::start();
    let phone = driver.session();
    let open = |n: u64| phone.goto(&s.url(&format!("/m#{}/{n}", today())));
    for n in [waiting, called] {
        open(n);
        phone.click("button[data-set-lang=ja]");
        let said = phone.wait_text("#mine-state", "お手続きが終わる前に終了しました");
        assert!(said.contains("職員に声をおかけいただくか"), "{said}");
        assert!(!said.contains("ご来庁ありがとう"), "{said}");
        for (lang, want, not) in [
            (
                "en",
                "closed before your business was done",
                "visit is complete",
            ),
            (
                "easy",
                "てつづきが おわる まえに おわりました",
                "てつづきは おわりました",
            ),
            ("zh", "在您的手续办完之前已结束", "您的办理已结束"),
            (
                "ko",
                "수속이 끝나기 전에 오늘 접수가 종료되었습니다",
                "접수가 끝났습니다",
            ),
        ] {
            phone.click(&format!("button[data-set-lang={lang}]"));
            let said = phone.wait_text("#mine-state", want);
            assert!(!said.contains(not), "{lang}: {said}");
        }
    }
    let v = phone.axe();
    assert!(v.is_empty(), "unserved ticket page: {v:#?}");
    // The visitor served before the close is still thanked.
    open(served);
    phone.click("button[data-set-lang=ja]");
    phone.wait_text(
        "#mine-state",
        "受付は終わりました。ご来庁ありがとうございました。",
    );
}

/// Outside tester pages-rt7 N4 and N5: a ticket cancelled by staff was
/// thanked for a visit done, a called one was told 「約 0 分」, and the
/// notice controls stayed on after the visit was over or the day closed.
#[test]
fn a_cancelled_ticket_is_told_so_and_an_ended_visit_offers_no_notices() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    let cancelled = issue(&c, &s, &csrf, "idou");
    let called = issue(&c, &s, &csrf, "idou");
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "cancel", "number": cancelled}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(ticket_status(&c, &s, cancelled), "cancelled");
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");

    let driver = Driver::start();
    let phone = driver.session();
    let notify_shown = |p: &Session<'_>| {
        p.eval(
            "const n = document.getElementById('notify'); return !!n && !n.hidden && n.offsetParent !== null;",
            json!([]),
        )
    };
    phone.goto(&s.url(&format!("/m#{}/{called}", today())));
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-state", "お呼びしています");
    assert_eq!(phone.text("#mine-wait"), "—", "no 「約 0 分」 while called");
    assert_eq!(
        notify_shown(&phone),
        json!(true),
        "a live ticket offers notices"
    );

    phone.goto(&s.url(&format!("/m#{}/{cancelled}", today())));
    phone.click("button[data-set-lang=ja]");
    let said = phone.wait_text("#mine-state", "この番号札は取り消されました");
    assert!(!said.contains("ご来庁ありがとう"), "{said}");
    assert_eq!(
        notify_shown(&phone),
        json!(false),
        "a cancelled ticket offers no notices"
    );
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let png = phone.screenshot();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/mobile-ticket-cancelled.png"), png).expect("screenshot");
    }
    phone.click("button[data-set-lang=en]");
    let said = phone.wait_text("#mine-state", "This ticket was cancelled");
    assert!(!said.contains("visit is complete"), "{said}");

    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    phone.goto(&s.url(&format!("/m#{}/{called}", today())));
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-state", "お手続きが終わる前に終了しました");
    assert_eq!(
        notify_shown(&phone),
        json!(false),
        "no notices after the day closed"
    );
    let v = phone.axe();
    assert!(v.is_empty(), "ended ticket page: {v:#?}");
}

#[test]
fn the_phone_page_words_a_missing_estimate_and_the_range_in_every_language() {
    // Two days of history, so the reason for no estimate is the counters.
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
    let (c, csrf) = s.admin();
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": "2026-11-26"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    issue(&c, &s, &csrf, "koseki");
    let second = issue(&c, &s, &csrf, "koseki");
    let driver = Driver::start();
    let phone = driver.session();
    phone.goto(&s.url(&format!("/m#2026-11-26/{second}")));
    let closed = [
        (
            "ja",
            "担当の窓口が開くまで、待ち時間の目安はお出しできません",
        ),
        ("en", "No estimate until a counter for this opens"),
        ("zh", "窗口开放前无法预计等候时间"),
        ("ko", "창구가 열릴 때까지 대기 시간을 예상할 수 없습니다"),
        ("easy", "まどぐちが あくまで、まつ じかんが わかりません"),
    ];
    for (lang, want) in closed {
        phone.click(&format!("button[data-set-lang={lang}]"));
        let said = phone.wait_text("#mine-wait", want);
        assert!(
            !said.chars().any(|ch| ch.is_ascii_digit()),
            "{lang}: no number with no counter open: {said}"
        );
    }
    let v = phone.axe();
    assert!(v.is_empty(), "no-estimate ticket page: {v:#?}");

    // Counter 4 (証明の交付 and 戸籍) opens: each language shows the
    // server's words for the wait — a range or 「まもなく」, not a bare
    // point as the page's own fallback gave in 中文 and 한국어.
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 4}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    for (lang, range, soon) in [
        ("zh", "分钟（", "即将叫号"),
        ("ko", "분 (", "곧 호출합니다"),
        ("easy", "ふん（", "もうすぐ よびます"),
        ("ja", "分（", "まもなくお呼びします"),
        ("en", " min (", "called shortly"),
    ] {
        phone.click(&format!("button[data-set-lang={lang}]"));
        wait_for(
            &phone,
            &format!(
                "const t = document.getElementById('mine-wait').textContent; return t.includes({range:?}) || t.includes({soon:?});"
            ),
            &format!("{lang}: the wait as a range"),
        );
    }
}

#[test]
fn releasing_a_held_kiosk_on_the_devices_page_lets_it_issue_again() {
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_KIOSK_HOLD", "2/600")],
    );
    let (admin, csrf) = s.admin();
    open_today(&admin, &s, &csrf, &[]);
    let r = admin
        .post(s.url("/api/devices"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "kiosk-lobby", "role": "kiosk"}))
        .send()
        .expect("device");
    assert_eq!(r.status(), StatusCode::OK);
    let url = r.json::<Value>().expect("json")["enrol_url"]
        .as_str()
        .expect("url")
        .to_string();
    let kiosk = Server::client();
    kiosk.post(url).send().expect("enrol");
    let kcsrf = kiosk
        .get(s.url("/api/me"))
        .send()
        .expect("me")
        .json::<Value>()
        .expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    let press = || {
        cmd(
            &kiosk,
            &s,
            &kcsrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        )
    };
    for _ in 0..2 {
        assert_eq!(press().0, StatusCode::OK);
    }
    let (st, v) = press();
    assert_eq!(st, StatusCode::LOCKED, "{v}");
    assert_eq!(v["error"]["code"], "device_held");

    let driver = Driver::start();
    let b = driver.session();
    b.goto(&s.url("/admin/devices"));
    b.type_into("#username", "admin");
    b.type_into("#password", &s.admin_password);
    b.click("button[type=submit]");
    wait_for(
        &b,
        "return location.pathname === '/admin/devices'",
        "on the devices page",
    );
    b.click(r#"button[data-release-device="kiosk-lobby"]"#);
    let asked = b.alert_text();
    assert!(asked.contains("発券を再開しますか"), "{asked}");
    b.accept_alert();
    b.wait_text("#result", "発券機 kiosk-lobby の発券を再開しました。");
    assert_eq!(
        b.eval(
            r#"return document.querySelector('button[data-release-device="kiosk-lobby"]') === null;"#,
            json!([])
        ),
        true,
        "the button is gone once released"
    );
    let v = b.axe();
    assert!(v.is_empty(), "devices page: {v:#?}");
    // The server released it: the kiosk issues the next number.
    let (st, v) = press();
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], 1003, "{v}");
}

/// Issue 18 (R1, R17), outside tester pages-rt11 R1: the kiosk draws its
/// category buttons again every 10 s (the waiting figures), and keyboard
/// focus fell to the page body — a visitor on the keypad (or a screen
/// reader) lost their place and Enter issued nothing. Now the category
/// keeps focus through the redraw and Enter issues its ticket, and with
/// nothing changed the buttons are not drawn again at all. Old code:
/// after the first redraw `document.activeElement` was BODY.
#[test]
fn the_kiosks_keyboard_focus_stays_on_its_category_through_a_redraw() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    let driver = Driver::start();
    let k = driver.session();
    k.enrol(&s.kiosk_enrol);
    k.wait_text("#categories", "待ち");
    // The page's first draw from the server (at load) is over.
    std::thread::sleep(Duration::from_secs(3));
    k.eval(
        "window.redraws = 0; new MutationObserver(() => { window.redraws++; }).observe(document.getElementById('categories'), {childList: true}); return true;",
        json!([]),
    );
    // Tab to 住民異動の受付, as a keypad user does.
    let on_idou = "return !!document.activeElement && document.activeElement.matches('button[data-category=idou]')";
    for _ in 0..30 {
        if k.eval(on_idou, json!([])) == true {
            break;
        }
        k.keys("\u{E004}");
    }
    assert_eq!(k.eval(on_idou, json!([])), json!(true), "Tab reached idou");
    // Nothing changed: the buttons are not drawn again (pages-rt11 R1: they
    // were rebuilt every 10 s regardless).
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        k.eval("return window.redraws", json!([])),
        json!(0),
        "redrawn with nothing changed"
    );
    // Someone takes a number elsewhere: the waiting figures change.
    issue(&c, &s, &csrf, "idou");
    let deadline = Instant::now() + Duration::from_secs(25);
    while k.eval("return window.redraws > 0", json!([])) != true {
        assert!(Instant::now() < deadline, "the buttons were never redrawn");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        k.eval(on_idou, json!([])),
        json!(true),
        "focus after the redraw: {}",
        k.eval(
            "return document.activeElement ? document.activeElement.tagName : 'none'",
            json!([])
        )
    );
    // Enter still issues.
    k.keys("\u{E007}");
    wait_for(
        &k,
        "return !document.getElementById('issued').hidden && /\\d/.test(document.getElementById('issued-number').textContent)",
        "the ticket shown after Enter",
    );
    // A number keeps its unit: every 「1 人」 sits in a span that does not
    // wrap (pages-rt11 R5: 「だいたい 35 / ふん」).
    assert_eq!(
        k.eval(
            "const live = document.querySelector('#issued-detail .words'); \
             const kept = live.querySelectorAll('.word'); \
             const ok = kept.length > 0 && [...kept].every(x => getComputedStyle(x).whiteSpace === 'nowrap'); \
             const w = live.cloneNode(true); \
             w.querySelectorAll('.word').forEach(x => x.remove()); \
             return ok && !/\\d \\S/.test(w.textContent);",
            json!([])
        ),
        json!(true),
        "{}",
        k.text("#issued-detail")
    );
    // The dialog closes by itself; focus goes back to the category and
    // stays there through the next redraw (pages-rt11 R1 addendum: BODY).
    let deadline = Instant::now() + Duration::from_secs(30);
    while k.eval("return document.getElementById('issued').hidden", json!([])) != true {
        assert!(
            Instant::now() < deadline,
            "the dialog never closed by itself"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    k.eval("window.redraws = 0; return true;", json!([]));
    issue(&c, &s, &csrf, "idou");
    let deadline = Instant::now() + Duration::from_secs(25);
    while k.eval("return window.redraws > 0", json!([])) != true {
        assert!(Instant::now() < deadline, "no redraw after the dialog");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        k.eval(on_idou, json!([])),
        json!(true),
        "focus after the dialog closed and a redraw: {}",
        k.eval(
            "return document.activeElement ? document.activeElement.tagName : 'none'",
            json!([])
        )
    );
}
