//! The office against an insider on the LAN (issue 23, R11): a stolen
//! display or a staff account reaches nothing outside the generated site.

use reqwest::StatusCode;

use crate::server::Server;

/// A client holding the display device cookie from the enrolment link.
fn display_client(s: &Server) -> reqwest::blocking::Client {
    let c = Server::client();
    let r = c.post(&s.display_enrol).send().expect("enrol");
    assert!(r.status().is_success() || r.status().is_redirection());
    c
}

#[test]
fn the_display_route_serves_only_files_the_renderer_built() {
    let s = Server::start();
    let data = s.data_dir().join("data");
    assert!(
        data.join("accounts.json").exists(),
        "the accounts file exists"
    );
    let display = display_client(&s);
    let (admin, _) = s.admin();
    // Sanity: a rendered surface is served to both.
    for c in [&display, &admin] {
        let r = c.get(s.url("/displays/board.json")).send().expect("board");
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The finding used a data folder whose absolute path passes the topic
    // check (lower-case letters, digits, `/`, `-`, `_`): name the data
    // folder through such a path.
    let alias = std::env::temp_dir().join(format!("mdg-insider-{}", std::process::id()));
    let _ = std::fs::remove_file(&alias);
    std::os::unix::fs::symlink(&data, &alias).expect("alias");
    let abs = alias.display().to_string();
    let abs = abs.trim_start_matches('/').to_string();
    let attempts = [
        format!("/displays//{abs}/accounts.json"),
        format!("/displays/{abs}/accounts.json"),
        format!("/displays/%2F{abs}/accounts.json"),
        format!("/displays/%2f{}/accounts.json", abs.replace('/', "%2f")),
        "/displays/../accounts.json".to_string(),
        "/displays/%2e%2e/accounts.json".to_string(),
        "/displays/..%2faccounts.json".to_string(),
        "/displays/counter/../../accounts.json".to_string(),
        "/displays/accounts.json".to_string(),
        "/displays/board/.json".to_string(),
        "/displays/status/.html".to_string(),
    ];
    for path in &attempts {
        for c in [&display, &admin] {
            let r = c.get(s.url(path)).send().expect("get");
            let status = r.status();
            let body = r.text().unwrap_or_default();
            assert!(
                !body.contains("argon2") && !body.contains("token_sha256"),
                "{path} leaked the accounts file"
            );
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
                "{path}: {status}"
            );
        }
    }
    // A symlink planted in the output folder is not served either.
    let out = data.join("displays");
    if out.is_dir() {
        let link = out.join("evil.json");
        #[cfg(unix)]
        std::os::unix::fs::symlink(data.join("accounts.json"), &link).expect("symlink");
        let r = admin.get(s.url("/displays/evil.json")).send().expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let _ = std::fs::remove_file(&alias);
}

// ---- Shared helpers -------------------------------------------------------

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::server::{cmd, seq, status};
use crate::util::today;

/// A client signed in as `user`, and its CSRF token.
fn sign_in(s: &Server, user: &str, password: &str) -> (Client, String) {
    let c = Server::client();
    let r = c
        .post(s.url("/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK, "{user} signs in");
    let v: Value = r.json().expect("json");
    (c, v["csrf_token"].as_str().expect("csrf").to_string())
}

/// A client enrolled as the demo kiosk, and its CSRF token.
fn enrolled_kiosk(s: &Server) -> (Client, String) {
    let kiosk = Server::client();
    kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    let kcsrf = kiosk
        .get(s.url("/api/me"))
        .send()
        .expect("me")
        .json::<Value>()
        .expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    (kiosk, kcsrf)
}

/// A client whose connections come from `ip` (another machine on the LAN,
/// as loopback lets us pretend: 127.0.0.0/8 is all ours).
fn client_from(ip: [u8; 4]) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(Some(std::net::IpAddr::from(ip)))
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

/// An error answer of ours: JSON, the code, both languages, and none of a
/// parser's or framework's words.
fn assert_ours(r: reqwest::blocking::Response, want: StatusCode, code: &str) -> Value {
    let status = r.status();
    let typed = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().expect("body");
    assert_eq!(status, want, "{text}");
    assert!(typed.starts_with("application/json"), "{typed}: {text}");
    let v: Value = serde_json::from_str(&text).expect("json error");
    assert_eq!(v["error"]["code"], code, "{text}");
    for leak in [
        "expected",
        "variant",
        "Cannot parse",
        "line ",
        "column",
        "u16",
        "u32",
        "internally tagged",
        "open_counter`",
        "Failed to",
        "serde",
        "axum",
    ] {
        assert!(!text.contains(leak), "{leak:?} leaked: {text}");
    }
    v
}

fn create_user(s: &Server, admin: &Client, csrf: &str, name: &str, role: &str, pw: &str) {
    set_user(
        s,
        admin,
        csrf,
        json!({"username": name, "role": role, "password": pw}),
    );
}

/// Changes an existing account's role and password (its row's form).
fn change_user(s: &Server, admin: &Client, csrf: &str, name: &str, role: &str, pw: &str) {
    set_user(
        s,
        admin,
        csrf,
        json!({"username": name, "role": role, "password": pw, "replace": true}),
    );
}

fn set_user(s: &Server, admin: &Client, csrf: &str, body: Value) {
    let r = admin
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", csrf)
        .json(&body)
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
}

/// The audit export as text (admins).
fn audit_text(s: &Server, admin: &Client) -> String {
    let r = admin
        .get(s.url("/api/audit/export"))
        .send()
        .expect("export");
    assert_eq!(r.status(), StatusCode::OK);
    r.text().expect("text")
}

// ---- One error type --------------------------------------------------------

#[test]
fn every_error_is_ours_never_a_parser_or_the_framework() {
    let s = Server::start();
    let anon = Server::client();
    // Anonymous: who asks comes first, before any parsing.
    assert_ours(
        anon.get(s.url("/api/tickets/abc")).send().expect("get"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let (c, csrf) = s.admin();
    let before = seq(&c, &s);
    assert_ours(
        c.get(s.url("/api/tickets/abc")).send().expect("get"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_ours(
        c.get(s.url("/api/tickets/1001?date=yesterday"))
            .send()
            .expect("get"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    for body in [
        json!({"command": "no_such_command"}),
        json!({"command": "open_counter", "counter": "ten"}),
        json!({"command": "open_counter", "counter": 70000}),
        json!({"command": "open_counter"}),
        json!({"counter": 10}),
        json!([1, 2, 3]),
    ] {
        let r = c
            .post(s.url("/api/commands"))
            .header("X-CSRF-Token", &csrf)
            .json(&body)
            .send()
            .expect("post");
        assert_ours(r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = c
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &csrf)
        .header("content-type", "application/json")
        .body("{\"command\": \"open_day\",")
        .send()
        .expect("post");
    assert_ours(r, StatusCode::BAD_REQUEST, "bad_request");
    // A wrong method is ours too (the framework answers an empty 405).
    assert_ours(
        c.delete(s.url("/api/status")).send().expect("delete"),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_ours(
        c.put(s.url("/api/commands"))
            .header("X-CSRF-Token", &csrf)
            .send()
            .expect("put"),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    // A browser asking for a page gets a Japanese page, English beside.
    let r = anon
        .get(s.url("/no/such/page"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .expect("page");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    let page = r.text().expect("html");
    assert!(
        page.contains("見つかりません")
            && page.contains("not found")
            && page.contains("lang=\"en\""),
        "{page}"
    );
    let r = anon
        .get(s.url("/statistics?from=nope"))
        .header("accept", "text/html")
        .send()
        .expect("page");
    assert!(r.status().is_client_error() || r.status().is_redirection());
    // The API stays JSON for a browser too.
    assert_ours(
        c.get(s.url("/api/tickets/abc"))
            .header("accept", "text/html")
            .send()
            .expect("get"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(seq(&c, &s), before, "nothing was recorded");
}

// ---- Login and logout -------------------------------------------------------

#[test]
fn login_takes_only_json_and_logout_needs_the_csrf_token() {
    let s = Server::start();
    // A cross-site form can send text/plain: refused, no cookie set.
    for typed in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let c = Server::client();
        let mut req = c
            .post(s.url("/api/login"))
            .body(json!({"username": "admin", "password": s.admin_password}).to_string());
        if !typed.is_empty() {
            req = req.header("content-type", typed);
        }
        let r = req.send().expect("login");
        assert!(r.headers().get("set-cookie").is_none(), "{typed}");
        assert_ours(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json");
        assert_eq!(
            c.get(s.url("/api/me")).send().expect("me").status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let (c, csrf) = s.admin();
    let r = c.post(s.url("/api/logout")).send().expect("logout");
    assert_ours(r, StatusCode::FORBIDDEN, "csrf");
    assert_eq!(
        c.get(s.url("/api/me")).send().expect("me").status(),
        StatusCode::OK,
        "a forged logout ends nothing"
    );
    let r = c
        .post(s.url("/api/logout"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("logout");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        c.get(s.url("/api/me")).send().expect("me").status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn sign_in_sends_the_browser_only_to_this_server() {
    let s = Server::start();
    let c = Server::client();
    let next_of = |q: &str| -> String {
        let page = c
            .get(s.url(&format!("/login?next={q}")))
            .send()
            .expect("login page")
            .text()
            .expect("html");
        let start = page.find("data-next=\"").expect("data-next") + "data-next=\"".len();
        page[start..]
            .split('"')
            .next()
            .expect("value")
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
    };
    for evil in [
        "/%5Cevil.example/",
        "/%5cevil.example/",
        "/%09/evil.example/",
        "/%0a/evil.example/",
        "//evil.example/",
        "/%2F%2Fevil.example/",
        "/%2Fevil.example/",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/%255Cevil.example/",
        "%2F%2Fevil.example",
    ] {
        // Refused: none named, so the sign-in's answer names the role's
        // own first page (pages-rt8 F10).
        assert_eq!(next_of(evil), "", "{evil}");
    }
    assert_eq!(next_of("/admin"), "/admin");
    assert_eq!(next_of("/staff%3Fcounter%3D3"), "/staff?counter=3");
}

// ---- Leaks -------------------------------------------------------------------

#[test]
fn devices_get_no_staff_names() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    create_user(&s, &c, &csrf, "yamada", "staff", "correct horse battery");
    let (y, ycsrf) = sign_in(&s, "yamada", "correct horse battery");
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let (st, v) = cmd(
        &y,
        &s,
        &ycsrf,
        json!({"command": "open_counter", "counter": 10}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let staff_view = status(&c, &s);
    assert!(staff_view.to_string().contains("yamada"), "staff see names");
    let display = display_client(&s);
    let kiosk = Server::client();
    kiosk.post(&s.kiosk_enrol).send().expect("enrol kiosk");
    for device in [&display, &kiosk] {
        let v = status(device, &s);
        assert_eq!(v["day_open"], true, "{v}");
        assert!(!v.to_string().contains("yamada"), "{v}");
        assert!(v["counters"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["open"] == true)
                && cs.iter().all(|c| c["staff"].is_null())));
    }
}

// ---- Sessions and accounts -----------------------------------------------------

#[test]
fn a_role_or_password_change_ends_the_accounts_sessions_at_once() {
    let mut s = Server::start();
    let (admin, csrf) = s.admin();
    let pw = "kacho's first password";
    create_user(&s, &admin, &csrf, "kacho", "admin", pw);
    let (k, kcsrf) = sign_in(&s, "kacho", pw);
    assert_eq!(
        k.get(s.url("/api/settings")).send().expect("s").status(),
        StatusCode::OK
    );
    // Demoted: the open session ends at once; it cannot create an admin.
    change_user(&s, &admin, &csrf, "kacho", "staff", pw);
    let r = k
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &kcsrf)
        .json(&json!({"username": "evil", "role": "admin", "password": "evil evil evil"}))
        .send()
        .expect("user");
    assert_ours(r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        k.get(s.url("/api/settings")).send().expect("s").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        Server::client()
            .post(s.url("/api/login"))
            .json(&json!({"username": "evil", "password": "evil evil evil"}))
            .send()
            .expect("login")
            .status(),
        StatusCode::UNAUTHORIZED,
        "no account was created"
    );
    // Signed in again, kacho is staff now.
    let (k, _) = sign_in(&s, "kacho", pw);
    assert_eq!(
        k.get(s.url("/api/settings")).send().expect("s").status(),
        StatusCode::FORBIDDEN
    );
    // A password reset ends the session too; the old password is refused.
    change_user(&s, &admin, &csrf, "kacho", "staff", "kacho's new password");
    assert_eq!(
        k.get(s.url("/api/me")).send().expect("me").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        Server::client()
            .post(s.url("/api/login"))
            .json(&json!({"username": "kacho", "password": pw}))
            .send()
            .expect("login")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Sessions are kept on the server, hashed, and survive a restart.
    let (k, _) = sign_in(&s, "kacho", "kacho's new password");
    let sessions = std::fs::read_to_string(s.data_dir().join("data/sessions.json")).expect("file");
    let file: Value = serde_json::from_str(&sessions).expect("json");
    assert!(file["sessions"].as_array().is_some_and(|l| !l.is_empty()
        && l.iter().all(
            |x| x["token_sha256"].as_str().is_some_and(|h| h.len() == 64)
                && x.get("token").is_none()
        )));
    s.restart();
    assert_eq!(
        k.get(s.url("/api/me")).send().expect("me").status(),
        StatusCode::OK,
        "the session survived the restart"
    );
    // Disabled: the session ends, sign-in is refused and audited.
    let r = admin
        .post(s.url("/api/users/kacho/disabled"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"disabled": true}))
        .send()
        .expect("disable");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        k.get(s.url("/api/me")).send().expect("me").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        Server::client()
            .post(s.url("/api/login"))
            .json(&json!({"username": "kacho", "password": "kacho's new password"}))
            .send()
            .expect("login")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Deleted; the last admin cannot be deleted, disabled or demoted.
    let r = admin
        .delete(s.url("/api/users/kacho"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    let r = admin
        .delete(s.url("/api/users/admin"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("delete");
    assert_ours(r, StatusCode::BAD_REQUEST, "bad_request");
    let r = admin
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "admin", "role": "staff", "password": "whatever whatever", "replace": true}))
        .send()
        .expect("demote");
    assert_ours(r, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        admin
            .get(s.url("/api/settings"))
            .send()
            .expect("s")
            .status(),
        StatusCode::OK,
        "the admin is still an admin"
    );
    let audit = audit_text(&s, &admin);
    for change in ["disabled", "deleted"] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains("kacho") && l.contains(change)),
            "{change} is audited"
        );
    }
    // A device can be disabled: its token is refused at once.
    let display = display_client(&s);
    assert_eq!(
        display
            .get(s.url("/api/status"))
            .send()
            .expect("st")
            .status(),
        StatusCode::OK
    );
    let r = admin
        .post(s.url("/api/devices/display-1/disabled"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"disabled": true}))
        .send()
        .expect("disable");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        display
            .get(s.url("/api/status"))
            .send()
            .expect("st")
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn a_stranger_cannot_lock_out_an_admin_and_every_failure_is_audited() {
    let s = Server::start();
    let stranger = client_from([127, 0, 0, 66]);
    // Five tries with another case of the name, as in the finding.
    for _ in 0..5 {
        let r = stranger
            .post(s.url("/api/login"))
            .json(&json!({"username": "ADMIN", "password": "guess guess guess"}))
            .send()
            .expect("login");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The stranger's address waits, and is told how long.
    let r = stranger
        .post(s.url("/api/login"))
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .expect("login");
    assert!(r.headers().get("retry-after").is_some());
    let v = assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(
        v["error"]["message_ja"]
            .as_str()
            .is_some_and(|m| m.contains("1 分"))
            && v["error"]["message_en"]
                .as_str()
                .is_some_and(|m| m.contains("1 min")),
        "{v}"
    );
    // More tries while it waits are refused the same way.
    for _ in 0..3 {
        let r = stranger
            .post(s.url("/api/login"))
            .json(&json!({"username": "admin", "password": "guess"}))
            .send()
            .expect("login");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // The admin at their own station still signs in (after a short delay).
    let desk = client_from([127, 0, 0, 1]);
    let t0 = std::time::Instant::now();
    let r = desk
        .post(s.url("/api/login"))
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t0.elapsed() < std::time::Duration::from_secs(8));
    let v: Value = r.json().expect("json");
    let csrf = v["csrf_token"].as_str().expect("csrf").to_string();
    let _ = csrf;
    // Every failed sign-in is in the audit log, with the address.
    let audit = audit_text(&s, &desk);
    let failed = audit
        .lines()
        .filter(|l| l.contains("ADMIN") && l.contains("127.0.0.66") && l.contains("login"))
        .count();
    assert_eq!(failed, 5, "{audit}");
    // The refusals while it waited are audited too, each of them (the
    // first few of a window one by one, the rest summed up at its end, so
    // a flood cannot fill the log; outside tester pages-rt9 F7: only the
    // first of a wait was, which hid a guessing run going on).
    let refused = audit
        .lines()
        .filter(|l| l.contains("127.0.0.66") && l.contains("refused"))
        .count();
    assert_eq!(refused, 4, "{audit}");
}

/// Red-team finding (issue 23): a sign-in spray from many addresses (each
/// under its own throttle) queued every password check, and the real
/// admin's sign-in took 26 s. Checks now run one per core with a short
/// queue; the rest are answered 「混み合っています」 at once.
#[test]
fn a_sign_in_spray_is_turned_away_not_queued() {
    let s = Server::start();
    let url = s.url("/api/login");
    let desk = client_from([127, 0, 0, 1]);
    let r = desk
        .post(&url)
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sprayers: Vec<_> = (0..24u8)
        .map(|i| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = client_from([127, 0, 1, 10 + i]);
                let mut busy = 0;
                for k in 0..4 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let r = c
                        .post(&url)
                        .json(&json!({"username": format!("nobody{i}-{k}"), "password": "x"}))
                        .send()
                        .expect("login");
                    match r.status() {
                        StatusCode::UNAUTHORIZED => {}
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert!(r.headers().get("retry-after").is_some());
                            let v = assert_ours(r, StatusCode::SERVICE_UNAVAILABLE, "busy");
                            assert!(
                                v["error"]["message_ja"]
                                    .as_str()
                                    .is_some_and(|m| m.contains("混み合って")),
                                "{v}"
                            );
                            busy += 1;
                        }
                        other => panic!("a spray request got {other}"),
                    }
                }
                busy
            })
        })
        .collect();
    // The admin, who signed in from this desk before, signs in again
    // meanwhile: the gate keeps places for known addresses.
    let mut signed_in = false;
    for _ in 0..10 {
        let r = desk
            .post(&url)
            .json(&json!({"username": "admin", "password": s.admin_password}))
            .send()
            .expect("login");
        if r.status() == StatusCode::OK {
            signed_in = true;
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let busy: u32 = sprayers
        .into_iter()
        .map(|t| t.join().expect("sprayer"))
        .sum();
    assert!(signed_in, "the admin got in during the spray");
    assert!(busy > 0, "part of the spray was turned away at once");
}

// ---- Commands against the office's rules -------------------------------------------

#[test]
fn a_day_opens_only_for_today_and_a_wrong_day_is_repaired() {
    let s = Server::start();
    let (admin, csrf) = s.admin();
    create_user(
        &s,
        &admin,
        &csrf,
        "yamada",
        "staff",
        "correct horse battery",
    );
    let (staff, scsrf) = sign_in(&s, "yamada", "correct horse battery");
    let before = seq(&admin, &s);
    let open_far = |c: &Client, csrf: &str, query: &str| {
        c.post(s.url(&format!("/api/commands{query}")))
            .header("X-CSRF-Token", csrf)
            .json(&json!({"command": "open_day", "date": "9999-12-31"}))
            .send()
            .expect("open_day")
    };
    assert_ours(
        open_far(&staff, &scsrf, ""),
        StatusCode::CONFLICT,
        "not_today",
    );
    // Only an admin may override, and only naming the same date.
    assert_ours(
        open_far(&staff, &scsrf, "?override_date=9999-12-31"),
        StatusCode::CONFLICT,
        "not_today",
    );
    assert_ours(
        open_far(&admin, &csrf, "?override_date=9999-12-30"),
        StatusCode::CONFLICT,
        "not_today",
    );
    // Outside tester insider-rt9 F1: an admin's override to a far day
    // (a mistyped year) is refused; old code: 200, and once that day had
    // issued a number no day could be opened again (day_not_after_last).
    assert_ours(
        open_far(&admin, &csrf, "?override_date=9999-12-31"),
        StatusCode::CONFLICT,
        "override_too_far",
    );
    assert_eq!(seq(&admin, &s), before, "nothing was recorded");
    assert_eq!(status(&admin, &s)["day_open"], false);
    // Say an admin did open a near day by mistake: close it, and today
    // opens.
    let near = (chrono::NaiveDate::parse_from_str(&today(), "%Y-%m-%d").expect("today")
        + chrono::Days::new(2))
    .to_string();
    let r = admin
        .post(s.url(&format!("/api/commands?override_date={near}")))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"command": "open_day", "date": near}))
        .send()
        .expect("open_day");
    assert_eq!(r.status(), StatusCode::OK);
    let audit = audit_text(&s, &admin);
    assert!(audit.contains("override"), "the override is in the record");
    // A visitor took a number on the wrong day (outside tester
    // insider-rt10 N8: old code, today then stayed refused,
    // day_not_after_last, until the wrong day had passed).
    let (st, v) = cmd(
        &staff,
        &s,
        &scsrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let wrong = v["events"][0]["number"].as_u64().expect("number");
    let (st, v) = cmd(&staff, &s, &scsrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = cmd(
        &staff,
        &s,
        &scsrf,
        json!({"command": "open_day", "date": today()}),
    );
    assert_eq!(st, StatusCode::OK, "today opens after the wrong day: {v}");
    assert_eq!(status(&admin, &s)["date"], today());
    // The wrong day's number is still in a visitor's hand: today's go on
    // after it, and the record says so.
    let (st, v) = cmd(
        &staff,
        &s,
        &scsrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["number"].as_u64(), Some(wrong + 1), "{v}");
    let audit = audit_text(&s, &admin);
    assert!(
        audit.contains(r#"\"after_wrong_day\":{\"idou\":"#),
        "{audit}"
    );
}

/// A found break (issue 23, R11): a staff member closed today and nothing
/// reopened it. `reopen_day` opens the same date again for an
/// administrator, audited by the caller's name, numbering going on.
#[test]
fn a_day_closed_by_mistake_is_reopened_by_an_admin_and_numbers_go_on() {
    let s = Server::start();
    let (admin, csrf) = s.admin();
    create_user(
        &s,
        &admin,
        &csrf,
        "yamada",
        "staff",
        "correct horse battery",
    );
    let (staff, scsrf) = sign_in(&s, "yamada", "correct horse battery");
    let (kiosk, kcsrf) = enrolled_kiosk(&s);
    let issue = |c: &Client, csrf: &str| {
        c.post(s.url("/api/commands"))
            .header("X-CSRF-Token", csrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("issue")
    };
    cmd(
        &staff,
        &s,
        &scsrf,
        json!({"command": "open_day", "date": today()}),
    );
    let first: Value = issue(&kiosk, &kcsrf).json().expect("json");
    assert_eq!(first["ticket"], 1001, "{first}");
    // Nothing to reopen while the day is open.
    let r = admin
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"command": "reopen_day"}))
        .send()
        .expect("reopen");
    assert_ours(r, StatusCode::CONFLICT, "day_already_open");
    let page = admin
        .get(s.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(!page.contains("本日の受付を再開"), "no button while open");
    // The mistake.
    let (st, v) = cmd(&staff, &s, &scsrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_ours(issue(&kiosk, &kcsrf), StatusCode::CONFLICT, "day_not_open");
    // Staff may not reopen; nothing is recorded by the refusal.
    let before = seq(&admin, &s);
    let r = staff
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &scsrf)
        .json(&json!({"command": "reopen_day"}))
        .send()
        .expect("reopen");
    assert_ours(r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(seq(&admin, &s), before, "nothing was recorded");
    assert_eq!(status(&admin, &s)["day_open"], false);
    // The admin page offers the button, in Japanese.
    let page = admin
        .get(s.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        page.contains("本日の受付を再開"),
        "the button is on the page"
    );
    assert!(page.contains(&today()), "{page}");
    // The admin reopens the same day; numbering goes on.
    let (st, v) = cmd(&admin, &s, &csrf, json!({"command": "reopen_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["type"], "day_reopened", "{v}");
    let after = status(&admin, &s);
    assert_eq!(after["day_open"], true);
    assert_eq!(after["date"], today(), "the same business date");
    let next: Value = issue(&kiosk, &kcsrf).json().expect("json");
    assert_eq!(next["ticket"], 1002, "no number given twice: {next}");
    // Staff work as before; the reopening is audited with the admin's name.
    let (st, v) = cmd(
        &staff,
        &s,
        &scsrf,
        json!({"command": "open_counter", "counter": 1}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let audit = audit_text(&s, &admin);
    let line = audit
        .lines()
        .find(|l| l.contains("day_reopened"))
        .expect("the reopening is in the audit export");
    assert!(line.contains("admin"), "{line}");
    // A second reopen of an open day changes nothing.
    let before = seq(&admin, &s);
    let (st, v) = cmd(&admin, &s, &csrf, json!({"command": "reopen_day"}));
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(seq(&admin, &s), before);
}

#[test]
fn one_kiosk_cannot_use_up_a_category() {
    let s = Server::start();
    let (admin, csrf) = s.admin();
    cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let (kiosk, kcsrf) = enrolled_kiosk(&s);
    let (mut issued, mut limited) = (0u32, 0u32);
    for _ in 0..40 {
        let r = kiosk
            .post(s.url("/api/commands"))
            .header("X-CSRF-Token", &kcsrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("issue");
        match r.status() {
            StatusCode::OK => issued += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().get("retry-after").is_some());
                assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                limited += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert!((10..=13).contains(&issued), "issued {issued}");
    assert_eq!(issued + limited, 40);
    // No number was burnt by a refusal; another issuer carries on.
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], 1001 + issued);
    let waiting = status(&admin, &s)["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["id"] == "idou")
        .expect("idou")["waiting"]
        .as_u64()
        .expect("waiting");
    assert_eq!(waiting, u64::from(issued) + 1);
}

#[test]
fn request_ids_belong_to_their_device_and_content_and_attribution_to_the_caller() {
    let s = Server::start();
    let (admin, csrf) = s.admin();
    cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let (kiosk, kcsrf) = enrolled_kiosk(&s);
    // The body's `kiosk` is not believed: the device's name is recorded.
    let (st, first) = cmd(
        &kiosk,
        &s,
        &kcsrf,
        json!({"command": "issue_ticket", "category": "idou", "request_id": "r1", "kiosk": "forged"}),
    );
    assert_eq!(st, StatusCode::OK, "{first}");
    assert_eq!(first["events"][0]["kiosk"], "kiosk-1", "{first}");
    let n = first["ticket"].as_u64().expect("ticket");
    // Another issuer's same id is its own request: a new ticket, not the
    // kiosk's.
    let (st, other) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou", "request_id": "r1"}),
    );
    assert_eq!(st, StatusCode::OK, "{other}");
    assert_eq!(other["ticket"].as_u64(), Some(n + 1));
    // The same id with other content is refused and changes nothing.
    let before = seq(&admin, &s);
    let r = kiosk
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &kcsrf)
        .json(&json!({"command": "issue_ticket", "category": "koseki", "request_id": "r1"}))
        .send()
        .expect("issue");
    assert_ours(r, StatusCode::CONFLICT, "request_id_reused");
    assert_eq!(seq(&admin, &s), before);
    // The same request again is the same ticket.
    let (st, again) = cmd(
        &kiosk,
        &s,
        &kcsrf,
        json!({"command": "issue_ticket", "category": "idou", "request_id": "r1"}),
    );
    assert_eq!(st, StatusCode::OK);
    assert_eq!(again["ticket"].as_u64(), Some(n));
    assert_eq!(seq(&admin, &s), before);
    // `staff` at a counter is who is signed in.
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 10, "staff": "somebody-else"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["staff"], "admin");
}

// ---- Connections ----------------------------------------------------------------

/// Opens `n` connections from `from` that ask for a WebSocket on the public
/// status topic; returns them and how many were upgraded.
async fn websocket_flood(
    addr: std::net::SocketAddr,
    from: [u8; 4],
    n: usize,
) -> (Vec<tokio::net::TcpStream>, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = format!(
        "GET /ws?topic=status HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut held = Vec::new();
    let mut upgraded = 0;
    for _ in 0..n {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            continue;
        };
        if socket.bind(std::net::SocketAddr::from((from, 0))).is_err() {
            continue;
        }
        let Ok(mut tcp) = socket.connect(addr).await else {
            continue;
        };
        if tcp.write_all(ask.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 64];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(500), tcp.read(&mut buf)).await;
        if let Ok(Ok(k)) = read {
            if k > 0 && buf[..k].starts_with(b"HTTP/1.1 101") {
                upgraded += 1;
            }
        }
        held.push(tcp);
    }
    (held, upgraded)
}

#[test]
fn one_client_with_a_thousand_connections_and_slow_heads_does_not_stop_the_staff() {
    let s = Server::start_args(
        None,
        &["--listen", "127.0.0.1:0", "--head-timeout-secs", "2"],
    );
    // The soft limit the systemd unit gives the service.
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &s.pid().to_string(), "--nofile=1024:"])
        .status()
        .is_ok_and(|st| st.success());
    eprintln!("server soft limit 1,024 open files: {limited}");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    let staff_round = |label: &str| -> std::time::Duration {
        let mut worst = std::time::Duration::ZERO;
        for _ in 0..10 {
            let t0 = std::time::Instant::now();
            let (st, v) = cmd(
                &c,
                &s,
                &csrf,
                json!({"command": "issue_ticket", "category": "idou"}),
            );
            assert_eq!(st, StatusCode::OK, "{label}: {v}");
            let (st, v) = cmd(
                &c,
                &s,
                &csrf,
                json!({"command": "call_next", "counter": 10}),
            );
            assert_eq!(st, StatusCode::OK, "{label}: {v}");
            let (st, v) = cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
            assert_eq!(st, StatusCode::OK, "{label}: {v}");
            worst = worst.max(t0.elapsed());
        }
        worst
    };
    let before = staff_round("before");
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (flood, upgraded) = rt.block_on(websocket_flood(addr, [127, 0, 0, 77], 1_100));
    // Slow heads: a byte every 300 ms, never finishing.
    let slow: Vec<tokio::task::JoinHandle<std::time::Duration>> = (0..20)
        .map(|_| {
            rt.spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let t0 = std::time::Instant::now();
                let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                    return std::time::Duration::ZERO;
                };
                let _ = socket.bind(std::net::SocketAddr::from(([127, 0, 0, 78], 0)));
                let Ok(mut tcp) = socket.connect(addr).await else {
                    return std::time::Duration::ZERO;
                };
                let _ = tcp.write_all(b"GET / HTTP/1.1\r\n").await;
                for _ in 0..100 {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    if tcp.write_all(b"X").await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 16];
                    let r = tokio::time::timeout(
                        std::time::Duration::from_millis(1),
                        tcp.read(&mut buf),
                    )
                    .await;
                    if matches!(r, Ok(Ok(0)) | Ok(Err(_))) {
                        break;
                    }
                }
                t0.elapsed()
            })
        })
        .collect();
    let during = staff_round("during the flood");
    let slow_closed: Vec<std::time::Duration> = slow
        .into_iter()
        .map(|h| rt.block_on(h).expect("slow client"))
        .collect();
    eprintln!(
        "1,100 WebSocket requests from one address: {upgraded} upgraded, {} connections held by the client; \
         staff round (issue, call, complete) worst {before:?} before, {during:?} during; \
         slow heads closed after {:?} at most",
        flood.len(),
        slow_closed.iter().max()
    );
    assert!(upgraded > 0, "some WebSockets are served");
    assert!(
        upgraded <= 128,
        "one address holds at most its cap: {upgraded}"
    );
    assert!(
        during < std::time::Duration::from_secs(2),
        "staff commands kept their latency: {during:?}"
    );
    for d in &slow_closed {
        assert!(
            *d < std::time::Duration::from_secs(10),
            "a slow head was closed at its deadline (2 s): {d:?}"
        );
    }
    // Nothing was lost: the office carries on, and the flood's own
    // address gets connections again once it lets go.
    drop(flood);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (again, upgraded) = rt.block_on(websocket_flood(addr, [127, 0, 0, 77], 3));
    assert_eq!(upgraded, 3);
    drop(again);
    let v = status(&c, &s);
    assert_eq!(v["day_open"], true);
}

// ---- TLS on the LAN ----------------------------------------------------------------

#[test]
fn with_tls_the_office_speaks_only_https_and_cookies_are_secure() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = crate::relay_util::certs(dir.path());
    let (cert, key) = (
        certs.cert.display().to_string(),
        certs.key.display().to_string(),
    );
    let s = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let https = Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).expect("ca"))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    let r = https
        .post(s.url("/api/login"))
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .expect("login over TLS");
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    // And the browser is told to keep to HTTPS for this host.
    let me = https.get(s.url("/api/me")).send().expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        me.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000")
    );
    // Plain HTTP on the same port gets no answer, and no cookie.
    let plain = Server::client()
        .post(s.base.replacen("https://", "http://", 1) + "/api/login")
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send();
    assert!(
        plain
            .as_ref()
            .map_or(true, |r| r.headers().get("set-cookie").is_none()
                && !r.status().is_success()),
        "{plain:?}"
    );
    // A display enrolled over TLS gets a Secure device cookie.
    let r = Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).expect("ca"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(s.display_enrol.clone())
        .send()
        .expect("enrol");
    let set_cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
}

// ---- Exports ---------------------------------------------------------------------

#[test]
fn names_from_the_settings_reach_the_csv_as_text_not_formulas() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let toml: Value = c
        .get(s.url("/api/settings"))
        .send()
        .expect("settings")
        .json()
        .expect("json");
    let evil = "=HYPERLINK(\\\"http://evil.example\\\",\\\"x\\\")";
    let changed = toml["toml"].as_str().expect("toml").replacen(
        "ja = \"住民異動の受付\"",
        &format!("ja = \"{evil}\""),
        1,
    );
    let r = c
        .post(s.url("/api/settings"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"toml": changed}))
        .send()
        .expect("apply");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{}",
        r.text().unwrap_or_default()
    );
    crate::server::open_today(&c, &s, &csrf, &[]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let r = c
        .post(s.url("/api/statistics/report"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"from": today(), "to": today(), "by": "day", "format": "csv"}))
        .send()
        .expect("report");
    assert_eq!(r.status(), StatusCode::OK);
    let csv = String::from_utf8(r.bytes().expect("bytes").to_vec()).expect("utf-8");
    let cells: Vec<&str> = csv
        .lines()
        .flat_map(|l| l.split(','))
        .map(|c| c.trim_start_matches('"'))
        .collect();
    assert!(
        csv.contains("HYPERLINK"),
        "the name is in the report: {csv}"
    );
    for cell in cells {
        let formula = cell.starts_with(['=', '+', '@', '\t', '\r'])
            || (cell.starts_with('-') && cell.parse::<f64>().is_err());
        assert!(!formula, "a formula cell: {cell:?} in {csv}");
    }
}

/// A found break (issue 23): a few LAN addresses together held every
/// connection slot with public WebSockets and staff got no answer. Sockets
/// opened without a device or account now share a small cap, and a refused
/// upgrade closes its connection.
#[test]
fn anonymous_websockets_from_several_addresses_leave_room_for_the_staff() {
    let s = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            "150",
            "--max-connections-per-address",
            "50",
        ],
    );
    let (c, _csrf) = s.admin();
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut held = Vec::new();
    let mut upgraded = 0;
    for last in 21..=24u8 {
        let (h, u) = rt.block_on(websocket_flood(addr, [127, 0, 0, last], 40));
        held.extend(h);
        upgraded += u;
    }
    assert!(upgraded > 0, "public sockets are served");
    assert!(
        upgraded <= 64,
        "anonymous sockets share a cap of 64: {upgraded}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Staff still get answers while all of it is held.
    for _ in 0..5 {
        let r = c.get(s.url("/api/me")).send().expect("staff answered");
        assert_eq!(r.status(), StatusCode::OK);
    }
    drop(held);
}

/// Opens `n` keep-alive connections from `from`, each asking for one small
/// page and then sitting idle; returns the ones answered.
async fn idle_keepalives(
    addr: std::net::SocketAddr,
    from: [u8; 4],
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = format!("GET /favicon.ico HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..n {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            continue;
        };
        if socket.bind(std::net::SocketAddr::from((from, 0))).is_err() {
            continue;
        }
        let Ok(mut tcp) = socket.connect(addr).await else {
            continue;
        };
        if tcp.write_all(ask.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 256];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(500), tcp.read(&mut buf)).await;
        if matches!(read, Ok(Ok(k)) if k > 0) {
            held.push(tcp);
        }
    }
    held
}

/// How many of `held` the server has not closed (each looked at for a
/// moment, all at once).
async fn still_open(held: &mut [tokio::net::TcpStream]) -> usize {
    let wait = std::time::Duration::from_millis(300);
    let looks = held.iter_mut().map(|t| closed_by_server(t, wait));
    futures_util::future::join_all(looks)
        .await
        .into_iter()
        .filter(|closed| !closed)
        .count()
}

/// Whether the peer has closed `tcp` (reads to the end within `wait`).
async fn closed_by_server(tcp: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Red-team finding (issue 23): idle keep-alive connections from many
/// addresses held every slot for the whole idle timeout (75 s) and new
/// staff connections were refused. Under pressure the idle timeout now
/// shrinks to 15 s; a display's WebSocket (heartbeat every 10 s) stays.
#[test]
fn idle_keepalives_from_many_addresses_are_shed_when_slots_run_short() {
    let s = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            "60",
            "--max-connections-per-address",
            "20",
        ],
    );
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // A public status socket first: it must survive the shedding.
    let (mut display, upgraded) = rt.block_on(websocket_flood(addr, [127, 0, 0, 40], 1));
    assert_eq!(upgraded, 1, "the status socket is served");
    let mut held = Vec::new();
    for last in 41..=44u8 {
        held.extend(rt.block_on(idle_keepalives(addr, [127, 0, 0, last], 20)));
    }
    // Strangers fill at most their share (three quarters of 60: the rest
    // is kept for known addresses), and so put the server under pressure.
    assert!(
        held.len() >= 40,
        "the idle connections fill the server: {}",
        held.len()
    );
    // After the pressed idle timeout (15 s) and a margin, the server has
    // shed idle keep-alives until it is out of pressure (under three
    // quarters of its 60 slots: at most 44 taken).
    std::thread::sleep(std::time::Duration::from_secs(25));
    let mut closed = 0;
    for tcp in &mut held {
        if rt.block_on(closed_by_server(tcp, std::time::Duration::from_millis(50))) {
            closed += 1;
        }
    }
    let open = held.len() + 1 - closed;
    assert!(
        open <= 44 && closed > 0,
        "idle keep-alives were not shed: {open} of 60 slots still taken"
    );
    // A new staff connection is answered.
    let r = Server::client()
        .get(s.url("/api/me"))
        .send()
        .expect("a new connection is taken");
    assert_ne!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The status socket had heartbeats all along and is still open.
    let socket = display.first_mut().expect("socket");
    assert!(
        !rt.block_on(closed_by_server(socket, std::time::Duration::from_secs(1))),
        "the status socket was shed with the idle keep-alives"
    );
}

/// The display's device cookie (`name=value`) from its enrolment link.
fn display_cookie(s: &Server) -> String {
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = c.post(&s.display_enrol).send().expect("enrol");
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| !v.starts_with("madoguchi_csrf"))
        .expect("device cookie")
        .to_string();
    set.split(';').next().expect("pair").to_string()
}

