//! Replays an exported log (`madoguchi export`) through today's wait
//! estimator, as `madoguchi estimate-eval` does (each ticket re-estimated
//! from the state just before it, the calibration learning from these
//! estimates), and writes one CSV row per issued ticket with the factor
//! the point was corrected by, so that the replays' own, uncorrected point
//! (point / factor) can be compared with the real wait (issue 19: where the
//! error comes from). With `--raw`, each row also carries the replays' own
//! waits (seconds, sorted, `;`-separated: before the calibration), so that
//! other ways of turning them into a point can be tried on the same
//! replays. Usage:
//! `cargo run --example est_replay -- EXPORT.jsonl OUT.csv [--raw]`.

use std::io::{BufRead, Write};

use anyhow::Context;
use madoguchi_core::config::Config;
use madoguchi_core::model::{Event, Millis};
use madoguchi_core::state::State;

/// One line of an export: its time and events (the rest is not needed).
#[derive(serde::Deserialize)]
struct Line {
    at_ms: i64,
    events: Vec<Event>,
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let raw = args.iter().any(|a| a == "--raw");
    args.retain(|a| a != "--raw");
    let [export, csv] = args.as_slice() else {
        anyhow::bail!("usage: est_replay EXPORT.jsonl OUT.csv [--raw]");
    };
    let input = std::io::BufReader::new(
        std::fs::File::open(export).with_context(|| format!("cannot open {export}"))?,
    );
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(csv).with_context(|| format!("cannot create {csv}"))?,
    );
    writeln!(
        out,
        "date,number,category,at_ms,ahead,point,low,high,factor{}",
        if raw { ",raw" } else { "" }
    )?;
    let mut config = Config::embedded_default();
    let mut state = State::new(&config);
    let mut started = false;
    let mut date = String::new();
    let t0 = std::time::Instant::now();
    let mut n = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line: Line = serde_json::from_str(&line?)
            .with_context(|| format!("line {} is not an exported record", i + 1))?;
        let at = Millis(line.at_ms);
        for mut event in line.events {
            match &mut event {
                Event::ConfigApplied { source } => {
                    config = Config::parse_recorded(source, "export")?;
                }
                Event::DayOpened { date: d, .. } => {
                    started = true;
                    date = d.to_string();
                }
                Event::TicketIssued {
                    number,
                    category,
                    expected_wait_s,
                    expected_wait_low_s,
                    expected_wait_high_s,
                    people_ahead,
                    ..
                } if started => {
                    let (r, mut waits) = state.wait_range_and_replays(&config, category, at);
                    n += 1;
                    let ahead = usize::try_from(*people_ahead).unwrap_or(usize::MAX);
                    let f = state.meta.learned.point_scale(category, ahead);
                    write!(
                        out,
                        "{date},{number},{category},{},{ahead},{},{},{},{f:.4}",
                        at.0, r.point_s, r.low_s, r.high_s
                    )?;
                    if raw {
                        waits.sort_by(f64::total_cmp);
                        let w: Vec<String> = waits.iter().map(|w| format!("{w:.1}")).collect();
                        write!(out, ",{}", w.join(";"))?;
                    }
                    writeln!(out)?;
                    *expected_wait_s = r.point_s;
                    *expected_wait_low_s = Some(r.low_s);
                    *expected_wait_high_s = Some(r.high_s);
                }
                _ => {}
            }
            if started {
                state
                    .apply(&config, at, &event)
                    .map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
            }
        }
    }
    eprintln!("{n} estimates in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
