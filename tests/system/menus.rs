//! Outside tester pages-rt8 (issue 18; R11, R12, R17), in real Chromium:
//!
//! - F10: every signed-in page (/admin…, /settings, /statistics, /audit,
//!   /forecast, /preview) carries the one shared menu — the role's pages
//!   and 「ログアウト」, reached by Tab — and signing in without a page
//!   asked for lands on the role's own first page (an auditor on /audit,
//!   not on a refusal at the staff station);
//! - F9, F7: the 内部メモ written on a transfer is shown at the receiving
//!   counter with the called number and in 履歴検索 (F), which also names
//!   the queue the number went to; the public status never carries it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{cmd, open_today, status, Server};
use crate::webdriver::{Driver, Session};

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.eval(script, json!([])) != true {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Signs in at /login with no page asked for, as someone opening the
/// sign-in page itself does.
fn sign_in_plain(b: &Session<'_>, s: &Server, user: &str, password: &str) {
    b.goto(&s.url("/login"));
    b.type_into("#username", user);
    b.type_into("#password", password);
    b.click("button[type=submit]");
    wait_for(b, "return location.pathname !== '/login'", "signed in");
}

/// Presses Tab from the top of the page until `css` has focus.
fn tab_to(b: &Session<'_>, css: &str) {
    for _ in 0..60 {
        if b.eval(
            "return !!document.activeElement && document.activeElement.matches(arguments[0])",
            json!([css]),
        ) == true
        {
            return;
        }
        b.keys("\u{E004}");
    }
    panic!("Tab never reached {css}");
}

fn menu_links(b: &Session<'_>) -> Vec<String> {
    let v = b.eval(
        "return [...document.querySelectorAll('nav.site-menu a')].map(a => a.getAttribute('href'))",
        json!([]),
    );
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_signed_in_page_has_the_menu_and_each_role_lands_on_its_own_page() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "kansa", "role": "auditor", "password": "kansa-pass-2026"}))
        .send()
        .expect("add auditor");
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    let driver = Driver::start();

    // The auditor lands on the audit log (old code: /staff?counter=1, 403).
    let b = driver.session();
    sign_in_plain(&b, &s, "kansa", "kansa-pass-2026");
    wait_for(&b, "return location.pathname === '/audit'", "on /audit");
    assert_eq!(
        menu_links(&b),
        ["/audit", "/statistics", "/forecast"],
        "the auditor's menu"
    );
    let v = b.axe();
    assert!(v.is_empty(), "/audit: {v:#?}");
    // A page not for auditors names the account and the way back
    // (pages-rt9 F5: /preview gave the bare 「この操作の権限がありません」).
    b.goto(&s.url("/preview"));
    let said = b.wait_text("main", "このページは");
    assert!(said.contains("kansa さん（監査担当）"), "{said}");
    // Only people sign in: a display is a device, not an account
    // (pages-rt10 N4; old code: 「管理者・職員・表示機のアカウント」).
    assert!(
        said.contains("管理者・職員のアカウントでログインし直してください"),
        "{said}"
    );
    assert!(!said.contains("表示機のアカウント"), "{said}");
    assert_eq!(
        b.eval(
            "return document.getElementById('back').getAttribute('href')",
            json!([])
        ),
        json!("/audit")
    );
    b.goto(&s.url("/audit"));
    // To the statistics through the menu, and out by keyboard.
    b.click("nav.site-menu a[href='/statistics']");
    wait_for(
        &b,
        "return location.pathname === '/statistics'",
        "on /statistics",
    );
    b.wait_text("nav.site-menu", "kansa さん（監査担当）");
    let v = b.axe();
    assert!(v.is_empty(), "/statistics: {v:#?}");
    tab_to(&b, "#logout");
    b.keys("\u{E007}");
    wait_for(&b, "return location.pathname === '/login'", "signed out");
    // The server ended the session: the audit log asks for a sign-in.
    b.goto(&s.url("/audit"));
    wait_for(
        &b,
        "return location.pathname === '/login'",
        "asked to sign in",
    );

    // The administrator lands on /admin; every page of theirs has the menu.
    let a = driver.session();
    sign_in_plain(&a, &s, "admin", &s.admin_password);
    wait_for(&a, "return location.pathname === '/admin'", "on /admin");
    for page in [
        "/admin",
        "/admin/accounts",
        "/settings",
        "/statistics",
        "/audit",
        "/forecast",
        "/preview",
    ] {
        a.goto(&s.url(page));
        a.wait_text("nav.site-menu", "ログアウト");
        let links = menu_links(&a);
        assert!(
            links.iter().any(|l| l == page) && links.len() == 11,
            "{page}: {links:?}"
        );
        assert_eq!(
            a.eval(
                "return document.querySelector('nav.site-menu a[aria-current=page]').getAttribute('href')",
                json!([])
            ),
            page,
            "{page} marked as the current page"
        );
        if page == "/forecast" || page == "/preview" {
            let v = a.axe();
            assert!(v.is_empty(), "{page}: {v:#?}");
        }
    }
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(format!("{dir}/menu-preview.png"), a.screenshot()).expect("png");
    }
    a.click("#logout");
    wait_for(&a, "return location.pathname === '/login'", "signed out");
    a.goto(&s.url("/settings"));
    wait_for(
        &a,
        "return location.pathname === '/login'",
        "asked to sign in",
    );
    // The public forecast, not signed in, has no menu.
    a.goto(&s.url("/forecast"));
    a.wait_text("h1", "混雑予想");
    assert_eq!(
        a.eval(
            "return !!document.querySelector('nav.site-menu')",
            json!([])
        ),
        false
    );
}

