//! `madoguchi backup` and `madoguchi restore` (R10).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_core::backup;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// An earlier backup: write only what came after it (incremental).
    #[arg(long, value_name = "FILE")]
    pub after: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A full backup, then the incremental ones that follow it, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Reads the log only: safe while the office server runs, which is neither
/// paused nor asked anything.
pub fn run_backup(data: &Path, args: BackupArgs) -> Result<()> {
    let after = match &args.after {
        Some(p) => Some(
            backup::manifest(p)
                .with_context(|| format!("cannot use {} as the earlier backup", p.display()))?,
        ),
        None => None,
    };
    let m = backup::backup(data, &args.out, after.as_ref())
        .with_context(|| format!("backup of {} failed", data.display()))?;
    println!(
        "wrote {} ({}: records {}–{}, last hash {})",
        args.out.display(),
        if m.is_full() { "full" } else { "incremental" },
        m.first_seq,
        m.last_seq,
        m.last_hash
    );
    Ok(())
}

pub fn run_restore(data: &Path, args: RestoreArgs) -> Result<()> {
    let (m, n) =
        backup::restore(&args.files, data).context("restore refused; nothing was written")?;
    let engine = super::open_engine(data, None)?;
    println!(
        "restored {} records into {}; last hash {}, state {}",
        n,
        data.display(),
        m.last_hash,
        engine.state_hash()
    );
    Ok(())
}
