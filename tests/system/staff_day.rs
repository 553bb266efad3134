//! A day at the office done in the browser (issue 18; R1, R3, R4, R5, R8,
//! R12, R13): real Chromium, keys and clicks in the pages, the outcome
//! checked in the server's state (GET /api/status, /api/tickets) and on the
//! displays.
//!
//! - the staff station by keyboard alone: open the day and the counter,
//!   a double press of 呼出 150 ms apart, recall, start, tags, complete,
//!   absent, Enter on an absent visitor's number (no call), return, hold,
//!   resume, close the counter; focus always visible;
//! - the guidance display announces a call and a recall, never a start;
//! - the staff board keeps rotating while the data changes; a display that
//!   lost the server shows 「接続が切れています」 and no old numbers;
//! - the kiosk in やさしい日本語 with ふりがな, its dialog keeping focus,
//!   the ticket as an 80 mm one-page PDF, /favicon.ico;
//! - what an outside tester met at the station (browser-rt F3, F5, F6,
//!   F16, F18): G calls only from a queue the counter serves (a
//!   transferred number too) and the displays show no wrong counter;
//!   letters typed in 番号 stay in the field; focus on 受付を再開, 戻す and
//!   再開 survives the office moving; 取消 (X) with a confirmation, the
//!   displays following; a sign-in an administrator ended is said, the
//!   action not done, and signing in again returns to the same counter.
//!
//! `MADOGUCHI_SCREENSHOTS=1` writes the screenshots (and the ticket PDF,
//! with a PNG of it when pdftoppm is installed) to docs/screenshots/.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{cmd, seq, status, Server};
use crate::util::today;
use crate::webdriver::{pdf_pages, Driver, Session};

fn shots() -> Option<&'static str> {
    std::env::var_os("MADOGUCHI_SCREENSHOTS")
        .map(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots"))
}

