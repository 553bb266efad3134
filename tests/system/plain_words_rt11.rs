//! Wording the outside tester pages-rt11 found rough (issue 18, finding R5
//! of its report; requirements R11, R13, R18), clicked and typed in real
//! Chromium (its N/O-after-業務終了 and password-only findings are tested
//! in `station_words` and `admin_pages`):
//!
//! - A 臨時開庁日's hours error read 「開庁日 2026-12-19の受付時間: 受付時間
//!   （17:00-08:30）: …」: now 「臨時開庁日 2026-12-19 の受付時間
//!   「17:00-08:30」: …」.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::Server;
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