#[test]
fn a_transfer_memo_reaches_the_next_counter_and_the_history() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10, 4]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let driver = Driver::start();
    let b = driver.session();
    sign_in_plain(&b, &s, "admin", &s.admin_password);
    b.goto(&s.url("/staff?counter=10"));
    b.wait_text("#panel", "住民異動の受付");
    b.keys("n");
    b.wait_text("#outcome", "1001 番を呼び出しました");
    b.click("#transfer-note");
    b.keys("書類確認済み");
    b.keys("\u{E00C}");
    b.keys("t");
    b.wait_text("#outcome", "1001 番を回付しました");
    let t: Value = c
        .get(s.url("/api/tickets/1001"))
        .send()
        .expect("ticket")
        .json()
        .expect("json");
    assert_eq!(t["status"]["status"], "waiting");

    // At 証明の交付 (counter 4) the called number comes with the memo
    // (old code: the station showed no memo).
    b.goto(&s.url("/staff?counter=4"));
    b.wait_text("#panel", "証明の交付");
    b.keys("n");
    b.wait_text("#outcome", "1001 番を呼び出しました");
    let notes = b.wait_text("#staff-notes", "書類確認済み");
    assert!(notes.contains("10 番窓口で回付したときのメモ"), "{notes}");
    let v = b.axe();
    assert!(v.is_empty(), "station with a memo: {v:#?}");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(format!("{dir}/staff-memo.png"), b.screenshot()).expect("png");
    }

    // 履歴検索 (F) shows where it went and the memo (old code: 「回付 10 番窓口」, no memo).
    b.keys("/");
    b.keys("1001\u{E007}f");
    let h = b.wait_text("#history", "内部メモ: 書類確認済み");
    assert!(h.contains("回付 10 番窓口 → 証明の交付"), "{h}");

    // Never on what the public and the displays read.
    let st = status(&c, &s);
    assert!(
        !st.to_string().contains("書類確認済み"),
        "status carries no memo"
    );
    let guide = Server::client()
        .get(s.url("/displays/status.json"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert!(!guide.contains("書類確認済み"));

    // A memo typed for a hold goes with the hold, and is not left in the
    // field for the next visitor's transfer (pages-rt9 F1: it was not
    // saved with the hold and went with visitor 1002's transfer instead).
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    b.goto(&s.url("/staff?counter=10"));
    b.wait_text("#panel", "住民異動の受付");
    b.keys("n");
    b.wait_text("#outcome", "1002 番を呼び出しました");
    b.click("#transfer-note");
    b.keys("Aさんの書類待ち");
    b.keys("\u{E00C}");
    b.keys("h");
    b.wait_text("#outcome", "1002 番を保留にしました");
    let left = b.eval(
        "return document.getElementById('transfer-note').value;",
        json!([]),
    );
    assert_eq!(
        left,
        json!(""),
        "the hold's memo is not left for the next action"
    );
    let t: Value = c
        .get(s.url("/api/tickets/1002"))
        .send()
        .expect("ticket")
        .json()
        .expect("json");
    assert!(
        t.to_string().contains("Aさんの書類待ち"),
        "the hold carries its memo: {t}"
    );
}

/// Outside tester pages-rt9 F6: a refusal page is a signed-in page like
/// the others — the shared menu with ログアウト — and 「別のアカウントで
/// ログイン」 ends the session before the login page (it used to go to
/// /login and leave tanaka signed in on a shared PC). The staff station
/// carries the same menu (混雑予想, 表示のプレビュー) and its keys still work
/// with focus on a menu link.
#[test]
fn a_refusal_page_has_the_menu_and_switching_account_signs_out() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "tanaka", "role": "staff", "password": "tanaka-pass-2026"}))
        .send()
        .expect("add staff");
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    let driver = Driver::start();
    let b = driver.session();
    sign_in_plain(&b, &s, "tanaka", "tanaka-pass-2026");
    // No counter open and none used in this browser: asked which.
    b.wait_text("h1", "どの窓口");
    b.click("a[href='/staff?counter=1']");
    b.wait_text("h1", "1 番窓口");

    // The station: the staff menu, one ログアウト (the station's own, L).
    assert_eq!(
        menu_links(&b),
        ["/staff?counter=1", "/preview", "/forecast", "/kiosk"],
        "the station's menu"
    );
    assert_eq!(
        b.eval(
            "return document.querySelectorAll('#logout').length",
            json!([])
        ),
        json!(1)
    );
    let v = b.axe();
    assert!(v.is_empty(), "/staff with the menu: {v:#?}");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/staff-menu.png"), b.screenshot()).expect("png");
    }
    // Keys still work from a menu link: / goes to 番号.
    tab_to(&b, "nav.site-menu a[href='/forecast']");
    b.keys("/");
    wait_for(
        &b,
        "return document.activeElement && document.activeElement.id === 'number-input'",
        "/ went to 番号 from the menu",
    );

    // A page not for staff: the menu with ログアウト is there.
    b.goto(&s.url("/audit"));
    b.wait_text("h1", "このページは管理者・監査担当用です");
    b.wait_text("nav.site-menu", "tanaka さん（職員）");
    assert_eq!(
        menu_links(&b),
        ["/staff?counter=1", "/preview", "/forecast", "/kiosk"]
    );
    let v = b.axe();
    assert!(v.is_empty(), "refusal page with the menu: {v:#?}");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/refused-with-menu.png"), b.screenshot()).expect("png");
    }
    // 別のアカウントでログイン: signed out first.
    b.click("#switch-account");
    wait_for(&b, "return location.pathname === '/login'", "on /login");
    // /audit now asks for a sign-in instead of refusing tanaka (old code:
    // 「このページは管理者・監査担当用です」 again, tanaka still signed in).
    b.goto(&s.url("/audit"));
    wait_for(
        &b,
        "return location.pathname === '/login'",
        "tanaka's session ended: /audit asks for a sign-in",
    );

    // The menu's ログアウト on a refusal page signs out too.
    sign_in_plain(&b, &s, "tanaka", "tanaka-pass-2026");
    b.goto(&s.url("/settings"));
    b.wait_text("h1", "このページは管理者用です");
    b.click("nav.site-menu #logout");
    wait_for(&b, "return location.pathname === '/login'", "signed out");
    b.goto(&s.url("/settings"));
    wait_for(
        &b,
        "return location.pathname === '/login'",
        "signed out from the refusal page's menu",
    );
}