fn save(name: &str, bytes: &[u8]) {
    if let Some(dir) = shots() {
        std::fs::create_dir_all(dir).expect("screenshots dir");
        std::fs::write(format!("{dir}/{name}"), bytes).expect("write screenshot");
    }
}

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.eval(script, json!([])) != true {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sign_in(b: &Session<'_>, s: &Server, path: &str) {
    sign_in_as(b, s, "admin", &s.admin_password, path);
}

fn sign_in_as(b: &Session<'_>, s: &Server, user: &str, password: &str, path: &str) {
    b.goto(&s.url("/login"));
    b.type_into("#username", user);
    b.type_into("#password", password);
    b.click("button[type=submit]");
    wait_for(b, "return location.pathname !== '/login'", "signed in");
    b.goto(&s.url(path));
}

/// Presses Tab until the control `css` has focus, as a keyboard user
/// reaches it.
fn tab_to(b: &Session<'_>, css: &str) {
    for _ in 0..80 {
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

fn focused_matches(b: &Session<'_>, css: &str) -> Value {
    b.eval(
        "return !!document.activeElement && document.activeElement.matches(arguments[0])",
        json!([css]),
    )
}

/// Marks the station's panel, so that a redraw can be told from none.
fn mark_panel(b: &Session<'_>) {
    b.eval(
        "document.querySelector('#panel > section').dataset.old = '1'",
        json!([]),
    );
}

/// Waits until the server's redraw replaced the marked panel and it shows
/// `want`.
fn wait_redrawn(b: &Session<'_>, want: &str) {
    wait_for(
        b,
        &format!(
            "return !document.querySelector('#panel [data-old]') && document.getElementById('panel').textContent.includes('{want}')"
        ),
        &format!("the panel redrawn with {want}"),
    );
}

fn value_of(b: &Session<'_>, css: &str) -> Value {
    b.eval(
        "return document.querySelector(arguments[0]).value",
        json!([css]),
    )
}

fn counter(st: &Value, n: u64) -> Value {
    st["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .find(|c| c["number"] == n)
        .expect("counter")
        .clone()
}

fn waiting(st: &Value, q: &str) -> Value {
    st["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|x| x["id"] == q)
        .expect("queue")["waiting"]
        .clone()
}

fn ticket(c: &reqwest::blocking::Client, s: &Server, n: u32) -> Value {
    c.get(s.url(&format!("/api/tickets/{n}")))
        .send()
        .expect("ticket")
        .json()
        .expect("json")
}

/// The outcome line says `want` and is not an error.
fn outcome(b: &Session<'_>, want: &str) {
    b.wait_text("#outcome", want);
    assert_eq!(
        b.eval(
            "return document.getElementById('outcome').classList.contains('bad')",
            json!([])
        ),
        false,
        "{want}: shown as an error: {}",
        b.text("#outcome")
    );
}

fn announced(d: &Session<'_>) -> u64 {
    d.eval(
        "return Number(document.body.dataset.announced || 0)",
        json!([]),
    )
    .as_u64()
    .unwrap_or(0)
}

/// The focused element has a visible ring (outline or box shadow).
fn focus_visible(b: &Session<'_>) -> Value {
    b.eval(
        "const e = document.activeElement; if (!e || e === document.body) return 'body'; \
         const s = getComputedStyle(e); \
         return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none';",
        json!([]),
    )
}

#[test]
fn a_staff_day_by_keyboard_with_the_guidance_display_following() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let driver = Driver::start();
    let staff = driver.session();
    sign_in(&staff, &s, "/staff?counter=10");
    staff.wait_text("#panel", "本日の業務は開始されていません");

    // D opens the day, O the counter (the server's state says so).
    staff.keys("d");
    outcome(&staff, "業務を開始しました");
    staff.keys("o");
    outcome(&staff, "窓口を開きました");
    assert_eq!(counter(&status(&c, &s), 10)["open"], true);
    for _ in 0..3 {
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
    }
    // The guidance display of 住民異動.
    let d = driver.session();
    d.enrol(&s.display_enrol);
    d.goto(&s.url("/displays/guidance/idou.html"));
    d.wait_text("#surface", "住民異動の受付");

    // 呼出 pressed twice 150 ms apart: one call, no red 「対応中です」.
    staff.eval(
        "const b = document.querySelector('button[data-action=call_next]'); b.click(); setTimeout(() => b.click(), 150);",
        json!([]),
    );
    outcome(&staff, "1001 番を呼び出しました");
    std::thread::sleep(Duration::from_millis(800));
    outcome(&staff, "1001 番を呼び出しました");
    let st = status(&c, &s);
    assert_eq!(counter(&st, 10)["ticket"], 1001);
    assert_eq!(waiting(&st, "idou"), 2, "one ticket called, not two");
    d.wait_text(
        "#announce",
        "受付番号 1001 番の方、10 番窓口へお越しください",
    );
    assert_eq!(announced(&d), 1);

    // R: a recall is announced again; S: a start is not.
    staff.keys("r");
    outcome(&staff, "1001 番を再呼出しました");
    wait_for(
        &d,
        "return document.body.dataset.lastAnnounced === '1001:10:recall'",
        "the recall announced",
    );
    assert_eq!(announced(&d), 2);
    staff.keys("s");
    outcome(&staff, "1001 番の対応を開始しました");
    assert_eq!(counter(&status(&c, &s), 10)["ticket_status"], "serving");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(announced(&d), 2, "a start of service is not announced");
    let v = d.axe();
    assert!(v.is_empty(), "guidance display: {v:#?}");

    // K goes to the tags; Space ticks one; C still completes from there.
    staff.keys("k");
    assert_eq!(
        staff.eval("return document.activeElement.id", json!([])),
        "tags-first"
    );
    assert_eq!(focus_visible(&staff), true, "the focus ring on a tag");
    let tag = staff
        .eval("return document.activeElement.value", json!([]))
        .as_str()
        .expect("tag")
        .to_string();
    staff.keys(" ");
    staff.keys("c");
    outcome(&staff, "1001 番を完了しました");
    let h = ticket(&c, &s, 1001);
    assert_eq!(h["status"]["status"], "done");
    assert!(
        h["history"].to_string().contains(&tag),
        "the tag is recorded: {h}"
    );

    // N, A: absent. "/" to the number field, 1002 and Enter: no call.
    staff.keys("n");
    outcome(&staff, "1002 番を呼び出しました");
    staff.keys("a");
    outcome(&staff, "1002 番を不在にしました");
    staff.keys("/");
    assert_eq!(
        staff.eval("return document.activeElement.id", json!([])),
        "number-input"
    );
    staff.keys("1002\u{E007}");
    outcome(&staff, "1002 番: G 呼出");
    assert_eq!(
        ticket(&c, &s, 1002)["status"]["status"],
        "absent",
        "Enter on an absent visitor's number calls nobody"
    );
    assert!(
        counter(&status(&c, &s), 10)["ticket"].is_null(),
        "the counter is free"
    );
    // B from the number field returns them; Esc leaves the field.
    staff.keys("b");
    outcome(&staff, "1002 番を待ち列に戻しました");
    staff.keys("\u{E00C}");
    assert_eq!(
        staff.eval("return document.activeElement.tagName", json!([])),
        "MAIN"
    );
    assert_eq!(focus_visible(&staff), true, "the focus ring on the station");
    // The returned visitor is first; hold, resume, complete.
    staff.keys("n");
    outcome(&staff, "1002 番を呼び出しました");
    staff.keys("h");
    outcome(&staff, "1002 番を保留にしました");
    staff.keys("/");
    staff.keys("1002\u{E007}e");
    outcome(&staff, "1002 番の保留を解除しました");
    staff.keys("\u{E00C}");
    staff.keys("c");
    outcome(&staff, "1002 番を完了しました");
    let v = staff.axe();
    assert!(v.is_empty(), "staff station: {v:#?}");

    // O closes the counter from the station.
    staff.keys("o");
    outcome(&staff, "窓口を閉じました");
    assert_eq!(counter(&status(&c, &s), 10)["open"], false);
    staff.wait_text("#panel", "この窓口は閉じています");

    // Q closes the day; the panel then says the day is over and who can
    // reopen it, not that it has not begun.
    staff.keys("q");
    staff.accept_alert();
    outcome(&staff, "業務を終了しました");
    assert_eq!(status(&c, &s)["day_open"], false);
    staff.wait_text("#panel", "本日の業務は終了しました");
    let panel = staff.eval(
        "return document.getElementById('panel').textContent",
        json!([]),
    );
    assert!(
        !panel.to_string().contains("開始されていません"),
        "a closed day is not a day not yet begun: {panel}"
    );
}

#[test]
fn the_board_keeps_rotating_and_a_lost_display_shows_no_old_numbers() {
    let mut s = Server::start_args(None, &["--listen", "127.0.0.1:0", "--stale-after", "3"]);
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    let driver = Driver::start();
    let d = driver.session();
    d.enrol(&s.display_enrol);
    d.goto(&s.url("/displays/board.html"));
    d.wait_text("#surface", "戸籍係");
    let pages = d.eval(
        "return document.querySelectorAll('.board-page').length",
        json!([]),
    );
    assert!(pages.as_u64().unwrap_or(0) >= 2, "two pages: {pages}");
    // The office is busy: an update every second; the board (10 s a page)
    // still turns to page 2.
    let start = Instant::now();
    let mut turned = false;
    while start.elapsed() < Duration::from_secs(16) {
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "koseki"}),
        );
        std::thread::sleep(Duration::from_secs(1));
        if d.eval(
            "return document.querySelector('.board').dataset.page",
            json!([]),
        ) == "2"
        {
            turned = true;
            break;
        }
    }
    assert!(turned, "the board never left page 1 while data kept coming");
    assert_eq!(
        d.eval(
            "return Array.from(document.querySelectorAll('.board-page')).filter(p => !p.hidden).length",
            json!([])
        ),
        1
    );

    // A guidance display with a call on it loses the server.
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
    let g = driver.session();
    sign_in(&g, &s, "/displays/guidance/idou.html");
    g.wait_text(".calls", "1001");
    s.stop();
    wait_for(
        &g,
        "return document.body.classList.contains('stale')",
        "stale",
    );
    assert!(g.text("#stale").contains("接続が切れています"));
    assert_eq!(
        g.eval(
            "return getComputedStyle(document.getElementById('surface')).display",
            json!([])
        ),
        "none",
        "the old numbers are gone, not dimmed"
    );
    assert_eq!(
        g.eval("return document.body.innerText.includes('1001')", json!([])),
        false
    );
    let v = g.axe();
    assert!(v.is_empty(), "stale display: {v:#?}");
    save("display-stale.png", &g.screenshot());
}

#[test]
fn a_visitor_in_easy_japanese_gets_an_80mm_ticket_on_one_page() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let fav = c.get(s.url("/favicon.ico")).send().expect("favicon");
    assert_eq!(fav.status(), reqwest::StatusCode::OK);
    assert_eq!(
        fav.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/x-icon")
    );
    assert!(fav.bytes().expect("ico").starts_with(&[0, 0, 1, 0]));

    let driver = Driver::start();
    let k = driver.session();
    k.enrol(&s.kiosk_enrol);
    k.wait_text("button[data-category=idou]", "住民異動の受付");
    // やさしい日本語: short sentences and ふりがな, still lang="ja".
    k.click("button[data-set-lang=easy]");
    k.wait_text("h1", "ください");
    assert_eq!(
        k.eval("return document.documentElement.lang", json!([])),
        "ja"
    );
    let rt = k.eval(
        "const e = document.querySelector('button[data-category=idou] .t[data-lang=easy]'); \
         return e.hidden ? null : Array.from(e.querySelectorAll('rt')).map(r => r.textContent).join(',');",
        json!([]),
    );
    assert_eq!(rt, "じゅうみん,いどう,うけつけ", "ふりがな on the category");
    // The wait in やさしい日本語: a range, or plainly none yet (issue 19).
    let easy = k.text("button[data-category=idou]");
    assert!(
        easy.contains("だいたい") || easy.contains("わかりません") || easy.contains("もうすぐ"),
        "{easy}"
    );
    let v = k.axe();
    assert!(v.is_empty(), "kiosk in やさしい日本語: {v:#?}");
    save("kiosk-easy.png", &k.screenshot());

    // Keyboard: Enter on a category opens the dialog with focus inside;
    // Tab and Shift+Tab stay inside; Escape closes and returns focus.
    k.eval(
        "document.querySelector('button[data-category=idou]').focus()",
        json!([]),
    );
    // The kiosk prints its ticket itself (`window.print()`, silent with
    // `--kiosk-printing`). Headless Chromium 156.0.8078.129 never finishes
    // that print job and then refuses DevTools' printToPDF below ("Page is
    // already being printed"), so the call is counted here instead of
    // printed, and the PDF is made once, below.
    k.eval(
        "window.__prints = 0; window.print = () => { window.__prints += 1; };",
        json!([]),
    );
    k.keys("\u{E007}");
    k.wait_text("#issued-number", "1002");
    assert_eq!(
        k.eval("return window.__prints", json!([])),
        1,
        "the kiosk prints the ticket once when it is issued"
    );
    assert!(k.text("#issued-detail").contains("まえに 1 にん"));
    assert_eq!(
        k.eval("return document.activeElement.id", json!([])),
        "issued-close"
    );
    let v = k.axe();
    assert!(v.is_empty(), "kiosk dialog: {v:#?}");
    save("kiosk-easy-issued.png", &k.screenshot());
    k.keys("\u{E004}\u{E004}");
    assert_eq!(
        k.eval(
            "return document.getElementById('issued').contains(document.activeElement)",
            json!([])
        ),
        true,
        "Tab stays in the dialog"
    );
    // The ticket: the number, category, time, people ahead and QR code,
    // in the やさしい日本語 chosen, with ふりがな (outside tester pages-rt8
    // F4: the old kiosk printed 「受付番号 … 前に 1 人」 in standard Japanese).
    let ticket = k.eval(
        "const c = document.getElementById('ticket').cloneNode(true); \
         c.querySelectorAll('rt').forEach(r => r.remove()); return c.textContent;",
        json!([]),
    );
    let ticket = ticket.as_str().unwrap_or_default();
    for want in [
        "あなたの 番号",
        "1002",
        "住民異動の受付",
        "まえに 1 にん",
        "じゅんばん",
    ] {
        assert!(ticket.contains(want), "{want} on the ticket: {ticket}");
    }
    assert!(!ticket.contains("前に"), "no standard Japanese: {ticket}");
    // 「だいたい」 once, in the wait itself (pages-rt9 F4: the label said
    // it too — 「待つ時間（だいたい） だいたい 30 ふん」).
    assert!(
        ticket.matches("だいたい").count() <= 1,
        "だいたい said twice: {ticket}"
    );
    let rts = k.eval(
        "return Array.from(document.querySelectorAll('#ticket rt')).map(r => r.textContent).join(',')",
        json!([]),
    );
    assert!(
        rts.as_str()
            .is_some_and(|r| r.starts_with("ばんごう,じゅうみん,いどう,うけつけ")),
        "ふりがな on the ticket: {rts}"
    );
    assert_eq!(
        k.eval(
            "return document.querySelector('#ticket-qr svg') !== null",
            json!([])
        ),
        true
    );
    let pdf = k.print_pdf();
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let (pages, size) = pdf_pages(&pdf);
    assert_eq!(pages, 1, "one page, no blank feed");
    let (w, h) = size.expect("page size");
    assert!((w - 226.77).abs() < 1.5, "80 mm wide, not Letter: {w} pt");
    assert!(h < 400.0, "a ticket, not a sheet: {h} pt");
    save("ticket.pdf", &pdf);
    if shots().is_some() {
        // The ticket as printed, to look at (the PDF needs a viewer).
        k.cdp("Emulation.setEmulatedMedia", json!({"media": "print"}));
        save("ticket-easy-print.png", &k.screenshot());
        k.cdp("Emulation.setEmulatedMedia", json!({"media": ""}));
    }
    if let Some(dir) = shots() {
        let _ = std::process::Command::new("pdftoppm")
            .args(["-png", "-r", "150", "-singlefile"])
            .arg(format!("{dir}/ticket.pdf"))
            .arg(format!("{dir}/ticket-pdf"))
            .status();
    }
    k.keys("\u{E00C}");
    wait_for(
        &k,
        "return document.getElementById('issued').hidden",
        "closed",
    );
    wait_for(
        &k,
        "return document.activeElement && document.activeElement.dataset.category === 'idou'",
        "focus back on the button that was pressed",
    );
    assert_eq!(waiting(&status(&c, &s), "idou"), 2);

    // The mobile ticket page in やさしい日本語.
    let phone = k;
    phone.goto(&s.url(&format!("/m#{}/1002", today())));
    phone.click("button[data-set-lang=easy]");
    phone.wait_text("#mine-state", "まって ください");
    assert_eq!(phone.text("#mine-ahead").trim(), "1 にん");
    let v = phone.axe();
    assert!(v.is_empty(), "mobile page in やさしい日本語: {v:#?}");
    save("mobile-ticket-easy.png", &phone.screenshot());
}

