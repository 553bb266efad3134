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
    let (lines, _) = read_lines(dir)?;
    lines.iter().find(|l| l.day == day)?;
    let entries = lines
        .into_iter()
        .filter(|l| l.day == day)
        .map(|l| (l.r, l.n, l.c))
        .collect();
    Some((day, entries))
}

/// Every line of the journal that parses, and how many non-empty lines do
/// not (damage; a torn last line counts too). `None` without a file.
fn read_lines(dir: &Path) -> Option<(Vec<Line>, usize)> {
    let f = File::open(dir.join(FILE)).ok()?;
    let mut lines: Vec<Line> = Vec::new();
    let mut damaged = 0;
    for l in BufReader::new(f.take(MAX_READ)).split(b'\n') {
        let Ok(l) = l else { break };
        match serde_json::from_slice::<Line>(&l) {
            Ok(line) => lines.push(line),
            Err(_) if l.iter().all(u8::is_ascii_whitespace) => {}
            Err(_) => damaged += 1,
        }
    }
    Some((lines, damaged))
}

/// The journal's lines as evidence of the log's business day `day`: its
/// lines and the damaged ones among them, in file order.
#[derive(Debug, Default)]
pub struct DayLines {
    /// The day's lines and the suspect ones, in file order.
    pub entries: Vec<Entry>,
    /// Lines of another day where that day cannot be (a day after
    /// `today`, or another day among the log day's lines): a damaged date
    /// (outside tester storage-rt13 N1, N2: such a line was dropped
    /// silently, the lost ticket it named got a new number on retry).
    pub suspects: Vec<Entry>,
    /// Lines that do not parse.
    pub unreadable: usize,
}

/// The journal in `dir` read for the log's day `day` ([`DayLines`]);
/// `today`, `repaired` and `held` as for [`later_day`]. `None` without a
/// file.
pub fn read_for(
    dir: &Path,
    day: NaiveDate,
    today: NaiveDate,
    repaired: Option<NaiveDate>,
) -> Option<DayLines> {
    let (lines, unreadable) = read_lines(dir)?;
    let has_day = lines.iter().any(|l| l.day == day);
    // Without a line of the day, the file may be an earlier day's (no
    // ticket with a request id yet today) or a repaired wrong day's: its
    // one day is no damage. A later day up to today is a lost day
    // ([`later_day`]).
    let mut other: std::collections::BTreeMap<NaiveDate, usize> = Default::default();
    for l in &lines {
        if l.day < day || Some(l.day) == repaired {
            *other.entry(l.day).or_default() += 1;
        }
    }
    let usual = other.iter().max_by_key(|(_, n)| **n).map(|(d, _)| *d);
    let suspect = |l: &Line| {
        l.day != day
            && (has_day
                || l.day > today.max(repaired.unwrap_or(today))
                || (l.day < day && Some(l.day) != usual))
    };
    let mut out = DayLines {
        unreadable,
        ..DayLines::default()
    };
    for l in lines {
        let bad = suspect(&l);
        if l.day != day && !bad {
            continue;
        }
        let e = (l.r, l.n, l.c);
        if bad {
            out.suspects.push(e.clone());
        }
        out.entries.push(e);
    }
    Some(out)
}

/// The journal's lines of a business day after `log_day` (the day the
/// log's kept records have; none: any day) and not after `today`, whose
/// request the log does not hold (`held`): evidence that the log lost a
/// later day's opening and its tickets (outside tester storage-rt13 N6:
/// the log cut before a new day's `day_opened` looked whole, the day's
/// acknowledged numbers were given again although the journal listed
/// them). The journal is appended after each commit, so a later day's
/// line means that day was opened in a record the log no longer holds.
/// `repaired` is a day opened by mistake ahead of the log's day and
/// repaired (its lines are that wrong day's, which the log does hold).
/// The latest such day and its lines.
pub fn later_day(
    dir: &Path,
    log_day: Option<NaiveDate>,
    repaired: Option<NaiveDate>,
    today: NaiveDate,
    held: &std::collections::BTreeMap<String, Number>,
) -> Option<(NaiveDate, Vec<Entry>)> {
    let (lines, _) = read_lines(dir)?;
    // A new day starts the file anew: a later day's line among the log
    // day's lines is a damaged date, not a lost day (storage-rt12 F-Q).
    if lines.iter().any(|l| Some(l.day) == log_day) {
        return None;
    }
    let later = |d: NaiveDate| {
        log_day.is_none_or(|l| d > l) && d <= today && repaired.is_none_or(|w| d > w)
    };
    let day = lines
        .iter()
        .filter(|l| later(l.day) && !held.contains_key(&l.r))
        .map(|l| l.day)
        .max()?;
    let mut entries: Vec<Entry> = Vec::new();
    for l in lines.into_iter().filter(|l| l.day == day) {
        let e = (l.r, l.n, l.c);
        if !entries.contains(&e) {
            entries.push(e);
        }
    }
    Some((day, entries))
}

