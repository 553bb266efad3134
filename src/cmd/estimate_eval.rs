//! `madoguchi estimate-eval`: replays the recorded history through today's
//! wait estimator and prints how its estimates would have compared with the
//! real waits (R2, R4, R7): mean absolute error, bias and 80 % range
//! coverage per queue and per hour. Read-only and deterministic: the same
//! log gives the same figures.
//!
//! Every ticket-issued event is replayed with the estimate this estimator
//! makes from the state just before it (so its self-calibration learns from
//! its own estimates, as it would live); the figures count the tickets of
//! `--from`…`--to` called from the queue they were issued into, while the
//! whole history before them is learned from. The estimate recorded at the
//! time is reported beside it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{NaiveDate, Timelike};
use madoguchi_core::config::Config;
use madoguchi_core::engine::{Engine, RecordBody};
use madoguchi_core::model::{Event, Ticket};
use madoguchi_core::simulate::{EstimateAccuracy, WaitSample};
use madoguchi_core::state::State;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// First business day measured (YYYY-MM-DD); default: the first.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last business day measured (YYYY-MM-DD), included; default: the last.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Also print each queue per hour of issue.
    #[arg(long)]
    pub by_hour: bool,
}

/// Samples of the replayed estimate and of the one recorded at the time.
#[derive(Default)]
struct Samples {
    replayed: Vec<WaitSample>,
    recorded: Vec<WaitSample>,
}

/// (queue, hour of issue) → samples; hour 99: the whole day.
type Cells = BTreeMap<(String, u32), Samples>;

/// Replays the whole log of `engine`, re-estimating every ticket, and
/// returns the samples of the tickets issued from `from` to `to`.
fn evaluate(
    engine: &Engine,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(u64, Cells)> {
    let mut config: Config = engine.config().clone();
    let offset = config.office.utc_offset;
    let mut state = State::new(&config);
    let mut cells = Cells::new();
    let mut recorded_at_issue: BTreeMap<u32, WaitSample> = BTreeMap::new();
    let mut started = false;
    let in_range = |d: NaiveDate| from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t);
    let collect = |state: &State,
                   recorded: &BTreeMap<u32, WaitSample>,
                   cells: &mut BTreeMap<(String, u32), Samples>| {
        for t in state.tickets.values().filter(|t| in_range(t.date)) {
            add(t, recorded, offset, cells);
        }
    };
    let mut records = 0u64;
    for r in engine.log().records(None) {
        let (_, record) = r.context("cannot read the event log")?;
        let body = RecordBody::decode(&record)?;
        records += 1;
        for event in &body.events {
            let mut event = event.clone();
            match &mut event {
                Event::ConfigApplied { source } => {
                    config =
                        Config::parse_recorded(source, &format!("event log record {}", record.seq))
                            .context("a recorded configuration is not valid")?;
                }
                Event::DayOpened { .. } => {
                    collect(&state, &recorded_at_issue, &mut cells);
                    recorded_at_issue.clear();
                    started = true;
                }
                Event::TicketIssued {
                    number,
                    category,
                    expected_wait_s,
                    expected_wait_low_s,
                    expected_wait_high_s,
                    ..
                } if started => {
                    recorded_at_issue.insert(
                        *number,
                        WaitSample {
                            actual_s: 0.0,
                            point_s: f64::from(*expected_wait_s),
                            low_s: f64::from(expected_wait_low_s.unwrap_or(*expected_wait_s)),
                            high_s: f64::from(expected_wait_high_s.unwrap_or(*expected_wait_s)),
                        },
                    );
                    let r = state.wait_range(&config, category, body.at);
                    *expected_wait_s = r.point_s;
                    *expected_wait_low_s = Some(r.low_s);
                    *expected_wait_high_s = Some(r.high_s);
                }
                _ => {}
            }
            if !started {
                // An archived start: replay from the first whole day.
                continue;
            }
            state.apply(&config, body.at, &event).with_context(|| {
                format!(
                    "record {} does not replay; run `madoguchi audit verify`",
                    record.seq
                )
            })?;
        }
    }
    collect(&state, &recorded_at_issue, &mut cells);
    Ok((records, cells))
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    let engine = super::open_engine(data, config)?;
    let (records, cells) = evaluate(&engine, args.from, args.to)?;
    println!(
        "estimate-eval: {records} records replayed; tickets from {} to {}",
        args.from.map_or("the first day".into(), |d| d.to_string()),
        args.to.map_or("the last day".into(), |d| d.to_string())
    );
    println!(
        "replayed with this estimator (MAE and bias: shown − real, share of the mean real wait):"
    );
    for ((queue, hour), s) in &cells {
        if *hour == 99 {
            println!("{}", EstimateAccuracy::of_samples(&s.replayed).line(queue));
        }
    }
    if args.by_hour {
        for ((queue, hour), s) in &cells {
            if *hour != 99 {
                let name = format!("{queue} {hour:02}時");
                println!("{}", EstimateAccuracy::of_samples(&s.replayed).line(&name));
            }
        }
    }
    println!("as recorded at the time:");
    for ((queue, hour), s) in &cells {
        if *hour == 99 {
            println!("{}", EstimateAccuracy::of_samples(&s.recorded).line(queue));
        }
    }
    Ok(())
}

/// Adds a called ticket to its queue's whole-day and hour cells.
fn add(
    t: &Ticket,
    recorded: &BTreeMap<u32, WaitSample>,
    offset: chrono::FixedOffset,
    cells: &mut Cells,
) {
    let Some(replayed) = WaitSample::of(t) else {
        return;
    };
    let hour = t.issued_at.to_datetime(offset).hour();
    for key in [(t.category.clone(), 99), (t.category.clone(), hour)] {
        let cell = cells.entry(key).or_default();
        cell.replayed.push(replayed);
        if let Some(r) = recorded.get(&t.number) {
            cell.recorded.push(WaitSample {
                actual_s: replayed.actual_s,
                ..*r
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use madoguchi_core::engine::{ConfigChoice, EngineOptions};
    use madoguchi_core::simulate::{SimOptions, Simulator};

    /// A log written by this estimator replays to exactly the estimates it
    /// recorded, deterministically, with every range around its point.
    #[test]
    fn the_replay_reproduces_the_recorded_estimates() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut engine, _) =
            Engine::open(dir.path(), ConfigChoice::Stored, EngineOptions::default()).expect("open");
        let config = engine.config().clone();
        let start = NaiveDate::from_ymd_opt(2027, 6, 1).expect("date");
        let sim = Simulator::new(
            &config,
            SimOptions {
                start,
                days: 2,
                seed: 5,
                volume: 0.15,
            },
        );
        for day in sim {
            for c in day {
                engine
                    .execute(c.at, &c.command)
                    .expect("engine")
                    .expect("accepted");
            }
        }
        let (_, cells) = evaluate(&engine, Some(start), None).expect("replay");
        let mut tickets = 0;
        for ((_, hour), s) in &cells {
            if *hour != 99 {
                continue;
            }
            assert_eq!(s.replayed, s.recorded);
            for r in &s.replayed {
                assert!(r.low_s <= r.point_s && r.point_s <= r.high_s, "{r:?}");
            }
            tickets += s.replayed.len();
        }
        assert!(tickets > 100, "{tickets} tickets measured");
        let (_, again) = evaluate(&engine, Some(start), None).expect("replay");
        let flat = |c: &Cells| -> Vec<f64> {
            c.values()
                .flat_map(|s| s.replayed.iter().map(|r| r.point_s))
                .collect()
        };
        assert_eq!(flat(&cells), flat(&again), "deterministic");
    }
}
