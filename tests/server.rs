//! The office server over HTTP: the real binary on 127.0.0.1, port 0.

use crate::util::today;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub struct Server {
    child: Child,
    pub base: String,
    pub admin_password: String,
    pub kiosk_enrol: String,
    pub display_enrol: String,
    serve_args: Vec<String>,
    /// `--data`/`--config` as given at start, for restarts.
    global: Vec<std::ffi::OsString>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(None)
    }

    /// Starts the server, with an office configuration when given.
    pub fn start_with(config: Option<&str>) -> Server {
        Server::start_args(config, &["--listen", "127.0.0.1:0"])
    }

    /// Starts the server with `serve_args`; without `--data` when the
    /// configuration names its data folder.
    pub fn start_args(config: Option<&str>, serve_args: &[&str]) -> Server {
        Server::start_prepared(config, serve_args, |_| {})
    }

    /// Like [`Server::start_args`], after `prepare` has been given the data
    /// folder (to fill it with a log made elsewhere).
    pub fn start_prepared(
        config: Option<&str>,
        serve_args: &[&str],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Server {
        Server::start_env(config, serve_args, prepare, &[])
    }

    /// Like [`Server::start_prepared`], with environment variables for the
    /// server (such as `MADOGUCHI_CLOCK`; not kept over a restart).
    pub fn start_env(
        config: Option<&str>,
        serve_args: &[&str],
        prepare: impl FnOnce(&std::path::Path),
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::tempdir().expect("tmp");
        prepare(&dir.path().join("data"));
        let mut command = crate::util::office();
        command.envs(env.iter().copied());
        let config = config.map(|c| c.replace("<tmp>", &dir.path().display().to_string()));
        let config = config.as_deref();
        let mut global: Vec<std::ffi::OsString> = Vec::new();
        if !config.is_some_and(|c| c.lines().any(|l| l.trim() == "[server]")) {
            global.push("--data".into());
            global.push(dir.path().join("data").into());
        }
        if let Some(text) = config {
            let path = dir.path().join("office.toml");
            std::fs::write(&path, text).expect("config");
            global.push("--config".into());
            global.push(path.into());
        }
        command.args(&global);
        let mut child = command
            .arg("serve")
            .args(serve_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        // Read the start-up lines on a thread, so a server that never says
        // them fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut base, mut pw, mut kiosk, mut display) = (None, None, None, None);
        // A standby prints no first-start admin or links of its own (the
        // primary's arrive within seconds; issue 24): it says so instead.
        let standby = serve_args.contains(&"--standby-of");
        if standby {
            (pw, kiosk, display) = (
                Some(String::new()),
                Some(String::new()),
                Some(String::new()),
            );
        }
        let mut accounts_line = !standby;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while base.is_none()
            || pw.is_none()
            || kiosk.is_none()
            || display.is_none()
            || !accounts_line
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!("the server did not print its start-up lines");
            };
            if let Some(b) = line.strip_prefix("listening on ") {
                base = Some(b.trim().to_string());
            } else if let Some(p) = line.trim().strip_prefix("admin password: ") {
                assert!(!standby, "a standby printed a first-start admin password");
                pw = Some(p.to_string());
            } else if line.contains("accounts and enrolled devices are the primary's") {
                accounts_line = true;
            } else if let Some(k) = line.trim().strip_prefix("kiosk enrolment:") {
                kiosk = Some(k.trim().to_string());
            } else if let Some(k) = line.trim().strip_prefix("display enrolment:") {
                display = Some(k.trim().to_string());
            }
        }
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in rx {});
        Server {
            child,
            base: base.expect("listening line"),
            admin_password: pw.expect("admin password"),
            kiosk_enrol: kiosk.expect("kiosk enrolment"),
            display_enrol: display.expect("display enrolment"),
            serve_args: serve_args.iter().map(|a| a.to_string()).collect(),
            global,
            _dir: dir,
        }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (to see how clients behave without it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM, as a service manager does, and waits
    /// for it to exit.
    pub fn stop_cleanly(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same address and data folder.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.base.trim_start_matches("http://").to_string();
        let mut args: Vec<String> = Vec::new();
        let mut skip = false;
        for a in &self.serve_args {
            if skip {
                skip = false;
                continue;
            }
            if a == "--listen" {
                skip = true;
                continue;
            }
            args.push(a.clone());
        }
        let mut child = crate::util::office()
            .args(&self.global)
            .arg("serve")
            .args(&args)
            .args(["--listen", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("restart");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            if line.expect("line").starts_with("listening on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        self.child = child;
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client() -> Client {
        Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    /// A logged-in admin client and its CSRF token.
    pub fn admin(&self) -> (Client, String) {
        let c = Server::client();
        let r = c
            .post(self.url("/api/login"))
            .json(&json!({"username": "admin", "password": self.admin_password}))
            .send()
            .expect("login");
        assert_eq!(r.status(), StatusCode::OK);
        let set_cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        let body: Value = r.json().expect("json");
        (c, body["csrf_token"].as_str().expect("csrf").to_string())
    }
}

pub fn cmd(c: &Client, s: &Server, csrf: &str, body: Value) -> (StatusCode, Value) {
    let r = c
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", csrf)
        .json(&body)
        .send()
        .expect("command");
    let status = r.status();
    (status, r.json().expect("json answer"))
}

/// Opens today and then each of `counters`, as the caller (an admin).
pub fn open_today(c: &Client, s: &Server, csrf: &str, counters: &[u16]) {
    cmd(c, s, csrf, json!({"command": "open_day", "date": today()}));
    for n in counters {
        cmd(c, s, csrf, json!({"command": "open_counter", "counter": n}));
    }
}

/// `GET /api/status` as JSON.
pub fn status(c: &Client, s: &Server) -> Value {
    c.get(s.url("/api/status"))
        .send()
        .expect("status")
        .json()
        .expect("json")
}

/// The sequence number of the last record the server has applied.
pub fn seq(c: &Client, s: &Server) -> u64 {
    status(c, s)["seq"].as_u64().expect("seq")
}

/// An error answer: JSON, stable code, both languages, no internals.
fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message_ja"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(body["error"]["message_en"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let text = body.to_string();
    for leak in ["panicked", "src/", ".rs", "0.1.0", "/tmp", "backtrace"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}

#[test]
fn a_day_through_the_api() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let ok = |body: Value| {
        let (st, v) = cmd(&c, &s, &csrf, body.clone());
        assert_eq!(st, StatusCode::OK, "{body} -> {v}");
        v
    };
    ok(json!({"command": "open_day", "date": today()}));
    ok(json!({"command": "open_counter", "counter": 10, "staff": "yamada"}));
    ok(json!({"command": "open_counter", "counter": 24}));
    let issued =
        ok(json!({"command": "issue_ticket", "category": "idou", "request_id": "k1-0001"}));
    assert_eq!(issued["ticket"], 1001);
    assert_eq!(issued["issued"]["category_name"]["ja"], "住民異動の受付");
    assert!(issued["issued"]["qr_svg"]
        .as_str()
        .is_some_and(|q| q.contains("<svg")));
    // A retried kiosk request returns the same ticket and records nothing.
    let before = seq(&c, &s);
    let again = ok(json!({"command": "issue_ticket", "category": "idou", "request_id": "k1-0001"}));
    assert_eq!(again["ticket"], 1001);
    assert_eq!(seq(&c, &s), before);
    ok(json!({"command": "call_next", "counter": 10}));
    ok(json!({"command": "start_service", "counter": 10}));
    ok(
        json!({"command": "transfer", "number": 1001, "to": "koufu", "tags": ["tennyu"], "note": "住民票 2 通"}),
    );
    ok(json!({"command": "call_next", "counter": 24}));
    ok(json!({"command": "complete", "counter": 24, "tags": ["juminhyo"]}));
    let status = status(&c, &s);
    assert_eq!(status["day_open"], true);
    assert_eq!(status["queues"][1]["id"], "idou");
    let history: Value = c
        .get(s.url("/api/tickets/1001"))
        .send()
        .expect("history")
        .json()
        .expect("json");
    let steps: Vec<&str> = history["history"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|x| x["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "issued",
            "called",
            "started",
            "transferred",
            "called",
            "completed"
        ]
    );
    let r = c.get(s.url("/api/tickets/999")).send().expect("missing");
    let st = r.status();
    assert_error(
        st,
        &r.json().expect("json"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[test]
fn every_error_gets_its_status_and_changes_nothing() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[1]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "koseki"}),
    );
    let base_seq = seq(&c, &s);

    // Not logged in.
    let anon = Server::client();
    let (st, v) = cmd(&anon, &s, "", json!({"command": "call_next", "counter": 1}));
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Logged in, but without the CSRF token.
    let (st, v) = cmd(
        &c,
        &s,
        "wrong",
        json!({"command": "call_next", "counter": 1}),
    );
    assert_error(st, &v, StatusCode::FORBIDDEN, "csrf");
    // A kiosk may issue but not call.
    let kiosk = Server::client();
    let r = kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Enrolling a device is an account change: it is recorded.
    assert_eq!(seq(&c, &s), base_seq + 1);
    let base_seq = base_seq + 1;
    assert!(r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("HttpOnly")));
    let page = kiosk.get(s.url("/kiosk")).send().expect("kiosk page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().expect("html");
    let kiosk_csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("csrf meta")
        .to_string();
    let (st, v) = cmd(
        &kiosk,
        &s,
        &kiosk_csrf,
        json!({"command": "call_next", "counter": 1}),
    );
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, v) = cmd(
        &kiosk,
        &s,
        "",
        json!({"command": "issue_ticket", "category": "koseki"}),
    );
    assert_error(st, &v, StatusCode::FORBIDDEN, "csrf");
    assert_eq!(seq(&c, &s), base_seq, "nothing changed so far");
    let (st, _) = cmd(
        &kiosk,
        &s,
        &kiosk_csrf,
        json!({"command": "issue_ticket", "category": "koseki"}),
    );
    assert_eq!(st, StatusCode::OK);
    // The enrolment link works once.
    assert_eq!(
        Server::client()
            .post(&s.kiosk_enrol)
            .send()
            .expect("again")
            .status(),
        StatusCode::NOT_FOUND
    );
    let base_seq = seq(&c, &s);
    // Refused by the state machine.
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 99}),
    );
    assert_error(st, &v, StatusCode::CONFLICT, "unknown_counter");
    // Double submit: the second call is refused, one ticket is called.
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "call_next", "counter": 1}));
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "call_next", "counter": 1}));
    assert_error(st, &v, StatusCode::CONFLICT, "counter_busy");
    assert_eq!(seq(&c, &s), base_seq + 1);
    // Malformed JSON, unknown command, oversized body.
    for body in ["{not json", "{\"command\":\"fly\"}", "[]"] {
        let r = c
            .post(s.url("/api/commands"))
            .header("X-CSRF-Token", &csrf)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .expect("bad");
        let st = r.status();
        assert_error(
            st,
            &r.json().expect("json"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    let huge = format!(
        "{{\"command\":\"issue_ticket\",\"category\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let r = c
        .post(s.url("/api/commands"))
        .header("X-CSRF-Token", &csrf)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .expect("huge");
    let st = r.status();
    assert_error(
        st,
        &r.json().expect("json"),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
    assert_eq!(seq(&c, &s), base_seq + 1, "errors changed nothing");
    // Unknown paths are JSON errors too.
    let r = c.get(s.url("/nowhere")).send().expect("404");
    let st = r.status();
    assert_error(
        st,
        &r.json().expect("json"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[test]
fn logins_are_throttled_and_sessions_are_cookies() {
    let s = Server::start();
    let c = Server::client();
    for _ in 0..5 {
        let r = c
            .post(s.url("/api/login"))
            .json(&json!({"username": "admin", "password": "wrong-password"}))
            .send()
            .expect("login");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c
        .post(s.url("/api/login"))
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .expect("login");
    let st = r.status();
    assert_error(
        st,
        &r.json().expect("json"),
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    // Pages: the staff station sends strangers to the login page; the kiosk
    // page refuses an unenrolled browser; every page has the headers.
    let r = c.get(s.url("/staff?counter=3")).send().expect("staff");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"]
        .to_str()
        .is_ok_and(|l| l.starts_with("/login")));
    let r = c.get(s.url("/kiosk")).send().expect("kiosk");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.get(s.url("/login")).send().expect("login page");
    let h = r.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .is_ok_and(|v| v.contains("script-src 'self'") && v.contains("frame-ancestors 'none'")));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("server").is_none(), "no server banner");
}

#[test]
fn admins_add_staff_accounts_and_devices() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "tanaka", "role": "staff", "password": "correct horse battery"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    let staff = Server::client();
    let r = staff
        .post(s.url("/api/login"))
        .json(&json!({"username": "tanaka", "password": "correct horse battery"}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    let staff_csrf = r.json::<Value>().expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    // Staff may not manage accounts.
    let r = staff
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &staff_csrf)
        .json(&json!({"username": "x", "role": "admin", "password": "0123456789ab"}))
        .send()
        .expect("user");
    let st = r.status();
    assert_error(
        st,
        &r.json().expect("json"),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = c
        .post(s.url("/api/devices"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "kiosk-2", "role": "kiosk"}))
        .send()
        .expect("device");
    let url = r.json::<Value>().expect("json")["enrol_url"]
        .as_str()
        .expect("url")
        .to_string();
    let kiosk = Server::client();
    assert_eq!(
        kiosk.post(&url).send().expect("enrol").status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        kiosk.get(s.url("/kiosk")).send().expect("kiosk").status(),
        StatusCode::OK
    );
}

#[test]
fn admins_change_settings_without_a_restart() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let post = |path: &str, body: Value| {
        let r = c
            .post(s.url(path))
            .header("X-CSRF-Token", &csrf)
            .json(&body)
            .send()
            .expect("post");
        let st = r.status();
        (st, r.json::<Value>().expect("json"))
    };
    let toml = c
        .get(s.url("/api/settings"))
        .send()
        .expect("get")
        .json::<Value>()
        .expect("json")["toml"]
        .as_str()
        .expect("toml")
        .to_string();
    // An error names its line, and nothing changes.
    let broken = toml.replacen("serves = [\"idou\"]", "serves = [\"idoo\"]", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("idoo"))
        .expect("line")
        + 1;
    for path in ["/api/settings/validate", "/api/settings"] {
        let (st, v) = post(path, json!({"toml": broken}));
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["line"], line);
        assert!(
            v["error"]["message_ja"]
                .as_str()
                .is_some_and(|m| m.contains("idoo")),
            "{v}"
        );
    }
    // A renamed category is in force at once.
    let renamed = toml.replace("住民異動の受付", "住民異動（転入・転出・転居）の受付");
    let (st, v) = post("/api/settings/validate", json!({"toml": renamed}));
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = post("/api/settings", json!({"toml": renamed}));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["seq"].as_u64().is_some());
    let status = status(&c, &s);
    assert_eq!(
        status["queues"][1]["name"]["ja"],
        "住民異動（転入・転出・転居）の受付"
    );
    // Removing a counter that is open is refused while it is open.
    open_today(&c, &s, &csrf, &[25]);
    let without_25 = renamed.replace(
        "[[counters]]\nnumber = 25\nsection = \"service\"\nserves = [\"koufu\"]\n",
        "",
    );
    assert_ne!(without_25, renamed);
    let (st, v) = post("/api/settings", json!({"toml": without_25}));
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "config_conflict");
    // Only admins.
    let staff = Server::client();
    let r = staff.get(s.url("/api/settings")).send().expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = staff.get(s.url("/settings")).send().expect("page");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        c.get(s.url("/settings")).send().expect("page").status(),
        StatusCode::OK
    );
}

#[test]
fn a_kiosk_offers_the_categories_the_office_enables_for_it() {
    let office = format!(
        "{}\n[[kiosks]]\nname = \"kiosk-1\"\ncategories = [\"idou\"]\n",
        madoguchi_core::config::DEFAULT_OFFICE_TOML
    );
    let s = Server::start_with(Some(&office));
    let (c, csrf) = s.admin();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let kiosk = Server::client();
    kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    let html = kiosk
        .get(s.url("/kiosk"))
        .send()
        .expect("page")
        .text()
        .expect("html");
    assert!(html.contains("data-category=\"idou\""));
    assert!(
        !html.contains("data-category=\"koseki\""),
        "koseki is not offered here"
    );
    let kiosk_csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("csrf")
        .to_string();
    let (st, v) = cmd(
        &kiosk,
        &s,
        &kiosk_csrf,
        json!({"command": "issue_ticket", "category": "koseki"}),
    );
    assert_error(st, &v, StatusCode::FORBIDDEN, "forbidden");
    let (st, _) = cmd(
        &kiosk,
        &s,
        &kiosk_csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK);
    // Staff at the kiosk page see every category.
    let html = c
        .get(s.url("/kiosk"))
        .send()
        .expect("page")
        .text()
        .expect("html");
    assert!(html.contains("data-category=\"koseki\""));
}

#[test]
fn the_configuration_names_the_listen_address_and_data_folder() {
    let office = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:0\"\ndata = \"<tmp>/office-data\"\n",
        madoguchi_core::config::DEFAULT_OFFICE_TOML
    );
    let s = Server::start_args(Some(&office), &[]);
    assert!(s.base.starts_with("http://127.0.0.1:"), "{}", s.base);
    let (c, _) = s.admin();
    assert_eq!(
        c.get(s.url("/api/status")).send().expect("status").status(),
        StatusCode::OK
    );
    assert!(
        s.data_dir().join("office-data/log").is_dir(),
        "the data folder named in the configuration"
    );
}

