//! The day's request-id journal (R10, issue 17; outside tester storage-rt11
//! F-P): `<data>/REQUESTS`, one JSON line per ticket issued with a request
//! id (`{"day","n","c","r"}`: business day, number, category, request id),
//! appended after each commit that issued one.
//!
//! The request ids of the day were known only to the snapshot (state.sled)
//! and, for the latest few, the high-water mark. With the records that held
//! them unreadable and state.sled gone as well, `recover --accept-damage`
//! could not know them: a retry of an acknowledged request got a new
//! ticket, and the report said "0 lost request ids". The journal is a third
//! copy, outside the log and sled: `recover` answers its ids that the
//! repaired log does not hold "lost — ask staff" and raises its numbers.
//!
//! It is evidence, never state: written without a sync of its own (it
//! rides the page cache; a power cut may lose its last lines, which the
//! high-water mark's recent ids then cover), never failing a commit (a full
//! disk only warns), truncated when a new business day's first line comes.
//! Lines that do not parse are skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::Number;

/// The file's name inside the data folder.
pub const FILE: &str = "REQUESTS";

/// The most bytes read back (a day of a very busy office is far less).
const MAX_READ: u64 = 64 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    day: NaiveDate,
    n: Number,
    c: String,
    r: String,
}

/// One ticket issued with a request id: request id, number, category.
pub type Entry = (String, Number, String);

/// The journal being written.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The open file and the day its lines are of.
    open: Option<(File, NaiveDate)>,
}

impl Journal {
    pub fn new(dir: &Path) -> Journal {
        Journal {
            path: dir.join(FILE),
            open: None,
        }
    }

    /// Appends `entries` of business day `day` (a new day starts the file
    /// anew).
    pub fn append(&mut self, day: NaiveDate, entries: &[Entry]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.open.as_ref().map(|(_, d)| *d) != Some(day) {
            self.open = None;
            let same_day = first_day(&self.path) == Some(day);
            let file = OpenOptions::new()
                .create(true)
                .append(same_day)
                .write(true)
                .truncate(!same_day)
                .open(&self.path)?;
            self.open = Some((file, day));
        }
        let mut buf = Vec::with_capacity(entries.len() * 64);
        for (r, n, c) in entries {
            let line = Line {
                day,
                n: *n,
                c: c.clone(),
                r: r.clone(),
            };
            if serde_json::to_writer(&mut buf, &line).is_ok() {
                buf.push(b'\n');
            }
        }
        let result = match self.open.as_mut() {
            Some((file, _)) => file.write_all(&buf),
            None => Ok(()),
        };
        if result.is_err() {
            // A partly written line is skipped when read; start afresh.
            self.open = None;
        }
        result
    }
}

/// The day of the file's first line.
fn first_day(path: &Path) -> Option<NaiveDate> {
    let f = File::open(path).ok()?;
    let mut line = String::new();
    BufReader::new(f.take(4096)).read_line(&mut line).ok()?;
    serde_json::from_str::<Line>(line.trim_end())
        .ok()
        .map(|l| l.day)
}

/// What the journal in data folder `dir` shows for business day `day`
/// (the day the log's kept records have): its entries. Lines of any other
/// day — a wrong day's before its repair, or a date damaged in the line —
/// are not evidence of that day (outside tester storage-rt12 F-Q). `None`
/// without a file or a readable line of that day.
pub fn read(dir: &Path, day: NaiveDate) -> Option<(NaiveDate, Vec<Entry>)> {
    let f = File::open(dir.join(FILE)).ok()?;
    let mut lines: Vec<Line> = Vec::new();
    for l in BufReader::new(f.take(MAX_READ)).split(b'\n') {
        let Ok(l) = l else { break };
        if let Ok(line) = serde_json::from_slice::<Line>(&l) {
            lines.push(line);
        }
    }
    lines.iter().find(|l| l.day == day)?;
    let entries = lines
        .into_iter()
        .filter(|l| l.day == day)
        .map(|l| (l.r, l.n, l.c))
        .collect();
    Some((day, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_day_starts_the_journal_anew_and_damaged_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("tmp");
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 6).expect("day");
        let d2 = NaiveDate::from_ymd_opt(2026, 12, 7).expect("day");
        let mut j = Journal::new(dir.path());
        j.append(d1, &[("a".into(), 1, "k".into())])
            .expect("append");
        j.append(d2, &[("b".into(), 2, "k".into())])
            .expect("append");
        // Another process (a restart) appends to the same day.
        let mut j = Journal::new(dir.path());
        j.append(d2, &[("c".into(), 3, "i".into())])
            .expect("append");
        let path = dir.path().join(FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"day\":\"2026-12-07\",\"n\":9\n")
            .expect("torn");
        let (day, entries) = read(dir.path(), d2).expect("read");
        assert_eq!(day, d2);
        assert_eq!(
            entries,
            vec![("b".into(), 2, "k".into()), ("c".into(), 3, "i".into())]
        );
    }

    /// storage-rt12 F-Q: a line whose date was damaged (or a wrong day's)
    /// is not read as another day's evidence.
    #[test]
    fn only_the_logs_day_is_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).expect("day");
        let mut j = Journal::new(dir.path());
        j.append(
            today,
            &[("a".into(), 1, "k".into()), ("b".into(), 2, "k".into())],
        )
        .expect("append");
        let path = dir.path().join(FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replacen("2026-12-07", "2066-12-07", 1)).expect("flip");
        let (day, entries) = read(dir.path(), today).expect("today's");
        assert_eq!(day, today);
        assert_eq!(entries, vec![("b".into(), 2, "k".into())]);
        let other = NaiveDate::from_ymd_opt(2026, 12, 9).expect("day");
        assert!(read(dir.path(), other).is_none());
    }
}