/// A WebSocket on `topic` carrying `cookie`.
async fn socket_with(
    s: &Server,
    topic: &str,
    cookie: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = s.base.replacen("http://", "ws://", 1) + "/ws?topic=" + topic;
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("cookie header"));
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Red-team findings (issue 23): a stolen device token held every
/// connection slot with WebSockets (only anonymous sockets were capped),
/// and a disabled display kept its open socket and its staff-only board.
/// Now one account or device holds a few sockets, and an open socket is
/// closed within a heartbeat of its device being disabled.
#[test]
fn a_device_holds_a_few_sockets_and_loses_them_when_disabled() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = Server::start();
    let (admin, csrf) = s.admin();
    let cookie = display_cookie(&s);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..20 {
        match rt.block_on(socket_with(&s, "board", &cookie)) {
            Ok(ws) => open.push(ws),
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(open.len(), 8, "one device holds eight sockets at most");
    assert_eq!(refused.len(), 12);
    // The refused display is told about connections, with a wait: the old
    // answer spoke of tickets (「発券が続いたため…」), found while fixing
    // the displays bench.
    let Some(tokio_tungstenite::tungstenite::Error::Http(answer)) = refused.pop() else {
        panic!("not an HTTP refusal");
    };
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    let body: Value =
        serde_json::from_slice(answer.body().as_deref().unwrap_or_default()).expect("our JSON");
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    let ja = body["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(ja.contains("接続") && !ja.contains("発券"), "{ja}");
    // Staff are still answered.
    assert_eq!(
        admin.get(s.url("/api/me")).send().expect("me").status(),
        StatusCode::OK
    );
    let r = admin
        .post(s.url("/api/devices/display-1/disabled"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"disabled": true}))
        .send()
        .expect("disable");
    assert_eq!(r.status(), StatusCode::OK);
    // Within a heartbeat (10 s) and a margin, each socket is closed by the
    // server with a policy close; no board arrives after it.
    let mut ws = open.pop().expect("socket");
    let closed = rt.block_on(async {
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(until, ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(f))))) => return u16::from(f.code) == 1008,
                Ok(Some(Ok(_))) => continue,
                _ => return false,
            }
        }
    });
    assert!(closed, "the disabled display's socket stayed open");
    drop(open);
}

