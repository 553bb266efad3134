//! The audit index (R11, R15; issue 18): what the audit page and its export
//! need to answer from a year of history without reading it — where each
//! record of the live log starts, which business day it belongs to (runs
//! of records per office date), and postings by author (`by`), counter and
//! ticket number.
//!
//! The log stays the truth; the index is a cache beside it, like
//! `state.sled`. It is kept as records are written: [`AuditIndex::catch_up`]
//! reads only the records after the last one indexed (the server calls it
//! on every commit notification and before each view, off the engine
//! thread, so the command path never waits for it). It is persisted as an
//! append-only sidecar file (`audit.idx` in the data folder: a header, then
//! one CRC-checked entry per record); on open the entries are read back,
//! a torn or damaged tail is cut and read again from the log, and the last
//! entry is checked against the record it names (sequence number, CRC and
//! the first bytes of its hash). A sidecar that does not fit the log — a
//! different office time zone, archived history, a record that changed — is
//! rebuilt from the log.
//!
//! A view reads only the records it shows: [`AuditIndex::read_checked`]
//! reads each shown record with its neighbours, checking every CRC and
//! every link (the record's link to its predecessor and its successor's
//! link to it), so each page carries its own hash-chain check.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{Datelike, FixedOffset, NaiveDate};

use crate::engine::RecordBody;
use crate::log::{self, Hash, LogError, Pos, Record};
use crate::model::Event;

/// The sidecar's name in the data folder.
pub const INDEX_FILE: &str = "audit.idx";

/// Version 2: sign-ins are indexed under their account (version 1
/// sidecars are rebuilt on open).
const FILE_MAGIC: &[u8; 8] = b"MADOIDX2";
/// magic | utc offset (s, i32) | first seq (u64) | its link (32) | crc32.
const HEADER_LEN: usize = 8 + 4 + 8 + 32 + 4;
/// seq | offset | hash prefix | day | by len | counters len | tickets len.
const MIN_BODY: usize = 8 + 4 + 8 + 4 + 2 + 2 + 2;
/// Records between two shown records that are read through rather than
/// skipped (one sequential read instead of two seeks).
const READ_THROUGH: u64 = 32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("audit index {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the live event log is too large for the audit index (record {0})")]
    TooLarge(u64),
}

/// Which records an auditor asks for (all given conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The office date of the record's time.
    pub date: Option<NaiveDate>,
    /// Who made it (a staff account, a device), exactly.
    pub by: Option<String>,
    /// An event of the record happened at this counter.
    pub counter: Option<u16>,
    /// An event of the record concerns this ticket number (any day).
    pub ticket: Option<u32>,
}

