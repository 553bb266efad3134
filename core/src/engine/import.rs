//! Importing a file of timestamped commands (R14): all or nothing.
//!
//! The whole file is first decided against a copy of the state in memory; a
//! bad line stops the import with its number and reason before anything is
//! written. Only then are the commands executed for real, in large group
//! commits. The write pass starts from the state the check pass copied and
//! meets the same lines in the same order, so it reaches the same state at
//! every line: each ticket's wait estimate (most of an import's work) is
//! kept from the check and given to the write instead of being computed
//! again. Should writing fail part-way (a full disk), the log is cut back
//! to where it was and sled is rebuilt from it, so the data folder holds
//! exactly what it held before.

use chrono::DateTime;
use serde_json::Value;

use super::{Engine, EngineError};
use crate::model::{Command, Event, Millis};
use crate::state::WaitRange;

/// Commands per group commit during an import.
const CHUNK: usize = 4096;

/// One line of an import file: `{"time": "2026-11-25T08:30:00+09:00",
/// "command": "issue_ticket", "category": "koseki"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportLine {
    pub line: usize,
    pub at: Millis,
    pub command: Command,
    pub by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ImportLine {
    /// Parses one line; `line` is its 1-based number, for errors.
    pub fn parse(line: usize, text: &str) -> Result<ImportLine, ImportError> {
        let bad = |reason: String| ImportError::Line { line, reason };
        let mut value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let time = obj
            .remove("time")
            .ok_or_else(|| bad("missing \"time\"".into()))?;
        let time = time.as_str().ok_or_else(|| {
            bad("\"time\" must be a string like \"2026-11-25T08:30:00+09:00\"".into())
        })?;
        let at = DateTime::parse_from_rfc3339(time).map_err(|e| {
            bad(format!(
                "\"time\" {time:?} is not an RFC 3339 time with offset: {e}"
            ))
        })?;
        let by = match obj.remove("by") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(bad("\"by\" must be a string".into())),
        };
        let command: Command =
            serde_json::from_value(value).map_err(|e| bad(format!("not a valid command: {e}")))?;
        Ok(ImportLine {
            line,
            at: Millis::from_datetime(&at),
            command,
            by,
        })
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub commands: u64,
    pub records: u64,
    pub events: u64,
}

/// The two passes an import makes, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    Checking,
    Writing,
}

impl Engine {
    /// Imports the lines that `source` yields; `source` is called twice (one
    /// pass to check, one to write), so a large file need not fit in memory.
    pub fn import<I>(
        &mut self,
        mut source: impl FnMut() -> I,
        progress: &mut dyn FnMut(ImportPhase, u64),
    ) -> Result<ImportReport, ImportError>
    where
        I: Iterator<Item = Result<ImportLine, ImportError>>,
    {
        let mut dry = self.state.clone();
        let mut count = 0u64;
        // (line, estimate) of every ticket issued, in file order.
        let mut estimates: Vec<(usize, WaitRange)> = Vec::new();
        for item in source() {
            let l = item?;
            let events =
                dry.decide(&self.config, l.at, &l.command)
                    .map_err(|r| ImportError::Line {
                        line: l.line,
                        reason: format!("{} refused: {r}", l.command.name()),
                    })?;
            if let Some(r) = events.iter().find_map(issued_range) {
                estimates.push((l.line, r));
            }
            for e in &events {
                dry.apply(&self.config, l.at, e)
                    .map_err(|x| ImportError::Line {
                        line: l.line,
                        reason: x.to_string(),
                    })?;
            }
            count += 1;
            if count.is_multiple_of(10_000) {
                progress(ImportPhase::Checking, count);
            }
        }
        progress(ImportPhase::Checking, count);
        drop(dry);

        let mark = self.log.tail();
        let mut report = ImportReport::default();
        let result = self.write_all(source(), &estimates, &mut report, progress);
        if let Err(e) = result {
            tracing::warn!(error = %e, "import failed while writing; undoing it");
            self.log.rollback_to(mark).map_err(EngineError::from)?;
            self.feed.cut_back(mark.next_seq - 1);
            self.recover()?;
            return Err(e);
        }
        Ok(report)
    }

    fn write_all(
        &mut self,
        lines: impl Iterator<Item = Result<ImportLine, ImportError>>,
        estimates: &[(usize, WaitRange)],
        report: &mut ImportReport,
        progress: &mut dyn FnMut(ImportPhase, u64),
    ) -> Result<(), ImportError> {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut numbers = Vec::with_capacity(CHUNK);
        let mut given = Vec::with_capacity(CHUNK);
        let mut estimates = estimates.iter().peekable();
        let mut lines = lines.peekable();
        while lines.peek().is_some() {
            chunk.clear();
            numbers.clear();
            given.clear();
            for item in lines.by_ref().take(CHUNK) {
                let l = item?;
                numbers.push(l.line);
                // Only an issue_ticket on the line the check pass saw issue
                // takes its estimate; any other line decides in full.
                let known = match (&l.command, estimates.peek()) {
                    (Command::IssueTicket { .. }, Some(&&(line, r))) if line == l.line => {
                        estimates.next();
                        Some(r)
                    }
                    _ => None,
                };
                given.push(known);
                chunk.push((l.at, l.command, l.by));
            }
            let results = self.execute_batch_given(&chunk, &given)?;
            for (r, line) in results.into_iter().zip(&numbers) {
                let outcome = r.map_err(|r| ImportError::Line {
                    line: *line,
                    reason: format!("refused on writing although it passed the check: {r}"),
                })?;
                report.commands += 1;
                if outcome.seq.is_some() {
                    report.records += 1;
                }
                report.events += outcome.events.len() as u64;
            }
            progress(ImportPhase::Writing, report.commands);
        }
        Ok(())
    }
}

/// The estimate a `ticket_issued` event recorded, when it recorded a range.
fn issued_range(e: &Event) -> Option<WaitRange> {
    match e {
        Event::TicketIssued {
            expected_wait_s,
            expected_wait_low_s: Some(low_s),
            expected_wait_high_s: Some(high_s),
            ..
        } => Some(WaitRange {
            point_s: *expected_wait_s,
            low_s: *low_s,
            high_s: *high_s,
        }),
        _ => None,
    }
}