/// Red-team finding (issue 23): every wrong `/enrol/<code>` rewrote the
/// enrolment file with an fsync and woke the standby link, and a flood of
/// them made staff commands wait on the disk. A wrong code now writes
/// nothing and counts against its address, which soon waits.
#[test]
fn wrong_enrolment_codes_write_nothing_and_are_throttled() {
    let s = Server::start();
    let file = s.data_dir().join("data").join("enrolments.json");
    let before = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("enrolments file");
    let c = client_from([127, 0, 0, 77]);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let r = c
            .get(s.url(&format!("/enrol/{i:032x}")))
            .send()
            .expect("enrol");
        statuses.push(r.status());
    }
    assert_eq!(statuses[0], StatusCode::NOT_FOUND);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "one address kept guessing: {statuses:?}"
    );
    // The refusal speaks of enrolment codes, not of sign-ins (red-team
    // finding: it said 「ログインの失敗が続いたため…」).
    let r = c
        .get(s.url("/enrol/00000000000000000000000000000000"))
        .header("Accept", "application/json")
        .send()
        .expect("enrol");
    let v = assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "too_many_enrolments");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    let en = v["error"]["message_en"].as_str().unwrap_or_default();
    assert!(
        ja.contains("登録コード") && !ja.contains("ログイン"),
        "{ja}"
    );
    assert!(en.contains("enrolment") && !en.contains("sign-in"), "{en}");
    let after = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("enrolments file");
    assert_eq!(before, after, "a wrong code rewrote the enrolment file");
    // A right link from another machine still enrols.
    let r = client_from([127, 0, 0, 78])
        .post(&s.display_enrol)
        .send()
        .expect("enrol");
    assert!(r.status().is_redirection() || r.status().is_success());
}

