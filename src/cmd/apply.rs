//! `madoguchi apply`: commands from standard input, each answered on
//! standard output only after it is durable in the event log.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use madoguchi_core::engine::ImportLine;
use madoguchi_core::model::Millis;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(data: &Path, config: Option<&Path>, _args: Args) -> Result<()> {
    super::refuse_fenced_folder(data)?;
    let mut engine = super::open_engine(data, config)?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        // A line without "time" runs now.
        let with_time = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(mut o)) if !o.contains_key("time") => {
                let now = engine.now().to_datetime(engine.config().office.utc_offset);
                o.insert("time".into(), now.to_rfc3339().into());
                serde_json::Value::Object(o).to_string()
            }
            _ => line,
        };
        let answer = match ImportLine::parse(n, &with_time) {
            Err(e) => json!({"line": n, "ok": false, "code": "bad_line", "message": e.to_string()}),
            Ok(l) => match engine
                .execute_batch(&[(Millis(l.at.0), l.command, l.by)])?
                .pop()
                .context("the engine gave no answer")?
            {
                Ok(o) => {
                    json!({"line": n, "ok": true, "seq": o.seq, "ticket": o.ticket, "events": o.events})
                }
                Err(r) => {
                    json!({"line": n, "ok": false, "code": r.code(), "message": r.to_string(), "message_ja": r.message_ja()})
                }
            },
        };
        writeln!(stdout, "{answer}").context("cannot write the answer")?;
        stdout.flush().context("cannot write the answer")?;
    }
    engine.close().context("cannot flush the snapshots")?;
    Ok(())
}
