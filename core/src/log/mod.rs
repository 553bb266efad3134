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

pub use anchor::Anchor;
pub use frame::{record_hash, Hash, Record, HEADER_LEN, MAGIC};
pub use reader::Records;

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
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn record (or records) cut off the end.
    pub truncated_bytes: u64,
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
}

pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.mlog"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
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

pub use frame::encode as encode_record;
pub use frame::frame as frame_record;

/// Decodes the record at the start of `bytes` (for backups).
pub fn decode_record(bytes: &[u8]) -> Result<Record, String> {
    frame::decode(bytes).map_err(|b| b.to_string())
}

impl EventLog {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(EventLog, OpenReport), LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let anchor = anchor::read(dir)?;
        let segments = live_segments(dir, anchor.as_ref())?;
        let (next_seq, last_hash) = anchor::origin(anchor.as_ref())?;
        let mut log = EventLog {
            dir: dir.to_path_buf(),
            opts,
            segments,
            file: None,
            tail: Tail {
                next_seq,
                last_hash,
                pos: Pos {
                    segment: next_seq,
                    offset: MAGIC.len() as u64,
                },
            },
            poisoned: None,
            anchor,
        };
        let mut report = OpenReport::default();
        while let Some(&last) = log.segments.last() {
            let path = segment_path(dir, last);
            let scan = reader::scan_tail_segment(&path, last)?;
            if scan.last_hash.is_none() {
                // No record in it survived: a segment created (or torn) while
                // nothing in it was acknowledged. The next append recreates it.
                report.truncated_bytes += scan.file_len.saturating_sub(MAGIC.len() as u64);
                fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
                sync_dir(dir)?;
                log.segments.pop();
                continue;
            }
            if scan.valid_len < scan.file_len {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| LogError::io(&path, e))?;
                f.set_len(scan.valid_len)
                    .map_err(|e| LogError::io(&path, e))?;
                f.sync_all().map_err(|e| LogError::io(&path, e))?;
                report.truncated_bytes += scan.file_len - scan.valid_len;
                tracing::warn!(
                    bytes = report.truncated_bytes,
                    segment = %path.display(),
                    "cut a torn record off the end of the event log"
                );
            }
            log.tail = Tail {
                next_seq: scan.next_seq,
                last_hash: scan.last_hash.unwrap_or(scan.prev_of_first),
                pos: Pos {
                    segment: last,
                    offset: scan.valid_len,
                },
            };
            break;
        }
        Ok((log, report))
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
        if self.segments.is_empty() || self.tail.pos.offset >= self.opts.segment_bytes {
            self.start_segment()?;
        }
        let segment = self.tail.pos.segment;
        let path = segment_path(&self.dir, segment);
        let start = self.tail.pos;
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER_LEN).sum());
        let mut seq = self.tail.next_seq;
        let mut prev = self.tail.last_hash;
        for p in payloads {
            if p.len() > MAX_PAYLOAD as usize {
                return Err(LogError::Poisoned(format!(
                    "a record of {} bytes is larger than the limit of {MAX_PAYLOAD}",
                    p.len()
                )));
            }
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
        f.write_all(MAGIC)
            .and_then(|()| f.sync_all())
            .map_err(|e| LogError::io(&path, e))?;
        sync_dir(&self.dir)?;
        self.segments.push(first);
        self.file = Some(f);
        self.tail.pos = Pos {
            segment: first,
            offset: MAGIC.len() as u64,
        };
        Ok(())
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

#[cfg(test)]
mod tests;
