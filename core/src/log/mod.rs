//! The event log: the office's own append-only file of framed records, the
//! truth that everything else is rebuilt from and that auditors read (R10,
//! R11, R14).
//!
//! A log is a folder of segment files `<first seq, 20 digits>.mlog`, each
//! starting with the 8-byte magic `MADOLOG1` and then records:
//!
//! ```text
//! len: u32 LE | crc32: u32 LE | seq: u64 LE | prev: [u8; 32] | payload: [u8; len]
//! ```
//!
//! `crc32` covers `seq`, `prev` and `payload`; `prev` is the SHA-256 of the
//! previous record's `seq | prev | payload` (zeros for the first), so a changed
//! or removed record breaks the chain. [`EventLog::append`] writes a batch with
//! one `write` and one `sync_data` (group commit); a new segment is synced and
//! its folder fsynced before any record in it is acknowledged.
//!
//! On open only the last segment is scanned (bounded by the segment size, so
//! start-up does not grow with history). A record there that fails its CRC,
//! with no valid record after it, is a torn write from a crash and is cut off;
//! a bad record followed by a good one, or a bad record in any earlier
//! segment, is corruption and is reported with its sequence number.
//!
//! Segments wholly older than the retention period can be moved to an
//! archive (`crate::engine::archive`); the log then starts at its
//! [`anchor::Anchor`] instead of record 1.

pub mod anchor;
mod frame;
mod reader;
pub mod seals;

pub use anchor::Anchor;
pub use frame::{record_hash, Hash, Record, HEADER_LEN, MAGIC};
pub use reader::Records;
pub use seals::Seal;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default size after which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;
/// The largest payload accepted; a length above it is damage, not a record.
pub const MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("event log I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("event log is corrupt at record {seq} ({path}, byte {offset}): {reason}")]
    Corrupt {
        seq: u64,
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("event log refused: {0}")]
    Poisoned(String),
    #[error("record {seq} is not in the event log")]
    Missing { seq: u64 },
}

impl LogError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where a record starts: its segment (by first sequence number) and byte
/// offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

/// The end of the log: what the next append continues from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub next_seq: u64,
    pub last_hash: Hash,
    pub pos: Pos,
    /// Where the last record starts (in `pos.segment`; 0 when none).
    pub last_offset: u64,
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn record (or records) at the end: cut off by
    /// [`EventLog::open`], to be cut by [`EventLog::repair`] after
    /// [`EventLog::open_unrepaired`].
    pub truncated_bytes: u64,
    /// The torn bytes' segment.
    pub truncated_in: Option<PathBuf>,
    /// `SEALS.json` was missing while closed segments were there: the
    /// number of closed segments sealed again (read once each). Told
    /// loudly: the seals are what catch a deleted newest segment (outside
    /// tester storage-rt10 F-H: silent).
    pub seals_remade: Option<usize>,
}

/// A change to the files that opening found necessary, made only once the
/// caller has compared the log with its other evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repair {
    /// A segment in which no record survived.
    Remove(PathBuf),
    /// A torn record at the end: the segment's good length.
    Cut(PathBuf, u64),
}

/// Options for tests and benchmarks; production uses the defaults.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

#[derive(Debug)]
pub struct EventLog {
    dir: PathBuf,
    opts: LogOptions,
    /// First sequence numbers of the segments, ascending.
    segments: Vec<u64>,
    file: Option<File>,
    tail: Tail,
    poisoned: Option<String>,
    /// Where the live log starts when older records are archived.
    anchor: Option<Anchor>,
    /// The closed live segments' seals, ascending.
    seals: Vec<Seal>,
    /// The seals changed in memory since they were read (first open of a
    /// folder without them, an empty last segment dropped).
    seals_dirty: bool,
    /// Repairs found on open and not yet made.
    pending: Vec<Repair>,
}

pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.mlog"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Makes a rename in `dir` durable.
pub fn sync_dir_pub(dir: &Path) -> Result<(), LogError> {
    sync_dir(dir)
}

/// The segments in `dir`, ascending by first sequence number.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".mlog") {
            if let Ok(first) = stem.parse::<u64>() {
                segments.push(first);
            }
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// The segments that hold live records: an interrupted archiving step may
/// leave segments below the anchor behind; they are not read.
fn live_segments(dir: &Path, anchor: Option<&Anchor>) -> Result<Vec<u64>, LogError> {
    let mut segments = list_segments(dir)?;
    if let Some(a) = anchor {
        segments.retain(|&first| first > a.seq);
    }
    Ok(segments)
}