/// What the index keeps of one record: one sidecar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    seq: u64,
    offset: u32,
    hash8: [u8; 8],
    day: i32,
    by: Option<String>,
    counters: Vec<u16>,
    tickets: Vec<u32>,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(MIN_BODY + 16);
        body.extend_from_slice(&self.seq.to_le_bytes());
        body.extend_from_slice(&self.offset.to_le_bytes());
        body.extend_from_slice(&self.hash8);
        body.extend_from_slice(&self.day.to_le_bytes());
        let by = self.by.as_deref().unwrap_or("").as_bytes();
        body.extend_from_slice(&(by.len() as u16).to_le_bytes());
        body.extend_from_slice(by);
        body.extend_from_slice(&(self.counters.len() as u16).to_le_bytes());
        for c in &self.counters {
            body.extend_from_slice(&c.to_le_bytes());
        }
        body.extend_from_slice(&(self.tickets.len() as u16).to_le_bytes());
        for t in &self.tickets {
            body.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
    }

    /// The entry at the start of `bytes` and its length; `None` for bytes
    /// that are not one (torn, damaged).
    fn decode(bytes: &[u8]) -> Option<(Entry, usize)> {
        let len = usize::from(u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?));
        let crc = u32::from_le_bytes(bytes.get(2..6)?.try_into().ok()?);
        let body = bytes.get(6..6 + len)?;
        if len < MIN_BODY || crc32fast::hash(body) != crc {
            return None;
        }
        let mut r = Cursor(body);
        let seq = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let offset = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let hash8: [u8; 8] = r.take(8)?.try_into().ok()?;
        let day = i32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let by_len = usize::from(r.u16()?);
        let by = String::from_utf8(r.take(by_len)?.to_vec()).ok()?;
        let nc = usize::from(r.u16()?);
        let counters = (0..nc).map(|_| r.u16()).collect::<Option<Vec<_>>>()?;
        let nt = usize::from(r.u16()?);
        let tickets = (0..nt)
            .map(|_| Some(u32::from_le_bytes(r.take(4)?.try_into().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        if !r.0.is_empty() {
            return None;
        }
        Some((
            Entry {
                seq,
                offset,
                hash8,
                day,
                by: (!by.is_empty()).then_some(by),
                counters,
                tickets,
            },
            6 + len,
        ))
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
}

fn header(utc_offset: FixedOffset, base: u64, link: &Hash) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(FILE_MAGIC);
    h.extend_from_slice(&utc_offset.local_minus_utc().to_le_bytes());
    h.extend_from_slice(&base.to_le_bytes());
    h.extend_from_slice(link);
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// The records that answer a query, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hits {
    base: u64,
    kind: HitKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HitKind {
    /// Whole runs of records (no filter, or a date alone).
    Runs(Vec<Range<u32>>),
    List(Vec<u32>),
}

impl Hits {
    pub fn len(&self) -> usize {
        match &self.kind {
            HitKind::Runs(r) => r.iter().map(|r| r.len()).sum(),
            HitKind::List(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `take` sequence numbers, newest first, after skipping the
    /// `skip` newest (a page).
    pub fn newest(&self, skip: usize, take: usize) -> Vec<u64> {
        let ords: Vec<u32> = match &self.kind {
            HitKind::List(l) => l.iter().rev().skip(skip).take(take).copied().collect(),
            HitKind::Runs(runs) => {
                let mut out = Vec::with_capacity(take);
                let mut skip = skip;
                for r in runs.iter().rev() {
                    if out.len() == take {
                        break;
                    }
                    if skip >= r.len() {
                        skip -= r.len();
                        continue;
                    }
                    let end = r.end - skip as u32;
                    skip = 0;
                    let want = (take - out.len()) as u32;
                    out.extend((r.start.max(end.saturating_sub(want))..end).rev());
                }
                out
            }
        };
        ords.into_iter().map(|o| self.base + u64::from(o)).collect()
    }

    /// Every sequence number, oldest first.
    pub fn all(&self) -> Vec<u64> {
        let base = self.base;
        match &self.kind {
            HitKind::List(l) => l.iter().map(|&o| base + u64::from(o)).collect(),
            HitKind::Runs(runs) => runs
                .iter()
                .flat_map(|r| r.clone().map(move |o| base + u64::from(o)))
                .collect(),
        }
    }
}

/// The hash-chain check of the records a view read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainCheck {
    /// Links checked (each record's `prev` against its predecessor's hash).
    pub links: usize,
    /// The first record whose link (or CRC, or number) is wrong, and why.
    pub broken: Option<(u64, String)>,
}

impl ChainCheck {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// The index of one live log, in memory and in its sidecar.
#[derive(Debug)]
pub struct AuditIndex {
    log_dir: PathBuf,
    path: PathBuf,
    utc_offset: FixedOffset,
    /// The live log's first record and the hash it links to.
    base: u64,
    origin_link: Hash,
    /// Each indexed record's offset in its segment (by `seq - base`).
    offsets: Vec<u32>,
    /// First sequence numbers of the segments that hold indexed records.
    segments: Vec<u64>,
    /// Runs of records of one office date (days from the common era),
    /// each with its first record (by `seq - base`).
    days: Vec<(i32, u32)>,
    by: HashMap<String, Vec<u32>>,
    counters: HashMap<u16, Vec<u32>>,
    tickets: HashMap<u32, Vec<u32>>,
    /// Where reading resumes: the next record's position, number and the
    /// hash it must link to.
    next: (Pos, u64, Hash),
    /// The sidecar, appended to; `None` once a write failed (the index
    /// then lives in memory only, and is rebuilt on the next open).
    writer: Option<BufWriter<File>>,
    /// The last entry's hash prefix (checked against the log on open).
    last_hash8: Option<[u8; 8]>,
    /// Why the sidecar was rebuilt or cut when opened, if it was.
    repaired: Option<String>,
}

impl AuditIndex {
    /// Opens the index of the live log in `log_dir`, kept in the sidecar
    /// `path`, for an office whose dates are in `utc_offset`: loads the
    /// sidecar (rebuilding it from the log when it is missing or does not
    /// fit) and catches up with the log.
    pub fn open(
        log_dir: &Path,
        path: &Path,
        utc_offset: FixedOffset,
    ) -> Result<AuditIndex, AuditError> {
        let (base, origin_link) = log::anchor::origin(log::anchor::read(log_dir)?.as_ref())?;
        let mut index = AuditIndex::empty(log_dir, path, utc_offset, base, origin_link);
        match index.load() {
            Ok(None) => {}
            Ok(Some(cut)) => index.repaired = Some(cut),
            Err(why) => {
                if path.exists() {
                    tracing::warn!(index = %path.display(), reason = %why, "rebuilding the audit index from the event log");
                }
                index = AuditIndex::empty(log_dir, path, utc_offset, base, origin_link);
                index.repaired = Some(why);
                index.start_file();
            }
        }
        index.catch_up()?;
        Ok(index)
    }

    fn empty(
        log_dir: &Path,
        path: &Path,
        utc_offset: FixedOffset,
        base: u64,
        origin_link: Hash,
    ) -> AuditIndex {
        AuditIndex {
            log_dir: log_dir.to_path_buf(),
            path: path.to_path_buf(),
            utc_offset,
            base,
            origin_link,
            offsets: Vec::new(),
            segments: Vec::new(),
            days: Vec::new(),
            by: HashMap::new(),
            counters: HashMap::new(),
            tickets: HashMap::new(),
            next: (
                Pos {
                    segment: base,
                    offset: log::MAGIC.len() as u64,
                },
                base,
                origin_link,
            ),
            writer: None,
            last_hash8: None,
            repaired: None,
        }
    }

    /// The office time zone its dates are in.
    pub fn utc_offset(&self) -> FixedOffset {
        self.utc_offset
    }

    /// Why opening rebuilt or cut the sidecar, if it did.
    pub fn repaired(&self) -> Option<&str> {
        self.repaired.as_deref()
    }

    /// Records indexed.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The last record indexed (`base - 1` when none).
    pub fn last_seq(&self) -> u64 {
        self.next.1 - 1
    }

    /// A new sidecar with only its header (a failure leaves the index in
    /// memory only).
    fn start_file(&mut self) {
        let made = File::create(&self.path).and_then(|mut f| {
            f.write_all(&header(self.utc_offset, self.base, &self.origin_link))?;
            Ok(f)
        });
        match made {
            Ok(f) => self.writer = Some(BufWriter::with_capacity(1 << 16, f)),
            Err(e) => {
                tracing::warn!(index = %self.path.display(), error = %e, "the audit index cannot be written; keeping it in memory");
                self.writer = None;
            }
        }
    }

    /// Reads the sidecar into memory. `Ok(Some(why))`: a torn or damaged
    /// tail was cut (the log fills it in again); `Err(why)`: it cannot be
    /// used at all.
    fn load(&mut self) -> Result<Option<String>, String> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("no audit index yet".into())
            }
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        if bytes.get(..HEADER_LEN)
            != Some(&header(self.utc_offset, self.base, &self.origin_link)[..])
        {
            return Err(
                "its header does not fit the log (another time zone, archived history, or damage)"
                    .into(),
            );
        }
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            match Entry::decode(&bytes[at..]) {
                Some((e, n)) if e.seq == self.next.1 => {
                    self.add(&e).map_err(|e| e.to_string())?;
                    at += n;
                }
                _ => break,
            }
        }
        let cut = (at < bytes.len()).then(|| {
            format!(
                "{} damaged or torn bytes at the end were cut and read again from the log",
                bytes.len() - at
            )
        });
        // The last entry must name a record the log holds as it was.
        if let Some(&offset) = self.offsets.last() {
            let seq = self.next.1 - 1;
            let pos = self.pos_of(seq).ok_or("an entry names no segment")?;
            let record = log::read_record_at(&self.log_dir, pos, seq)
                .map_err(|e| format!("its last entry does not fit the log: {e}"))?;
            let hash = record.hash();
            if Some(&hash[..8]) != self.last_hash8.as_ref().map(|h| &h[..]) {
                return Err(format!("record {seq} is not the one it indexed"));
            }
            self.next = (
                Pos {
                    segment: pos.segment,
                    offset: u64::from(offset) + record.framed_len(),
                },
                seq + 1,
                hash,
            );
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .and_then(|f| {
                f.set_len(at as u64)?;
                Ok(f)
            })
            .and_then(|mut f| {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::End(0))?;
                Ok(f)
            })
            .map_err(|e| format!("cannot be written: {e}"))?;
        self.writer = Some(BufWriter::with_capacity(1 << 16, file));
        Ok(cut)
    }

    /// Where record `seq` starts, if it is indexed.
    fn pos_of(&self, seq: u64) -> Option<Pos> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let offset = *self.offsets.get(i)?;
        let s = self.segments.partition_point(|&first| first <= seq);
        Some(Pos {
            segment: *self.segments.get(s.checked_sub(1)?)?,
            offset: u64::from(offset),
        })
    }

    fn ordinal(&self, seq: u64) -> Result<u32, AuditError> {
        u32::try_from(seq - self.base).map_err(|_| AuditError::TooLarge(seq))
    }

    /// Adds one entry to memory (the next record in order).
    fn add(&mut self, e: &Entry) -> Result<(), AuditError> {
        let o = self.ordinal(e.seq)?;
        if u64::from(e.offset) == log::MAGIC.len() as u64 || self.segments.is_empty() {
            self.segments.push(e.seq);
        }
        self.offsets.push(e.offset);
        if self.days.last().is_none_or(|&(d, _)| d != e.day) {
            self.days.push((e.day, o));
        }
        if let Some(by) = &e.by {
            self.by.entry(by.clone()).or_default().push(o);
        }
        for c in &e.counters {
            self.counters.entry(*c).or_default().push(o);
        }
        for t in &e.tickets {
            self.tickets.entry(*t).or_default().push(o);
        }
        self.next.1 = e.seq + 1;
        self.last_hash8 = Some(e.hash8);
        Ok(())
    }

    fn entry_of(&self, pos: Pos, record: &Record) -> Result<Entry, AuditError> {
        let offset = u32::try_from(pos.offset).map_err(|_| AuditError::TooLarge(record.seq))?;
        let hash = record.hash();
        let mut hash8 = [0; 8];
        hash8.copy_from_slice(&hash[..8]);
        let body = serde_json::from_slice::<RecordBody>(&record.payload).ok();
        let day = match &body {
            Some(b) => {
                b.at.to_datetime(self.utc_offset)
                    .date_naive()
                    .num_days_from_ce()
            }
            // Never written by the engine; kept with the day before it.
            None => self.days.last().map_or(0, |&(d, _)| d),
        };
        let (mut counters, mut tickets) = (Vec::new(), Vec::new());
        for e in body.iter().flat_map(|b| &b.events) {
            if let Some(c) = e.counter().filter(|c| !counters.contains(c)) {
                counters.push(c);
            }
            if let Some(t) = e.ticket().filter(|t| !tickets.contains(t)) {
                tickets.push(t);
            }
        }
        Ok(Entry {
            seq: record.seq,
            offset,
            hash8,
            day,
            by: body
                .and_then(|b| {
                    // A sign-in, failed ones included, is found under the
                    // account it was for: its operator is recorded as
                    // "name from address", which `?staff=admin` missed
                    // (insider red team).
                    b.events
                        .iter()
                        .find_map(|e| match e {
                            Event::Login { account, .. } => Some(account.clone()),
                            _ => None,
                        })
                        .or(b.by)
                })
                .filter(|b| !b.is_empty() && b.len() <= usize::from(u16::MAX)),
            counters,
            tickets,
        })
    }

    /// Indexes the records written since the last call (only those: their
    /// reading starts where the last one stopped). Returns how many. If the
    /// log no longer continues where the index stopped (its history was
    /// archived, or an undone import cut it back), the index is rebuilt.
    pub fn catch_up(&mut self) -> Result<u64, AuditError> {
        let origin = log::anchor::origin(log::anchor::read(&self.log_dir)?.as_ref())?;
        if origin != (self.base, self.origin_link) {
            self.reset("the log's start moved (history archived)");
        }
        match self.read_on() {
            Ok(n) => Ok(n),
            Err(AuditError::Log(LogError::Corrupt { seq, reason, .. }))
                if seq == self.next.1 && !self.is_empty() =>
            {
                // The record after the last one indexed does not follow it:
                // the log was cut back and written again.
                self.reset(&format!(
                    "record {seq} does not continue the index: {reason}"
                ));
                self.read_on()
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the index over, from the log's first record.
    fn reset(&mut self, why: &str) {
        tracing::warn!(
            reason = why,
            "rebuilding the audit index from the event log"
        );
        let (base, link) = log::anchor::read(&self.log_dir)
            .ok()
            .flatten()
            .and_then(|a| log::anchor::origin(Some(&a)).ok())
            .unwrap_or((1, [0; 32]));
        *self = AuditIndex::empty(&self.log_dir, &self.path, self.utc_offset, base, link);
        self.repaired = Some(why.to_string());
        self.start_file();
    }

    fn read_on(&mut self) -> Result<u64, AuditError> {
        let (pos, seq, prev) = self.next;
        let mut n = 0;
        let mut buf = Vec::new();
        for r in log::read_live_from(&self.log_dir, pos, seq, Some(prev))? {
            let (pos, record) = r?;
            let entry = self.entry_of(pos, &record)?;
            self.add(&entry)?;
            self.next = (
                Pos {
                    segment: pos.segment,
                    offset: pos.offset + record.framed_len(),
                },
                record.seq + 1,
                record.hash(),
            );
            entry.encode(&mut buf);
            if buf.len() >= 1 << 16 {
                self.persist(&mut buf);
            }
            n += 1;
        }
        self.persist(&mut buf);
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.flush() {
                tracing::warn!(index = %self.path.display(), error = %e, "the audit index cannot be written; keeping it in memory");
                self.writer = None;
            }
        }
        Ok(n)
    }

    /// Appends encoded entries to the sidecar. No sync: a torn or lost tail
    /// is read again from the log on the next open.
    fn persist(&mut self, buf: &mut Vec<u8>) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.write_all(buf) {
                tracing::warn!(index = %self.path.display(), error = %e, "the audit index cannot be written; keeping it in memory");
                self.writer = None;
            }
        }
        buf.clear();
    }

    /// The records that answer `q`, from the index alone.
    pub fn find(&self, q: &Query) -> Hits {
        let n = self.offsets.len() as u32;
        let runs: Vec<Range<u32>> = match q.date {
            None => std::iter::once(0..n).collect(),
            Some(d) => {
                let day = d.num_days_from_ce();
                self.days
                    .iter()
                    .enumerate()
                    .filter(|(_, &(d, _))| d == day)
                    .map(|(i, &(_, start))| {
                        start..self.days.get(i + 1).map_or(n, |&(_, next)| next)
                    })
                    .collect()
            }
        };
        let empty = Vec::new();
        let mut lists: Vec<&Vec<u32>> = Vec::new();
        if let Some(by) = &q.by {
            lists.push(self.by.get(by).unwrap_or(&empty));
        }
        if let Some(c) = q.counter {
            lists.push(self.counters.get(&c).unwrap_or(&empty));
        }
        if let Some(t) = q.ticket {
            lists.push(self.tickets.get(&t).unwrap_or(&empty));
        }
        let kind = if lists.is_empty() {
            HitKind::Runs(runs)
        } else {
            lists.sort_by_key(|l| l.len());
            let (first, rest) = lists.split_at(1);
            let mut out = Vec::new();
            // Each run's slice of the shortest list, then the others
            // checked by binary search.
            for r in &runs {
                let from = first[0].partition_point(|&o| o < r.start);
                let to = first[0].partition_point(|&o| o < r.end);
                out.extend(
                    first[0][from..to]
                        .iter()
                        .copied()
                        .filter(|o| rest.iter().all(|l| l.binary_search(o).is_ok())),
                );
            }
            HitKind::List(out)
        };
        Hits {
            base: self.base,
            kind,
        }
    }

    /// Reads the records `seqs` (any order; returned oldest first), each
    /// with its neighbours, and checks every CRC and link on the way: each
    /// record's link to the one before it and the next one's link to it.
    pub fn read_checked(&self, seqs: &[u64]) -> Result<(Vec<Record>, ChainCheck), AuditError> {
        let mut want: Vec<u64> = seqs.to_vec();
        want.sort_unstable();
        want.dedup();
        let last = self.last_seq();
        // Spans of records to read: each wanted one and its neighbours,
        // joined when close.
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for &s in &want {
            let (a, b) = (s.saturating_sub(1).max(self.base), (s + 1).min(last));
            match spans.last_mut() {
                Some(span) if a <= span.1 + READ_THROUGH => span.1 = span.1.max(b),
                _ => spans.push((a, b)),
            }
        }
        let mut out = Vec::with_capacity(want.len());
        let mut check = ChainCheck::default();
        let mut w = want.iter().peekable();
        for (a, b) in spans {
            let Some(pos) = self.pos_of(a) else {
                return Err(LogError::Missing { seq: a }.into());
            };
            let prev = (a == self.base).then_some(self.origin_link);
            let mut expected = a;
            for r in log::read_live_from(&self.log_dir, pos, a, prev)?.take((b - a + 1) as usize) {
                match r {
                    Ok((_, record)) => {
                        if prev.is_some() || record.seq > a {
                            check.links += 1;
                        }
                        if w.peek() == Some(&&record.seq) {
                            w.next();
                            out.push(record);
                        }
                        expected += 1;
                    }
                    Err(LogError::Corrupt { seq, reason, .. }) => {
                        check.broken.get_or_insert((seq, reason));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // After a break in the chain, the wanted records of the rest of
            // the span one by one (CRC and number checked): the page still
            // shows them, under the failed check.
            while let Some(&&s) = w.peek() {
                if s > b {
                    break;
                }
                w.next();
                if s < expected {
                    continue;
                }
                let pos = self.pos_of(s).ok_or(LogError::Missing { seq: s })?;
                match log::read_record_at(&self.log_dir, pos, s) {
                    Ok(r) => out.push(r),
                    Err(LogError::Corrupt { seq, reason, .. }) => {
                        check.broken.get_or_insert((seq, reason));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if w.peek().is_some() {
            let s = w.next().copied().unwrap_or_default();
            return Err(LogError::Missing { seq: s }.into());
        }
        Ok((out, check))
    }
}

#[cfg(test)]
mod tests;