/// browser-rt F3: counter 10 serves only 住民異動; G on a 戸籍 number
/// called it and the 戸籍 guidance display sent the visitor to 10 番.
#[test]
fn a_number_is_called_only_at_a_counter_serving_its_queue() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10, 4]);
    for q in ["koseki", "idou"] {
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": q}),
        );
    }
    let driver = Driver::start();
    let d = driver.session();
    d.enrol(&s.display_enrol);
    d.goto(&s.url("/displays/guidance/koseki.html"));
    d.wait_text("#surface", "戸籍届出と証明発行の受付");
    let staff = driver.session();
    sign_in(&staff, &s, "/staff?counter=10");
    staff.wait_text("#panel", "住民異動の受付");

    staff.keys("/");
    staff.keys("1\u{E007}");
    outcome(&staff, "1 番: G 呼出");
    staff.keys("g");
    let said = staff.wait_text("#outcome", "担当していない");
    assert!(
        said.contains("1 番は「戸籍届出と証明発行の受付」の待ち列")
            && said.contains("10 番窓口はこの待ち列を担当していない"),
        "{said}"
    );
    assert_eq!(
        staff.eval(
            "return document.getElementById('outcome').classList.contains('bad')",
            json!([])
        ),
        true
    );
    let st = status(&c, &s);
    assert!(counter(&st, 10)["ticket"].is_null(), "nobody called at 10");
    assert_eq!(ticket(&c, &s, 1)["status"]["status"], "waiting");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.eval(
            "return document.querySelectorAll('tr[data-call]').length",
            json!([])
        ),
        0,
        "the 戸籍 display sends nobody anywhere: {}",
        d.text("#surface")
    );

    // A number transferred to 証明の交付 is called at a counter serving it.
    staff.keys("\u{E00C}");
    staff.keys("n");
    outcome(&staff, "1001 番を呼び出しました");
    staff.keys("t");
    outcome(&staff, "1001 番を回付しました");
    staff.goto(&s.url("/staff?counter=4"));
    staff.wait_text("#panel", "証明の交付");
    staff.keys("/");
    staff.keys("1001\u{E007}g");
    outcome(&staff, "1001 番を呼び出しました");
    assert_eq!(counter(&status(&c, &s), 4)["ticket"], 1001);
    d.goto(&s.url("/displays/guidance/koufu.html"));
    wait_for(
        &d,
        "return !!document.querySelector('tr[data-call^=\"1001:4:\"]')",
        "1001 → 4 番 on the 証明の交付 display",
    );
}