/// Reads a log that another process may be appending to, without writing
/// anything: every record from the first (record 1, or the one after the
/// archive anchor), checked and linked. A record cut short at the very end
/// is a write in progress, not yet acknowledged: the reader stops before it.
pub fn read_live(dir: &Path) -> Result<Records, LogError> {
    let anchor = anchor::read(dir)?;
    let (seq, prev) = anchor::origin(anchor.as_ref())?;
    Ok(Records::new(
        dir.to_path_buf(),
        live_segments(dir, anchor.as_ref())?,
        None,
    )
    .starting(seq, prev)
    .live())
}

/// Every record of the segments in `dir` from record 1 (an archive
/// folder): checked and linked. Returns the segments too.
pub fn read_from_start(dir: &Path) -> Result<(Vec<u64>, Records), LogError> {
    let segments = list_segments(dir)?;
    let r = Records::new(dir.to_path_buf(), segments.clone(), None).starting(1, [0; 32]);
    Ok((segments, r))
}

/// Like [`read_live`], but starting with the segment that holds record
/// `seq` (so the cost is bounded by one segment, not the history). Records
/// before `seq` in that segment are still yielded; the caller skips them.
pub fn read_live_near(dir: &Path, seq: u64) -> Result<Records, LogError> {
    let segments = live_segments(dir, anchor::read(dir)?.as_ref())?;
    let start = segments
        .iter()
        .rposition(|&first| first <= seq.max(1))
        .unwrap_or(0);
    Ok(Records::new(dir.to_path_buf(), segments[start..].to_vec(), None).live())
}

/// Reads the live log from record `seq` at `pos` on, checking every CRC,
/// sequence number and link; the first record's link to `prev` when it is
/// given (a reader that resumes where it stopped, or reads a short run of
/// records whose predecessor it has not read: the audit index).
pub fn read_live_from(
    dir: &Path,
    pos: Pos,
    seq: u64,
    prev: Option<Hash>,
) -> Result<Records, LogError> {
    let segments = live_segments(dir, anchor::read(dir)?.as_ref())?;
    // A position in a segment no longer live (archived) is not read from
    // elsewhere: the caller scans instead.
    if !segments.contains(&pos.segment) {
        return Err(LogError::Missing { seq });
    }
    Ok(
        Records::new(dir.to_path_buf(), segments, Some((pos, seq, [0; 32])))
            .linking_to(prev)
            .live(),
    )
}

/// After a damaged record (issue 17, storage-rt6 F3): where the next
/// well-formed record numbered `min_seq` or later starts — in `pos`'s
/// segment at or after `pos.offset`, else at the first such record of a
/// later live segment — and its number. `None`: no record survives after
/// it. Only CRC-checked frames count; the caller reads on from there with
/// every link checked.
pub fn next_good_record(
    dir: &Path,
    pos: Pos,
    min_seq: u64,
) -> Result<Option<(Pos, u64)>, LogError> {
    let segments = live_segments(dir, anchor::read(dir)?.as_ref())?;
    for &segment in segments.iter().filter(|&&s| s >= pos.segment) {
        let path = segment_path(dir, segment);
        let bytes = fs::read(&path).map_err(|e| LogError::io(&path, e))?;
        let from = if segment == pos.segment {
            pos.offset.max(MAGIC.len() as u64)
        } else {
            MAGIC.len() as u64
        };
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        if let Some((offset, seq)) = reader::first_good_record(&bytes, from, min_seq.max(segment)) {
            return Ok(Some((
                Pos {
                    segment,
                    offset: offset as u64,
                },
                seq,
            )));
        }
    }
    Ok(None)
}