#[test]
fn statistics_reports_for_admins_and_auditors_only() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let req = |client: &Client, token: &str, body: Value| {
        client
            .post(s.url("/api/statistics/report"))
            .header("X-CSRF-Token", token)
            .json(&body)
            .send()
            .expect("report")
    };
    let r = req(
        &c,
        &csrf,
        json!({"from": today(), "to": today(), "by": "day", "format": "csv"}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .is_ok_and(|d| d.contains("attachment")));
    let bytes = r.bytes().expect("body");
    assert!(bytes.starts_with(&[0xef, 0xbb, 0xbf]), "UTF-8 with BOM");
    let text = String::from_utf8_lossy(&bytes[3..]).to_string();
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.contains("全体") && l.contains(",1,")),
        "{text}"
    );
    let r = req(
        &c,
        &csrf,
        json!({"from": today(), "to": today(), "by": "all", "format": "xlsx"}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.bytes().expect("xlsx").starts_with(b"PK"),
        "an xlsx is a zip"
    );
    let r = req(
        &c,
        &csrf,
        json!({"from": today(), "to": today(), "by": "week", "format": "csv"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // An auditor may; staff may not.
    for (name, role, want) in [
        ("kansa", "auditor", StatusCode::OK),
        ("tanaka", "staff", StatusCode::FORBIDDEN),
    ] {
        let r = c
            .post(s.url("/api/users"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"username": name, "role": role, "password": "correct horse battery"}))
            .send()
            .expect("user");
        assert_eq!(r.status(), StatusCode::OK);
        let u = Server::client();
        let login: Value = u
            .post(s.url("/api/login"))
            .json(&json!({"username": name, "password": "correct horse battery"}))
            .send()
            .expect("login")
            .json()
            .expect("json");
        let token = login["csrf_token"].as_str().expect("csrf").to_string();
        assert_eq!(
            req(
                &u,
                &token,
                json!({"from": today(), "to": today(), "by": "day", "format": "csv"})
            )
            .status(),
            want,
            "{role}"
        );
    }
    assert_eq!(
        c.get(s.url("/statistics")).send().expect("page").status(),
        StatusCode::OK
    );
}

#[test]
fn closing_the_day_writes_its_reports() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    // 2026-11-30 is the last business day of November: the month's report
    // too. Not today: the admin confirms the date (issue 23).
    let r = c
        .post(s.url("/api/commands?override_date=2026-11-30"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"command": "open_day", "date": "2026-11-30"}))
        .send()
        .expect("open_day");
    assert_eq!(r.status(), StatusCode::OK);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    let reports = s.data_dir().join("data/reports");
    let want = [
        "daily/2026-11-30.xlsx",
        "daily/2026-11-30.csv",
        "monthly/2026-11.xlsx",
        "monthly/2026-11.csv",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|f| reports.join(f).is_file()) {
        assert!(
            std::time::Instant::now() < deadline,
            "reports missing in {}",
            reports.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let csv = std::fs::read_to_string(reports.join("daily/2026-11-30.csv")).expect("csv");
    // Rows are named by when things happened (the test runs today, not on
    // the 30th), the file by the business day.
    assert!(
        csv.lines()
            .nth(1)
            .is_some_and(|l| l.contains(",全体,") && l.contains(",1,")),
        "{csv}"
    );
}

#[test]
fn the_forecast_is_public_and_reads_the_history() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    for _ in 0..3 {
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
    }
    let anon = Server::client();
    let f: Value = anon
        .get(s.url("/forecast.json"))
        .send()
        .expect("json")
        .json()
        .expect("json");
    let series = f.as_array().expect("series");
    assert_eq!(series.len(), 1, "one kind of day seen: {f}");
    let arrivals: f64 = series[0]["hours"]
        .as_array()
        .expect("hours")
        .iter()
        .filter_map(|h| h["arrivals"].as_f64())
        .sum();
    assert_eq!(arrivals, 3.0);
    let page = anon.get(s.url("/forecast")).send().expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().expect("html");
    assert!(
        html.contains("<svg") && html.contains("role=\"img\"") && html.contains("<table"),
        "chart and table"
    );
}

#[test]
fn the_audit_log_holds_sign_ins_accounts_and_commands() {
    let s = Server::start();
    // A failed sign-in of a real account is recorded too.
    let r = Server::client()
        .post(s.url("/api/login"))
        .json(&json!({"username": "admin", "password": "not the password"}))
        .send()
        .expect("login");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
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
    let r = c
        .post(s.url("/api/users"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"username": "kansa", "role": "auditor", "password": "correct horse battery"}))
        .send()
        .expect("user");
    assert_eq!(r.status(), StatusCode::OK);
    let export = |client: &Client, q: &str| -> Vec<Value> {
        let r = client
            .get(s.url(&format!("/api/audit/export?{q}")))
            .send()
            .expect("export");
        assert_eq!(r.status(), StatusCode::OK);
        r.text()
            .expect("text")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    };
    let all = export(&c, "");
    let text = serde_json::to_string(&all).expect("json");
    assert!(
        text.contains("\\\"type\\\":\\\"login\\\"")
            && text.contains("\\\"ok\\\":false")
            && text.contains("\\\"ok\\\":true"),
        "{text}"
    );
    assert!(
        text.contains("account_changed") && text.contains("kansa"),
        "{text}"
    );
    assert!(
        text.contains("config_applied"),
        "configuration changes are in the log"
    );
    let at_10 = export(&c, "counter=10");
    assert!(
        at_10.len() >= 2
            && at_10
                .iter()
                .all(|r| r.to_string().contains("\\\"counter\\\":10")),
        "{at_10:?}"
    );
    let ticket = export(&c, "ticket=1001");
    assert_eq!(ticket.len(), 2, "issued and called: {ticket:?}");
    assert!(export(&c, &format!("date={}", today())).len() >= 5);
    assert!(export(&c, "staff=nobody").is_empty());
    // An auditor reads it; staff may not.
    let auditor = Server::client();
    auditor
        .post(s.url("/api/login"))
        .json(&json!({"username": "kansa", "password": "correct horse battery"}))
        .send()
        .expect("login");
    let page = auditor
        .get(s.url("/audit?counter=10"))
        .send()
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().expect("html").contains("called"));
    let stranger = Server::client();
    assert_eq!(
        stranger
            .get(s.url("/api/audit/export"))
            .send()
            .expect("x")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let r = c
        .get(s.url("/api/audit/export?date=yesterday"))
        .send()
        .expect("bad");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
