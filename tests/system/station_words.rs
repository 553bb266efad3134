//! What people meet on the staff station, the displays and mistaken
//! addresses, in plain Japanese (issue 18; outside testers pages-rt5 and
//! pages-rt7; R2, R3, R11, R13): real Chromium, clicks and keys, the
//! outcome checked on the page and in the server's state.
//!
//! - Roles are shown by their Japanese names (「admin（管理者）」, never
//!   「sato（staff）」).
//! - A mistaken address (an unknown counter, a bad value, an unknown kind
//!   of day, a backwards period, an impossible date) answers a Japanese
//!   page with the right status that says what is wrong and where to go,
//!   axe-clean.
//! - O with a number still called says the counter was not closed and what
//!   to do with the number; a closed counter says what happens next.
//! - Typing in 番号 after an error clears it, focus stays in the field, and
//!   Enter does the action that asked for a number with what is typed.
//! - 業務終了 asks with the head count of visitors not yet done.
//! - The counter, guidance and board displays never scroll at the sizes
//!   displays come in (landscape and portrait), with 3- and 4-digit numbers
//!   and long queue names.

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

fn sign_in_as(b: &Session<'_>, s: &Server, user: &str, password: &str, path: &str) {
    b.goto(&s.url("/login"));
    b.type_into("#username", user);
    b.type_into("#password", password);
    b.click("button[type=submit]");
    wait_for(b, "return location.pathname !== '/login'", "signed in");
    b.goto(&s.url(path));
}

fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"));
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::create_dir_all(dir).expect("screenshots dir");
        std::fs::write(format!("{dir}/{name}"), png).expect("write screenshot");
    }
}

/// The station's outcome line once it says `want`; whether it is red.
fn outcome(b: &Session<'_>, want: &str) -> bool {
    b.wait_text("#outcome", want);
    b.eval(
        "return document.getElementById('outcome').classList.contains('bad')",
        json!([]),
    ) == true
}

fn focused(b: &Session<'_>) -> Value {
    b.eval(
        "return document.activeElement ? document.activeElement.id : null",
        json!([]),
    )
}

fn counter(st: &Value, n: u64) -> Value {
    st["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .find(|c| c["number"] == n)
        .cloned()
        .expect("counter")
}

fn issue(c: &reqwest::blocking::Client, s: &Server, csrf: &str, category: &str) -> u64 {
    let (st, v) = cmd(
        c,
        s,
        csrf,
        json!({"command": "issue_ticket", "category": category}),
    );
    assert_eq!(st, 200, "{v}");
    v["ticket"].as_u64().expect("number")
}

#[test]
fn roles_are_shown_by_their_japanese_names() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "sato", "role": "staff", "password": "sato-password-1"}))
        .send()
        .expect("new user");
    assert!(r.status().is_success(), "{:?}", r.text());
    let driver = Driver::start();
    let b = driver.session();
    sign_in_as(&b, &s, "sato", "sato-password-1", "/staff?counter=10");
    let head = b.text(".staff-head p");
    assert!(head.contains("sato（職員）"), "{head}");
    assert!(!head.contains("staff"), "no raw role id: {head}");
    let admin = driver.session();
    sign_in_as(&admin, &s, "admin", &s.admin_password, "/staff?counter=10");
    let head = admin.text(".staff-head p");
    assert!(head.contains("admin（管理者）"), "{head}");
    // The accounts page and the audit page name the role in Japanese too.
    admin.goto(&s.url("/admin/accounts"));
    let row = admin.text("tr[data-user=sato]");
    assert!(row.contains("職員"), "{row}");
    admin.goto(&s.url("/audit"));
    let audit = admin.text("main");
    for raw in ["（staff", "（admin）", "role"] {
        assert!(
            !audit.contains(raw),
            "raw role id {raw:?} on the audit page"
        );
    }
}

