//! The browser tests' handle on real Chromium: chromedriver started on a
//! free loopback port, driven through the maintained `fantoccini` WebDriver
//! client (issue 16). The tests are plain synchronous functions, so each
//! call here runs fantoccini's future to completion on a small runtime the
//! driver owns.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Map, Value};

pub struct Driver {
    child: Child,
    base: String,
    rt: tokio::runtime::Runtime,
}

pub struct Session<'d> {
    d: &'d Driver,
    client: Client,
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
        // One worker: fantoccini keeps a task per session that must go on
        // between the tests' blocking calls (its session close on drop).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, base, rt }
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
        let mut caps = Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let client = self
            .rt
            .block_on(async {
                // No TLS: chromedriver listens on plain loopback HTTP.
                let http = hyper_util::client::legacy::connect::HttpConnector::new();
                ClientBuilder::new(http)
                    .capabilities(caps)
                    .connect(&self.base)
                    .await
            })
            .unwrap_or_else(|e| panic!("webdriver session: {e}"));
        Session { d: self, client }
    }
}

/// Chromium's DevTools command endpoint, which the WebDriver standard does
/// not have (fantoccini sends it as a custom command).
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Session<'_> {
    /// Runs one fantoccini call to its end.
    fn run<T>(&self, what: &str, f: impl std::future::Future<Output = Result<T, CmdError>>) -> T {
        self.d
            .rt
            .block_on(f)
            .unwrap_or_else(|e| panic!("webdriver {what}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.run("goto", self.client.goto(url));
    }

    /// Opens an enrolment link and presses its button, as the person
    /// setting up a kiosk or display does; returns once this browser has
    /// left the enrolment page (it is then the device).
    pub fn enrol(&self, link: &str) {
        self.goto(link);
        self.click("#enrol-confirm");
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.url().contains("/enrol/") {
            assert!(Instant::now() < deadline, "still on the enrolment page");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn script_args(args: Value) -> Vec<Value> {
        match args {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            other => vec![other],
        }
    }

    /// Runs a script in the page and returns its value.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.run(
            "execute",
            self.client.execute(script, Self::script_args(args)),
        )
    }

    pub fn eval_async(&self, script: &str, args: Value) -> Value {
        self.run(
            "execute async",
            self.client.execute_async(script, Self::script_args(args)),
        )
    }

    /// Clicks the element `css` names. Live pages replace their content
    /// when data arrives, so an element found just before an update is
    /// stale by the click: it is found again (a few times at most).
    pub fn click(&self, css: &str) {
        for _ in 0..5 {
            let r = self.d.rt.block_on(async {
                let el = self.client.find(Locator::Css(css)).await?;
                el.click().await
            });
            match r {
                Err(e) if e.is_stale_element_reference() => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("click {css}: {e}"),
                Ok(_) => return,
            }
        }
        panic!("click {css}: the element kept going stale");
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.run("type", async {
            let el = self.client.find(Locator::Css(css)).await?;
            el.send_keys(text).await
        });
    }

    /// Presses keys on whatever has focus (the page's keyboard shortcuts).
    pub fn keys(&self, text: &str) {
        let mut keys = KeyActions::new("kb".into());
        for c in text.chars() {
            keys = keys
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.run("keys", self.client.perform_actions(keys));
    }

    /// Accepts the page's `confirm()` (waits for it to open).
    pub fn accept_alert(&self) {
        self.until_dialog("accept", || self.client.accept_alert());
    }

    /// Answers the page's `confirm()` with キャンセル (waits for it to open).
    pub fn dismiss_alert(&self) {
        self.until_dialog("dismiss", || self.client.dismiss_alert());
    }

    /// The open dialog's text (waits for it to open).
    pub fn alert_text(&self) -> String {
        self.until_dialog("text", || self.client.get_alert_text())
    }

    /// Repeats a dialog command until a dialog is open (10 s at most).
    fn until_dialog<T, F>(&self, what: &str, call: impl Fn() -> F) -> T
    where
        F: std::future::Future<Output = Result<T, CmdError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.d.rt.block_on(call()) {
                Ok(v) => return v,
                Err(e) if e.is_no_such_alert() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("dialog {what}: {e}"),
            }
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
        self.run("url", self.client.current_url()).to_string()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        self.run("screenshot", self.client.screenshot())
    }

    /// A Chrome DevTools command (e.g. emulate print media).
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        let cmd = Cdp {
            cmd: cmd.to_string(),
            params,
        };
        self.run("cdp", self.client.issue_cmd(cmd))
    }

    /// The page as Chromium prints it (DevTools Page.printToPDF, the CSS
    /// `@page` size honoured), as PDF bytes. The kiosk prints its ticket
    /// itself when it is issued (`--kiosk-printing`): while that print
    /// runs, Chromium refuses another, so this waits for it (10 s at most).
    pub fn print_pdf(&self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let v = loop {
            let cmd = Cdp {
                cmd: "Page.printToPDF".into(),
                params: json!({"preferCSSPageSize": true, "printBackground": true}),
            };
            match self.d.rt.block_on(self.client.issue_cmd(cmd)) {
                Ok(v) => break v,
                Err(e)
                    if e.to_string().contains("already being printed")
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!("webdriver print: {e}"),
            }
        };
        base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("pdf data"))
            .expect("pdf base64")
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
        let _ = self.d.rt.block_on(self.client.clone().close());
    }
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