/// browser-rt F16: typing 10 then o in 番号 closed counter 10.
#[test]
fn letters_typed_in_the_number_field_stay_in_it() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let driver = Driver::start();
    let staff = driver.session();
    sign_in(&staff, &s, "/staff?counter=10");
    staff.wait_text("#panel", "住民異動の受付");
    let before = seq(&c, &s);

    staff.keys("/");
    // Every letter that is a key on the station, 'o' (close), 'q' and 'x'
    // (dialogs) and 'l' (sign out) among them.
    let letters = "10onrscahtgfbekmdqlx";
    staff.keys(letters);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(value_of(&staff, "#number-input"), letters);
    assert_eq!(
        staff.eval("return document.activeElement.id", json!([])),
        "number-input"
    );
    assert!(
        staff.url().contains("/staff?counter=10"),
        "still the station"
    );
    assert_eq!(seq(&c, &s), before, "no command was sent");
    let st = status(&c, &s);
    assert_eq!(counter(&st, 10)["open"], true, "the counter is still open");
    assert!(counter(&st, 10)["ticket"].is_null(), "nobody was called");
    // Enter on something that is not a number says so and stays.
    staff.keys("\u{E007}");
    staff.wait_text("#outcome", "番号を数字で入力してください");
    assert_eq!(
        staff.eval("return document.activeElement.id", json!([])),
        "number-input"
    );

    // The way that works: the number, Enter (leaves the field), the key.
    staff.keys(&"\u{E003}".repeat(letters.len()));
    staff.keys("1001\u{E007}");
    outcome(&staff, "1001 番: G 呼出");
    assert_eq!(
        staff.eval("return document.activeElement.tagName", json!([])),
        "MAIN"
    );
    staff.keys("g");
    outcome(&staff, "1001 番を呼び出しました");
    assert_eq!(counter(&status(&c, &s), 10)["ticket"], 1001);

    // The memo field likewise: t, c, n are text there.
    staff.click("#transfer-note");
    staff.keys("tcn");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(value_of(&staff, "#transfer-note"), "tcn");
    assert_eq!(ticket(&c, &s, 1001)["status"]["status"], "called");
}