/// The journal's lines of the log's day held against the kept records
/// (outside tester storage-rt12 F-N', F-Q'): the journal is evidence only
/// where it agrees with the log and with itself.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Compared {
    /// Tickets whose request the log does not hold and whose number no
    /// kept ticket has: records the log lost (at its end or set aside).
    pub missing: Vec<Entry>,
    /// Lines that contradict the kept records (the request is kept under
    /// another number, or the number is another ticket's) or the journal
    /// itself (one number for two requests, a queue that does not exist, a
    /// number outside its range): damage of the journal, never trusted.
    pub contradicting: Vec<Entry>,
    /// Contradicting lines of a request the log does not hold whose
    /// number the kept records still show: the one number of its queue,
    /// between the lines before and after it, that no kept ticket and no
    /// other line has (the line as written, the number). They are in
    /// `missing` with that number.
    pub corrected: Vec<(Entry, Number)>,
    /// Lines the kept records agree with.
    pub agreeing: usize,
    /// Contradicting lines of a request the log does not hold whose number
    /// is not known (not in `corrected`): the request was issued in a lost
    /// record, so its retry is told to ask staff (outside tester
    /// storage-rt14 N4'), though no number can be raised for it.
    pub unnumbered: Vec<Entry>,
}

impl Compared {
    /// Each queue's highest number among the missing tickets.
    pub fn highest(&self) -> std::collections::BTreeMap<String, Number> {
        let mut out = std::collections::BTreeMap::new();
        for (_, n, c) in &self.missing {
            let h = out.entry(c.clone()).or_insert(*n);
            *h = (*h).max(*n);
        }
        out
    }
}

