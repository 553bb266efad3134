//! Issue 24 (R10, R11) in the administrator's page, clicked in Chromium:
//! revoking a standby that is switched off makes the primary hold its
//! commands (it cannot tell that standby from one being promoted or cut
//! off); /admin says why, and once the administrator presses
//! 「予備機の停止を確認」 and answers the question, issuing goes on.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::failover::{enrolled_primary, issue, pair, Office};
use crate::webdriver::{Driver, Session};

fn sign_in_admin(b: &Session<'_>, base: &str, password: &str) {
    b.goto(&format!("{base}/login"));
    b.type_into("#username", "admin");
    b.type_into("#password", password);
    b.click("button[type=submit]");
    let deadline = Instant::now() + Duration::from_secs(15);
    while b
        .eval("return location.pathname", serde_json::json!([]))
        .as_str()
        == Some("/login")
    {
        assert!(Instant::now() < deadline, "not signed in");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kept in docs/screenshots when MADOGUCHI_SCREENSHOTS is set.
fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"));
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::write(format!("{dir}/{name}"), png).expect("write screenshot");
    }
}

#[test]
fn an_administrator_confirms_in_the_page_that_a_revoked_standby_is_off() {
    let e = enrolled_primary();
    let mut standby = pair(&e, &e.primary.base.clone());
    standby.stop();
    let base = e.primary.base.clone();
    let driver = Driver::start();
    let b = driver.session();
    sign_in_admin(&b, &base, &e.primary.admin_password);
    b.goto(&format!("{base}/admin/devices"));
    b.click("button[data-revoke-device=\"standby-1\"]");
    b.accept_alert();
    b.wait_text("#result", "端末 standby-1 の登録を取り消しました");
    b.wait_text("#result", "予備機の停止を確認");
    // Once the standby's last lease has run out, nothing is issued.
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let (st, v) = issue(&base, &e.kiosk);
        if st == StatusCode::SERVICE_UNAVAILABLE {
            break v;
        }
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(Instant::now() < deadline, "still issuing: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(v["error"]["code"], "revoked_standby_unconfirmed", "{v}");
    // The staff station says it in a standing banner: what, paused, who.
    b.goto(&format!("{base}/staff?counter=10"));
    let said = b.wait_text("#command-hold", "番号の発行と窓口の操作を止めています");
    assert!(
        said.contains("取り消した予備機（standby-1）") && said.contains("管理者"),
        "{said}"
    );
    let found = b.axe();
    assert!(found.is_empty(), "/staff with the banner: {found:#?}");
    b.goto(&format!("{base}/admin"));
    b.wait_text(
        "#revoked-standby",
        "取り消した予備機（standby-1）の停止が確認できていません",
    );
    let found = b.axe();
    assert!(found.is_empty(), "/admin with the notice: {found:#?}");
    b.click("#confirm-standby-off");
    b.accept_alert();
    b.wait_text("#result", "取り消した予備機の停止を確認しました");
    let (st, v) = issue(&base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "issuing again once confirmed: {v}");
    let page = b.text("main");
    assert!(!page.contains("停止が確認できていません"), "{page}");
    b.goto(&format!("{base}/staff?counter=10"));
    b.wait_text("#panel", "対応中の番号");
    let gone = b.eval(
        "return document.getElementById('command-hold') === null",
        serde_json::json!([]),
    );
    assert_eq!(gone, serde_json::json!(true), "the banner stays");
}

/// Outside tester replay4 N1: a primary restored from a backup holds; its
/// staff station says so and disables the buttons the hold refuses, and
/// the administrator confirms in /admin that no standby enrolled after the
/// backup runs, entering the highest number seen on a ticket (failover-rt5
/// F4): the station's buttons come back and numbers resume above it.
#[test]
fn an_administrator_confirms_in_the_page_that_no_later_standby_runs_after_a_restore() {
    let e = enrolled_primary();
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    crate::util::ok(
        &e.primary.data_dir().join("data"),
        &["backup", "--out", &bak.display().to_string()],
    );
    let spare = dir.path().join("spare");
    crate::util::ok(&spare, &["restore", &bak.display().to_string()]);
    let office = Office::start(&spare, &[]);
    let base = office.base.clone();
    let (st, v) = issue(&base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let driver = Driver::start();
    // The counter's station stays open in its own browser throughout.
    let staff = driver.session();
    sign_in_admin(&staff, &base, &e.primary.admin_password);
    staff.goto(&format!("{base}/staff?counter=10"));
    let said = staff.wait_text("#command-hold", "バックアップから戻したばかり");
    assert!(
        said.contains("予備機の停止を確認")
            && said.contains("ボタン")
            && said.contains("押せません"),
        "{said}"
    );
    // Every button the hold refuses is disabled under the banner; the
    // read-only 履歴検索 is not (outside tester failover-rt5 F5).
    let enabled = |b: &crate::webdriver::Session<'_>| {
        b.eval(
            "return Array.from(document.querySelectorAll('button[data-action]')).filter(x => !x.disabled).map(x => x.dataset.action).sort()",
            serde_json::json!([]),
        )
    };
    assert_eq!(enabled(&staff), serde_json::json!(["search"]));
    save("staff-hold.png", &staff.screenshot());
    // Its key sends nothing either, and says why.
    staff.eval(
        "document.querySelector('.station').focus()",
        serde_json::json!([]),
    );
    staff.keys("n");
    staff.wait_text("#outcome", "番号の発行と窓口の操作を止めています");
    let b = driver.session();
    sign_in_admin(&b, &base, &e.primary.admin_password);
    b.goto(&format!("{base}/admin"));
    b.wait_text("#restored-backup", "バックアップから復元した主機です");
    // No device told this primary which numbers were given after the
    // backup: the admin is asked for the highest seen on a ticket.
    b.wait_text(
        "#highest-seen",
        "番号札で見た最も大きい番号を入力してください",
    );
    let found = b.axe();
    assert!(found.is_empty(), "/admin with the notice: {found:#?}");
    save("admin-highest-seen.png", &b.screenshot());
    b.click("#confirm-restored");
    b.accept_alert();
    b.wait_text("#result", "番号札で見た最も大きい番号");
    let (st, v) = issue(&base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "still held: {v}");
    b.type_into("input[data-highest=\"idou\"]", "1004");
    b.click("#confirm-restored");
    b.accept_alert();
    b.wait_text("#result", "1005番以降から発券を再開します");
    // The station's buttons come back with its next redraw, no reload.
    let deadline = Instant::now() + Duration::from_secs(20);
    while enabled(&staff).as_array().map_or(0, Vec::len) < 2 {
        assert!(Instant::now() < deadline, "the buttons stayed disabled");
        std::thread::sleep(Duration::from_millis(250));
    }
    let gone = staff.eval(
        "return document.getElementById('command-hold') === null",
        serde_json::json!([]),
    );
    assert_eq!(gone, serde_json::json!(true));
    staff.click("button[data-action=\"call_next\"]");
    staff.wait_text("#outcome", "1001 番を呼び出しました");
    let (st, v) = issue(&base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "issuing again once confirmed: {v}");
    assert_eq!(v["ticket"], 1005, "above the number entered: {v}");
}

/// Outside tester insider-rt9 F10: a behind hold (`primary_behind`) had no
/// way out but a promotion. After the administrator has switched the
/// standby off and checked that no machine holds more records, the page's
/// 「予備機の方が記録が多くないことを確認」 with the numbers entered ends it,
/// audited with who (`behind_cleared`); issuing resumes above the number.
#[test]
fn an_administrator_clears_a_behind_hold_in_the_page() {
    let mut e = enrolled_primary();
    let standby = pair(&e, &e.primary.base.clone());
    let data = e.primary.data_dir().join("data");
    let old = tempfile::tempdir().expect("tmp");
    e.primary.stop_cleanly();
    crate::util::copy_dir(&data, old.path());
    e.primary.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked = 0;
    while acked < 2 {
        let (st, v) = issue(&e.primary.base, &e.kiosk);
        if st == StatusCode::OK {
            acked += 1;
        } else {
            assert!(Instant::now() < deadline, "never issued: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    e.primary.stop_cleanly();
    std::fs::remove_dir_all(&data).expect("rm");
    crate::util::copy_dir(old.path(), &data);
    e.primary.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = issue(&e.primary.base, &e.kiosk);
        if v["error"]["code"] == "primary_behind" {
            break;
        }
        assert!(Instant::now() < deadline, "never behind: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The administrator switches the standby off (here: it stops).
    drop(standby);
    let base = e.primary.base.clone();
    let driver = Driver::start();
    let b = driver.session();
    sign_in_admin(&b, &base, &e.primary.admin_password);
    b.goto(&format!("{base}/admin"));
    b.wait_text("#primary-behind", "予備機の方が記録が多くないことを確認");
    b.type_into("input[data-highest=\"idou\"]", "1010");
    b.click("#confirm-behind");
    b.accept_alert();
    b.wait_text("#result", "1011番以降から発券を再開します");
    let (_, v) = issue(&base, &e.kiosk);
    assert_ne!(v["error"]["code"], "primary_behind", "{v}");
    let (c, _) = e.primary.admin();
    let audit = c
        .get(e.primary.url("/api/audit/export"))
        .send()
        .expect("audit")
        .text()
        .expect("text");
    assert!(audit.contains("behind_cleared"), "{audit}");
}