/// browser-rt F6: focus on 受付を再開, 戻す or 再開 jumped to the page body
/// whenever the office moved (the panel is redrawn).
#[test]
fn focus_stays_on_a_panel_button_while_the_office_moves() {
    // 戸籍's issuing closed at 09:00 (the tests' office clock says 10:00).
    let office = madoguchi_core::config::DEFAULT_OFFICE_TOML.replacen(
        "shape = \"circle\"\ntypical_service_minutes = 8\n",
        "shape = \"circle\"\ntypical_service_minutes = 8\nlast_issue = \"09:00\"\n",
        1,
    );
    assert!(office.contains("last_issue = \"09:00\""));
    let s = Server::start_with(Some(&office));
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10, 4]);
    let run = |body: Value| {
        let (code, v) = cmd(&c, &s, &csrf, body);
        assert!(code.is_success(), "{v}");
    };
    for _ in 0..3 {
        run(json!({"command": "issue_ticket", "category": "idou"}));
    }
    // 1001 and 1002 absent; 1003 via 証明の交付 to counter 4, held there.
    for _ in 0..2 {
        run(json!({"command": "call_next", "counter": 10}));
        run(json!({"command": "mark_absent", "counter": 10}));
    }
    run(json!({"command": "call_next", "counter": 10}));
    run(json!({"command": "transfer", "number": 1003, "to": "koufu"}));
    run(json!({"command": "call_next", "counter": 4}));
    run(json!({"command": "hold", "counter": 4}));
    // Somebody else's work: a new visitor reaches 証明の交付 (counter 4's
    // panel changes).
    let mut next = 1004;
    let mut office_moves = || {
        run(json!({"command": "issue_ticket", "category": "idou"}));
        run(json!({"command": "call_next", "counter": 10}));
        run(json!({"command": "transfer", "number": next, "to": "koufu"}));
        next += 1;
        next - 1
    };

    let driver = Driver::start();
    let staff = driver.session();
    sign_in(&staff, &s, "/staff?counter=4");
    staff.wait_text("#panel", "受付終了中");
    for control in [
        "button[data-action=reopen_issuing][data-category=koseki]",
        "button[data-action=return_absent][data-number='1001']",
        "button[data-action=resume][data-number='1003']",
    ] {
        tab_to(&staff, control);
        mark_panel(&staff);
        let n = office_moves();
        wait_redrawn(&staff, &n.to_string());
        assert_eq!(
            focused_matches(&staff, control),
            true,
            "focus left {control} after a redraw: now on {}",
            staff.eval(
                "return document.activeElement.outerHTML.slice(0, 120)",
                json!([])
            )
        );
        assert_eq!(focus_visible(&staff), true);
    }

    // The focused 戻す's visitor is returned at another counter: focus goes
    // to the heading of 不在・保留 — not onto 1002's 戻す, where an Enter
    // meant for 1001 would return the wrong visitor.
    tab_to(
        &staff,
        "button[data-action=return_absent][data-number='1001']",
    );
    run(json!({"command": "return_absent", "number": 1001}));
    wait_for(
        &staff,
        "return !document.querySelector('button[data-action=return_absent][data-number=\"1001\"]')",
        "1001's 戻す gone",
    );
    assert_eq!(
        staff.eval("return document.activeElement.id", json!([])),
        "aside-h"
    );
    assert_eq!(focus_visible(&staff), true, "the ring on the heading");
    // Tab goes on to the next button there; Enter returns that visitor.
    staff.keys("\u{E004}");
    assert_eq!(
        focused_matches(
            &staff,
            "button[data-action=return_absent][data-number='1002']"
        ),
        true
    );
    staff.keys("\u{E007}");
    outcome(&staff, "1002 番を待ち列に戻しました");
    assert_eq!(ticket(&c, &s, 1002)["status"]["status"], "waiting");
    // And 受付を再開 by keyboard: issuing opens, focus stays in its queue.
    tab_to(
        &staff,
        "button[data-action=reopen_issuing][data-category=koseki]",
    );
    staff.keys("\u{E007}");
    outcome(&staff, "受付を再開しました");
    assert_ne!(
        staff.eval("return document.activeElement.tagName", json!([])),
        "BODY"
    );
    let v = staff.axe();
    assert!(v.is_empty(), "staff station: {v:#?}");
}

