//! `madoguchi recover`: a damaged data folder made whole again without
//! giving a number twice (R10, R19). The server must be stopped. Staff
//! steps: docs/manual-ja.md「記録の破損から復旧する」.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_core::backup;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The latest backups: a full one, then the incremental ones after it,
    /// in order. Without them the log's intact records alone are used.
    #[arg(long = "backup", value_name = "FILE")]
    pub backups: Vec<PathBuf>,
    /// Start even though records are lost for good: every number the
    /// evidence shows issued is raised, retries of the lost kiosk requests
    /// are told to ask staff, and the acceptance is recorded in the log
    /// (and shown on /admin).
    #[arg(long)]
    pub accept_damage: bool,
}

pub fn run(data: &Path, args: Args) -> Result<()> {
    let clock = madoguchi_core::clock::Clock::from_env()?;
    let r = backup::recover(data, &args.backups, args.accept_damage, clock).with_context(|| {
        format!(
            "復旧できませんでした。データフォルダ {} は変更していません / recover refused; {} was left as it was",
            data.display(),
            data.display()
        )
    })?;
    say!(
        "recovered {}: records 1–{} ({} from the backups, {} intact records from the damaged log)",
        data.display(),
        r.last_seq,
        r.from_backups,
        r.from_log
    );
    say!("復旧しました: 記録 {} まで", r.last_seq);
    if let Some(why) = &r.log_stopped {
        if r.set_aside.is_empty() {
            say!("  壊れた記録より先は読めませんでした / the damaged log could not be read further: {why}");
        } else {
            say!("  壊れた記録を読み飛ばしました / the damaged log was read on past: {why}");
        }
    }
    for s in &r.set_aside {
        let held = if s.hints.is_empty() {
            "番号・発券要求は読み取れません / no ticket number or request readable in it"
                .to_string()
        } else {
            s.hints.join(", ")
        };
        say!(
            "  退避した記録 / set aside: record {} ({}); 含まれていた可能性 / it may have held: {held}",
            s.seq, s.why
        );
    }
    for n in &r.salvage_notes {
        say!("  {n}");
    }
    if let Some(n) = &r.requests_note {
        say!("  {n}");
        if r.requests_unknown {
            super::record_fault(data, "lost-requests", n);
        }
    }
    for s in r.set_aside.iter().filter(|s| s.settings) {
        let lost = format!(
            "設定の変更（記録 {}）が失われました。それより前の設定で動いています。設定の画面で確かめて、もう一度適用してください / a settings change (record {}) was lost: the office runs on the settings before it; check them on the settings page and apply the change again",
            s.seq, s.seq
        );
        say!("  {lost}");
        super::record_fault(data, "settings-lost", &lost);
    }
    let requeued = requeued(&r.set_aside);
    if !requeued.is_empty() {
        say!("  {requeued}");
    }
    if !r.set_aside.is_empty() {
        let list: Vec<String> = r
            .set_aside
            .iter()
            .map(|s| {
                if s.hints.is_empty() {
                    format!("record {}", s.seq)
                } else {
                    format!("record {} ({})", s.seq, s.hints.join(", "))
                }
            })
            .collect();
        super::record_fault(
            data,
            "damaged-records-set-aside",
            &format!(
                "壊れた記録を退避し、その後の記録は確認して残しました / records set aside, the records after them checked and kept: {}{}",
                list.join("; "),
                if requeued.is_empty() {
                    String::new()
                } else {
                    format!(". {requeued}")
                }
            ),
        );
    }
    if let Some(e) = r.evidence_seq {
        if e > r.last_seq {
            say!(
                "  NOT brought back: records {}–{} (the snapshot showed them acknowledged) / 取り戻せなかった記録: {}–{}",
                r.last_seq + 1,
                e,
                r.last_seq + 1,
                e
            );
        }
    }
    if let Some(a) = &r.accepted {
        say!("  損傷を記録して再開 / damage accepted and recorded: {a}");
        super::record_fault(data, "accept-damage", a);
    }
    say!(
        "  the damaged folder is kept whole at {} / 壊れたフォルダは保管しています",
        r.damaged_kept.display()
    );
    if let Some(m) = &r.held_as_restored {
        // Nothing of the live office was in the folder: the backups alone,
        // held like a restore until an admin confirms.
        super::backup::warn_restored(data, m);
    }
    Ok(())
}

/// The tickets a set-aside record moved at a counter that wait again after
/// the repair (outside tester storage-rt10 F-E: visitors already served
/// were back in the queue and nobody was told): named for staff, who
/// complete those already served. Empty when there are none.
fn requeued(set_aside: &[backup::SetAsideRecord]) -> String {
    let mut numbers: Vec<u64> = set_aside
        .iter()
        .flat_map(|s| s.requeued.iter().map(|n| u64::from(*n)))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.is_empty() {
        return String::new();
    }
    let list: Vec<String> = numbers.iter().map(u64::to_string).collect();
    format!(
        "待ちに戻った番号 {}: 退避した記録では呼び出し・案内済みでした。窓口で確かめ、済んでいれば「完了」にしてください / waiting again: {} (a set-aside record showed them called or served; check at the counters and complete those already served)",
        list.join("、"),
        list.join(", ")
    )
}