/// Red-team finding (issue 23): retries of one request used up the kiosk's
/// issuing budget. A retry of a request already answered gets its ticket
/// again and takes no token; new requests still meet the limit.
#[test]
fn retries_of_an_answered_request_take_no_issuing_budget() {
    let s = Server::start();
    let (admin, csrf) = s.admin();
    cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let (kiosk, kcsrf) = enrolled_kiosk(&s);
    let issue = |id: &str| {
        kiosk
            .post(s.url("/api/commands"))
            .header("X-CSRF-Token", &kcsrf)
            .json(&json!({"command": "issue_ticket", "category": "idou", "request_id": id}))
            .send()
            .expect("issue")
    };
    let first: Value = issue("press-1").json().expect("json");
    let n = first["ticket"].as_u64().expect("ticket");
    for _ in 0..30 {
        let r = issue("press-1");
        assert_eq!(r.status(), StatusCode::OK, "a retry was limited");
        let v: Value = r.json().expect("json");
        assert_eq!(v["ticket"].as_u64(), Some(n));
    }
    // The budget is still there for new presses, and still ends.
    let mut issued = 0;
    for i in 2..40 {
        if issue(&format!("press-{i}")).status() == StatusCode::OK {
            issued += 1;
        }
    }
    assert!((8..=12).contains(&issued), "new presses issued {issued}");
}

