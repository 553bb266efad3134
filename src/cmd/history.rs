//! `madoguchi history`: a ticket's whole path (R8).

use std::path::Path;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use madoguchi_core::model::StepKind;

use crate::output::hm;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket number.
    pub number: u32,
    /// The business day (YYYY-MM-DD); default: the current or last one.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    let engine = super::open_engine(data, config)?;
    let ticket = engine
        .ticket(args.date, args.number)?
        .with_context(|| format!("there is no ticket {} on that day", args.number))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ticket)?);
        return Ok(());
    }
    let config = engine.config();
    let offset = config.office.utc_offset;
    let qname = |id: &str| {
        config
            .queue(id)
            .map_or(id.to_string(), |q| q.name.ja.clone())
    };
    println!(
        "{} 番（{}、{}）— {}",
        ticket.number,
        qname(&ticket.category),
        ticket.date,
        ticket.status.name()
    );
    for s in &ticket.history {
        let line = match &s.what {
            StepKind::Issued { queue } => format!(
                "発券 {}（前に {} 人、予想 {} 分）",
                qname(queue),
                ticket.people_ahead_at_issue,
                (ticket.expected_wait_s_at_issue + 30) / 60
            ),
            StepKind::Called {
                counter,
                out_of_order,
            } => format!(
                "{counter} 番窓口で呼出{}",
                if *out_of_order { "（順番外）" } else { "" }
            ),
            StepKind::Recalled { counter } => format!("{counter} 番窓口で再呼出"),
            StepKind::Started { counter } => format!("{counter} 番窓口で対応開始"),
            StepKind::Completed { counter, tags } => {
                format!("{counter} 番窓口で完了 {}", tags.join(" "))
            }
            StepKind::Absent { counter } => format!("{counter} 番窓口で不在"),
            StepKind::Returned => "不在から復帰".to_string(),
            StepKind::Transferred { from, to, note, .. } => format!(
                "{} → {} へ回付{}",
                qname(from),
                qname(to),
                note.as_deref()
                    .map(|n| format!("（{n}）"))
                    .unwrap_or_default()
            ),
            StepKind::Held { counter, .. } => format!("{counter} 番窓口で保留"),
            StepKind::Resumed { counter } => format!("{counter} 番窓口で保留解除"),
            StepKind::Cancelled { .. } => "取消".to_string(),
            StepKind::Unserved => "業務終了時に未対応".to_string(),
        };
        println!("  {}  {line}", hm(s.at, offset));
    }
    Ok(())
}
