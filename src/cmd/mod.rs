//! One module per subcommand, plus what they share: opening the engine.

/// `println!` that never panics on a closed stdout (`recover … | head`,
/// quitting `less` early: outside tester storage-rt11 F-G', exit 101 with a
/// backtrace after the folder was swapped). What could not be printed is
/// lost to the screen only: fault records are written all the same.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

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
    if let Some(note) = &report.seals_remade {
        eprintln!("注意 / warning: {note}");
        record_fault(data, "seals-remade", note);
    }
    if let Some(note) = &report.clock_behind {
        eprintln!("注意 / warning: {note}");
        record_fault(data, "clock-behind", note);
    }
    if let Some(note) = &report.journal_repaired {
        eprintln!("注意 / warning: {note}");
        record_fault(data, "requests-damaged", note);
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

/// What the operator reads first when a command stops on a storage error
/// (issue 17: sled's and the disk's errors were English-only): Japanese
/// first, then English — the file, what is wrong, the steps. `None` when
/// the error is no storage fault or already says it in both (a refused
/// start over damaged records).
pub fn storage_advice(e: &anyhow::Error, data: &Path) -> Option<String> {
    use madoguchi_core::engine::EngineError;
    use madoguchi_core::log::LogError;
    use madoguchi_core::store::StoreError;
    let mut file = None;
    let mut io = None;
    let mut sled = None;
    for cause in e.chain() {
        // A network error carries an io::Error too: it is never the disk
        // (outside tester insider-rt9 F4: a standby pointed at a TLS
        // primary was told its disk was failing).
        if cause.downcast_ref::<reqwest::Error>().is_some() {
            return None;
        }
        // `recover`'s error wraps the engine's transparently: its cause is
        // not in the chain on its own (outside tester storage-rt12 F-G'':
        // `recover` on a full disk gave the cause in English only, and no
        // steps).
        let backup = cause.downcast_ref::<madoguchi_core::backup::BackupError>();
        if let Some(
            madoguchi_core::backup::BackupError::Io { path, source }
            | madoguchi_core::backup::BackupError::Log(LogError::Io { path, source }),
        ) = backup
        {
            file.get_or_insert(path.clone());
            io.get_or_insert((source.kind(), source.raw_os_error(), source.to_string()));
        }
        let engine = match backup {
            Some(madoguchi_core::backup::BackupError::Engine(x)) => Some(x),
            _ => cause.downcast_ref::<EngineError>(),
        };
        if let Some(x) = engine {
            match x {
                EngineError::Damaged(_) => return None,
                EngineError::Io { path, source } => {
                    file.get_or_insert(path.clone());
                    io.get_or_insert((source.kind(), source.raw_os_error(), source.to_string()));
                }
                EngineError::Log(LogError::Io { path, .. }) => {
                    file.get_or_insert(path.clone());
                }
                EngineError::Store(s) => sled = sled.or(Some(s.to_string())),
                _ => {}
            }
            if let Some(s) = x.io() {
                io.get_or_insert((s.kind(), s.raw_os_error(), s.to_string()));
            }
        } else if let Some(LogError::Io { path, source }) = cause.downcast_ref::<LogError>() {
            file.get_or_insert(path.clone());
            io.get_or_insert((source.kind(), source.raw_os_error(), source.to_string()));
        } else if let Some(s) = cause.downcast_ref::<StoreError>() {
            file.get_or_insert(data.join("state.sled"));
            if let Some(x) = s.io() {
                io.get_or_insert((x.kind(), x.raw_os_error(), x.to_string()));
            }
            sled = sled.or(Some(s.to_string()));
        } else if let Some(x) = cause.downcast_ref::<std::io::Error>() {
            io.get_or_insert((x.kind(), x.raw_os_error(), x.to_string()));
        }
    }
    if sled.is_some() && file.is_none() {
        file = Some(data.join("state.sled"));
    }
    let file = file.map_or_else(|| data.display().to_string(), |f| f.display().to_string());
    let keep = "データフォルダの中のファイルは削除・移動しないでください（番号の記録です）。\n  Delete or move nothing in the data folder: it is the record of the numbers given.";
    let (ja, en, steps) = match &io {
        Some((kind, code, _))
            if *code == Some(28)
                || *code == Some(122)
                || matches!(
                    kind,
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
        {
            (
                "ディスクの空きがありません",
                "no space left on the disk",
                format!(
                    "  1. 空きを確認: df -h {d}\n     Check the free space: df -h {d}\n  2. データフォルダの外の不要なファイル（古いバックアップ、ログ）を消して空きを作ってください。\n     Make space outside the data folder (old backups, system logs).\n  3. もう一度起動してください。何も失われていません。\n     Start again; nothing was lost.",
                    d = data.display()
                ),
            )
        }
        Some((kind, code, _))
            if *code == Some(30) || matches!(kind, std::io::ErrorKind::ReadOnlyFilesystem) =>
        {
            (
                "ディスクが読み取り専用になっています（ディスクの故障の兆候です）",
                "the filesystem is read-only (often a failing disk)",
                "  1. dmesg でディスクのエラーを確認してください / check the kernel log (dmesg) for disk errors.\n  2. 待機系があれば昇格して業務を続けてください / if a standby runs, promote it and carry on there.\n  3. なければデータフォルダ全体を別のディスクへコピー (cp -a) し、そこで起動してください。\n     Otherwise copy the whole data folder to another disk (cp -a) and start there.".to_string(),
            )
        }
        Some((kind, code, _))
            if *code == Some(13) || matches!(kind, std::io::ErrorKind::PermissionDenied) =>
        {
            (
                "ファイルを読み書きする権限がありません",
                "permission denied",
                format!(
                    "  1. データフォルダの所有者を確認してください: ls -l {d}\n     Check who owns the data folder: ls -l {d}\n  2. madoguchi を動かすユーザーで起動してください (systemd: User=)。\n     Run madoguchi as the user that owns it (systemd: User=).",
                    d = data.display()
                ),
            )
        }
        Some(_) => (
            "ディスクの読み書きに失敗しました",
            "reading or writing the disk failed",
            "  1. dmesg でディスクのエラーを確認してください / check the kernel log (dmesg) for disk errors.\n  2. 何も削除せず、データフォルダ全体を別の場所へコピーしてください (cp -a)。\n     Delete nothing; copy the whole data folder aside (cp -a).\n  3. 待機系があれば昇格、なければコピーを別のディスクで起動するか madoguchi recover（docs/manual-ja.md「記録の破損から復旧する」）。\n     Promote a standby if one runs; otherwise start the copy on another disk, or madoguchi recover (docs/manual-ja.md).".to_string(),
        ),
        None if sled.is_some() => (
            "スナップショット (state.sled) を開けません",
            "the snapshot store (state.sled) cannot be opened",
            format!(
                "  1. 何も削除せず、データフォルダ全体を別の場所へコピーしてください (cp -a)。\n     Delete nothing; copy the whole data folder aside (cp -a).\n  2. state.sled は記録から作り直せます: mv {d}/state.sled {d}/state.sled.bad として、もう一度起動してください。\n     state.sled is rebuilt from the log: move it aside (mv {d}/state.sled {d}/state.sled.bad) and start again.",
                d = data.display()
            ),
        ),
        None => return None,
    };
    Some(format!(
        "{ja}: {file}\n{en}: {file}\n対処 / What to do:\n{steps}\n  {keep}"
    ))
}

#[cfg(test)]
mod storage_advice_tests {
    use super::*;
    use madoguchi_core::engine::EngineError;
    use madoguchi_core::store::StoreError;

    #[test]
    fn a_full_disk_is_told_in_japanese_first_with_the_file_and_steps() {
        let data = Path::new("/var/lib/madoguchi");
        let e = anyhow::Error::new(EngineError::Io {
            path: data.join("HIGHWATER"),
            source: std::io::Error::from_raw_os_error(28),
        })
        .context("cannot open the data folder /var/lib/madoguchi");
        let m = storage_advice(&e, data).expect("advice");
        assert!(
            m.starts_with("ディスクの空きがありません: /var/lib/madoguchi/HIGHWATER"),
            "{m}"
        );
        assert!(m.contains("no space left") && m.contains("df -h"), "{m}");
        let e = anyhow::Error::new(EngineError::Store(StoreError::Damaged {
            key: "meta".into(),
            reason: "x".into(),
        }));
        assert!(storage_advice(&e, data)
            .expect("advice")
            .starts_with("スナップショット (state.sled) を開けません"));
        // `recover`'s error (storage-rt12 F-G''): the engine's inside it.
        let e = anyhow::Error::new(madoguchi_core::backup::BackupError::Engine(
            EngineError::Io {
                path: data.join("state.sled"),
                source: std::io::Error::from_raw_os_error(28),
            },
        ))
        .context("復旧できませんでした");
        let m = storage_advice(&e, data).expect("advice for recover");
        assert!(m.starts_with("ディスクの空きがありません"), "{m}");
    }
}
