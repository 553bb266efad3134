//! A small W3C WebDriver client over HTTP for the browser tests: real
//! Chromium through chromedriver, started on a free loopback port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

pub struct Driver {
    child: Child,
    base: String,
    http: Client,
    _profile: tempfile::TempDir,
}

pub struct Session<'d> {
    d: &'d Driver,
    id: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub fn start() -> Driver {
        Driver::start_env(&[])
    }

    /// Starts chromedriver (and so Chromium) with extra environment, such
    /// as another `TZ`.
    pub fn start_env(env: &[(&str, &str)]) -> Driver {
        let exe = ["/usr/bin/chromedriver", "chromedriver"]
            .into_iter()
            .find(|p| Command::new(p).arg("--version").output().is_ok())
            .expect("chromedriver is missing: install Debian's chromium and chromium-driver (./scripts/test does)");
        let port = crate::relay_util::free_port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver {
            child,
            base,
            http,
            _profile: tempfile::tempdir().expect("profile"),
        }
    }

    pub fn session(&self) -> Session<'_> {
        self.session_with(&[])
    }

    /// A session with extra Chromium flags.
    pub fn session_with(&self, extra: &[&str]) -> Session<'_> {
        let profile = tempfile::tempdir().expect("profile").keep();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--kiosk-printing",
            "--window-size=1280,1000",
            "--lang=ja",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().map(|a| a.to_string()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        }}});
        let v = self.post("/session", &caps);
        let id = v["sessionId"].as_str().expect("session id").to_string();
        Session { d: self, id }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        self.try_post(path, body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
    }

    /// A WebDriver command; its error as text.
    fn try_post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .expect("webdriver");
        let v: Value = r.json().expect("webdriver json");
        if let Some(err) = v["value"]["error"].as_str() {
            return Err(format!("{err}: {}", v["value"]["message"]));
        }
        Ok(v["value"].clone())
    }
}

impl Session<'_> {
    fn path(&self, p: &str) -> String {
        format!("/session/{}{p}", self.id)
    }

    pub fn goto(&self, url: &str) {
        self.d.post(&self.path("/url"), &json!({"url": url}));
    }

    /// Opens an enrolment link and presses its button, as the person
    /// setting up a kiosk or display does; returns once this browser has
    /// left the enrolment page (it is then the device).
    pub fn enrol(&self, link: &str) {
        self.goto(link);
        self.click("#enrol-confirm");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.url().contains("/enrol/") {
            assert!(
                std::time::Instant::now() < deadline,
                "still on the enrolment page"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs a script in the page and returns its value.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.d.post(
            &self.path("/execute/sync"),
            &json!({"script": script, "args": args}),
        )
    }

    pub fn eval_async(&self, script: &str, args: Value) -> Value {
        self.d.post(
            &self.path("/execute/async"),
            &json!({"script": script, "args": args}),
        )
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.d.post(
            &self.path("/element"),
            &json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string()
    }

    /// Clicks the element `css` names. Live pages replace their content
    /// when data arrives, so an element found just before an update is
    /// stale by the click: it is found again (a few times at most).
    pub fn click(&self, css: &str) {
        for _ in 0..5 {
            let el = self.find(css);
            let r = self
                .d
                .try_post(&self.path(&format!("/element/{el}/click")), &json!({}));
            match r {
                Err(e) if e.contains("stale element") => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Err(e) => panic!("click {css}: {e}"),
                Ok(_) => return,
            }
        }
        panic!("click {css}: the element kept going stale");
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.d.post(
            &self.path(&format!("/element/{el}/value")),
            &json!({"text": text}),
        );
    }

    /// Presses keys on whatever has focus (the page's keyboard shortcuts).
    pub fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.d.post(
            &self.path("/actions"),
            &json!({"actions": [{"type": "key", "id": "kb", "actions": actions}]}),
        );
    }

    /// Accepts the page's `confirm()` (waits for it to open).
    pub fn accept_alert(&self) {
        self.answer_alert("/alert/accept");
    }

    /// Answers the page's `confirm()` with キャンセル (waits for it to open).
    pub fn dismiss_alert(&self) {
        self.answer_alert("/alert/dismiss");
    }

    /// The open dialog's text (waits for it to open).
    pub fn alert_text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .d
                .http
                .get(format!("{}{}", self.d.base, self.path("/alert/text")))
                .send()
                .expect("alert text");
            let v: Value = r.json().expect("alert json");
            if let Some(t) = v["value"].as_str() {
                return t.to_string();
            }
            assert!(Instant::now() < deadline, "no dialog opened: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn answer_alert(&self, how: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .d
                .http
                .post(format!("{}{}", self.d.base, self.path(how)))
                .json(&json!({}))
                .send()
                .expect("alert");
            let v: Value = r.json().expect("alert json");
            if v["value"]["error"].is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "no dialog opened: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn text(&self, css: &str) -> String {
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until the element's text contains `want`.
    pub fn wait_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = self.text(css);
            if t.contains(want) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {want:?}; it shows {t:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        let r = self
            .d
            .http
            .get(format!("{}{}", self.d.base, self.path("/url")))
            .send()
            .expect("url");
        r.json::<Value>().expect("json")["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let r = self
            .d
            .http
            .get(format!("{}{}", self.d.base, self.path("/screenshot")))
            .send()
            .expect("shot");
        let v: Value = r.json().expect("json");
        decode_base64(v["value"].as_str().expect("png"))
    }

    /// A Chrome DevTools command (e.g. emulate print media).
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.d.post(
            &self.path("/goog/cdp/execute"),
            &json!({"cmd": cmd, "params": params}),
        )
    }

    /// The page as Chromium prints it (DevTools Page.printToPDF, the CSS
    /// `@page` size honoured), as PDF bytes.
    pub fn print_pdf(&self) -> Vec<u8> {
        let v = self.cdp(
            "Page.printToPDF",
            json!({"preferCSSPageSize": true, "printBackground": true}),
        );
        decode_base64(v["data"].as_str().expect("pdf data"))
    }

    /// Runs axe-core in the page; returns the serious and critical
    /// violations as "id: help (n nodes)".
    pub fn axe(&self) -> Vec<String> {
        let axe = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/node_modules/axe-core/axe.min.js"
        ))
        .expect("axe-core is missing: run npm ci --prefix tests/browser (./scripts/test does)");
        self.eval(&axe, json!([]));
        let v = self.eval_async(
            "const done = arguments[0]; axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length, html: v.nodes.slice(0, 2).map(n => n.html)}))));",
            json!([]),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|x| matches!(x["impact"].as_str(), Some("serious") | Some("critical")))
            .map(|x| {
                format!(
                    "{}: {} ({} nodes) {}",
                    x["id"], x["help"], x["nodes"], x["html"]
                )
            })
            .collect()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .d
            .http
            .delete(format!("{}{}", self.d.base, self.path("")))
            .send();
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = T.iter().position(|&t| t == c) else {
            continue;
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

/// The pages of a PDF as Chromium writes it (uncompressed page
/// dictionaries): the number of pages and the first page's size in points.
pub fn pdf_pages(pdf: &[u8]) -> (usize, Option<(f64, f64)>) {
    let text = String::from_utf8_lossy(pdf);
    let pages = text
        .match_indices("/Type /Page")
        .filter(|(i, _)| !text[i + 11..].starts_with('s'))
        .count();
    let size = text.find("/MediaBox [").and_then(|i| {
        let rest = &text[i + 11..];
        let nums: Vec<f64> = rest[..rest.find(']')?]
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        (nums.len() == 4).then(|| (nums[2] - nums[0], nums[3] - nums[1]))
    });
    (pages, size)
}
