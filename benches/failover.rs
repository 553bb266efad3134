//! The command latency cost of the standby lease (issue 24): with an
//! enabled standby, a primary answers a command only once the standby has
//! asked for the records after it (`src/server/fence.rs`). The real
//! `madoguchi serve` binaries on loopback: `CLIENTS` admin sessions issue
//! tickets concurrently, first with no standby, then with a standby
//! following, then with the standby revoked again (the control for the day
//! growing). Bounded in count. `cargo bench --bench failover`.

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 250;

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    let toml = madoguchi_core::config::DEFAULT_OFFICE_TOML.replace(
        "numbers = { from = 1001, to = 1999 }",
        "numbers = { from = 1001, to = 99999 }",
    );
    let served = common::serve(dir.path(), &toml);
    let mut primary = served.child;
    let base: &'static str = Box::leak(served.base.into_boxed_str());
    let pw: &'static str = Box::leak(served.admin_password.into_boxed_str());
    let login = move || {
        let c = reqwest::blocking::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let v: Value = c
            .post(format!("{base}/api/login"))
            .json(&json!({"username": "admin", "password": pw}))
            .send()
            .expect("login")
            .json()
            .expect("json");
        (c, v["csrf_token"].as_str().expect("csrf").to_string())
    };
    let (admin, csrf) = login();
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("jst"))
        .date_naive();
    let r = admin
        .post(format!("{base}/api/commands"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"command": "open_day", "date": today}))
        .send()
        .expect("open");
    assert!(r.status().is_success());

    // One round: every client issues its tickets; latencies in µs.
    // Signed in one after another (sign-ins are throttled and hashed one
    // at a time), then shared by the rounds.
    let sessions: Vec<(reqwest::blocking::Client, String)> =
        (0..CLIENTS).map(|_| login()).collect();
    let round = |label: &str| {
        let handles: Vec<_> = sessions
            .iter()
            .cloned()
            .map(|(c, csrf)| {
                std::thread::spawn(move || {
                    let mut h = Histogram::<u64>::new(3).expect("hist");
                    let mut refused = 0;
                    for _ in 0..PER_CLIENT {
                        let t = Instant::now();
                        let r = c
                            .post(format!("{base}/api/commands"))
                            .header("X-CSRF-Token", &csrf)
                            .json(&json!({"command": "issue_ticket", "category": "idou"}))
                            .send()
                            .expect("command");
                        if !r.status().is_success() {
                            refused += 1;
                        }
                        let _ = r.bytes();
                        h.record(t.elapsed().as_micros() as u64).expect("record");
                    }
                    (h, refused)
                })
            })
            .collect();
        let started = Instant::now();
        let mut all = Histogram::<u64>::new(3).expect("hist");
        let mut refused = 0;
        for hdl in handles {
            let (h, r) = hdl.join().expect("client");
            all.add(h).expect("add");
            refused += r;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{label}: {} commands ({refused} refused), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} commands/s",
            all.len(),
            all.value_at_quantile(0.5) as f64 / 1000.0,
            all.value_at_quantile(0.99) as f64 / 1000.0,
            all.max() as f64 / 1000.0,
            all.len() as f64 / secs
        );
        (all, refused)
    };

    let (without, _) = round("no standby");
    // A standby follows: enrolled with a link from the primary's admin.
    let link: Value = admin
        .post(format!("{base}/api/devices"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "standby-1", "role": "standby"}))
        .send()
        .expect("device")
        .json()
        .expect("json");
    let link = link["enrol_url"].as_str().expect("link").to_string();
    let mut standby = Command::new(env!("CARGO_BIN_EXE_madoguchi"))
        .arg("--data")
        .arg(dir.path().join("standby"))
        .args(["serve", "--listen", "127.0.0.1:0", "--standby-of", base])
        .args(["--enrol-link", &link])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("standby");
    let mut lines = BufReader::new(standby.stdout.take().expect("stdout")).lines();
    for line in lines.by_ref() {
        if line.expect("line").starts_with("listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    // Wait until the primary holds the lease (a command is answered).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = admin
            .post(format!("{base}/api/commands"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"command": "issue_ticket", "category": "idou"}))
            .send()
            .expect("command");
        if r.status().is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never gave a lease");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (with, refused) =
        round("standby following (lease, answered once the standby holds the record)");
    assert_eq!(refused, 0, "commands refused with a healthy standby");
    let _ = standby.kill();
    let _ = standby.wait();
    let r = admin
        .post(format!("{base}/api/devices/standby-1/disabled"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"disabled": true}))
        .send()
        .expect("revoke");
    assert!(r.status().is_success());
    let (again, _) = round("standby revoked again (control)");
    let base_p50 = (without.value_at_quantile(0.5) + again.value_at_quantile(0.5)) as f64 / 2.0;
    let base_p99 = (without.value_at_quantile(0.99) + again.value_at_quantile(0.99)) as f64 / 2.0;
    println!(
        "lease cost: p50 +{:.2} ms ({:.2}×), p99 +{:.2} ms ({:.2}×) against the mean of the two rounds without",
        (with.value_at_quantile(0.5) as f64 - base_p50) / 1000.0,
        with.value_at_quantile(0.5) as f64 / base_p50,
        (with.value_at_quantile(0.99) as f64 - base_p99) / 1000.0,
        with.value_at_quantile(0.99) as f64 / base_p99,
    );
    let _ = primary.kill();
    let _ = primary.wait();
}