/// Holds `entries` (the journal's lines of the state's day) against the
/// kept records `state` under `config`; `lost` are the request ids an
/// `--accept-damage` record already answers "lost — ask staff".
pub fn compare(
    entries: &[Entry],
    state: &crate::state::State,
    config: &crate::config::Config,
    lost: &std::collections::BTreeSet<String>,
    suspects: &[Entry],
) -> Compared {
    use std::collections::BTreeMap;
    let mut out = Compared::default();
    // The journal against itself: one number of a queue for one request,
    // one request for one number.
    let mut by_number: BTreeMap<(&str, Number), Vec<&str>> = BTreeMap::new();
    let mut by_request: BTreeMap<&str, Vec<Number>> = BTreeMap::new();
    for (r, n, c) in entries {
        let v = by_number.entry((c.as_str(), *n)).or_default();
        if !v.contains(&r.as_str()) {
            v.push(r);
        }
        let v = by_request.entry(r.as_str()).or_default();
        if !v.contains(n) {
            v.push(*n);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for e @ (r, n, c) in entries {
        if !seen.insert(e) {
            continue;
        }
        let itself = by_number
            .get(&(c.as_str(), *n))
            .is_some_and(|v| v.len() > 1)
            || by_request.get(r.as_str()).is_some_and(|v| v.len() > 1)
            || config
                .queue(c)
                .and_then(|q| q.numbers)
                .is_none_or(|range| *n < range.from || *n > range.to);
        // A line whose request the log does not hold and whose number is
        // above the log's highest of its queue is evidence of a ticket
        // issued in a lost record, even with its date damaged (outside
        // tester storage-rt14 N7: the journal is appended only after a
        // commit; such lines were thrown away as damage and their numbers
        // given again).
        let beyond = !itself
            && !state.requests.contains_key(r)
            && !lost.contains(r)
            && state.meta.next_number.get(c).is_some_and(|next| n >= next);
        match state.requests.get(r) {
            _ if beyond => out.missing.push(e.clone()),
            _ if suspects.contains(e) => out.contradicting.push(e.clone()),
            Some(kept) if kept == n => out.agreeing += 1,
            Some(_) => out.contradicting.push(e.clone()),
            None if lost.contains(r) => out.agreeing += 1,
            None if itself || state.ticket(*n).is_some() => out.contradicting.push(e.clone()),
            None => out.missing.push(e.clone()),
        }
    }
    // A contradicting line's request the log does not hold: its number
    // is the gap the kept records leave where the line stands, if there is
    // exactly one (outside tester storage-rt12 F-Q': "n":1263 for the lost
    // 1267, and the retry got a new ticket).
    let trusted = |x: &Entry| !out.contradicting.contains(x);
    let mut claimed: std::collections::BTreeSet<(String, Number)> = entries
        .iter()
        .filter(|x| trusted(x))
        .map(|(_, n, c)| (c.clone(), *n))
        .collect();
    let mut corrected = Vec::new();
    for (i, e @ (r, _, c)) in entries.iter().enumerate() {
        if !out.contradicting.contains(e)
            || state.requests.contains_key(r)
            || lost.contains(r)
            || corrected.iter().any(|(x, _): &(Entry, Number)| &x.0 == r)
        {
            continue;
        }
        let Some(range) = config.queue(c).and_then(|q| q.numbers) else {
            continue;
        };
        let kept = || state.tickets.values().filter(|t| &t.category == c);
        let lower = entries[..i]
            .iter()
            .rev()
            .find(|x| &x.2 == c && trusted(x))
            .map(|x| x.1 + 1)
            .or_else(|| kept().map(|t| t.number).min())
            .unwrap_or(range.from);
        let upper = entries[i + 1..]
            .iter()
            .find(|x| &x.2 == c && trusted(x))
            .map(|x| x.1)
            .or_else(|| state.meta.next_number.get(c).copied())
            .unwrap_or(range.from);
        let gaps: Vec<Number> = (lower..upper)
            .filter(|m| state.ticket(*m).is_none() && !claimed.contains(&(c.clone(), *m)))
            .take(2)
            .collect();
        if let [only] = gaps[..] {
            claimed.insert((c.clone(), only));
            corrected.push((e.clone(), only));
        }
    }
    for (e, n) in &corrected {
        out.missing.push((e.0.clone(), *n, e.2.clone()));
    }
    out.unnumbered = out
        .contradicting
        .iter()
        .filter(|(r, _, _)| {
            !state.requests.contains_key(r)
                && !lost.contains(r)
                && !corrected.iter().any(|(x, _)| &x.0 == r)
                && !out.missing.iter().any(|x| &x.0 == r)
        })
        .cloned()
        .collect();
    out.corrected = corrected;
    out
}

/// What the journal of a data folder says against an engine's kept
/// records.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// No file.
    Absent,
    /// A file, but no readable line of the log's day (every line of the
    /// day damaged, or none written yet today).
    NoLineOfTheDay,
    /// The day's lines, held against the log.
    Read { day: NaiveDate, compared: Compared },
}

/// A queue's number as staff know it: 「戸籍 250」 (its Japanese name), the
/// id where the queue is not configured (outside tester storage-rt12
/// F-G'': 「koseki 250」 on the screen).
pub fn ticket_name(config: &crate::config::Config, category: &str, n: Number) -> String {
    match config.queue(category) {
        Some(q) => format!("{} {n}", q.name.ja),
        None => format!("{category} {n}"),
    }
}

impl super::Engine {
    /// The journal in data folder `dir` held against this engine's kept
    /// records of its business day.
    pub fn journal_found(&self, dir: &Path) -> Found {
        if !dir.join(FILE).exists() {
            return Found::Absent;
        }
        let Some(day) = self.state.meta.day.as_ref().map(|d| d.date) else {
            return Found::NoLineOfTheDay;
        };
        match read_for(dir, day, self.office_date(), self.repaired_day()) {
            Some(lines) if !lines.entries.is_empty() => Found::Read {
                day,
                compared: compare(
                    &lines.entries,
                    &self.state,
                    &self.config,
                    &self.lost,
                    &lines.suspects,
                ),
            },
            _ => Found::NoLineOfTheDay,
        }
    }

    /// A day opened by mistake after the log's day and repaired.
    fn repaired_day(&self) -> Option<NaiveDate> {
        let log_day = self.state.meta.day.as_ref().map(|d| d.date);
        self.state
            .meta
            .previous_day
            .filter(|p| log_day.is_some_and(|l| *p > l))
    }

    /// The journal's damaged lines as the log's kept records show them
    /// (outside tester storage-rt13 N1, N5): lines that do not parse, lines
    /// of a day that cannot be, lines that contradict the kept records.
    /// Each named; empty when the journal is whole or absent.
    pub fn journal_damaged(&self) -> Vec<String> {
        self.journal_damaged_in(&self.dir)
    }

    /// [`Engine::journal_damaged`] for the journal in data folder `dir`.
    pub fn journal_damaged_in(&self, dir: &Path) -> Vec<String> {
        let Some(day) = self.state.meta.day.as_ref().map(|d| d.date) else {
            return Vec::new();
        };
        let Some(lines) = read_for(dir, day, self.office_date(), self.repaired_day()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if lines.unreadable > 0 {
            out.push(format!(
                "読めない行 {} 行 / {} unreadable line(s)",
                lines.unreadable, lines.unreadable
            ));
        }
        let c = compare(
            &lines.entries,
            &self.state,
            &self.config,
            &self.lost,
            &lines.suspects,
        );
        for (r, n, cat) in &c.contradicting {
            out.push(format!("{r}: {}", ticket_name(&self.config, cat, *n)));
        }
        out
    }

    /// Each queue's numbers [`super::UNVOUCHED_MARGIN`] above the log's
    /// highest, as evidence of the log's day: where numbering resumes when
    /// nothing shows how far it went.
    pub(super) fn margin_evidence(&self) -> Option<super::Evidence> {
        let day = self.state.meta.day.as_ref().map(|d| d.date)?;
        let mut ev = super::Evidence {
            seq: self.log.last_seq(),
            day: Some(day),
            ..super::Evidence::default()
        };
        for q in self.config.categories() {
            let (Some(range), Some(next)) = (q.numbers, self.state.meta.next_number.get(&q.id))
            else {
                continue;
            };
            let high = next
                .saturating_sub(1)
                .max(range.from)
                .saturating_add(super::UNVOUCHED_MARGIN)
                .min(range.to);
            ev.highest.insert(q.id.clone(), high);
            ev.categories.insert(high, q.id.clone());
        }
        let m = super::UNVOUCHED_MARGIN;
        ev.seen_by.push(format!(
            "失われた発券の番号を示すものがないため、各受付の番号はログの最大番号の {m} 番先まで使わずにおきます / nothing shows the lost tickets' numbers: every queue keeps {m} numbers above the log's highest unused"
        ));
        Some(ev)
    }

    /// Makes the journal again from the log's kept records of its day,
    /// the damaged file kept beside it (outside tester storage-rt13 N5: a
    /// damaged journal was kept as it was, unnoticed, for the next
    /// recovery to trust). Only when the log's end is vouched for. The
    /// note for stderr and the fault record.
    pub(super) fn repair_journal(
        &mut self,
        damaged: &[String],
    ) -> Result<String, super::EngineError> {
        let path = self.dir.join(FILE);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let kept = self.dir.join(format!("{FILE}.damaged-{stamp}"));
        std::fs::rename(&path, &kept).map_err(|source| super::EngineError::Io {
            path: path.clone(),
            source,
        })?;
        if let Some(day) = self.state.meta.day.as_ref().map(|d| d.date) {
            let mut entries: Vec<(Number, Entry)> = self
                .state
                .requests
                .iter()
                .filter_map(|(r, n)| {
                    let t = self.state.ticket(*n)?;
                    Some((*n, (r.clone(), *n, t.category.clone())))
                })
                .collect();
            entries.sort();
            let entries: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
            self.journal = Journal::new(&self.dir);
            self.journal
                .append(day, &entries)
                .map_err(|source| super::EngineError::Io {
                    path: path.clone(),
                    source,
                })?;
        }
        let list = damaged.join("、");
        let list_en = damaged.join(", ");
        Ok(format!(
            "発券要求の控え {FILE} が壊れていました（{list}）。ログの最後は確かめられたため、ログの記録から作り直しました（元のファイルは {} に残しています）。ディスクの不調の兆しのことがあるため、ディスクを確かめてください / the request-id journal {FILE} was damaged ({list_en}); the log's end checks, so it was made again from the log's records (the old file is kept as {}); check the disk, this may be a sign of it failing",
            kept.display(),
            kept.display()
        ))
    }

    /// The numbers of the day the kept records skip: between a queue's
    /// lowest and highest kept ticket, held by none (at most 64). Numbers
    /// are given in order, so each was issued in a record the repair could
    /// not keep (outside tester storage-rt12 F-T: with the request ids
    /// unknown, the lost numbers were not named although the gaps showed
    /// them).
    pub fn number_gaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for q in self.config.categories() {
            let held: Vec<Number> = self
                .state
                .tickets
                .values()
                .filter(|t| t.category == q.id)
                .map(|t| t.number)
                .collect();
            let (Some(lo), Some(hi)) = (held.iter().min(), held.iter().max()) else {
                continue;
            };
            let mut run = Vec::new();
            for n in *lo..=*hi {
                let Some(t) = self.state.ticket(n) else {
                    run.push(n);
                    continue;
                };
                // A run up to a number an earlier `--accept-damage` raised
                // to (issued and cancelled at once, nothing shown) is the
                // raise, not a loss.
                let raised = matches!(t.status, crate::model::Status::Cancelled { .. })
                    && t.people_ahead_at_issue == 0
                    && t.expected_wait_s_at_issue == 0
                    && t.tag.is_none();
                if !raised {
                    for m in &run {
                        out.push(ticket_name(&self.config, &q.id, *m));
                        if out.len() >= 64 {
                            return out;
                        }
                    }
                }
                run.clear();
            }
        }
        out
    }

    /// The folder's own journal listing tickets its log does not hold:
    /// lost records, refused at start like a log behind its snapshot
    /// (outside tester storage-rt12 F-N': a stale high-water mark, no
    /// state.sled and a log cut at a record boundary started, and the six
    /// acknowledged numbers the journal listed were given again).
    pub(super) fn journal_damage(&self) -> Option<super::Damage> {
        let Found::Read { day, compared } = self.journal_found(&self.dir) else {
            return None;
        };
        journal_damage(&self.dir, &self.config, day, &compared, self.log.last_seq())
    }
}

impl super::Engine {
    /// A later business day the journal shows and the log lost (see
    /// [`later_day`]; outside tester storage-rt13 N6): refused at start
    /// like a log behind its snapshot; with `--accept-damage` that day is
    /// opened and each queue's numbers resume above every number the
    /// journal names — [`super::UNVOUCHED_MARGIN`] above, in every queue,
    /// unless `seen_day` (the latest day the high-water mark or another
    /// piece of evidence saw) shows that day too: the journal is written
    /// without a sync, so nothing else shows it complete.
    pub(super) fn later_day_damage(&self, seen_day: Option<NaiveDate>) -> Option<super::Damage> {
        let log_day = self.state.meta.day.as_ref().map(|d| d.date);
        let repaired = self
            .state
            .meta
            .previous_day
            .filter(|p| log_day.is_some_and(|l| *p > l));
        let today = self.office_date();
        let (day, entries) = later_day(&self.dir, log_day, repaired, today, &self.state.requests)?;
        let complete = seen_day.is_some_and(|d| d >= day);
        let margin = if complete { 0 } else { super::UNVOUCHED_MARGIN };
        let last_seq = self.log.last_seq();
        let mut ev = super::Evidence {
            seq: last_seq,
            day: Some(day),
            ..super::Evidence::default()
        };
        let mut named: std::collections::BTreeMap<String, Number> = Default::default();
        for (r, n, c) in &entries {
            ev.requests.insert(r.clone(), *n);
            ev.categories.insert(*n, c.clone());
            let h = named.entry(c.clone()).or_insert(*n);
            *h = (*h).max(*n);
        }
        for q in self.config.categories() {
            let Some(range) = q.numbers else { continue };
            let top = match named.get(&q.id) {
                Some(n) => *n,
                None if margin > 0 => range.from.saturating_sub(1),
                None => continue,
            };
            let high = top.saturating_add(margin).min(range.to);
            if high >= range.from {
                ev.highest.insert(q.id.clone(), high);
                ev.categories.entry(high).or_insert_with(|| q.id.clone());
            }
        }
        let names: Vec<String> = entries
            .iter()
            .map(|(_, n, c)| ticket_name(&self.config, c, *n))
            .collect();
        let count = names.len();
        let (ja, en) = (names.join("、"), names.join(", "));
        let after = log_day.map_or(String::new(), |l| {
            format!("ログの最後の業務日 {l} より後の")
        });
        let after_en = log_day.map_or(String::new(), |l| format!(" after the log's last day {l}"));
        ev.seen_by.push(format!(
            "発券要求の控え {FILE} は{after}業務日 {day} の発券 {count} 件（{ja}）を記録しています / the request-id journal {FILE} lists {count} ticket(s) of {day}{after_en}: {en}"
        ));
        let resume: Vec<String> = ev
            .highest
            .iter()
            .map(|(c, n)| ticket_name(&self.config, c, *n))
            .collect();
        let how = if complete {
            String::new()
        } else {
            format!(
                "（控えは最後の数件が欠けることがあるため、各受付とも控えにある番号の {margin} 番先まで使わずにおきます）"
            )
        };
        Some(super::Damage {
            file: self.dir.join(FILE),
            record: last_seq + 1,
            problem: format!(
                "業務日 {day} の開始とその日の発券の記録が失われています（ログは記録 {last_seq} で終わり、控え {FILE} にその日の発券があります）。madoguchi recover --accept-damage は業務日 {day} を開き、番号を {} より後から発行します{how} / the records from the opening of business day {day} on are lost (the log ends at record {last_seq}; the request-id journal {FILE} lists that day's tickets): `madoguchi recover --accept-damage` opens {day} and resumes every queue above {}",
                resume.join("、"),
                resume.join(", ")
            ),
            log_ends_at: Some(last_seq),
            evidence: Some(ev),
        })
    }
}

/// The damage the journal's missing tickets show (none: `None`).
pub fn journal_damage(
    dir: &Path,
    config: &crate::config::Config,
    day: NaiveDate,
    compared: &Compared,
    last_seq: u64,
) -> Option<super::Damage> {
    if compared.missing.is_empty() {
        return None;
    }
    let mut ev = super::Evidence {
        seq: last_seq,
        day: Some(day),
        highest: compared.highest(),
        ..super::Evidence::default()
    };
    for (r, n, c) in &compared.missing {
        ev.requests.insert(r.clone(), *n);
        ev.categories.insert(*n, c.clone());
    }
    let names: Vec<String> = compared
        .missing
        .iter()
        .map(|(_, n, c)| ticket_name(config, c, *n))
        .collect();
    let count = names.len();
    let (ja, en) = (names.join("、"), names.join(", "));
    ev.seen_by.push(format!(
        "発券要求の控え {FILE} は業務日 {day} の発券 {count} 件（{ja}）を記録していますが、ログにはありません / the request-id journal {FILE} lists {count} ticket(s) of {day} the log does not hold: {en}"
    ));
    Some(super::Damage {
        file: dir.join(FILE),
        record: last_seq + 1,
        problem: format!(
            "ログに記録のない発券が {FILE} にあります（ログの最後の記録が失われています） / {FILE} lists tickets the log does not hold (the log lost its last records)"
        ),
        log_ends_at: Some(last_seq),
        evidence: Some(ev),
    })
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
    /// storage-rt12 F-Q', F-N': a line that contradicts the kept records
    /// (its number is another request's) is journal damage, its number
    /// taken from the one gap the kept records leave where it stands; a
    /// line beyond the log is a lost ticket.
    #[test]
    fn lines_are_held_against_the_kept_records() {
        use crate::model::{Event, Millis};
        let config = crate::config::Config::embedded_default();
        let mut state = crate::state::State::new(&config);
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).expect("day");
        state
            .apply(
                &config,
                Millis(1),
                &Event::DayOpened {
                    date: day,
                    special: false,
                    after_wrong_day: Default::default(),
                },
            )
            .expect("open");
        for (n, r) in [(1001, "a"), (1002, "b"), (1004, "d")] {
            let e = Event::TicketIssued {
                number: n,
                category: "idou".into(),
                kiosk: None,
                request_id: Some(r.into()),
                people_ahead: 0,
                expected_wait_s: 0,
                expected_wait_low_s: None,
                expected_wait_high_s: None,
                tag: None,
            };
            state.apply(&config, Millis(2), &e).expect("issue");
        }
        let line = |r: &str, n: Number| (r.to_string(), n, "idou".to_string());
        let entries = vec![
            line("a", 1001),
            line("b", 1002),
            line("c", 1002),
            line("d", 1004),
            line("e", 1005),
        ];
        let c = compare(&entries, &state, &config, &Default::default(), &[]);
        assert_eq!(c.agreeing, 3, "{c:?}");
        assert_eq!(c.contradicting, vec![line("c", 1002)], "{c:?}");
        assert_eq!(c.corrected, vec![(line("c", 1002), 1003)], "{c:?}");
        assert_eq!(c.missing, vec![line("e", 1005), line("c", 1003)], "{c:?}");
        // Agreeing lines alone: nothing missing.
        let c = compare(&entries[..2], &state, &config, &Default::default(), &[]);
        assert!(c.missing.is_empty() && c.contradicting.is_empty(), "{c:?}");
    }
}
