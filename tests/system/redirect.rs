//! Sign-in never sends the browser to another host (issue 23, R11): the
//! `next=` forms of the red-team finding, and the other ways a browser
//! reads a path as a host, are tried in real Chromium — the address the
//! browser ends on after signing in must be this server's.

use crate::server::Server;
use crate::webdriver::Driver;

#[test]
fn after_sign_in_chromium_stays_on_this_server() {
    let s = Server::start();
    let driver = Driver::start();
    let b = driver.session();
    let tries = [
        "/%5Cevil.example/",
        "/%09/evil.example/",
        "//evil.example/",
        "/%2F%2Fevil.example/",
        "https://evil.example/",
        "/\\evil.example/",
        "%2F%5Cevil.example",
        "/%0D%0A/evil.example/",
        "javascript:alert(1)",
    ];
    for next in tries {
        // A fresh browser state each time: signed out.
        b.goto(&s.url("/"));
        b.eval("document.cookie.split(';').forEach(c => { document.cookie = c.split('=')[0] + '=; max-age=0; path=/'; }); return 1;", serde_json::json!([]));
        let _ = b.cdp("Network.clearBrowserCookies", serde_json::json!({}));
        b.goto(&format!("{}/login?next={next}", s.base));
        b.type_into("#username", "admin");
        b.type_into("#password", &s.admin_password);
        b.click("button[type=submit]");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while b.url().contains("/login") {
            assert!(
                std::time::Instant::now() < deadline,
                "sign-in with next={next} did not leave the login page: {}",
                b.url()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let at = b.url();
        assert!(
            at.starts_with(&format!("{}/", s.base)),
            "next={next} sent the browser to {at}"
        );
        assert!(!at.contains("evil.example"), "next={next}: {at}");
    }
}