/// The raw bytes of a record that cannot be read (at most `max`), from its
/// start: what a set-aside record may still tell (issue 17).
pub fn raw_bytes_at(dir: &Path, pos: Pos, max: usize) -> Result<Vec<u8>, LogError> {
    let path = segment_path(dir, pos.segment);
    let bytes = fs::read(&path).map_err(|e| LogError::io(&path, e))?;
    let start = usize::try_from(pos.offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start.saturating_add(max).min(bytes.len());
    Ok(bytes[start..end].to_vec())
}

/// Reads the one record `seq` that starts at `pos` in the log in `dir`,
/// checking its CRC and sequence number.
pub fn read_record_at(dir: &Path, pos: Pos, seq: u64) -> Result<Record, LogError> {
    reader::read_one(&segment_path(dir, pos.segment), pos.offset, seq)
}

pub use frame::encode as encode_record;
pub use frame::frame as frame_record;

/// Decodes the record at the start of `bytes` (for backups).
pub fn decode_record(bytes: &[u8]) -> Result<Record, String> {
    frame::decode(bytes).map_err(|b| b.to_string())
}

impl EventLog {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(EventLog, OpenReport), LogError> {
        let (mut log, report) = EventLog::open_unrepaired(dir, opts)?;
        log.repair()?;
        Ok((log, report))
    }

    /// Opens the log in `dir` and checks its shape against its seals
    /// (missing, changed or unlinked segments are [`LogError::Corrupt`]),
    /// without changing any file: a torn tail is only reported, so that the
    /// caller can first compare the log with its other evidence (a snapshot
    /// that saw records the log no longer holds). [`EventLog::repair`] (or
    /// the next append) cuts it.
    pub fn open_unrepaired(
        dir: &Path,
        opts: LogOptions,
    ) -> Result<(EventLog, OpenReport), LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let anchor = anchor::read(dir)?;
        let mut segments = live_segments(dir, anchor.as_ref())?;
        let (origin, origin_hash) = anchor::origin(anchor.as_ref())?;
        let mut seals = seals::read(dir)?;
        seals.retain(|s| s.first >= origin);
        let mut seals_dirty = false;
        let mut report = OpenReport::default();
        let mut pending = Vec::new();
        let mut tail = Tail {
            next_seq: origin,
            last_hash: origin_hash,
            pos: Pos {
                segment: origin,
                offset: MAGIC.len() as u64,
            },
            last_offset: 0,
        };
        let mut tail_prev = None;
        while let Some(&last) = segments.last() {
            let path = segment_path(dir, last);
            let scan = reader::scan_tail_segment(&path, last)?;
            if scan.last_hash.is_none() {
                // No record in it survived: a segment created (or torn) while
                // nothing in it was acknowledged. The segment before it was
                // sealed as this one was created; that seal goes with it.
                report.truncated_bytes += scan.file_len.saturating_sub(MAGIC.len() as u64);
                report.truncated_in = Some(path.clone());
                pending.push(Repair::Remove(path));
                segments.pop();
                let before = seals.len();
                seals.retain(|s| s.last + 1 != last);
                seals_dirty |= seals.len() != before;
                continue;
            }
            if scan.valid_len < scan.file_len {
                report.truncated_bytes += scan.file_len - scan.valid_len;
                report.truncated_in = Some(path.clone());
                pending.push(Repair::Cut(path, scan.valid_len));
            }
            tail = Tail {
                next_seq: scan.next_seq,
                last_hash: scan.last_hash.unwrap_or(scan.prev_of_first),
                pos: Pos {
                    segment: last,
                    offset: scan.valid_len,
                },
                last_offset: scan.last_offset,
            };
            tail_prev = Some(scan.prev_of_first);
            break;
        }
        let seals_missing = !dir.join(seals::SEALS_FILE).exists();
        let added = check_shape(dir, &segments, &mut seals, (origin, origin_hash), tail_prev)?;
        seals_dirty |= added;
        if seals_missing && added && !seals.is_empty() {
            report.seals_remade = Some(seals.len());
        }
        Ok((
            EventLog {
                dir: dir.to_path_buf(),
                opts,
                segments,
                file: None,
                tail,
                poisoned: None,
                anchor,
                seals,
                seals_dirty,
                pending,
            },
            report,
        ))
    }

    /// Whether opening found a torn tail (or an empty segment) not yet cut.
    pub fn needs_repair(&self) -> bool {
        !self.pending.is_empty() || self.seals_dirty
    }

    /// Makes the repairs opening found: cuts the torn tail, removes a
    /// segment in which nothing survived, writes the seals. Durable.
    pub fn repair(&mut self) -> Result<(), LogError> {
        for r in std::mem::take(&mut self.pending) {
            match r {
                Repair::Remove(path) => {
                    fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
                }
                Repair::Cut(path, len) => {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| LogError::io(&path, e))?;
                    f.set_len(len)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| LogError::io(&path, e))?;
                    tracing::warn!(
                        segment = %path.display(),
                        "cut a torn record off the end of the event log"
                    );
                }
            }
            sync_dir(&self.dir)?;
        }
        if self.seals_dirty {
            seals::write(&self.dir, &self.seals)?;
            self.seals_dirty = false;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn tail(&self) -> Tail {
        self.tail
    }

    /// The sequence number of the last record, 0 when the log is empty.
    pub fn last_seq(&self) -> u64 {
        self.tail.next_seq - 1
    }

    /// Appends `payloads` as consecutive records and makes them durable.
    /// Returns the position of the first new record.
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> Result<Pos, LogError> {
        if let Some(why) = &self.poisoned {
            return Err(LogError::Poisoned(why.clone()));
        }
        if payloads.is_empty() {
            return Ok(self.tail.pos);
        }
        if self.needs_repair() {
            self.repair()?;
        }
        if self.segments.is_empty() || self.tail.pos.offset >= self.opts.segment_bytes {
            self.start_segment()?;
        }
        let segment = self.tail.pos.segment;
        let path = segment_path(&self.dir, segment);
        let start = self.tail.pos;
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER_LEN).sum());
        let mut seq = self.tail.next_seq;
        let mut prev = self.tail.last_hash;
        let mut last_start = 0;
        for p in payloads {
            if p.len() > MAX_PAYLOAD as usize {
                return Err(LogError::Poisoned(format!(
                    "a record of {} bytes is larger than the limit of {MAX_PAYLOAD}",
                    p.len()
                )));
            }
            last_start = buf.len() as u64;
            prev = frame::encode(&mut buf, seq, &prev, p);
            seq += 1;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| LogError::io(&path, e))?;
                self.file.insert(f)
            }
        };
        let written = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Leave no partial batch behind: a later append must not follow
            // half a record.
            let undo = file
                .set_len(start.offset)
                .and_then(|()| file.seek(SeekFrom::End(0)).map(|_| ()))
                .and_then(|()| file.sync_data());
            if let Err(u) = undo {
                self.poisoned = Some(format!("could not undo a failed write: {u}"));
            }
            self.file = None;
            return Err(LogError::io(&path, e));
        }
        self.tail = Tail {
            next_seq: seq,
            last_hash: prev,
            pos: Pos {
                segment,
                offset: start.offset + buf.len() as u64,
            },
            last_offset: start.offset + last_start,
        };
        Ok(start)
    }

    fn start_segment(&mut self) -> Result<(), LogError> {
        let first = self.tail.next_seq;
        let path = segment_path(&self.dir, first);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        let created = f
            .write_all(MAGIC)
            .and_then(|()| f.sync_all())
            .map_err(|e| LogError::io(&path, e))
            .and_then(|()| sync_dir(&self.dir))
            .and_then(|()| self.seal_last());
        if let Err(e) = created {
            // Nothing was acknowledged in it; leave no half-made segment.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.segments.push(first);
        self.file = Some(f);
        self.tail.pos = Pos {
            segment: first,
            offset: MAGIC.len() as u64,
        };
        Ok(())
    }

    /// Seals the segment being closed (after its successor exists, so that a
    /// crash between the two leaves an unsealed segment, never a seal with
    /// no segment after it).
    fn seal_last(&mut self) -> Result<(), LogError> {
        let Some(&closing) = self.segments.last() else {
            return Ok(());
        };
        let seal = Seal {
            first: closing,
            last: self.tail.next_seq - 1,
            last_offset: self.tail.last_offset,
            last_hash: crate::store::hex(&self.tail.last_hash),
            len: self.tail.pos.offset,
        };
        self.seals.retain(|s| s.first != closing);
        self.seals.push(seal);
        if let Err(e) = seals::write(&self.dir, &self.seals) {
            self.seals.pop();
            return Err(e);
        }
        Ok(())
    }

    /// The closed segments' seals.
    pub fn seals(&self) -> &[Seal] {
        &self.seals
    }

    /// Cuts the log back so that `tail` is its end again (undoes appends made
    /// after `tail` was taken, e.g. a failed import). Made durable.
    pub fn rollback_to(&mut self, tail: Tail) -> Result<(), LogError> {
        self.file = None;
        while let Some(&last) = self.segments.last() {
            if last <= tail.pos.segment {
                break;
            }
            let path = segment_path(&self.dir, last);
            fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
            self.segments.pop();
        }
        if self.segments.last() == Some(&tail.pos.segment) {
            let path = segment_path(&self.dir, tail.pos.segment);
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| LogError::io(&path, e))?;
            f.set_len(tail.pos.offset)
                .and_then(|()| f.sync_all())
                .map_err(|e| LogError::io(&path, e))?;
        }
        sync_dir(&self.dir)?;
        let before = self.seals.len();
        self.seals.retain(|s| s.first < tail.pos.segment);
        if self.seals.len() != before {
            seals::write(&self.dir, &self.seals)?;
        }
        self.pending.clear();
        self.tail = tail;
        self.poisoned = None;
        Ok(())
    }

    /// Reads records from `from` (a position returned by `append` or kept in
    /// a snapshot) or from the beginning. `prev` is the hash the first record
    /// read must link to, when known.
    pub fn records(&self, from: Option<(Pos, u64, Hash)>) -> Records {
        let r = Records::new(self.dir.clone(), self.segments.clone(), from);
        match (from, anchor::origin(self.anchor.as_ref())) {
            (None, Ok((seq, prev))) => r.starting(seq, prev),
            // An unreadable anchor hash was refused when the log opened.
            _ => r,
        }
    }

    /// The archive anchor the log starts at, if its history was archived.
    pub fn anchor(&self) -> Option<&Anchor> {
        self.anchor.as_ref()
    }

    /// The live segments (first sequence numbers), ascending.
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    /// Makes `anchor` the start of the log (its file and checkpoint are
    /// already durable) and removes the segments it archived.
    pub(crate) fn set_anchor(&mut self, anchor: Anchor) -> Result<(), LogError> {
        anchor::write(&self.dir, &anchor)?;
        let archived: Vec<u64> = self
            .segments
            .iter()
            .copied()
            .filter(|&first| first <= anchor.seq)
            .collect();
        self.segments.retain(|&first| first > anchor.seq);
        self.seals.retain(|s| s.first > anchor.seq);
        seals::write(&self.dir, &self.seals)?;
        let old = self.anchor.replace(anchor);
        for first in archived {
            let path = segment_path(&self.dir, first);
            fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
        }
        if let Some(old) = old {
            let _ = fs::remove_file(self.dir.join(old.checkpoint_name()));
        }
        sync_dir(&self.dir)
    }

    /// Reads the one record at `pos`, checking its CRC and sequence number.
    pub fn read_at(&self, pos: Pos, seq: u64) -> Result<Record, LogError> {
        reader::read_one(&segment_path(&self.dir, pos.segment), pos.offset, seq)
    }

    /// Walks the whole chain from the first record: every CRC, every sequence
    /// number, every link. Returns the number of records and the last hash.
    pub fn verify(&self) -> Result<(u64, Hash), LogError> {
        let mut count = 0;
        let mut last = [0; 32];
        for r in self.records(None) {
            let (_, r) = r?;
            last = r.hash();
            count += 1;
        }
        Ok((count, last))
    }
}