/// browser-rt F5: no page could cancel (取消) a ticket.
#[test]
fn cancel_the_current_ticket_after_a_confirmation() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    for _ in 0..2 {
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
    }
    let driver = Driver::start();
    let d = driver.session();
    d.enrol(&s.display_enrol);
    d.goto(&s.url("/displays/guidance/idou.html"));
    d.wait_text("#surface", "住民異動の受付");
    let staff = driver.session();
    sign_in(&staff, &s, "/staff?counter=10");
    staff.wait_text("#panel", "住民異動の受付");

    staff.keys("n");
    outcome(&staff, "1001 番を呼び出しました");
    wait_for(
        &d,
        "return !!document.querySelector('tr[data-call^=\"1001:10:\"]')",
        "1001 on the display",
    );
    // X asks first, naming the number; キャンセル does nothing.
    staff.keys("x");
    let asked = staff.alert_text();
    assert!(asked.contains("1001 番を取り消しますか"), "{asked}");
    staff.dismiss_alert();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ticket(&c, &s, 1001)["status"]["status"], "called");
    assert_eq!(counter(&status(&c, &s), 10)["ticket"], 1001);
    // OK cancels it: the counter is free and the display lets it go.
    staff.keys("x");
    staff.accept_alert();
    outcome(&staff, "1001 番を取り消しました");
    let t = ticket(&c, &s, 1001);
    assert_eq!(t["status"]["status"], "cancelled");
    assert!(counter(&status(&c, &s), 10)["ticket"].is_null());
    staff.wait_text("#panel", "空き");
    wait_for(
        &d,
        "return !document.querySelector('tr[data-call^=\"1001:\"]')",
        "1001 gone from the guidance display",
    );
    // Nothing at the counter: X says so, and no dialog opens.
    staff.keys("x");
    staff.wait_text("#outcome", "取り消す番号がありません");
    // The button, with the mouse.
    staff.keys("n");
    outcome(&staff, "1002 番を呼び出しました");
    staff.click("button[data-action=cancel]");
    staff.accept_alert();
    outcome(&staff, "1002 番を取り消しました");
    assert_eq!(ticket(&c, &s, 1002)["status"]["status"], "cancelled");
    let v = staff.axe();
    assert!(v.is_empty(), "staff station: {v:#?}");
}

