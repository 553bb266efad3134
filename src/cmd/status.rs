//! `madoguchi status`: the day, the queues with their waits, the counters.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::output::{hm, minutes};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    let engine = super::open_engine(data, config)?;
    let config = engine.config();
    let state = engine.state();
    let offset = config.office.utc_offset;
    let now = engine.now();
    if args.json {
        let queues: Vec<_> = config
            .queues
            .iter()
            .map(|q| {
                json!({
                    "queue": q.id,
                    "name": q.name,
                    "estimate": state.estimate(config, &q.id, now),
                    "waiting": state.waiting_with_estimates(config, &q.id, now)
                        .into_iter()
                        .map(|(n, s)| json!({"number": n, "expected_wait_s": s}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({
            "seq": engine.seq(),
            "day": state.meta.day,
            "day_open": state.day_is_open(),
            "queues": queues,
            "counters": state.meta.counters,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} — 記録 {} 件", config.office.name.ja, engine.seq());
    match &state.meta.day {
        None => println!("業務日: まだありません"),
        Some(d) if d.closed_at.is_some() => println!("業務日: {}（終了）", d.date),
        Some(d) => println!(
            "業務日: {}（{} 開始{}）",
            d.date,
            hm(d.opened_at, offset),
            if d.special { "・臨時開庁" } else { "" }
        ),
    }
    println!();
    println!(
        "{:<28} {:>6} {:>10}",
        "待ち列 queue", "待ち", "予想待ち時間"
    );
    for q in &config.queues {
        let e = state.estimate(config, &q.id, now);
        println!(
            "{:<28} {:>5}人 {:>10}",
            q.name.ja,
            e.waiting,
            minutes(e.expected_wait_s)
        );
    }
    println!();
    for c in &config.counters {
        let s = state.counter(c.number);
        let what = match s {
            Some(s) if !s.open => "閉".to_string(),
            Some(s) => match s.ticket.and_then(|n| state.ticket(n)) {
                Some(t) => format!("{} 番 {}", t.number, t.status.name()),
                None => "空き".to_string(),
            },
            None => "?".to_string(),
        };
        println!("{:>3} 番窓口  {what}", c.number);
    }
    Ok(())
}