/// A page as a browser asks for it: its status and text.
fn page(c: &reqwest::blocking::Client, s: &Server, path: &str) -> (u16, String) {
    let r = c
        .get(s.url(path))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .expect("page");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

#[test]
fn a_mistaken_address_says_what_is_wrong_and_where_to_go() {
    let s = Server::start();
    let (c, _csrf) = s.admin();
    // (address, status, words the page says, a link it offers)
    let cases: &[(&str, u16, &str, &str)] = &[
        (
            "/staff?counter=99",
            404,
            "99 番窓口はありません",
            "/staff?counter=10",
        ),
        ("/staff?counter=abc", 400, "窓口番号", "/staff"),
        ("/staff?counter=-1", 400, "窓口番号", "/staff"),
        (
            "/forecast?kind=bogus",
            404,
            "その種類の日の混雑予想はありません",
            "/forecast",
        ),
        (
            "/statistics?from=2026-12-10&to=2026-12-01",
            400,
            "期間の始め（2026-12-10）が終わり（2026-12-01）より後",
            "/statistics",
        ),
        (
            "/statistics?from=2026-02-30",
            400,
            "開始日（from）「2026-02-30」",
            "/statistics",
        ),
        (
            "/statistics?from=2020-01-01&to=2026-12-01",
            400,
            "期間が長すぎます",
            "/statistics",
        ),
        ("/audit?date=2026-13-01", 400, "日付", "/audit"),
    ];
    let driver = Driver::start();
    let b = driver.session();
    sign_in_as(&b, &s, "admin", &s.admin_password, "/");
    for (path, want_status, words, link) in cases {
        let (st, body) = page(&c, &s, path);
        assert_eq!(st, *want_status, "{path}: {body}");
        assert!(body.contains(words), "{path}: {body}");
        assert!(
            body.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))),
            "{path} offers {link}: {body}"
        );
        assert!(!body.contains("{\""), "{path}: no raw JSON: {body}");
        // In Chromium: the same page, in Japanese, axe-clean.
        b.goto(&s.url(path));
        b.wait_text("h1", &words[..words.len().min(12)]);
        assert_eq!(
            b.eval("return document.documentElement.lang", json!([])),
            "ja"
        );
        let title = b.eval("return document.title", json!([]));
        assert!(
            !title.as_str().unwrap_or("").contains('_'),
            "{path}: the title says what happened, not a code: {title}"
        );
        let v = b.axe();
        assert!(v.is_empty(), "{path}: {v:#?}");
        if *path == "/staff?counter=99" {
            save("error-unknown-counter.png", &b.screenshot());
            // The link goes to a station that exists.
            b.click("a[href=\"/staff?counter=10\"]");
            b.wait_text("h1", "10 番窓口");
        }
    }
    // An API client still gets JSON with its code.
    let r = c
        .get(s.url("/fragments/staff?counter=99"))
        .send()
        .expect("fragment");
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn closing_a_counter_with_a_number_called_says_what_to_do() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    let first = issue(&c, &s, &csrf, "idou");
    let driver = Driver::start();
    let b = driver.session();
    sign_in_as(&b, &s, "admin", &s.admin_password, "/staff?counter=10");
    b.keys("n");
    outcome(&b, &format!("{first} 番を呼び出しました"));
    b.keys("o");
    let red = outcome(&b, "窓口は閉じていません");
    assert!(red, "said as a refusal");
    let said = b.text("#outcome");
    assert!(
        said.contains(&format!("{first} 番をまだ呼び出し中")) && said.contains("完了"),
        "{said}"
    );
    assert_eq!(counter(&status(&c, &s), 10)["open"], true);
    b.keys("c");
    outcome(&b, &format!("{first} 番を完了しました"));
    b.keys("o");
    let red = outcome(&b, "窓口を閉じました");
    assert!(!red);
    assert!(
        b.text("#outcome")
            .contains("ほかの開いている窓口で呼ばれます"),
        "{}",
        b.text("#outcome")
    );
    assert_eq!(counter(&status(&c, &s), 10)["open"], false);
}

#[test]
fn typing_a_number_after_an_error_clears_it_and_enter_does_only_that() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    let first = issue(&c, &s, &csrf, "idou");
    let second = issue(&c, &s, &csrf, "idou");
    let driver = Driver::start();
    let b = driver.session();
    sign_in_as(&b, &s, "admin", &s.admin_password, "/staff?counter=10");
    // G with nothing typed: an error, and the field takes focus.
    b.keys("g");
    assert!(outcome(&b, "番号を入力してください"));
    assert_eq!(focused(&b), "number-input");
    // Typing clears the error; focus stays in the field.
    b.keys(&second.to_string());
    wait_for(
        &b,
        "return !document.getElementById('outcome').classList.contains('bad')",
        "the error cleared by typing",
    );
    assert_eq!(focused(&b), "number-input");
    assert!(
        b.text("#outcome").contains("番号指定呼出"),
        "{}",
        b.text("#outcome")
    );
    // Enter calls the number typed, not the first in line.
    b.keys("\u{E007}");
    outcome(&b, &format!("{second} 番を呼び出しました"));
    let st = status(&c, &s);
    assert_eq!(counter(&st, 10)["ticket"], second, "{st}");
    // A refused number: the error, the field again with it selected;
    // typing the right one clears it.
    b.keys("c");
    outcome(&b, &format!("{second} 番を完了しました"));
    b.keys("/");
    b.keys("1999\u{E007}");
    b.keys("g");
    wait_for(
        &b,
        "return document.getElementById('outcome').classList.contains('bad')",
        "1999 refused",
    );
    assert!(
        b.text("#outcome").contains("1999"),
        "{}",
        b.text("#outcome")
    );
    assert_eq!(focused(&b), "number-input");
    b.keys(&first.to_string());
    wait_for(
        &b,
        "return !document.getElementById('outcome').classList.contains('bad')",
        "the error cleared by typing",
    );
    assert_eq!(
        b.eval(
            "return document.getElementById('number-input').value",
            json!([])
        ),
        first.to_string()
    );
    b.keys("\u{E007}");
    outcome(&b, &format!("{first} 番を呼び出しました"));
    assert_eq!(counter(&status(&c, &s), 10)["ticket"], first);
    // Back on the station: the next letter is an action key again.
    assert_ne!(focused(&b), "number-input");
}