/// browser-rt F18: after an administrator ended the clerk's session, the
/// clerk's next key went to the login page without a word, undone.
#[test]
fn an_ended_sign_in_is_said_and_leads_back_to_the_counter() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "tanaka", "role": "staff", "password": "tanaka-password-1"}))
        .send()
        .expect("user");
    assert!(r.status().is_success());
    crate::server::open_today(&c, &s, &csrf, &[10]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let driver = Driver::start();
    let clerk = driver.session();
    sign_in_as(
        &clerk,
        &s,
        "tanaka",
        "tanaka-password-1",
        "/staff?counter=10",
    );
    clerk.wait_text("#panel", "住民異動の受付");
    clerk.keys("n");
    outcome(&clerk, "1001 番を呼び出しました");

    let admin = driver.session();
    sign_in(&admin, &s, "/admin/sessions");
    admin.click("tr[data-user=tanaka] button[data-end-session]");
    admin.accept_alert();
    admin.wait_text("#result", "tanaka のログインを終了しました");

    clerk.keys("c");
    let said = clerk.wait_text("#signed-out", "「完了」は行われていません");
    assert!(said.contains("ログインが終了しています"), "{said}");
    assert_eq!(
        clerk.eval(
            "return document.getElementById('signed-out').hidden",
            json!([])
        ),
        false
    );
    assert!(
        clerk.url().contains("/staff?counter=10"),
        "still the station"
    );
    assert_eq!(
        ticket(&c, &s, 1001)["status"]["status"],
        "called",
        "not completed"
    );
    assert_eq!(
        clerk.eval("return document.activeElement.id", json!([])),
        "login-again"
    );
    let v = clerk.axe();
    assert!(v.is_empty(), "station, signed out: {v:#?}");
    save("staff-signed-out.png", &clerk.screenshot());
    // Another key says the same and sends nothing.
    clerk.keys("n");
    clerk.wait_text("#signed-out", "「次を呼出」は行われていません");

    // Enter on the link, sign in again: back at counter 10, 1001 there.
    clerk.keys("\u{E007}");
    wait_for(
        &clerk,
        "return location.pathname === '/login'",
        "login page",
    );
    clerk.type_into("#username", "tanaka");
    clerk.type_into("#password", "tanaka-password-1");
    clerk.click("button[type=submit]");
    wait_for(
        &clerk,
        "return location.pathname + location.search === '/staff?counter=10'",
        "back at counter 10",
    );
    clerk.wait_text("#panel", "1001");
    clerk.keys("c");
    outcome(&clerk, "1001 番を完了しました");
    assert_eq!(ticket(&c, &s, 1001)["status"]["status"], "done");
    // L (sign out) also keeps the way back to this counter.
    clerk.keys("l");
    wait_for(
        &clerk,
        "return location.pathname === '/login' && decodeURIComponent(location.search).includes('/staff?counter=10')",
        "login page with the way back",
    );
}
