//! `madoguchi demo`: one simulated business day of the embedded office run
//! through the real engine (durable log, sled snapshots), then a summary.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use madoguchi_core::engine::{ImportLine, ImportPhase};
use madoguchi_core::model::{Status, StepKind};
use madoguchi_core::simulate::{EstimateAccuracy, SimOptions, Simulator};

use super::simulate::today;
use crate::output::minutes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Random seed for the day.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    super::refuse_fenced_folder(data)?;
    let mut engine = super::open_engine(data, config)?;
    let cfg = engine.config().clone();
    // The next business day after what the folder already holds.
    let start = match &engine.state().meta.day {
        Some(d) if d.closed_at.is_none() => anyhow::bail!(
            "the business day {} is still open in {}; the demo runs whole days",
            d.date,
            data.display()
        ),
        Some(d) => d.date.succ_opt().context("date overflow")?,
        None => today(&cfg)?,
    };
    let sim = Simulator::new(
        &cfg,
        SimOptions {
            start,
            days: 1,
            seed: args.seed,
            volume: 1.0,
        },
    );
    let day: Vec<_> = sim.flatten().collect();
    let date = day
        .iter()
        .find_map(|c| match &c.command {
            madoguchi_core::model::Command::OpenDay { date } => Some(*date),
            _ => None,
        })
        .context("the calendar has no open day ahead")?;
    println!(
        "{} — {date} を模擬運用します（{} 件の操作）",
        cfg.office.name.ja,
        day.len()
    );
    let lines: Vec<String> = day.iter().map(|c| c.to_json_line(&cfg)).collect();
    let started = Instant::now();
    let mut progress = |phase: ImportPhase, n: u64| {
        if phase == ImportPhase::Writing {
            eprint!("\r  記録中 {n}/{}", lines.len());
        }
    };
    let report = engine.import(
        || {
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| ImportLine::parse(i + 1, l))
        },
        &mut progress,
    )?;
    eprintln!();
    let secs = started.elapsed().as_secs_f64();

    let tickets = engine.tickets_of(date)?;
    let issued = tickets.len();
    let count = |f: &dyn Fn(&Status) -> bool| tickets.iter().filter(|t| f(&t.status)).count();
    let done = count(&|s| matches!(s, Status::Done { .. }));
    let cancelled = count(&|s| matches!(s, Status::Cancelled { .. }));
    let unserved = count(&|s| matches!(s, Status::Unserved { .. }));
    let transferred = tickets
        .iter()
        .filter(|t| {
            t.history
                .iter()
                .any(|s| matches!(s.what, StepKind::Transferred { .. }))
        })
        .count();
    let absent = tickets
        .iter()
        .filter(|t| {
            t.history
                .iter()
                .any(|s| matches!(s.what, StepKind::Absent { .. }))
        })
        .count();
    let acc = EstimateAccuracy::of(&tickets);
    println!(
        "  {} 件を {secs:.2} 秒で記録（グループコミット、fsync 済み）",
        report.commands
    );
    println!("  発券 {issued} 枚 / 完了 {done} / 回付（住民異動→証明の交付） {transferred} / 不在 {absent} / 取消 {cancelled} / 未対応 {unserved}");
    println!(
        "  平均待ち時間 {:.1} 分、発券時の予想との平均誤差 {:.1} 分（中央値 {:.1} 分）",
        acc.mean_actual_min, acc.mean_abs_error_min, acc.median_abs_error_min
    );
    if let Some(t) = tickets.iter().find(|t| {
        t.history
            .iter()
            .any(|s| matches!(s.what, StepKind::Transferred { .. }))
    }) {
        println!(
            "  例: {} 番の経路 — madoguchi history {} --date {date}",
            t.number, t.number
        );
    }
    let st = engine.state();
    for q in &cfg.queues {
        let e = st.estimate(&cfg, &q.id, engine.now());
        println!(
            "  {}: 平均対応 {:.1} 分、いま発券すると予想待ち {}",
            q.name.ja,
            e.service_secs / 60.0,
            minutes(e.expected_wait_s)
        );
    }
    println!(
        "  データ: {}（madoguchi status / export / audit verify で確認できます）",
        data.display()
    );
    engine.close()?;
    Ok(())
}
