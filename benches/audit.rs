//! Audit page benchmark (issue 18, R11/R15): a year of simulated history
//! (default 245 business days, each command signed by a staff account or
//! the kiosk), imported, served by the real binary on loopback; then the
//! audit page's views are timed over HTTP — the first page, a filtered
//! day, a filtered account (first and last page), a counter, a ticket, the
//! last page of everything, the one-day export — each 7 times (median and
//! worst). Also timed in-process: building the audit index from the whole
//! log once (a data folder without its sidecar) and reading the sidecar
//! back (a restart). `cargo bench --bench audit`; MADOGUCHI_BENCH_DAYS
//! sets the number of days.

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use madoguchi_core::audit::AuditIndex;
use serde_json::{json, Value};

const RUNS: usize = 7;

fn main() {
    let days: u32 = std::env::var("MADOGUCHI_BENCH_DAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(245);
    let dir = tempfile::tempdir().expect("tmp");
    let toml = madoguchi_core::config::DEFAULT_OFFICE_TOML;
    let cfg = dir.path().join("pre.toml");
    std::fs::write(&cfg, toml).expect("config");
    let start = (chrono::Utc::now() - chrono::Duration::days(380))
        .date_naive()
        .to_string();
    let raw = dir.path().join("raw.jsonl");
    let t = Instant::now();
    let ok = Command::new(env!("CARGO_BIN_EXE_madoguchi"))
        .arg("--config")
        .arg(&cfg)
        .args(["simulate", "--days", &days.to_string(), "--start", &start])
        .args(["--volume", "1.1", "--out"])
        .arg(&raw)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "simulate");
    // Who did it: the counter's staff account, or the kiosk.
    let history = dir.path().join("history.jsonl");
    let mut times = Vec::new();
    {
        let mut out = BufWriter::new(std::fs::File::create(&history).expect("create"));
        let input = std::io::BufReader::new(std::fs::File::open(&raw).expect("open"));
        for line in input.lines() {
            let mut v: Value = serde_json::from_str(&line.expect("line")).expect("json");
            let by = match v.get("counter").and_then(Value::as_u64) {
                Some(c) => format!("staff{c:02}"),
                None => "kiosk-1".to_string(),
            };
            v["by"] = by.into();
            times.push(
                v["time"]
                    .as_str()
                    .unwrap_or("")
                    .get(..10)
                    .unwrap_or("")
                    .to_string(),
            );
            writeln!(out, "{v}").expect("write");
        }
        out.flush().expect("flush");
    }
    let data = dir.path().join("data");
    let ok = Command::new(env!("CARGO_BIN_EXE_madoguchi"))
        .arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&cfg)
        .arg("import")
        .arg(&history)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "import");
    let log_dir = data.join("log");
    let log_mb: u64 = std::fs::read_dir(&log_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let records = madoguchi_core::log::EventLog::open(&log_dir, Default::default())
        .expect("log")
        .0
        .last_seq();
    println!(
        "history: {days} business days, {records} records, event log {:.0} MB, made in {:.0} s",
        log_mb as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut rows: Vec<(String, String)> = Vec::new();

    // The index, in-process: built from the whole log once, then read back.
    let jst = chrono::FixedOffset::east_opt(9 * 3600).expect("jst");
    let idx = data.join(madoguchi_core::audit::INDEX_FILE);
    let t = Instant::now();
    let built = AuditIndex::open(&log_dir, &idx, jst).expect("index");
    let build = t.elapsed();
    drop(built);
    let idx_mb = std::fs::metadata(&idx).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    let t = Instant::now();
    let again = AuditIndex::open(&log_dir, &idx, jst).expect("index");
    let load = t.elapsed();
    assert!(again.repaired().is_none(), "the sidecar is used as it is");
    drop(again);
    rows.push((
        format!("audit index of {records} records built from the whole log (once: a folder without its sidecar)"),
        format!("{:.2} s; sidecar {idx_mb:.0} MB", build.as_secs_f64()),
    ));
    rows.push((
        "audit index read back from its sidecar (a restart)".into(),
        format!("{:.2} s", load.as_secs_f64()),
    ));

    // The server on the same folder (the sidecar is there).
    let served = common::serve(dir.path(), toml);
    let mut child = served.child;
    let base = served.base;
    let c = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let r = c
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "admin", "password": served.admin_password}))
        .send()
        .expect("login");
    assert!(r.status().is_success(), "login");
    let get = |path: &str| -> (Duration, String) {
        let t = Instant::now();
        let r = c.get(format!("{base}{path}")).send().expect("get");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let body = r.text().expect("body");
        (t.elapsed(), body)
    };
    // The server opens its index on the first view (reading the sidecar).
    let (first_view, _) = get("/audit");
    rows.push((
        "first audit view after the server started (index read from the sidecar)".into(),
        format!("{:.0} ms", first_view.as_secs_f64() * 1000.0),
    ));
    let total = |html: &str| -> usize {
        html.split("<p role=\"status\">")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    let (_, all) = get("/audit");
    let pages = total(&all).div_ceil(50);
    let (_, staff) = get("/audit?staff=staff10");
    let staff_pages = total(&staff).div_ceil(50);
    // A business day in the middle of the year.
    let day = times[times.len() / 2].clone();
    let (_, d) = get(&format!("/audit?date={day}"));
    let day_total = total(&d);
    assert!(day_total > 0, "the day {day} has records");
    let views = [
        (
            "first page (newest 50 of the year)".to_string(),
            "/audit".to_string(),
        ),
        (
            format!("last page of everything (page {pages})"),
            format!("/audit?page={pages}"),
        ),
        (
            format!("a filtered day ({day}: {day_total} records), first page"),
            format!("/audit?date={day}"),
        ),
        (
            format!(
                "a filtered account (staff10: {} records), first page",
                total(&staff)
            ),
            "/audit?staff=staff10".into(),
        ),
        (
            format!("a filtered account, last page (page {staff_pages})"),
            format!("/audit?staff=staff10&page={staff_pages}"),
        ),
        (
            "a filtered counter (10), first page".into(),
            "/audit?counter=10".into(),
        ),
        (
            "a filtered ticket number (1001, any day), first page".into(),
            "/audit?ticket=1001".into(),
        ),
        (
            "a day and an account together".into(),
            format!("/audit?date={day}&staff=staff10"),
        ),
        (
            format!("one-day JSON Lines export ({day}: {day_total} records)"),
            format!("/api/audit/export?date={day}"),
        ),
    ];
    for (name, path) in &views {
        let mut times: Vec<Duration> = (0..RUNS).map(|_| get(path).0).collect();
        times.sort();
        let (_, html) = get(path);
        if path.starts_with("/audit") {
            assert!(
                html.contains("この頁の改ざん検査: OK"),
                "{path}: the page's check"
            );
        }
        rows.push((
            format!("audit view: {name}"),
            format!(
                "median {:.0} ms, worst {:.0} ms",
                times[RUNS / 2].as_secs_f64() * 1000.0,
                times[RUNS - 1].as_secs_f64() * 1000.0
            ),
        ));
    }
    let (whole, body) = get("/api/audit/export");
    rows.push((
        "for comparison: the whole year exported (JSON Lines)".into(),
        format!(
            "{:.1} s, {:.0} MB",
            whole.as_secs_f64(),
            body.len() as f64 / 1e6
        ),
    ));
    let _ = child.kill();
    let _ = child.wait();
    println!("\n| measure | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}