/// A raw client from `from` that sends `first`, then `then` one byte every
/// `every` (never, when `then` is empty), and returns how long the server
/// took to close the connection (`None`: still open after `give_up`).
async fn dribbling_client(
    addr: std::net::SocketAddr,
    from: [u8; 4],
    first: String,
    then: &'static [u8],
    every: std::time::Duration,
    give_up: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncWriteExt;
    let t0 = std::time::Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(std::net::SocketAddr::from((from, 0))).ok()?;
    let mut tcp = socket.connect(addr).await.ok()?;
    tcp.write_all(first.as_bytes()).await.ok()?;
    let mut left = then
        .iter()
        .cycle()
        .take(if then.is_empty() { 0 } else { 10_000 });
    while t0.elapsed() < give_up {
        if closed_by_server(&mut tcp, every).await {
            return Some(t0.elapsed());
        }
        if let Some(b) = left.next() {
            if tcp.write_all(&[*b]).await.is_err() {
                return Some(t0.elapsed());
            }
        }
    }
    None
}

/// Red-team finding F10 (issue 23): a request head or body that stopped
/// arriving half-way held its connection for the idle timeout (75 s), not
/// the head deadline (15 s). Heads are now hyper's to time (a head begun
/// must be in within the deadline, trickling or stalled); bodies have a
/// deadline of their own. Staff keep working and nothing is recorded.
#[test]
fn stalled_and_dribbling_heads_and_bodies_are_closed_at_their_deadline() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let before = seq(&c, &s);
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let head = format!("POST /api/login HTTP/1.1\r\nHost: {addr}\r\n");
    let body_head = format!(
        "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{\"username\": \"admin\", "
    );
    let second = std::time::Duration::from_secs(1);
    let give_up = std::time::Duration::from_secs(60);
    let clients = [
        ("stalled head", head.clone(), &b""[..]),
        ("dribbling head", head, &b"X-Slow: a\r\n"[..]),
        ("stalled body", body_head.clone(), &b""[..]),
        ("dribbling body", body_head, &b" "[..]),
    ];
    let running: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (what, first, then))| {
            let from = [127, 0, 0, 90 + i as u8];
            (
                what,
                rt.spawn(dribbling_client(addr, from, first, then, second, give_up)),
            )
        })
        .collect();
    // Meanwhile the staff are answered.
    std::thread::sleep(std::time::Duration::from_secs(2));
    crate::server::open_today(&c, &s, &csrf, &[10]);
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let after_staff = seq(&c, &s);
    for (what, h) in running {
        let closed = rt.block_on(h).expect("client");
        eprintln!("{what}: closed after {closed:?}");
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after 60 s"));
        assert!(
            closed < std::time::Duration::from_secs(40),
            "{what}: held {closed:?}, past the 15 s deadline"
        );
    }
    // The slow clients recorded nothing (no sign-in, no audit record).
    assert_eq!(seq(&c, &s), after_staff);
    assert!(after_staff > before);
    let r = c.get(s.url("/api/me")).send().expect("me");
    assert_eq!(r.status(), StatusCode::OK);
}