/// Checks the shape of the log against its seals, cheaply: the first
/// segment starts where the log must start; every sealed segment is present,
/// as long as it was sealed, ends with the record sealed, and is followed by
/// the segment starting at the next record whose first record links to it;
/// the last segment is not sealed (a sealed last segment had a successor,
/// now gone). Closed segments without a seal (a folder from before seals)
/// are read once and sealed; returns whether any was.
fn check_shape(
    dir: &Path,
    segments: &[u64],
    seals: &mut Vec<Seal>,
    origin: (u64, Hash),
    tail_prev: Option<Hash>,
) -> Result<bool, LogError> {
    check_ends(dir, segments, seals, origin.0)?;
    let mut added = false;
    let mut link = origin.1;
    for (i, &first) in segments.iter().enumerate() {
        let path = segment_path(dir, first);
        let Some(&next) = segments.get(i + 1) else {
            if let Some(s) = seals.iter().find(|s| s.first == first) {
                return Err(corrupt(
                    s.last + 1,
                    segment_path(dir, s.last + 1),
                    0,
                    format!(
                        "記録 {} より後のセグメントがありません（{} は新しいセグメントを始めたときに閉じられています）。ログの最後が失われています / the segment after record {} is missing: {} was closed when a newer one was started",
                        s.last,
                        path.display(),
                        s.last,
                        path.display()
                    ),
                ));
            }
            if tail_prev.is_some_and(|p| p != link) {
                return Err(unlinked(first, path));
            }
            break;
        };
        let seal = match seals.iter().find(|s| s.first == first) {
            Some(s) => s.clone(),
            None => {
                let s = seal_unsealed(&path, first, link)?;
                seals.push(s.clone());
                seals.sort_by_key(|s| s.first);
                added = true;
                s
            }
        };
        link = check_sealed(dir, &path, &seal, next)?;
    }
    Ok(added)
}

