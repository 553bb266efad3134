//! `madoguchi export`: the complete event log — configuration records
//! included — as JSON Lines, for migration and audit (R14).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_core::engine::RecordBody;
use madoguchi_core::store::hex;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write; default: standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    let engine = super::open_engine(data, config)?;
    let offset = engine.config().office.utc_offset;
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut count = 0u64;
    for r in engine.log().records(None) {
        let (_, record) = r.context("cannot read the event log")?;
        let body = RecordBody::decode(&record)?;
        let line = json!({
            "seq": record.seq,
            "time": body.at.to_datetime(offset).to_rfc3339(),
            "at_ms": body.at.0,
            "by": body.by,
            "events": body.events,
            "prev": hex(&record.prev),
            "hash": hex(&record.hash()),
        });
        writeln!(out, "{line}").context("cannot write the export")?;
        count += 1;
    }
    out.flush().context("cannot write the export")?;
    eprintln!("exported {count} records");
    Ok(())
}