/// A client from `ip` that opens a new connection for every request (so a
/// connection kept from before cannot hide a refused one).
fn unpooled_client_from(ip: [u8; 4]) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(Some(std::net::IpAddr::from(ip)))
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Red-team finding F2 (issue 23): keep-alive clients from many addresses,
/// each asking something every few seconds (so no idle timeout sheds them),
/// filled the total connection cap and staff stations and kiosks could
/// not connect. A quarter of the slots is kept for addresses a valid
/// session or device token came from lately: the flood fills only the
/// rest, and a staff command and a kiosk's ticket are still answered, on
/// new connections, while it holds.
#[test]
fn a_stranger_flood_from_many_addresses_leaves_the_reserve_to_staff_and_kiosks() {
    let s = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            "80",
            "--max-connections-per-address",
            "20",
        ],
    );
    let (admin, csrf) = s.admin();
    create_user(
        &s,
        &admin,
        &csrf,
        "yamada",
        "staff",
        "correct horse battery",
    );
    crate::server::open_today(&admin, &s, &csrf, &[10]);
    // A staff station and a kiosk on their own addresses, known by their
    // credentials.
    let staff = unpooled_client_from([127, 0, 0, 31]);
    let r = staff
        .post(s.url("/api/login"))
        .json(&json!({"username": "yamada", "password": "correct horse battery"}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    let scsrf = r.json::<Value>().expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    let kiosk = unpooled_client_from([127, 0, 0, 30]);
    kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    let kcsrf = kiosk
        .get(s.url("/api/me"))
        .send()
        .expect("me")
        .json::<Value>()
        .expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    let r = staff.get(s.url("/api/me")).send().expect("me");
    assert_eq!(r.status(), StatusCode::OK, "the station is known");
    let before = seq(&admin, &s);
    // The flood: four strangers' addresses, twenty connections each — as
    // many as the whole cap.
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut held = Vec::new();
    for last in 50..=53u8 {
        held.extend(rt.block_on(idle_keepalives(addr, [127, 0, 0, last], 20)));
    }
    eprintln!("strangers hold {} of 80 slots", held.len());
    assert!(
        (50..=60).contains(&held.len()),
        "strangers fill their share (60 of 80) and no more: {}",
        held.len()
    );
    // Another stranger is answered: it takes the place of the oldest
    // connection of the address holding most of the newcomers' share
    // (replay red team N3), and a stranger of the flood gets nothing more.
    let r = unpooled_client_from([127, 0, 0, 60])
        .get(s.url("/favicon.ico"))
        .send();
    assert!(
        r.is_ok(),
        "a never-seen machine is answered while the flood holds: {r:?}"
    );
    let r = unpooled_client_from([127, 0, 0, 50])
        .get(s.url("/favicon.ico"))
        .send();
    assert!(r.is_err(), "the flood's own addresses get no more room");
    let live = rt.block_on(still_open(&mut held));
    assert!(
        live < 60,
        "a flood connection gave way to the newcomer: {live} of 60 still open"
    );
    // The staff station and the kiosk connect and are answered.
    let r = staff
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &scsrf)
        .json(&json!({"command": "issue_ticket", "category": "idou"}))
        .send()
        .expect("the staff station connects during the flood");
    assert_eq!(r.status(), StatusCode::OK);
    let r = kiosk
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &kcsrf)
        .json(&json!({"command": "issue_ticket", "category": "idou"}))
        .send()
        .expect("the kiosk connects during the flood");
    assert_eq!(r.status(), StatusCode::OK);
    let r = staff
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &scsrf)
        .json(&json!({"command": "call_next", "counter": 10}))
        .send()
        .expect("staff");
    assert_eq!(r.status(), StatusCode::OK);
    // Only the staff's and the kiosk's three commands were recorded.
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(seq(&admin, &s), before + 3);
}

/// An enrolled kiosk named `name` (made by the admin), its client and CSRF
/// token.
fn new_kiosk(s: &Server, admin: &Client, csrf: &str, name: &str) -> (Client, String) {
    let r = admin
        .post(s.url("/api/devices"))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"name": name, "role": "kiosk"}))
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
    (kiosk, kcsrf)
}

/// Outside tester insider-rt5 F3 and F7: the one kiosk that offers a
/// category goes to its last number (a one-kiosk office was cut off at
/// half on a busy day), and once none is left the kiosk is told the true
/// reason, `numbers_exhausted`, not that numbers are "nearly used up".
#[test]
fn the_only_kiosk_of_a_category_goes_to_its_last_number() {
    let config = include_str!("../core/src/config/default-office.toml").replace(
        "numbers = { from = 1001, to = 1999 }",
        "numbers = { from = 1001, to = 1008 }",
    );
    assert!(config.contains("to = 1008"), "the category was narrowed");
    let s = Server::start_with(Some(&config));
    let (admin, csrf) = s.admin();
    crate::server::open_today(&admin, &s, &csrf, &[]);
    let (kiosk, kcsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-door");
    let issue = || {
        kiosk
            .post(s.url("/api/commands"))
            .header("X-CSRF-Token", &kcsrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("issue")
    };
    let issued: Vec<u64> = (0..8)
        .map(|i| {
            let r = issue();
            assert_eq!(r.status(), StatusCode::OK, "ticket {i}");
            r.json::<Value>().expect("json")["ticket"]
                .as_u64()
                .expect("n")
        })
        .collect();
    assert_eq!(issued, (1001..=1008).collect::<Vec<u64>>());
    assert_ours(issue(), StatusCode::CONFLICT, "numbers_exhausted");
}

/// Red-team finding F11 (issue 23): a stolen kiosk token, held to the
/// per-kiosk rate, still emptied a category in about an hour. One device
/// now takes at most what it leaves to the others: hammering from one
/// token is refused in Japanese, burns no number, and another kiosk still
/// gets tickets — never `numbers_exhausted`.
#[test]
fn one_kiosk_token_cannot_bring_another_kiosk_to_numbers_exhausted() {
    // A category of 16 numbers, so that the share is reached within the
    // rate limit's burst.
    let config = include_str!("../core/src/config/default-office.toml").replace(
        "numbers = { from = 1001, to = 1999 }",
        "numbers = { from = 1001, to = 1016 }",
    );
    assert!(config.contains("to = 1016"), "the category was narrowed");
    let s = Server::start_with(Some(&config));
    let (admin, csrf) = s.admin();
    crate::server::open_today(&admin, &s, &csrf, &[]);
    let (thief, tcsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-stolen");
    let (other, ocsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-east");
    let issue = |c: &Client, csrf: &str| {
        c.post(s.url("/api/commands"))
            .header("X-CSRF-Token", csrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("issue")
    };
    let mut issued = Vec::new();
    for _ in 0..30 {
        let r = issue(&thief, &tcsrf);
        if r.status() != StatusCode::OK {
            let v = assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "device_share_used");
            let (ja, en) = (
                v["error"]["message_ja"].as_str().unwrap_or_default(),
                v["error"]["message_en"].as_str().unwrap_or_default(),
            );
            assert!(
                ja.contains("発券機") && ja.contains("職員") && ja.contains("残りわずか"),
                "{ja}"
            );
            // It blames no other kiosk.
            assert!(!ja.contains("ほかの発券機"), "{ja}");
            assert!(
                en.contains("nearly used up") && !en.contains("other kiosks"),
                "{en}"
            );
            break;
        }
        issued.push(
            r.json::<Value>().expect("json")["ticket"]
                .as_u64()
                .expect("n"),
        );
    }
    assert_eq!(issued.len(), 8, "one device takes at most half: {issued:?}");
    // Refusals record nothing and burn no number.
    let before = seq(&admin, &s);
    for _ in 0..5 {
        assert_eq!(
            issue(&thief, &tcsrf).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(seq(&admin, &s), before);
    // The other kiosk carries on where the thief stopped.
    let r = issue(&other, &ocsrf);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().expect("json")["ticket"], 1009);
    for _ in 0..3 {
        let r = issue(&other, &ocsrf);
        assert_eq!(r.status(), StatusCode::OK, "never numbers_exhausted");
    }
    // Staff may still issue what is left, to the last number.
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], 1013);
}

/// Red-team finding F9 (issue 23): failed sign-ins from many addresses
/// wrote one audit record each, without bound. Per account and window the
/// first few are recorded one by one and the rest as one summary (count,
/// addresses); every checked failure is still accounted for, and the
/// lock-out works as before.
#[test]
fn a_thousand_failed_sign_ins_write_a_bounded_number_of_audit_records() {
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_SIGNIN_AUDIT_WINDOW_SECS", "20")],
    );
    let url = s.url("/api/login");
    let t0 = std::time::Instant::now();
    // 200 tries at the admin from 40 addresses (five each, up to the
    // per-address lock) and 800 at invented names from 200 more.
    let threads: Vec<_> = (0..16u8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut answers = std::collections::BTreeMap::<u16, u32>::new();
                for a in (t..240).step_by(16) {
                    let c = client_from([127, 0, 3 + a / 200, a % 200]);
                    let tries: Vec<String> = if a < 40 {
                        vec!["admin".to_string(); 5]
                    } else {
                        (0..4).map(|k| format!("nobody{a}-{k}")).collect()
                    };
                    for name in tries {
                        let r = c
                            .post(&url)
                            .json(&json!({"username": name, "password": "wrong"}))
                            .send()
                            .expect("login");
                        *answers.entry(r.status().as_u16()).or_default() += 1;
                    }
                }
                answers
            })
        })
        .collect();
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for t in threads {
        for (k, v) in t.join().expect("thread") {
            *answers.entry(k).or_default() += v;
        }
    }
    let flood = t0.elapsed();
    let tries: u32 = answers.values().sum();
    assert_eq!(tries, 1000);
    let checked = answers.get(&401).copied().unwrap_or(0);
    eprintln!("1,000 failed sign-ins in {flood:?}: {answers:?}");
    // Some are turned away as busy (503, hash_gate.rs: not checked, not
    // recorded, a strike against the address).
    assert!(checked >= 400, "most were checked and failed: {answers:?}");
    // The lock-out still works: an address that fails five times waits,
    // even with the right password then...
    let late = client_from([127, 0, 9, 1]);
    for _ in 0..5 {
        let r = late
            .post(&url)
            .json(&json!({"username": "admin", "password": "wrong"}))
            .send()
            .expect("login");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = late
        .post(&url)
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .expect("login");
    assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    // ...while the admin at the desk signs in.
    let (admin, _) = s.admin();
    // After the window, its summaries are written.
    std::thread::sleep(std::time::Duration::from_secs(28));
    let audit = audit_text(&s, &admin);
    let failures: Vec<&str> = audit
        .lines()
        // The events are JSON text inside the JSON line.
        .filter(|l| l.contains(r#"\"type\":\"login\""#) && l.contains(r#"\"ok\":false"#))
        .collect();
    let summed: u32 = failures
        .iter()
        .filter_map(|l| {
            let after = l.split('×').nth(1)?;
            after
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .ok()
        })
        .sum();
    let summaries = failures.iter().filter(|l| l.contains('×')).count();
    let one_by_one = failures.len() - summaries;
    eprintln!(
        "audit: {} failure records ({one_by_one} one by one, {summaries} summaries of {summed})",
        failures.len()
    );
    // One window per 20 s: (16 names + `*`) × (5 + 1) records each.
    let windows = flood.as_secs() as usize / 20 + 2;
    assert!(
        failures.len() <= windows * 17 * 6 && failures.len() < 400,
        "{} records for 1,000 failures",
        failures.len()
    );
    assert!(summaries >= 1, "the rest is summed up");
    // Nothing is lost: each refusal of a lock is at most one more record.
    let refused = answers.get(&429).copied().unwrap_or(0);
    let accounted = one_by_one as u32 + summed;
    let checked = checked + 5;
    assert!(
        accounted >= checked && accounted <= checked + refused + 1,
        "{accounted} accounted for {checked} checked failures"
    );
}

/// Red-team finding (issue 23): the statistics report took any content
/// type; like sign-in it now takes JSON only (415 otherwise), so a
/// cross-site form cannot make one run.
#[test]
fn the_statistics_report_takes_only_json() {
    let s = Server::start();
    let (admin, csrf) = s.admin();
    let body = format!(
        "{{\"from\": \"{}\", \"to\": \"{}\", \"by\": \"day\", \"format\": \"csv\"}}",
        today(),
        today()
    );
    for kind in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut r = admin
            .post(s.url("/api/statistics/report"))
            .header("X-CSRF-Token", &csrf)
            .body(body.clone());
        if !kind.is_empty() {
            r = r.header("Content-Type", kind);
        }
        let r = r.send().expect("report");
        assert_ours(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json");
    }
    let r = admin
        .post(s.url("/api/statistics/report"))
        .header("X-CSRF-Token", &csrf)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .expect("report");
    assert_eq!(r.status(), StatusCode::OK, "JSON still makes the report");
}

/// Red-team finding F1 (issue 23): one display token, shown once from each
/// of six LAN addresses, made all six "known" for a week; their keep-alive
/// connections then took the reserve too — 767 of 768 slots — so the kiosk
/// and staff were refused and a staff PC on a new address could not reach
/// `/login`; disabling the display changed nothing. Now a credential
/// vouches for a few addresses (a display two), each holds in the reserve
/// only what a display needs, a small share is kept for never-seen
/// addresses, and disabling the display forgets its addresses and ends
/// its reserve connections at their next request.
#[test]
fn a_stolen_display_token_from_six_addresses_cannot_take_the_reserve() {
    let s = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            "96",
            "--max-connections-per-address",
            "16",
        ],
    );
    let (admin, csrf) = s.admin();
    create_user(
        &s,
        &admin,
        &csrf,
        "yamada",
        "staff",
        "correct horse battery",
    );
    crate::server::open_today(&admin, &s, &csrf, &[10]);
    let staff = unpooled_client_from([127, 0, 0, 31]);
    let r = staff
        .post(s.url("/api/login"))
        .json(&json!({"username": "yamada", "password": "correct horse battery"}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    let r = staff.get(s.url("/api/me")).send().expect("me");
    assert_eq!(r.status(), StatusCode::OK, "the station is known");
    let kiosk = unpooled_client_from([127, 0, 0, 30]);
    kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    let kcsrf = kiosk
        .get(s.url("/api/me"))
        .send()
        .expect("me")
        .json::<Value>()
        .expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    // The thief shows the display's cookie once from each address.
    let cookie = display_cookie(&s);
    let shown = |last: u8| {
        unpooled_client_from([127, 0, 0, last])
            .get(s.url("/api/me"))
            .header("cookie", &cookie)
            .send()
            .expect("me")
            .status()
    };
    for last in 2..=7u8 {
        assert_eq!(shown(last), StatusCode::OK, "the token is valid");
    }
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // 96 slots: an open pool of 66, a reserve of 24, 6 for newcomers. Six
    // addresses of 16 connections would take them all.
    let flood = || {
        (2..=7u8)
            .map(|last| rt.block_on(idle_keepalives(addr, [127, 0, 0, last], 16)))
            .collect::<Vec<_>>()
    };
    let issue = || {
        kiosk
            .post(s.url("/api/commands"))
            .header("X-CSRF-Token", &kcsrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
    };
    let login_page = |last: u8| {
        unpooled_client_from([127, 0, 0, last])
            .get(s.url("/login"))
            .send()
            .map(|r| r.status())
    };
    let mut held = flood();
    let n: usize = held.iter().map(Vec::len).sum();
    eprintln!("with the token the flood holds {n} of 96 slots");
    assert!(
        n <= 66 + 16,
        "the flood holds the open pool and one display's worth of the reserve (two addresses of 8): {n}"
    );
    // The kiosk, the staff station and a never-seen machine get through.
    let r = issue().expect("the kiosk connects during the flood");
    assert_eq!(r.status(), StatusCode::OK);
    let r = staff
        .get(s.url("/api/me"))
        .send()
        .expect("the staff station connects during the flood");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        login_page(70).expect("a new machine reaches the sign-in page"),
        StatusCode::OK
    );
    // The display is disabled: its addresses are forgotten, and its
    // reserve connection (the last address's) ends at its next request
    // while a connection of the open pool is still answered.
    let r = admin
        .post(s.url("/api/devices/display-1/disabled"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"disabled": true}))
        .send()
        .expect("disable");
    assert_eq!(r.status(), StatusCode::OK);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ask = format!("GET /favicon.ico HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut reserved = held[5]
        .pop()
        .expect("a reserve connection of the last address");
    let mut open = held[0].pop().expect("an open-pool connection");
    let (reserved_closed, open_closed) = rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let _ = reserved.write_all(ask.as_bytes()).await;
        let _ = open.write_all(ask.as_bytes()).await;
        let wait = std::time::Duration::from_secs(2);
        (
            closed_by_server(&mut reserved, wait).await,
            closed_by_server(&mut open, wait).await,
        )
    });
    assert!(
        reserved_closed,
        "the revoked display's reserve connection stayed"
    );
    assert!(!open_closed, "an open-pool connection is not the display's");
    drop((held, reserved, open));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        shown(6),
        StatusCode::UNAUTHORIZED,
        "the disabled token vouches for nothing"
    );
    // The same flood again: no address of it is known any more. (Its
    // later addresses take newcomers' places from its earlier ones, so
    // only the connections still open are counted.)
    let mut held: Vec<tokio::net::TcpStream> = flood().into_iter().flatten().collect();
    let n = rt.block_on(still_open(&mut held));
    eprintln!("after disabling the display the flood holds {n} of 96 slots");
    assert!(
        n <= 66 + 6,
        "the open pool and the newcomers' share at most: {n}"
    );
    let r = issue().expect("the kiosk connects during the second flood");
    assert_eq!(r.status(), StatusCode::OK);
    let r = staff.get(s.url("/api/me")).send().expect("staff");
    assert_eq!(r.status(), StatusCode::OK);
    // The flood's newcomer connections last ten seconds: then a new
    // machine reaches the sign-in page again.
    std::thread::sleep(std::time::Duration::from_secs(11));
    assert_eq!(
        login_page(71).expect("a new machine reaches the sign-in page"),
        StatusCode::OK
    );
    drop(held);
}