/// Issue 18 (R11), outside tester pages-rt10 N0: from the station at
/// counter 2, 混雑予想 or 表示のプレビュー and back by the menu's 「職員用画面」
/// opened counter 1's station, where every key then acted on counter 1.
/// Now the link goes back to the counter last used in this browser, and
/// with none known /staff asks which counter. Old code: the forecast's
/// 「職員用画面」 opened /staff?counter=1 (h1 「1 番窓口」), first time and
/// after the station at counter 2 alike.
#[test]
fn the_menus_staff_link_returns_to_the_counter_last_used() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "tanaka", "role": "staff", "password": "tanaka-pass-2026"}))
        .send()
        .expect("add staff");
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    let driver = Driver::start();
    let b = driver.session();
    b.goto(&s.url("/login?next=%2Fforecast"));
    b.type_into("#username", "tanaka");
    b.type_into("#password", "tanaka-pass-2026");
    b.click("button[type=submit]");
    // A browser that has used no station yet: 職員用画面 asks which counter.
    wait_for(
        &b,
        "return location.pathname === '/forecast'",
        "on /forecast",
    );
    b.wait_text("h1", "混雑予想");
    b.click("nav.site-menu a[href^='/staff']");
    let h1 = b.wait_text("h1", "窓口");
    assert!(
        h1.contains("どの窓口"),
        "asked which counter, not counter 1: {h1}"
    );
    assert_eq!(b.eval("return location.search", json!([])), json!(""));
    let v = b.axe();
    assert!(v.is_empty(), "/staff asking which counter: {v:#?}");
    b.click("a[href='/staff?counter=2']");
    b.wait_text("h1", "2 番窓口");
    for page in ["/forecast", "/preview"] {
        b.click(&format!("nav.site-menu a[href='{page}']"));
        wait_for(&b, &format!("return location.pathname === '{page}'"), page);
        b.wait_text("nav.site-menu", "tanaka さん");
        b.click("nav.site-menu a[href^='/staff']");
        let h1 = b.wait_text("h1", "番窓口");
        assert!(h1.starts_with("2 番窓口"), "back from {page}: {h1}");
        assert_eq!(
            b.eval("return location.search", json!([])),
            json!("?counter=2")
        );
    }
}

