//! `madoguchi archive`: the retention step (R14). Moves the event log's
//! closed segments older than the retention period to an archive folder,
//! keeping the chain verifiable (`madoguchi audit verify --archive DIR`
//! checks the archive against the live log). Runs on a data folder at rest:
//! the office server holds the folder while it runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use madoguchi_core::engine::archive::start_of;
use madoguchi_core::engine::EngineError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep this many days of history in the live log; older closed
    /// segments are archived.
    #[arg(long, value_name = "DAYS")]
    pub keep_days: u32,
    /// The archive folder (kept, for auditors; back it up like the data).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    if args.keep_days == 0 {
        bail!("--keep-days must be at least 1");
    }
    let mut engine = match super::open_engine(data, config) {
        Err(e)
            if e.chain()
                .any(|c| matches!(c.downcast_ref(), Some(EngineError::InUse(_)))) =>
        {
            bail!(
                "the office server is using {}: stop it first (archiving runs on a folder at rest, e.g. from the nightly timer)",
                data.display()
            )
        }
        other => other?,
    };
    let today = engine.office_date();
    let cutoff = today - chrono::Days::new(u64::from(args.keep_days));
    let before = start_of(engine.config(), cutoff);
    println!("archiving closed log segments with nothing on or after {cutoff}");
    let report = engine
        .archive(before, &args.to, &mut |step| println!("  {step}"))
        .context("archiving failed; the live log is unchanged up to the step named")?;
    match report {
        None => println!("nothing to archive: every closed segment has records on or after {cutoff}"),
        Some(r) => println!(
            "archived records 1–{} ({} segment(s), {} bytes) to {}; recorded as record {}; checkpoint {}",
            r.through,
            r.segments,
            r.bytes,
            r.archive.display(),
            r.recorded_as,
            r.checkpoint_sha256
        ),
    }
    engine.close()?;
    Ok(())
}
