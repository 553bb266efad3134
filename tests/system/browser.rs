//! Real-browser tests (Chromium through chromedriver): a visitor takes a
//! ticket at the kiosk page; staff call it with the keyboard, transfer it to
//! 証明の交付 and complete it at another counter; axe-core finds no serious
//! or critical accessibility violation on the kiosk and staff pages.
//!
//! `MADOGUCHI_SCREENSHOTS=1` also writes the screenshots to docs/screenshots/.

use crate::util::today;
use serde_json::json;

use crate::server::{cmd, Server};
use crate::webdriver::{Driver, Session};

fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::create_dir_all(dir).expect("screenshots dir");
        std::fs::write(format!("{dir}/{name}"), png).expect("write screenshot");
    }
}

fn login(b: &Session<'_>, s: &Server, counter: u16) {
    b.goto(&s.url(&format!("/staff?counter={counter}")));
    assert!(b.url().contains("/login"), "sent to the login page");
    save("login.png", &b.screenshot());
    b.type_into("#username", "admin");
    b.type_into("#password", &s.admin_password);
    b.click("button[type=submit]");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.url().contains("/staff") {
        assert!(
            std::time::Instant::now() < deadline,
            "login did not reach the station: {}",
            b.url()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn kiosk_to_staff_station_to_the_next_stage() {
    let mut s = Server::start();
    let (c, csrf) = s.admin();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    // Some people already waiting, so the pages show real lists.
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 11}),
    );
    for cat in ["koseki", "koseki", "idou"] {
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": cat}),
        );
    }
    let driver = Driver::start();

    // The kiosk: enrol, check accessibility, switch language, take a ticket.
    let kiosk = driver.session();
    kiosk.enrol(&s.kiosk_enrol);
    assert!(kiosk.url().ends_with("/kiosk"), "{}", kiosk.url());
    kiosk.wait_text("button[data-category=idou]", "住民異動の受付");
    let violations = kiosk.axe();
    assert!(violations.is_empty(), "kiosk page: {violations:#?}");
    kiosk.click("button[data-set-lang=en]");
    kiosk.wait_text("h1", "Please take a number");
    assert_eq!(
        kiosk.eval("return document.documentElement.lang", json!([])),
        "en"
    );
    kiosk.click("button[data-set-lang=ja]");
    save("kiosk.png", &kiosk.screenshot());
    kiosk.click("button[data-category=idou]");
    let number = kiosk.wait_text("#issued-number", "10");
    assert_eq!(number.trim(), "1002");
    assert!(
        kiosk.text("#issued-detail").contains("前に 1 人"),
        "{}",
        kiosk.text("#issued-detail")
    );
    save("kiosk-issued.png", &kiosk.screenshot());
    // The printed ticket, as the 80 mm printer gets it.
    kiosk.cdp("Emulation.setEmulatedMedia", json!({"media": "print"}));
    kiosk.eval("window.scrollTo(0, 0)", json!([]));
    assert!(kiosk.text("#ticket-number").contains("1002"));
    assert!(
        kiosk.eval(
            "return document.querySelector('#ticket-qr svg') !== null",
            json!([])
        ) == true
    );
    save("ticket-print.png", &kiosk.screenshot());
    kiosk.cdp("Emulation.setEmulatedMedia", json!({"media": ""}));
    kiosk.click("#issued-close");

    // The staff station at counter 10: keyboard only.
    let staff = driver.session();
    login(&staff, &s, 10);
    staff.wait_text("#panel", "この窓口は閉じています");
    let violations = staff.axe();
    assert!(violations.is_empty(), "staff page: {violations:#?}");
    staff.keys("o");
    staff.wait_text("#outcome", "窓口を開きました");
    staff.keys("n");
    staff.wait_text("#outcome", "1001 番を呼び出しました");
    staff.keys("c");
    staff.wait_text("#outcome", "1001 番を完了しました");
    staff.keys("n");
    staff.wait_text("#outcome", "1002 番を呼び出しました");
    staff.wait_text("#current-number", "1002");
    staff.keys("s");
    staff.wait_text("#outcome", "1002 番の対応を開始しました");
    staff.click("input[name=tag][value=tennyu]");
    // Transfer to 証明の交付 (the default choice), with a note.
    staff.type_into("#transfer-note", "住民票 2 通");
    staff.eval("document.activeElement.blur()", json!([]));
    save("staff-station.png", &staff.screenshot());
    staff.keys("t");
    staff.wait_text("#outcome", "1002 番を回付しました");
    // A double press never calls two tickets (two are waiting).
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
    staff.eval("document.querySelector('button[data-action=call_next]').click(); document.querySelector('button[data-action=call_next]').click();", json!([]));
    let called = staff.wait_text("#outcome", "番を呼び出しました");
    let called = called.split(' ').next().expect("number").to_string();
    // Absent, then back first in line by number, then called again.
    staff.keys("a");
    staff.wait_text("#outcome", &format!("{called} 番を不在にしました"));
    staff.type_into("#number-input", &called);
    staff.eval("document.activeElement.blur()", json!([]));
    staff.keys("b");
    staff.wait_text("#outcome", &format!("{called} 番を待ち列に戻しました"));
    staff.keys("n");
    staff.wait_text("#outcome", &format!("{called} 番を呼び出しました"));

    // 証明の交付 at counter 24.
    staff.goto(&s.url("/staff?counter=24"));
    staff.wait_text("#panel", "この窓口は閉じています");
    staff.keys("o");
    staff.wait_text("#outcome", "窓口を開きました");
    staff.keys("n");
    staff.wait_text("#outcome", "1002 番を呼び出しました");
    staff.keys("c");
    staff.wait_text("#outcome", "1002 番を完了しました");
    // The history search shows the whole path.
    staff.type_into("#number-input", "1002");
    staff.eval("document.activeElement.blur()", json!([]));
    staff.keys("f");
    let history = staff.wait_text("#history", "1002 番の履歴");
    for step in ["発券", "呼出", "対応開始", "回付", "完了"] {
        assert!(history.contains(step), "{history}");
    }

    // The settings page: the form, then the TOML editor with an error that
    // names the field in Japanese (issue 18), never the parser's text.
    staff.goto(&s.url("/settings"));
    staff.wait_text("h1", "設定");
    let violations = staff.axe();
    assert!(violations.is_empty(), "settings page: {violations:#?}");
    staff.eval("const i = document.querySelector('tr[data-queue=idou] [name=name_ja]'); i.value = '住民異動（転入・転出・転居）の受付';", json!([]));
    staff.click("tr[data-counter='11'] input[name=serves][value=koufu]");
    staff.click("#add-day");
    staff.eval("const r = document.querySelector('#extra-days tbody tr:last-child'); r.querySelector('[name=date]').value = '2027-01-09';", json!([]));
    save("settings.png", &staff.screenshot());
    staff.click("#settings-form button[type=submit]");
    staff.wait_text("#result", "保存して適用しました");
    staff.eval("document.querySelector('details').open = true; const a = document.getElementById('config'); a.value = a.value.replace('serves = [\"idou\"]', 'serves = [\"idoo\"]');", json!([]));
    staff.click("#validate");
    let said = staff.wait_text("#result", "設定にない受付を指しています（idoo）");
    assert!(said.contains("窓口 10"), "{said}");
    assert!(
        !said.contains("expected") && !said.contains("TOML"),
        "{said}"
    );
    // The message, not the editor, is what the screenshot is for.
    staff.eval(
        "document.getElementById('result').scrollIntoView({block: 'center'});",
        json!([]),
    );
    save("settings-toml.png", &staff.screenshot());
    let cfg: serde_json::Value = c
        .get(s.url("/api/settings"))
        .send()
        .expect("settings")
        .json()
        .expect("json");
    let toml = cfg["toml"].as_str().expect("toml");
    assert!(
        toml.contains("住民異動（転入・転出・転居）の受付"),
        "the form's change is in force"
    );
    assert!(toml.contains("2027-01-09"));
    assert!(
        toml.contains("# Madoguchi — embedded default configuration."),
        "comments survive the form"
    );

    // Statistics: a report is made while the page says it is working.
    staff.goto(&s.url("/statistics"));
    staff.wait_text("h1", "統計");
    let violations = staff.axe();
    assert!(violations.is_empty(), "statistics page: {violations:#?}");
    assert!(
        staff.text(".stats-table").contains("全体"),
        "today's totals are previewed"
    );
    staff.click("#make");
    staff.wait_text("#result", "を作成しました");
    save("statistics.png", &staff.screenshot());

    // The congestion forecast is public and accessible.
    staff.goto(&s.url("/forecast"));
    staff.wait_text("h1", "混雑予想");
    let violations = staff.axe();
    assert!(violations.is_empty(), "forecast page: {violations:#?}");

    // The server agrees: one ticket called at counter 10 after the double press.
    let status = crate::server::status(&c, &s);
    let c10 = status["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .find(|x| x["number"] == 10)
        .expect("10")
        .clone();
    assert_eq!(c10["ticket_status"], "called");
    let idou = status["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["id"] == "idou")
        .expect("idou")
        .clone();
    assert_eq!(
        idou["waiting"], 1,
        "the double press called one ticket, not two"
    );
    let history: serde_json::Value = c
        .get(s.url("/api/tickets/1002"))
        .send()
        .expect("t")
        .json()
        .expect("json");
    assert_eq!(history["status"]["status"], "done");
    assert_eq!(history["queue"], "koufu");

    // A kiosk that cannot reach the server says so, in the visitor's language.
    // The buttons came back after the ticket (the fragment is the page's).
    kiosk.wait_text("button[data-category=koseki]", "戸籍届出と証明発行の受付");
    s.stop();
    kiosk.click("button[data-set-lang=en]");
    kiosk.click("button[data-category=koseki]");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while kiosk.eval(
        "return document.getElementById('offline').hidden",
        json!([]),
    ) != false
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the kiosk never said it is offline"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(kiosk.text("#offline").contains("Cannot reach the server"));
    assert!(
        kiosk.eval("return document.getElementById('issued').hidden", json!([])) == true,
        "no ticket shown"
    );
}