#[test]
fn the_day_close_asks_with_the_head_count() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    for _ in 0..3 {
        issue(&c, &s, &csrf, "idou");
    }
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    let driver = Driver::start();
    let b = driver.session();
    sign_in_as(&b, &s, "admin", &s.admin_password, "/staff?counter=10");
    b.keys("q");
    let asked = b.alert_text();
    assert!(
        asked.contains("まだ終わっていない方が 3 人")
            && asked.contains("待っている方 2 人")
            && asked.contains("呼出中または対応中 1 人")
            && asked.contains("未対応"),
        "{asked}"
    );
    b.dismiss_alert();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        status(&c, &s)["day_open"],
        true,
        "キャンセル closes nothing"
    );
}

/// Whether the page scrolls either way at this viewport.
fn scrolls(b: &Session<'_>) -> Value {
    b.eval(
        "const e = document.scrollingElement; \
         return [e.scrollWidth - e.clientWidth, e.scrollHeight - e.clientHeight];",
        json!([]),
    )
}

/// What on the display is cut off, by the screen's edge or by a box that
/// hides its overflow (fitting by hiding is not fitting): each visible
/// element that reaches past either.
fn cut_off(b: &Session<'_>) -> Value {
    b.eval(
        "const out = []; \
         const past = (r, b) => r.bottom > b.bottom + 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.left < b.left - 1; \
         const screen = { top: 0, left: 0, bottom: innerHeight, right: innerWidth }; \
         for (const el of document.querySelectorAll('#surface *')) { \
           const r = el.getBoundingClientRect(); \
           if (r.width === 0 || r.height === 0 || el.closest('[hidden]')) continue; \
           let cut = past(r, screen); \
           for (let a = el.parentElement; a && !cut; a = a.parentElement) { \
             const s = getComputedStyle(a); \
             if ([s.overflowX, s.overflowY].some((o) => o !== 'visible')) cut = past(r, a.getBoundingClientRect()); \
           } \
           if (cut) out.push(el.tagName + '.' + el.className + ' ' + (el.textContent || '').trim().slice(0, 20) + ' ' + Math.round(r.right) + 'x' + Math.round(r.bottom)); \
         } \
         return out;",
        json!([]),
    )
}

