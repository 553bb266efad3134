//! One module per subcommand, plus what they share: opening the engine.

pub mod apply;
pub mod archive;
pub mod audit;
pub mod backup;
pub mod demo;
pub mod estimate_eval;
pub mod export;
pub mod history;
pub mod import;
pub mod keys;
pub mod promote;
pub mod recover;
pub mod simulate;
pub mod stats;
pub mod status;

use std::path::Path;

use anyhow::{Context, Result};
use madoguchi_core::clock::Clock;
use madoguchi_core::config::{Config, HostSettings};
use madoguchi_core::engine::{ConfigChoice, Engine, EngineOptions};

/// Reads `--config` if given.
pub fn load_config(config: Option<&Path>) -> Result<Option<Config>> {
    config
        .map(|p| Config::from_file(p).context("the configuration is not valid"))
        .transpose()
}

/// This machine's host settings: `--host FILE`, else the host sections of
/// `--config FILE` when it has any, else `<data>/host.toml` when present.
pub fn load_host(host: Option<&Path>, config: Option<&Path>, data: &Path) -> Result<HostSettings> {
    let read = |p: &Path| HostSettings::from_file(p).context("the host settings are not valid");
    if let Some(h) = host {
        return read(h);
    }
    if let Some(c) = config {
        let h = read(c)?;
        if h != HostSettings::default() {
            return Ok(h);
        }
    }
    let beside = data.join("host.toml");
    if beside.exists() {
        return read(&beside);
    }
    Ok(HostSettings::default())
}

/// A standby's folder (it holds `standby-token` and was never promoted):
/// served alone or written to by a command, it would give numbers beside
/// its primary (issue 24; red team F6 for `apply` and `import`).
pub fn refuse_standby_folder(data: &Path) -> Result<()> {
    anyhow::ensure!(
        !data.join("standby-token").exists() || data.join("promoted").exists(),
        "この data フォルダは予備機のものです。--standby-of 主機のアドレス を付けて起動するか、予備機の管理画面で「主機に昇格」してください（単独で起動すると主機と同じ番号を出すおそれがあります） / this data folder is a standby's ({}): start it with --standby-of PRIMARY, or promote it; started alone it would give numbers beside the primary",
        data.join("standby-token").display()
    );
    Ok(())
}

/// Commands that write (`apply`, `import`, `demo`) refuse a replaced
/// primary's folder as `serve` does (red team F6: `apply` gave a number
/// the promoted machine also gave), and a standby's.
pub fn refuse_fenced_folder(data: &Path) -> Result<()> {
    refuse_standby_folder(data)?;
    let replaced = std::fs::read_to_string(data.join("replaced"))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    // A revoked standby not yet known to be off may have been promoted:
    // numbers written here offline could be given again there (outside
    // tester replay3 F3). The server holds its commands for it; so do the
    // offline tools, until an administrator confirms on /admin.
    let hold = data.join("revoked-standby");
    let held = match std::fs::read_to_string(&hold) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // A hold that cannot be read is not "no hold": refuse, loudly.
        Err(e) => anyhow::bail!(
            "予備機の取り消しの記録（{}）を読めません。ファイルの権限と状態を確かめてください / cannot read the revoked-standby hold {}: {e}",
            hold.display(),
            hold.display()
        ),
    };
    if let Some(held) = held {
        let names: Vec<&str> = held
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, n)| n))
            .collect();
        if !names.is_empty() {
            anyhow::bail!(
                "取り消した予備機（{}）の停止が確認できていないため、この主機では番号を記録できません。予備機の電源を切ってからサーバーを起動し、管理画面で「予備機の停止を確認」を押してください / the revoked standby ({}) is not known to be off: switch it off, start the server and confirm on /admin first ({})",
                names.join("、"),
                names.join(", "),
                data.join("revoked-standby").display()
            );
        }
    }
    // Restored from a backup: a standby enrolled after it may have been
    // promoted (outside tester replay4 N1); an unverified epoch claim:
    // another machine may serve as the primary. Held as the server holds.
    let restored = data.join(madoguchi_core::backup::RESTORED_HOLD);
    match std::fs::read_to_string(&restored) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Ok(backup) => anyhow::bail!(
            "バックアップ（{}）から復元したこの主機は、バックアップの後に登録された予備機を知らないため、番号を記録できません。元の主機の予備機の電源がすべて切れていることを確かめてからサーバーを起動し、管理画面で「予備機の停止を確認」を押してください / restored from a backup: a standby enrolled after it may have been promoted; switch every other machine off, start the server and confirm on /admin first ({})",
            backup.trim(),
            restored.display()
        ),
        Err(e) => anyhow::bail!(
            "復元の記録（{}）を読めません。ファイルの権限と状態を確かめてください / cannot read the restored-backup hold {}: {e}",
            restored.display(),
            restored.display()
        ),
    }
    let claims = data.join("epoch-claims");
    let held = match std::fs::read_to_string(&claims) {
        Ok(text) => text.lines().any(|l| l.starts_with("held ")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    };
    anyhow::ensure!(
        !held,
        "この主機が確かめられない新しい主機を見たと端末が伝えているため、番号を記録できません。サーバーを起動し、管理画面で確かめてください / a device has seen a newer primary this folder cannot verify: start the server and confirm on /admin first ({})",
        claims.display()
    );
    if let Some(epoch) = replaced {
        anyhow::bail!(
            "この機械は主機ではなくなりました（予備機が主機に昇格しました・第{epoch}期）。番号は新しい主機で発行してください。職員に声をおかけください（元の主機を予備機として戻す手順: docs/manual-ja.md「元の主機の復帰」） / this server has been replaced (a standby was promoted, epoch {epoch}); use the new primary ({})",
            data.join("replaced").display()
        );
    }
    Ok(())
}