/// Red-team finding F3 (issue 23): one staff session issued every number
/// of a category in 30 s (982 tickets, then `numbers_exhausted`), and the
/// kiosk that had issued 13 was then told the rest was "kept for the other
/// kiosks". A person issuing is limited too: a few a minute and, like a
/// device, at most what they leave to the others; the kiosk's refusal says
/// the category's numbers are nearly used up. Administrators are not
/// limited.
#[test]
fn one_staff_account_cannot_use_up_a_category_and_the_kiosk_is_told_why() {
    let config = include_str!("../core/src/config/default-office.toml").replace(
        "numbers = { from = 1001, to = 1999 }",
        "numbers = { from = 1001, to = 1008 }",
    );
    assert!(config.contains("to = 1008"), "the category was narrowed");
    let s = Server::start_with(Some(&config));
    let (admin, csrf) = s.admin();
    crate::server::open_today(&admin, &s, &csrf, &[]);
    create_user(
        &s,
        &admin,
        &csrf,
        "yamada",
        "staff",
        "correct horse battery",
    );
    create_user(&s, &admin, &csrf, "sato", "staff", "sato's long password");
    let (yamada, ycsrf) = sign_in(&s, "yamada", "correct horse battery");
    let issue = |c: &Client, csrf: &str, category: &str| {
        c.post(s.url("/api/commands"))
            .header("X-CSRF-Token", csrf)
            .json(&json!({"command": "issue_ticket", "category": category}))
            .send()
            .expect("issue")
    };
    // The share: half of the eight numbers, then a refusal that says so.
    let mut issued = Vec::new();
    let refusal = loop {
        let r = issue(&yamada, &ycsrf, "idou");
        if r.status() != StatusCode::OK {
            break assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "account_share_used");
        }
        issued.push(
            r.json::<Value>().expect("json")["ticket"]
                .as_u64()
                .expect("n"),
        );
        assert!(issued.len() <= 8, "one account issued the whole category");
    };
    assert_eq!(issued, [1001, 1002, 1003, 1004]);
    let ja = refusal["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(ja.contains("アカウント") && ja.contains("管理者"), "{ja}");
    let before = seq(&admin, &s);
    assert_eq!(
        issue(&yamada, &ycsrf, "idou").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(seq(&admin, &s), before, "a refusal records nothing");
    // The kiosk took less than the account: near the end it goes on (the
    // issuer that took more than twice another's is refused first,
    // limits.rs), so the visitors at the kiosk still get numbers.
    let (kiosk, kcsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-north");
    for want in [1005, 1006, 1007] {
        let r = issue(&kiosk, &kcsrf, "idou");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().expect("json")["ticket"], want);
    }
    // An administrator is not limited.
    let (st, v) = cmd(
        &admin,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], 1008);
    // The rate: a few at once, then a wait, in another category.
    let (sato, scsrf) = sign_in(&s, "sato", "sato's long password");
    for _ in 0..5 {
        assert_eq!(issue(&sato, &scsrf, "koseki").status(), StatusCode::OK);
    }
    let r = issue(&sato, &scsrf, "koseki");
    assert!(r.headers().get("retry-after").is_some());
    let v = assert_ours(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        ja.contains("秒") && ja.contains("番号は使われていません"),
        "{ja}"
    );
}

