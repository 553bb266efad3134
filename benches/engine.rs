//! Engine benchmarks (not timed tests): durable command latency, import of a
//! simulated year, start-up time and resident memory with a year of history.
//!
//! `cargo bench --bench engine` (MADOGUCHI_BENCH_DAYS sets the year's length,
//! default 250 business days). Results print as a Markdown table for
//! BENCHMARKS.md.

use std::io::Write;
use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use hdrhistogram::Histogram;
use madoguchi_core::config::Config;
use madoguchi_core::engine::{ConfigChoice, Engine, EngineOptions, ImportLine};
use madoguchi_core::simulate::{EstimateAccuracy, SimOptions, Simulator};

fn main() {
    if let Some(dir) = std::env::var_os("MADOGUCHI_BENCH_CHILD_OPEN") {
        child_open(Path::new(&dir));
        return;
    }
    // `cargo bench` passes --bench; nothing else is expected.
    let days: u32 = std::env::var("MADOGUCHI_BENCH_DAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250);
    let cfg = Config::embedded_default();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut rows_out: Vec<(String, String)> = Vec::new();

    // 1. Durable apply latency: one command, one sync, one answer — on the
    // engine directly, and through the engine thread the server uses
    // (`SharedEngine`, which writes the sled snapshot after the answers,
    // issue 16): the latency a kiosk or staff station waits for.
    let day: Vec<_> = Simulator::new(&cfg, opts(NaiveDate::from_ymd_opt(2026, 11, 24), 1, 1))
        .flatten()
        .collect();
    {
        let dir = tmp.path().join("latency");
        let (mut engine, _) =
            Engine::open(&dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
        let result = durable_latency(&day, |c| {
            engine
                .execute(c.at, &c.command)
                .expect("engine")
                .expect("accepted");
        });
        rows_out.push((
            format!(
                "durable command apply latency ({} commands of a simulated day, one fsync each)",
                day.len()
            ),
            result,
        ));
    }
    {
        let dir = tmp.path().join("latency-shared");
        let (engine, _) =
            Engine::open(&dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
        let shared = madoguchi_core::engine::SharedEngine::start(engine);
        let handle = shared.handle();
        let result = durable_latency(&day, |c| {
            handle
                .execute(Some(c.at), c.command.clone(), None)
                .expect("accepted");
        });
        drop(handle);
        if let Some(e) = shared.shutdown() {
            e.close().expect("close");
        }
        rows_out.push((
            format!(
                "durable command latency through the server's engine thread ({} commands, one fsync each; snapshot after the answers)",
                day.len()
            ),
            result,
        ));
    }

    // 2. A simulated year, imported.
    let year_dir = tmp.path().join("year");
    let file = tmp.path().join("year.jsonl");
    let t = Instant::now();
    let mut tickets_issued = 0usize;
    let mut commands = 0usize;
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        for day in Simulator::new(
            &cfg,
            SimOptions {
                volume: 1.1,
                ..opts(NaiveDate::from_ymd_opt(2025, 11, 4), days, 7)
            },
        ) {
            for c in &day {
                if c.command.name() == "issue_ticket" {
                    tickets_issued += 1;
                }
                writeln!(out, "{}", c.to_json_line(&cfg)).expect("write");
            }
            commands += day.len();
        }
        out.flush().expect("flush");
    }
    let sim_secs = t.elapsed().as_secs_f64();
    let file_mb = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    rows_out.push((
        format!("simulate {days} business days"),
        format!(
            "{commands} commands, {tickets_issued} tickets, {file_mb:.0} MB in {sim_secs:.1} s"
        ),
    ));
    let (mut engine, _) =
        Engine::open(&year_dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
    let t = Instant::now();
    let lines = || {
        let reader =
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file).expect("open"));
        std::io::BufRead::lines(reader)
            .enumerate()
            .map(|(i, l)| ImportLine::parse(i + 1, &l.expect("line")))
    };
    let report = engine.import(lines, &mut |_, _| {}).expect("import");
    let import_secs = t.elapsed().as_secs_f64();
    rows_out.push((
        format!(
            "import of the simulated year ({} commands, {} events; check pass + write pass)",
            report.commands, report.events
        ),
        format!(
            "{import_secs:.1} s — {:.0} events/s, {:.0} commands/s",
            report.events as f64 / import_secs,
            report.commands as f64 / import_secs
        ),
    ));
    engine.close().expect("close");
    let log_mb = dir_size(&year_dir.join("log")) as f64 / 1e6;
    let sled_mb = dir_size(&year_dir.join("state.sled")) as f64 / 1e6;
    rows_out.push((
        "data folder after the year".into(),
        format!("event log {log_mb:.0} MB, sled {sled_mb:.0} MB"),
    ));

    // 3. Start-up with a year of history: in-process open, and the whole
    // `madoguchi status` process (open + print) with its peak RSS.
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (e, report) =
            Engine::open(&year_dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
        opens.push(t.elapsed());
        assert_eq!(report.replayed, 0);
        assert!(report.rebuilt.is_none());
        e.close().expect("close");
    }
    opens.sort();
    rows_out.push((
        "start-up with a year of history (Engine::open, median of 5)".into(),
        ms(opens[2]),
    ));
    let (wall, rss_kb) = run_status(&year_dir);
    rows_out.push((
        "`madoguchi status` process on the year: wall time; peak RSS of a process holding the open engine".into(),
        format!("{}, {:.1} MB", ms(wall), rss_kb as f64 / 1024.0),
    ));

    let (e, _) =
        Engine::open(&year_dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
    let acc = EstimateAccuracy::of(
        e.tickets_of(e.state().meta.day.as_ref().expect("day").date)
            .expect("tickets")
            .iter(),
    );
    drop(e);
    rows_out.push((
        "wait estimate on the last simulated day (shown at issue vs. real wait to first call)".into(),
        format!(
            "{} tickets: mean real wait {:.1} min, mean abs. error {:.1} min, median abs. error {:.1} min, p90 abs. error {:.1} min, bias {:+.1} min",
            acc.tickets, acc.mean_actual_min, acc.mean_abs_error_min, acc.median_abs_error_min, acc.p90_abs_error_min, acc.bias_min
        ),
    ));

    // Statistics reports of the whole year, from the cells.
    {
        let (e, _) =
            Engine::open(&year_dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
        let from = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let to = NaiveDate::from_ymd_opt(2027, 12, 31).expect("date");
        let t = Instant::now();
        let mut sheets = Vec::new();
        let mut csv_bytes = 0;
        for g in madoguchi_core::stats::Granularity::ALL {
            let rows =
                madoguchi_renderer::export::rows(e.config(), &e.stats(from, to, g).expect("stats"));
            csv_bytes += madoguchi_renderer::export::csv(
                &rows,
                madoguchi_renderer::export::Encoding::Utf8Bom,
            )
            .expect("csv")
            .len();
            sheets.push((g, rows));
        }
        let csv_secs = t.elapsed().as_secs_f64();
        let xlsx = madoguchi_renderer::export::xlsx(&sheets).expect("xlsx");
        let all_secs = t.elapsed().as_secs_f64();
        let rows: usize = sheets.iter().map(|s| s.1.len()).sum();
        rows_out.push((
            format!("statistics of the year from the kept cells: hourly, daily and monthly reports ({rows} rows)"),
            format!("CSV {csv_secs:.2} s ({:.1} MB); CSV + xlsx {all_secs:.2} s ({:.1} MB xlsx)", csv_bytes as f64 / 1e6, xlsx.len() as f64 / 1e6),
        ));
        // For comparison: the same figures by replaying the raw log.
        let t = Instant::now();
        let mut count = 0u64;
        for r in e.log().records(None) {
            let (_, rec) = r.expect("record");
            let body = madoguchi_core::engine::RecordBody::decode(&rec).expect("body");
            count += body.events.len() as u64;
        }
        rows_out.push((
            format!("for comparison: only reading and decoding the raw log ({count} events), before any arithmetic"),
            format!("{:.2} s", t.elapsed().as_secs_f64()),
        ));
    }

    std::fs::remove_dir_all(year_dir.join("state.sled")).expect("rm sled");
    let t = Instant::now();
    let (e, report) =
        Engine::open(&year_dir, ConfigChoice::Stored, EngineOptions::default()).expect("open");
    let rebuild = t.elapsed();
    rows_out.push((
        format!(
            "rebuild of sled from the whole log ({} records), for comparison",
            report.replayed
        ),
        format!("{:.1} s", rebuild.as_secs_f64()),
    ));
    let t = Instant::now();
    let count = e.verify().expect("verify");
    rows_out.push((
        format!("`audit verify`: hash chain and replay of {count} records"),
        format!("{:.1} s", t.elapsed().as_secs_f64()),
    ));
    e.close().expect("close");

    println!("| measure | result |");
    println!("|---|---|");
    for (k, v) in rows_out {
        println!("| {k} | {v} |");
    }
}

fn opts(start: Option<NaiveDate>, days: u32, seed: u64) -> SimOptions {
    SimOptions {
        start: start.unwrap_or_default(),
        days,
        seed,
        volume: 1.0,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        dir_size(&path)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Runs `madoguchi status` on `data` for its wall time, then this bench
/// again as a child that only opens the engine and reports its peak RSS
/// (VmHWM), so the figure is the engine's and not the bench's.
fn run_status(data: &Path) -> (Duration, i64) {
    let bin = env!("CARGO_BIN_EXE_madoguchi");
    let t = Instant::now();
    let out = Process::new(bin)
        .arg("--data")
        .arg(data)
        .arg("status")
        .output()
        .expect("run status");
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me = std::env::current_exe().expect("exe");
    let out = Process::new(me)
        .env("MADOGUCHI_BENCH_CHILD_OPEN", data)
        .output()
        .expect("child");
    let rss = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(-1);
    (wall, rss)
}

/// In the child: open the engine, print peak RSS in KiB.
fn child_open(data: &Path) {
    let (engine, _) =
        Engine::open(data, ConfigChoice::Stored, EngineOptions::default()).expect("open");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .unwrap_or(-1);
    println!("{hwm}");
    drop(engine);
}

/// Runs `day` through `exec` one command at a time: p50, p99, max and rate.
fn durable_latency<C>(day: &[C], mut exec: impl FnMut(&C)) -> String {
    let mut h = Histogram::<u64>::new(3).expect("hist");
    let started = Instant::now();
    for c in day {
        let t = Instant::now();
        exec(c);
        h.record(t.elapsed().as_micros() as u64).expect("record");
    }
    let secs = started.elapsed().as_secs_f64();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} commands/s)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        day.len() as f64 / secs
    )
}
