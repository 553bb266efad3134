//! Display benchmark: full re-render time of every surface, and call →
//! last of 40 subscribers updated over WebSocket, p50/p99 over 1,000 calls
//! against the real server on loopback. `cargo bench --bench displays`.

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use madoguchi_core::config::Config;
use madoguchi_core::model::Millis;
use madoguchi_core::simulate::{SimOptions, Simulator};
use madoguchi_core::state::State;
use madoguchi_renderer::render::Renderer;
use madoguchi_renderer::surfaces::surfaces;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: usize = 40;
const CALLS: usize = 1000;

fn main() {
    // 1. Full re-render of every surface, mid-morning of a busy day.
    let cfg = Config::embedded_default();
    let mut st = State::new(&cfg);
    let day: Vec<_> = Simulator::new(
        &cfg,
        SimOptions {
            start: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default(),
            days: 1,
            seed: 3,
            volume: 1.0,
        },
    )
    .flatten()
    .collect();
    let mut now = Millis(0);
    for c in day.iter().take(day.len() / 3) {
        now = c.at;
        for e in st.decide(&cfg, c.at, &c.command).expect("accepted") {
            st.apply(&cfg, c.at, &e).expect("applies");
        }
    }
    let r = Renderer::new(None).expect("layouts");
    let rounds = 200;
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        for s in surfaces(&cfg, &st, now) {
            r.render(&s).expect("render");
            n += 1;
        }
    }
    let per_round = t.elapsed().as_secs_f64() / f64::from(rounds) * 1000.0;
    let surfaces_n = n / rounds as usize;

    // 2. Call → last of 40 subscribers updated.
    let dir = tempfile::tempdir().expect("tmp");
    let toml = madoguchi_core::config::DEFAULT_OFFICE_TOML.replace(
        "numbers = { from = 1001, to = 1999 }",
        "numbers = { from = 1001, to = 99999 }",
    );
    let served = common::serve(dir.path(), &toml);
    let mut child = served.child;
    let (base, pw) = (served.base, served.admin_password);
    let http = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login: Value = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "admin", "password": pw}))
        .send()
        .expect("login")
        .json()
        .expect("json");
    let csrf = login["csrf_token"].as_str().expect("csrf").to_string();
    let post = |body: Value| {
        let r = http
            .post(format!("{base}/api/commands"))
            .header("X-CSRF-Token", &csrf)
            .json(&body)
            .send()
            .expect("command");
        assert!(r.status().is_success(), "{body}");
    };
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("jst"))
        .date_naive();
    post(json!({"command": "open_day", "date": today}));
    post(json!({"command": "open_counter", "counter": 10}));
    for _ in 0..CALLS {
        post(json!({"command": "issue_ticket", "category": "idou"}));
    }
    // Forty display devices, each enrolled by its own link as an office
    // enrols its screens (one device holds at most
    // `SOCKETS_PER_IDENTITY` sockets).
    let device_cookie = |n: usize| -> String {
        let link: Value = http
            .post(format!("{base}/api/devices"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"name": format!("bench-display-{n:02}"), "role": "display"}))
            .send()
            .expect("device")
            .json()
            .expect("json");
        let url = link["enrol_url"].as_str().expect("enrol_url").to_string();
        let r = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("c")
            .post(&url)
            .send()
            .expect("enrol");
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("madoguchi_device="))
            .and_then(|c| c.split(';').next())
            .expect("device cookie")
            .to_string()
    };
    let cookies: Vec<String> = (0..SUBSCRIBERS).map(device_cookie).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut subs = rt.block_on(async {
        let mut v = Vec::new();
        for cookie in &cookies {
            let mut req = format!(
                "{}/ws?topic=guidance/idou",
                base.replace("http://", "ws://")
            )
            .into_client_request()
            .expect("req");
            req.headers_mut()
                .insert("Cookie", cookie.parse().expect("cookie"));
            let (mut ws, _) = tokio_tungstenite::connect_async(req)
                .await
                .expect("connect");
            let _ = ws.next().await; // current payload
            v.push(ws);
        }
        v
    });
    let mut h = Histogram::<u64>::new(3).expect("hist");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = 0;
    for i in 0..CALLS {
        if Instant::now() > deadline {
            break;
        }
        let number = 1001 + i;
        let t0 = Instant::now();
        post(json!({"command": "call_next", "counter": 10}));
        rt.block_on(async {
            for ws in subs.iter_mut() {
                loop {
                    let Ok(Some(Ok(Message::Text(t)))) =
                        tokio::time::timeout(Duration::from_secs(10), ws.next()).await
                    else {
                        panic!("no update")
                    };
                    // The JSON carries the fragment: the number in a called row.
                    if t.contains(&format!(">{number}<")) {
                        break;
                    }
                }
            }
        });
        h.record(t0.elapsed().as_micros() as u64).expect("record");
        post(json!({"command": "complete", "counter": 10}));
        done += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    println!("| measure | result |");
    println!("|---|---|");
    println!("| full re-render of every surface ({surfaces_n} surfaces, in process) | {per_round:.2} ms |");
    println!(
        "| call (HTTP) → last of {SUBSCRIBERS} WebSocket subscribers shows it, {done} calls | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}
