//! Wording the outside tester pages-rt11 found rough (issue 18, finding R5
//! of its report; requirements R11, R13, R18), clicked and typed in real
//! Chromium:
//!
//! - After 業務終了, N and O on the station said 「本日の業務が開始されて
//!   いません」 under a panel saying the day has ended: they now say the day
//!   has ended (the panel tells the page; the server's refusal is the same
//!   for a day never opened, which still says so).
//! - Setting only a new password said 「…の役割とパスワードを設定しました」:
//!   it now says only what changed.
//! - A 臨時開庁日's hours error read 「開庁日 2026-12-19の受付時間: 受付時間
//!   （17:00-08:30）: …」: now 「臨時開庁日 2026-12-19 の受付時間
//!   「17:00-08:30」: …」.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::server::{cmd, open_today, Server};
use crate::util::today;
use crate::webdriver::{Driver, Session};

fn wait_for(b: &Session<'_>, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.eval(script, json!([])) != true {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sign_in(b: &Session<'_>, s: &Server, path: &str) {
    b.goto(&s.url(path));
    assert!(b.url().contains("/login"), "sent to the login page first");
    b.type_into("#username", "admin");
    b.type_into("#password", &s.admin_password);
    b.click("button[type=submit]");
    wait_for(
        b,
        &format!("return location.pathname === '{path}'"),
        "back on the page after signing in",
    );
}

/// Presses `key` on the station and returns what #outcome then says.
fn press(b: &Session<'_>, key: &str, want: &str) -> String {
    b.eval(
        "document.getElementById('outcome').textContent = ''",
        json!([]),
    );
    b.keys(key);
    b.wait_text("#outcome", want)
}

#[test]
fn n_and_o_after_the_day_closed_say_it_has_ended() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let driver = Driver::start();
    let b = driver.session();
    sign_in(&b, &s, "/admin");
    b.goto(&s.url("/staff?counter=10"));
    // Never opened today: said so, as before.
    b.wait_text("#panel", "本日の業務は開始されていません");
    let said = press(&b, "n", "本日の業務が開始されていません");
    assert!(!said.contains("終了"), "{said}");

    open_today(&c, &s, &csrf, &[10]);
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    b.goto(&s.url("/staff?counter=10"));
    b.wait_text("#panel", "本日の業務は終了しました");
    for key in ["n", "o"] {
        let said = press(&b, key, "本日の業務は終了しました");
        assert!(!said.contains("開始されていません"), "{key}: {said}");
        assert!(said.contains("本日の受付を再開"), "{key}: {said}");
    }
    let v = b.axe();
    assert!(v.is_empty(), "station after the close: {v:#?}");
}

#[test]
fn a_password_reset_alone_says_only_the_password_changed() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "suzuki", "role": "staff", "password": "suzuki-pass-2026"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    let driver = Driver::start();
    let b = driver.session();
    sign_in(&b, &s, "/admin/accounts");
    let row = "tr[data-user=suzuki]";
    b.type_into(&format!("{row} input[name=password]"), "suzuki-pass-2027");
    b.click(&format!("{row} button[type=submit]"));
    let said = b.wait_text("#result", "suzuki のパスワードを設定し直しました");
    assert!(!said.contains("役割"), "{said}");
    // Both changed: both are said.
    b.click(&format!("{row} select option[value=auditor]"));
    b.type_into(&format!("{row} input[name=password]"), "suzuki-pass-2028");
    b.click(&format!("{row} button[type=submit]"));
    b.wait_text("#result", "suzuki の役割とパスワードを設定しました");
}

#[test]
fn an_extra_days_hours_error_names_the_day_once() {
    let s = Server::start();
    let driver = Driver::start();
    let b = driver.session();
    sign_in(&b, &s, "/settings");
    let day = (chrono::NaiveDate::parse_from_str(&today(), "%Y-%m-%d").expect("today")
        + chrono::Duration::days(12))
    .to_string();
    b.click("#add-day");
    b.eval(
        "const r = document.querySelector('#extra-days tr.extra-day:last-child');
         r.querySelector('[name=date]').value = arguments[0];
         r.querySelector('[name=hours]').value = '17:00-08:30';
         r.querySelector('[name=name]').value = '臨時窓口';",
        json!([day]),
    );
    b.click("#settings-form button[type=submit]");
    let said = b.wait_text("#result", "終わりが始まりより前です");
    assert!(
        said.starts_with(&format!(
            "臨時開庁日 {day} の受付時間「17:00-08:30」: 終わりが始まりより前です"
        )),
        "{said}"
    );
    assert_eq!(said.matches("受付時間").count(), 1, "{said}");
}