/// Issue 18 (R11), pages12 brief 1: after a plain sign-in a staff account
/// landed on counter 1's station whoever they were and wherever they had
/// worked — every key then acted on a counter nobody had picked. Now it
/// lands on the counter this person has open (the office's state, so any
/// browser), else the counter last used in this browser, else on the
/// page that asks 「どの窓口の画面を開きますか」. Old code: /staff?counter=1
/// (h1 「1 番窓口」) on the first sign-in, again after counter 3 was used in
/// this browser, and again in a new browser while counter 3 was open.
/// Typed /staff also names the counter last used in this browser and marks
/// the open counters (pages-rt11 R2; old code: the bare list).
#[test]
fn a_staff_sign_in_lands_where_that_person_works_not_on_counter_1() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "tanaka", "role": "staff", "password": "tanaka-pass-2026"}))
        .send()
        .expect("add staff");
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    open_today(&c, &s, &csrf, &[]);
    let driver = Driver::start();

    // A new browser, no counter open: asked which counter.
    let b = driver.session();
    sign_in_plain(&b, &s, "tanaka", "tanaka-pass-2026");
    let h1 = b.wait_text("h1", "窓口");
    assert!(h1.contains("どの窓口"), "asked which counter: {h1}");
    assert_eq!(b.eval("return location.search", json!([])), json!(""));
    let v = b.axe();
    assert!(v.is_empty(), "/staff asking which counter: {v:#?}");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(
            format!("{dir}/staff-choose-after-sign-in.png"),
            b.screenshot(),
        )
        .expect("png");
    }
    b.click("a[href='/staff?counter=3']");
    b.wait_text("h1", "3 番窓口");

    // Signed out and in again in this browser: back at counter 3.
    b.click("#logout");
    wait_for(&b, "return location.pathname === '/login'", "signed out");
    sign_in_plain(&b, &s, "tanaka", "tanaka-pass-2026");
    let h1 = b.wait_text("h1", "番窓口");
    assert!(h1.starts_with("3 番窓口"), "this browser's counter: {h1}");
    assert_eq!(
        b.eval("return location.search", json!([])),
        json!("?counter=3")
    );

    // Counter 3 opened (O) by tanaka at the station.
    b.keys("o");
    b.wait_text("#outcome", "窓口を開きました");
    assert_eq!(
        status(&c, &s)["counters"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["number"] == 3))
            .map(|x| x["open"].clone()),
        Some(json!(true))
    );

    // /staff typed in this browser: the page names counter 3 first, and
    // marks the counters open and whose (pages-rt11 R2).
    b.goto(&s.url("/staff"));
    let last = b.wait_text("#last-counter", "3 番窓口");
    assert!(last.contains("最後に使った窓口"), "{last}");
    let list = b.text(".counter-choice");
    assert!(
        list.contains("（開いています・tanaka（あなた））"),
        "{list}"
    );
    let v = b.axe();
    assert!(v.is_empty(), "/staff with the last counter: {v:#?}");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/staff-choose-remembered.png"), b.screenshot()).expect("png");
    }
    b.click("#last-counter-link");
    let h1 = b.wait_text("h1", "番窓口");
    assert!(h1.starts_with("3 番窓口"), "{h1}");

    // Another browser (no memory of counter 3): the counter tanaka has open.
    let other = driver.session();
    sign_in_plain(&other, &s, "tanaka", "tanaka-pass-2026");
    let h1 = other.wait_text("h1", "番窓口");
    assert!(h1.starts_with("3 番窓口"), "tanaka's open counter: {h1}");
    assert_eq!(
        other.eval("return location.search", json!([])),
        json!("?counter=3")
    );

    // Someone else signing in a new browser is not sent to tanaka's counter.
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-pass-2026"}))
        .send()
        .expect("add staff");
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    let third = driver.session();
    sign_in_plain(&third, &s, "suzuki", "suzuki-pass-2026");
    let h1 = third.wait_text("h1", "窓口");
    assert!(h1.contains("どの窓口"), "suzuki is asked: {h1}");
}