#[test]
fn displays_never_scroll_at_the_sizes_displays_come_in() {
    // 3-digit numbers and a long queue name, as an office may set them;
    // eight calls at once on the guidance display (its most).
    let config = include_str!("../../core/src/config/default-office.toml")
        .replace(
            "numbers = { from = 1, to = 999 }",
            "numbers = { from = 100, to = 999 }",
        )
        .replace(
            "ja = \"戸籍届出と証明発行の受付\"",
            "ja = \"戸籍届出（出生・婚姻・死亡）と戸籍謄本・抄本の証明発行の受付\"",
        );
    let s = Server::start_with(Some(&config));
    let (c, csrf) = s.admin();
    let counters: Vec<u16> = (1..=10).collect();
    open_today(&c, &s, &csrf, &counters);
    for _ in 0..9 {
        issue(&c, &s, &csrf, "koseki");
    }
    issue(&c, &s, &csrf, "idou");
    for n in counters {
        let (st, v) = cmd(&c, &s, &csrf, json!({"command": "call_next", "counter": n}));
        assert_eq!(st, 200, "{v}");
    }
    let driver = Driver::start();
    let d = driver.session();
    d.enrol(&s.display_enrol);
    let mut found = Vec::new();
    for (w, h) in [
        (1280, 900),
        (1920, 1080),
        (1366, 768),
        (1280, 720),
        (1024, 768),
        (1080, 1920),
    ] {
        d.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}),
        );
        for (topic, want) in [
            ("counter/1", "100"),
            ("counter/10", "1001"),
            ("guidance/koseki", "107"),
            ("board", "戸籍"),
            // The public status page on a lobby screen (outside tester
            // pages-rt8 F6: it scrolled at 1366×768, 1280×720, 1024×768).
            ("status", "受付中"),
        ] {
            d.goto(&s.url(&format!("/displays/{topic}.html")));
            d.wait_text("#surface", want);
            std::thread::sleep(Duration::from_millis(300));
            let over = scrolls(&d);
            if over != json!([0, 0]) {
                found.push(format!("{topic} at {w}×{h}: scrolls {over}"));
            }
            let cut = cut_off(&d);
            if cut != json!([]) {
                found.push(format!("{topic} at {w}×{h}: cut off {cut}"));
            }
            if topic != "board" && (topic != "status" || (w, h) == (1366, 768)) {
                let name = topic.replace('/', "-");
                save(&format!("fit-{name}-{w}x{h}.png"), &d.screenshot());
            }
        }
    }
    assert!(found.is_empty(), "displays that scroll: {found:#?}");
}

/// Issue 18 (R11), outside tester pages-rt11 R5: after 業務終了 the station
/// says 「本日の業務は終了しました…」, but N and O then answered 「本日の業務が
/// 開始されていません」 as if the day had never begun. Now the refusal says
/// the day has ended, that nothing was done, and who can reopen it. Old
/// code: 「本日の業務が開始されていません（the business day is not open）」.
#[test]
fn keys_after_the_day_close_say_the_day_has_ended() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    issue(&c, &s, &csrf, "idou");
    let driver = Driver::start();
    let b = driver.session();
    sign_in_as(&b, &s, "admin", &s.admin_password, "/staff?counter=10");
    b.keys("q");
    b.accept_alert();
    outcome(&b, "業務を終了しました");
    b.wait_text("#panel", "本日の業務は終了しました");
    for (key, name) in [("n", "次を呼出"), ("o", "窓口を開く／閉じる")] {
        b.eval(
            "document.getElementById('outcome').textContent = ''; return true;",
            json!([]),
        );
        b.keys(key);
        let red = outcome(&b, "本日の業務は終了しています");
        assert!(red, "{key}: said as a refusal");
        let said = b.text("#outcome");
        assert!(
            said.contains(&format!("「{name}」は行われていません")),
            "{said}"
        );
        assert!(said.contains("本日の受付を再開"), "{said}");
        assert!(!said.contains("開始されていません"), "{said}");
    }
    assert_eq!(status(&c, &s)["day_open"], false);
}

/// Outside tester pages-rt12 F1 (issue 18, R13): the same counter open in
/// two browsers; the other one finished the number, and O pressed here a
/// moment later was refused on this page's older copy (「窓口は閉じていませ
/// ん。… まだ呼び出し中」, nothing sent) — the counter stayed open and
/// visitors were sent to nobody. Now the server is asked before refusing.
#[test]
fn o_closes_a_counter_another_browser_has_just_freed() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    let n = issue(&c, &s, &csrf, "idou");
    let driver = Driver::start();
    let here = driver.session();
    sign_in_as(&here, &s, "admin", &s.admin_password, "/staff?counter=10");
    here.keys("n");
    outcome(&here, &format!("{n} 番を呼び出しました"));
    // The other browser at the same counter completes it; this page has
    // not heard yet (its panel is redrawn every few seconds).
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
    assert_eq!(st, 200, "{v}");
    here.keys("o");
    let red = outcome(&here, "窓口を閉じました");
    assert!(!red, "closed, not refused");
    assert_eq!(counter(&status(&c, &s), 10)["open"], false);
    // With a number really in hand, O is still refused, naming it.
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 10}),
    );
    assert_eq!(st, 200, "{v}");
    let m = issue(&c, &s, &csrf, "idou");
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    assert_eq!(st, 200, "{v}");
    here.goto(&s.url("/staff?counter=10"));
    here.wait_text("#panel", &format!("{m}"));
    here.keys("o");
    let red = outcome(&here, &format!("{m} 番をまだ呼び出し中"));
    assert!(red, "refused");
    assert_eq!(counter(&status(&c, &s), 10)["open"], true);
}
