//! `madoguchi audit`: checks for auditors (R11).

use std::path::Path;

use anyhow::{Context, Result};
use madoguchi_core::store::hex;

#[derive(Debug, clap::Subcommand)]
pub enum Audit {
    /// Check the whole hash chain of the event log, record by record, and
    /// that replaying it gives exactly the current state. Reports the first
    /// broken record.
    Verify {
        /// Also check this archive folder (written by `madoguchi archive`):
        /// every archived record from 1, linked to the live log's anchor,
        /// and replaying to exactly its checkpoint.
        #[arg(long, value_name = "DIR")]
        archive: Option<std::path::PathBuf>,
    },
}

pub fn run(data: &Path, config: Option<&Path>, audit: Audit) -> Result<()> {
    match audit {
        Audit::Verify { archive } => {
            let engine = super::open_engine(data, config)?;
            if let Some(dir) = archive {
                let c = engine
                    .verify_archive(&dir)
                    .context("audit verify FAILED in the archive")?;
                say!(
                    "OK: archive {}: {} records in {} segment(s), linked to the live log after record {}, replaying to its checkpoint",
                    dir.display(),
                    c.records,
                    c.segments,
                    c.through
                );
            }
            let count = engine.verify().context(
                "audit verify FAILED / 監査の確認で不一致が見つかりました。データフォルダをコピーしてから docs/manual-ja.md「記録の破損から復旧する」の手順で madoguchi recover を実行してください (copy the data folder aside, then madoguchi recover)",
            )?;
            let tail = engine.log().tail();
            say!(
                "OK: {count} records, hash chain intact, state matches the log; last hash {}, state {}",
                hex(&tail.last_hash),
                engine.state_hash()
            );
            Ok(())
        }
    }
}