/// Red-team finding F11, the class "one device takes what belongs to
/// everyone" (issue 23, R11): a stolen kiosk token kept to the rate limit
/// still took half a category's numbers within the hour. A kiosk that
/// issues far above what people at a kiosk can (here more than 6 within
/// ten minutes; 80 by default, `limits.rs` says why) is held: a Japanese
/// refusal that burns no number, a fault on /admin, an audit record under
/// its name; another kiosk issues on; an administrator releases it with
/// one action (audited), and it issues again from the next number.
#[test]
fn a_kiosk_issuing_far_above_a_person_is_held_until_an_admin_releases_it() {
    let mut s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_KIOSK_HOLD", "6/600")],
    );
    let (admin, csrf) = s.admin();
    crate::server::open_today(&admin, &s, &csrf, &[]);
    let (thief, tcsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-stolen");
    let (other, ocsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-east");
    let commands = s.url("/api/commands");
    let issue = |c: &Client, csrf: &str| {
        c.post(&commands)
            .header("X-CSRF-Token", csrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("issue")
    };
    let ticket = |r: reqwest::blocking::Response| {
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().expect("json")["ticket"]
            .as_u64()
            .expect("n")
    };
    let issued: Vec<u64> = (0..6).map(|_| ticket(issue(&thief, &tcsrf))).collect();
    assert_eq!(issued, (1001..=1006).collect::<Vec<_>>());
    // The seventh within the window holds the kiosk (within the rate
    // limit's burst of 10: the old code issued it).
    let v = assert_ours(issue(&thief, &tcsrf), StatusCode::LOCKED, "device_held");
    let ja = v["error"]["message_ja"].as_str().unwrap_or_default();
    assert!(
        ja.contains("発券を止めています") && ja.contains("番号は使われていません"),
        "{ja}"
    );
    // Held it stays: refusals record nothing and burn no number.
    let before = seq(&admin, &s);
    for _ in 0..5 {
        assert_ours(issue(&thief, &tcsrf), StatusCode::LOCKED, "device_held");
    }
    assert_eq!(seq(&admin, &s), before, "a refusal records nothing");
    // Another kiosk carries on from the next number.
    assert_eq!(ticket(issue(&other, &ocsrf)), 1007);
    // The administrator sees it: a fault, the device's state, the button.
    let page = admin
        .get(s.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        page.contains("発券機の発券停止")
            && page.contains("発券機「kiosk-stolen」の発券を止めました"),
        "the fault is on /admin"
    );
    let devices = admin
        .get(s.url("/admin/devices"))
        .send()
        .expect("devices")
        .text()
        .expect("html");
    assert!(
        devices.contains(r#"data-device="kiosk-stolen" data-state="held""#)
            && devices.contains(r#"data-release-device="kiosk-stolen""#),
        "the device list offers 発券を再開"
    );
    assert!(!devices.contains(r#"data-release-device="kiosk-east""#));
    // A restart releases nothing: the hold is kept in the data folder.
    s.restart();
    let (admin, csrf) = s.admin();
    assert_ours(issue(&thief, &tcsrf), StatusCode::LOCKED, "device_held");
    // Only an administrator releases it (the kiosk itself cannot).
    let r = thief
        .post(s.url("/api/devices/kiosk-stolen/release"))
        .header("X-CSRF-Token", &tcsrf)
        .json(&json!({}))
        .send()
        .expect("release");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_ours(issue(&thief, &tcsrf), StatusCode::LOCKED, "device_held");
    let release = |name: &str| {
        admin
            .post(s.url(&format!("/api/devices/{name}/release")))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({}))
            .send()
            .expect("release")
    };
    assert_eq!(release("kiosk-stolen").status(), StatusCode::OK);
    assert_ours(release("kiosk-stolen"), StatusCode::NOT_FOUND, "not_found");
    assert_ours(release("kiosk-east"), StatusCode::NOT_FOUND, "not_found");
    // Released, it issues again, from the next number: none was lost.
    assert_eq!(ticket(issue(&thief, &tcsrf)), 1008);
    // Both the hold and the release are in the audit log, the hold found
    // under the kiosk's name.
    let audit = audit_text(&s, &admin);
    let held: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("issuing-held:6/600"))
        .collect();
    assert_eq!(held.len(), 1, "one record for the hold: {held:?}");
    assert!(held[0].contains("kiosk-stolen"));
    let released: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("issuing-released"))
        .collect();
    assert_eq!(released.len(), 1, "{released:?}");
    assert!(released[0].contains("admin"));
    let page = admin
        .get(s.url("/audit?staff=kiosk-stolen"))
        .send()
        .expect("audit")
        .text()
        .expect("html");
    assert!(
        page.contains("発券機「kiosk-stolen」の発券を止めました"),
        "the audit page finds the hold under the kiosk"
    );
}

/// Outside tester insider-rt5 F8: a held kiosk, deleted and enrolled again
/// under its name (kiosk rules are by name), starts free; the hold went
/// with the deleted device.
#[test]
fn a_held_kiosk_deleted_and_enrolled_again_starts_free() {
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_KIOSK_HOLD", "3/600")],
    );
    let (admin, csrf) = s.admin();
    crate::server::open_today(&admin, &s, &csrf, &[]);
    let issue = |c: &Client, csrf: &str| {
        c.post(s.url("/api/commands"))
            .header("X-CSRF-Token", csrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("issue")
            .status()
    };
    let (stolen, scsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-door");
    let first_refusal = (0..6)
        .map(|_| issue(&stolen, &scsrf))
        .find(|st| *st != StatusCode::OK);
    assert_eq!(first_refusal, Some(StatusCode::LOCKED), "held");
    let holds_file = s.data_dir().join("data").join("issuing-holds.json");
    let holds = std::fs::read_to_string(&holds_file).expect("the holds file");
    assert!(holds.contains("kiosk-door"), "{holds}");
    let r = admin
        .delete(s.url("/api/devices/kiosk-door"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    let (again, acsrf) = new_kiosk(&s, &admin, &csrf, "kiosk-door");
    assert_eq!(
        issue(&again, &acsrf),
        StatusCode::OK,
        "the new kiosk issues"
    );
    let holds = std::fs::read_to_string(&holds_file).expect("the holds file");
    assert!(!holds.contains("kiosk-door"), "{holds}");
}

/// The bytes of every file in `dir`.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Red-team finding F9, the rest (issue 23, R11): the failures counted
/// into a window's summary were lost when the server stopped before the
/// window ended, and the summary named neither the addresses nor the
/// invented names. Now a flood from 60 addresses writes a bounded number
/// of records — a few one by one per account and per address, then one
/// summary per account, 「ログイン失敗 ×N（… か所から: 127.0.6.…）」 — the
/// summaries are written when the server stops, every failure is
/// accounted for after the restart, and `?staff=admin` finds the summary.
#[test]
fn a_flood_of_failed_sign_ins_is_summed_up_with_its_addresses_and_survives_a_stop() {
    let mut s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_SIGNIN_AUDIT_WINDOW_SECS", "3600")],
    );
    let log = s.data_dir().join("data").join("log");
    let url = s.url("/api/login");
    let _ = s.admin();
    // What one failure recorded one by one costs on disk.
    let start = folder_bytes(&log);
    let probe = client_from([127, 0, 7, 1]);
    let r = probe
        .post(&url)
        .json(&json!({"username": "probe", "password": "wrong"}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let one = folder_bytes(&log) - start;
    assert!(one > 0, "a failure is recorded");
    // 60 addresses, each trying the admin twice and two invented names.
    let before = folder_bytes(&log);
    let threads: Vec<_> = (0..6u8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut failed = 0u32;
                for a in (1 + t..=60).step_by(6) {
                    let c = client_from([127, 0, 6, a]);
                    for name in [
                        "admin".to_string(),
                        format!("flood{a}-a"),
                        "admin".to_string(),
                        format!("flood{a}-b"),
                    ] {
                        let r = c
                            .post(&url)
                            .json(&json!({"username": name, "password": "wrong"}))
                            .send()
                            .expect("login");
                        if r.status() == StatusCode::UNAUTHORIZED {
                            failed += 1;
                        }
                    }
                }
                failed
            })
        })
        .collect();
    let failed: u32 = threads.into_iter().map(|t| t.join().expect("t")).sum();
    assert!(failed >= 120, "most were checked: {failed} of 240");
    let flood_bytes = folder_bytes(&log) - before;
    // Stopped before the window ends: the summaries are written now.
    s.stop_cleanly();
    let stop_bytes = folder_bytes(&log) - before - flood_bytes;
    eprintln!(
        "{failed} failed sign-ins from 60 addresses: {flood_bytes} B during the flood + {stop_bytes} B of summaries at the stop; one record each would be about {} B ({one} B a record)",
        u64::from(failed) * one
    );
    assert!(
        flood_bytes + stop_bytes < u64::from(failed) * one / 2,
        "less than half of one record a failure"
    );
    s.restart();
    let (admin, _) = s.admin();
    let audit = audit_text(&s, &admin);
    let failures: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains(r#"\"type\":\"login\""#) && l.contains(r#"\"ok\":false"#))
        .collect();
    let summaries: Vec<&str> = failures
        .iter()
        .copied()
        .filter(|l| l.contains("ログイン失敗 ×"))
        .collect();
    let one_by_one = failures
        .iter()
        .filter(|l| !l.contains('×') && l.contains("from 127.0.6."))
        .count();
    let summed: u32 = summaries
        .iter()
        .filter_map(|l| {
            l.split('×')
                .nth(1)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .ok()
        })
        .sum();
    eprintln!(
        "audit: {one_by_one} one by one, {} summaries of {summed}",
        summaries.len()
    );
    assert_eq!(
        one_by_one as u32 + summed,
        failed,
        "every failure is accounted for"
    );
    assert!(one_by_one <= 17 * 5, "{one_by_one} one by one");
    assert!(summaries.len() <= 17, "{} summaries", summaries.len());
    let admin_summary = summaries
        .iter()
        .find(|l| l.contains(r#"\"account\":\"admin\""#))
        .expect("the admin's summary");
    assert!(
        admin_summary.contains("か所から: 127.0.6."),
        "{admin_summary}"
    );
    let shared = summaries
        .iter()
        .find(|l| l.contains(r#"\"account\":\"*\""#))
        .expect("the invented names' summary");
    assert!(shared.contains("試された ID: flood"), "{shared}");
    let page = admin
        .get(s.url("/audit?staff=admin"))
        .send()
        .expect("audit")
        .text()
        .expect("html");
    assert!(page.contains("ログイン失敗 ×"), "?staff=admin finds it");
}
