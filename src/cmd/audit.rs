//! `madoguchi audit`: checks for auditors (R11).

use std::path::Path;

use anyhow::{Context, Result};
use madoguchi_core::store::hex;

#[derive(Debug, clap::Subcommand)]
pub enum Audit {
    /// Check the whole hash chain of the event log, record by record, and
    /// that replaying it gives exactly the current state. Reports the first
    /// broken record.
    Verify,
}

pub fn run(data: &Path, config: Option<&Path>, audit: Audit) -> Result<()> {
    match audit {
        Audit::Verify => {
            let engine = super::open_engine(data, config)?;
            let count = engine.verify().context("audit verify FAILED")?;
            let tail = engine.log().tail();
            println!(
                "OK: {count} records, hash chain intact, state matches the log; last hash {}, state {}",
                hex(&tail.last_hash),
                engine.state_hash()
            );
            Ok(())
        }
    }
}