fn corrupt(seq: u64, path: PathBuf, offset: u64, reason: String) -> LogError {
    LogError::Corrupt {
        seq,
        path,
        offset,
        reason,
    }
}

fn unlinked(first: u64, path: PathBuf) -> LogError {
    corrupt(
        first,
        path,
        MAGIC.len() as u64,
        "broken hash chain: the segment does not link to the one before".into(),
    )
}

/// Every sealed segment is there, and the first one starts where the log
/// must (`origin`).
fn check_ends(dir: &Path, segments: &[u64], seals: &[Seal], origin: u64) -> Result<(), LogError> {
    if let Some(s) = seals.iter().find(|s| !segments.contains(&s.first)) {
        return Err(corrupt(
            s.first,
            segment_path(dir, s.first),
            0,
            format!(
                "this segment (records {} to {}) is missing",
                s.first, s.last
            ),
        ));
    }
    match segments.first() {
        Some(&first) if first != origin => Err(corrupt(
            origin,
            segment_path(dir, origin),
            0,
            format!(
                "the log must start at record {origin} but its first segment starts at {first}"
            ),
        )),
        None if !seals.is_empty() => Err(corrupt(
            origin,
            dir.to_path_buf(),
            0,
            "every segment of the log is missing".into(),
        )),
        _ => Ok(()),
    }
}

