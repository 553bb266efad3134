//! 「呼出が近づいたらお知らせ」 in real Chromium (issue 20; R2, R12): the
//! mobile ticket page through the relay, a queue driven at the office. The
//! in-page notice fires exactly once when the threshold is crossed (not
//! before, not again as the queue moves on or after a reload), then once
//! when the number is called, with its counter. The relay's service worker
//! registers from the page (notifications granted through the DevTools
//! protocol) and shows the text of a push delivered to it with
//! `ServiceWorker.deliverPushMessage`. The page is opened at the URL of the
//! ticket's QR code (with its secret tag); a page opened on a bare date
//! and number asks no permission and says plainly that closed-page
//! notices need the QR code.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::relay_util;
use crate::server::{cmd, Server};
use crate::util::today;
use crate::webdriver::{Driver, Session};

/// The page's notice count and last kind (`body[data-notices]`).
fn notices(phone: &Session) -> (u64, String) {
    let v = phone.eval(
        "return [Number(document.body.dataset.notices || 0), document.body.dataset.lastNotice || ''];",
        json!([]),
    );
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or("").to_string(),
    )
}

fn wait_notices(phone: &Session, want: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (n, kind) = notices(phone);
        if n == want {
            return kind;
        }
        assert!(n < want, "{n} notices, only {want} expected");
        assert!(
            Instant::now() < deadline,
            "{want} notices expected, {n} shown"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_in_page_notice_fires_once_when_crossed_and_the_service_worker_shows_a_push() {
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
    for _ in 0..5 {
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
    let next = || {
        cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "call_next", "counter": 10}),
        );
    };

    let driver = Driver::start();
    let phone = driver.session_with(&["--ignore-certificate-errors"]);

    // A bare date and number (typed in, not from the QR code): the queue
    // and the in-page notices, but no push — said before any permission.
    phone.goto(&relay.public_url(&format!("/m#{}/{}", today(), numbers[3])));
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-ahead", "3 人");
    phone.click("button[data-notify=on]");
    let deadline = Instant::now() + Duration::from_secs(20);
    while phone.eval(
        "return document.querySelector('[data-notify=push]').hidden;",
        json!([]),
    ) != false
    {
        assert!(Instant::now() < deadline, "the push button is offered");
        std::thread::sleep(Duration::from_millis(100));
    }
    phone.click("button[data-notify=push]");
    phone.wait_text("#notify-state", "QR コードから開いたときだけ");
    phone.click("button[data-notify=off]");
    // A fresh document (a fragment change alone would keep this one).
    phone.goto(&relay.public_url("/"));

    let mine = numbers[4];
    // The QR code's URL: the relay's page, date/number/tag.
    let page = urls[4].clone();
    let prefix = relay.public_url(&format!("/m#{}/{mine}/", today()));
    assert!(
        page.strip_prefix(&prefix)
            .is_some_and(madoguchi_wire::ticket::valid_tag),
        "{page}"
    );
    phone.goto(&page);
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-ahead", "4 人");
    phone.wait_text("#notify-title", "呼出が近づいたらお知らせ");
    // 「2 人前」, then on.
    phone.eval(
        "const s = document.getElementById('notify-ahead'); s.value = '2'; \
         s.dispatchEvent(new Event('change', { bubbles: true }));",
        json!([]),
    );
    phone.click("button[data-notify=on]");
    phone.wait_text("#notify-state", "お知らせします");

    next(); // 3 ahead: not yet
    phone.wait_text("#mine-ahead", "3 人");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(notices(&phone).0, 0, "3 ahead is not 2 ahead");
    next(); // 2 ahead: crossed
    phone.wait_text("#mine-ahead", "2 人");
    assert_eq!(wait_notices(&phone, 1), "near");
    let banner = phone.text("#notice-text");
    assert!(banner.contains("あと 2 人"), "{banner}");
    let title = phone.eval("return document.title;", json!([]));
    assert!(title.as_str().unwrap_or("").starts_with('【'), "{title}");
    next(); // 1 ahead: already told
    phone.wait_text("#mine-ahead", "1 人");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(notices(&phone).0, 1, "told once");

    // A reload keeps what was told.
    phone.goto(&relay.public_url("/"));
    phone.goto(&page);
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-ahead", "1 人");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(notices(&phone).0, 0, "not told again after a reload");
    next();
    next(); // called at counter 10
    phone.wait_text("#mine-state", "10 番窓口へお越しください");
    assert_eq!(wait_notices(&phone, 1), "called");
    assert!(phone.text("#notice-text").contains("10 番窓口"));

    // The relay's service worker, registered from the page with
    // notifications granted, shows what a push carries.
    let origin = public.trim_end_matches('/').to_string();
    phone.cdp(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["notifications"]}),
    );
    let reg = phone.eval_async(
        "const done = arguments[arguments.length - 1]; \
         navigator.serviceWorker.register('/push/sw.js', { scope: '/push/' }).then((r) => { \
           const w = r.installing || r.waiting; \
           if (!w) { done('active'); return; } \
           w.addEventListener('statechange', () => { if (w.state === 'activated') done('active'); }); \
         }).catch((e) => done(String(e)));",
        json!([]),
    );
    assert_eq!(reg, Value::from("active"));
    let message = json!({
        "title": "お呼びしています",
        "body": format!("受付番号 {mine} 番の方、10 番窓口へお越しください。"),
        "tag": "madoguchi-test",
        "url": format!("/m#{}/{mine}", today()),
        "kind": "called",
    })
    .to_string();
    // The registration's id is not readable through WebDriver (it comes in
    // an event); a fresh profile numbers its registrations from 0.
    phone.cdp("ServiceWorker.enable", json!({}));
    phone.eval(
        "window.__pushes = []; navigator.serviceWorker.addEventListener('message', (e) => window.__pushes.push(e.data));",
        json!([]),
    );
    let delivered = (0..4)
        .filter(|id| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                phone.cdp(
                    "ServiceWorker.deliverPushMessage",
                    json!({"origin": origin, "registrationId": id.to_string(), "data": message}),
                )
            }))
            .is_ok()
        })
        .count()
        > 0;
    assert!(
        delivered,
        "DevTools delivered the push to the service worker"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = phone.eval_async(
            "const done = arguments[arguments.length - 1]; \
             navigator.serviceWorker.getRegistration('/push/') \
               .then((r) => r.getNotifications()) \
               .then((ns) => done(ns.map((n) => n.title + '|' + n.body))) \
               .catch((e) => done([String(e)]));",
            json!([]),
        );
        let texts: Vec<String> = shown
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if texts
            .iter()
            .any(|t| t.starts_with("お呼びしています|") && t.contains("10 番窓口へお越しください"))
        {
            break;
        }
        let seen = phone.eval("return window.__pushes;", json!([]));
        assert!(
            Instant::now() < deadline,
            "notification not shown: {texts:?}; messages from the worker: {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