/// Opens the data folder, telling the user what start-up repaired.
pub fn open_engine(data: &Path, config: Option<&Path>) -> Result<Engine> {
    let choice = match load_config(config)? {
        Some(c) => ConfigChoice::Given(Box::new(c)),
        None => ConfigChoice::Stored,
    };
    open_engine_with(data, choice)
}

/// Opens the data folder with an explicit configuration choice. Every
/// note is true: a cut torn tail is said to have lost nothing only when the
/// snapshot's evidence shows it; what start-up set aside or rebuilt is also
/// written to the fault records (shown on /admin).
pub fn open_engine_with(data: &Path, choice: ConfigChoice) -> Result<Engine> {
    let mut opts = EngineOptions {
        clock: Clock::from_env()?,
        ..EngineOptions::default()
    };
    // Small segments for the damage tests' folders (closed segments
    // without 32 MiB of records); unset in service.
    if let Some(n) = std::env::var("MADOGUCHI_SEGMENT_BYTES")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        opts.log.segment_bytes = n.max(512);
    }
    let (engine, report) = Engine::open(data, choice, opts)
        .with_context(|| format!("cannot open the data folder {}", data.display()))?;
    if report.torn_bytes_cut > 0 {
        let note = match report.evidence_seq {
            Some(e) => format!(
                "cut {} bytes of an unfinished record off the end of the event log (a crash mid-write); the log ends at record {}, and the snapshot shows nothing acknowledged after record {e}",
                report.torn_bytes_cut,
                engine.log().last_seq()
            ),
            None => format!(
                "cut {} bytes of an unfinished record off the end of the event log (a crash mid-write); the log ends at record {}; there was no snapshot to compare it with",
                report.torn_bytes_cut,
                engine.log().last_seq()
            ),
        };
        eprintln!("note: {note}");
        record_fault(data, "log-torn-tail", &note);
    }
    if let Some(note) = &report.high_water_created {
        eprintln!("注意 / warning: {note}");
        record_fault(data, "highwater-created", note);
    }
    if let Some(p) = &report.set_aside {
        let note = format!(
            "the snapshot store was damaged; it was set aside as {} and rebuilt from the event log ({})",
            p.display(),
            report.rebuilt.as_deref().unwrap_or("")
        );
        eprintln!("note: {note}");
        record_fault(data, "snapshot-set-aside", &note);
    } else if let Some(why) = &report.rebuilt {
        eprintln!("note: rebuilt the snapshots from the event log ({why})");
    }
    Ok(engine)
}

/// Appends a fault record to `<data>/faults.jsonl` (what the server's
/// admin page shows), best effort: a start-up note is on stderr anyway.
pub fn record_fault(data: &Path, kind: &str, message: &str) {
    use std::io::Write;
    let time = chrono::Utc::now()
        .with_timezone(
            &chrono::FixedOffset::east_opt(9 * 3600)
                .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc)),
        )
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let line = serde_json::json!({"time": time, "kind": kind, "message": message});
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("faults.jsonl"))
        .and_then(|mut f| writeln!(f, "{line}"));
}