/// A closed segment from before seals, read once: whole, linked to
/// `link` (the last hash before it), and sealed as it is.
fn seal_unsealed(path: &Path, first: u64, link: Hash) -> Result<Seal, LogError> {
    let scan = reader::scan_tail_segment(path, first)?;
    let (Some(hash), true) = (scan.last_hash, scan.valid_len == scan.file_len) else {
        return Err(corrupt(
            scan.next_seq,
            path.to_path_buf(),
            scan.valid_len,
            "a closed segment ends in a torn record".into(),
        ));
    };
    if scan.prev_of_first != link {
        return Err(unlinked(first, path.to_path_buf()));
    }
    Ok(Seal {
        first,
        last: scan.next_seq - 1,
        last_offset: scan.last_offset,
        last_hash: crate::store::hex(&hash),
        len: scan.file_len,
    })
}

/// A sealed segment is as long as when it was closed, ends with the
/// record it was sealed with, and the segment `next` starts right after it
/// and links to it. Returns that last record's hash.
fn check_sealed(dir: &Path, path: &Path, seal: &Seal, next: u64) -> Result<Hash, LogError> {
    check_magic(path, seal.first)?;
    let len = fs::metadata(path).map_err(|e| LogError::io(path, e))?.len();
    if len != seal.len {
        return Err(corrupt(
            seal.last,
            path.to_path_buf(),
            len.min(seal.len),
            format!(
                "the segment is {len} bytes long but was {} when it was closed",
                seal.len
            ),
        ));
    }
    let last = reader::read_one(path, seal.last_offset, seal.last)?;
    if crate::store::hex(&last.hash()) != seal.last_hash {
        return Err(corrupt(
            seal.last,
            path.to_path_buf(),
            seal.last_offset,
            "the segment's last record is not the one it was closed with".into(),
        ));
    }
    if next != seal.last + 1 {
        return Err(corrupt(
            seal.last + 1,
            segment_path(dir, seal.last + 1),
            0,
            format!(
                "records {} to {} are missing (no segment holds them)",
                seal.last + 1,
                next - 1
            ),
        ));
    }
    let following = segment_path(dir, next);
    check_magic(&following, next)?;
    let head = reader::read_one(&following, MAGIC.len() as u64, next)?;
    if head.prev != last.hash() {
        return Err(unlinked(next, following));
    }
    Ok(last.hash())
}

fn check_magic(path: &Path, first: u64) -> Result<(), LogError> {
    use std::io::Read;
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| LogError::io(path, e))?;
    if &magic != MAGIC {
        return Err(LogError::Corrupt {
            seq: first,
            path: path.to_path_buf(),
            offset: 0,
            reason: "not an event log segment (its first bytes are damaged)".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
