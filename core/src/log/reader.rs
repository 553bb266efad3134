//! Reading the log back: the tail scan done on open, sequential reads with
//! every link checked, and single-record reads.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::frame::{self, Bad, Hash, Record, HEADER_LEN, MAGIC};
use super::{segment_path, LogError, Pos};

pub(crate) struct TailScan {
    pub file_len: u64,
    /// Bytes up to the end of the last good record.
    pub valid_len: u64,
    pub next_seq: u64,
    pub last_hash: Option<Hash>,
    /// Where the last good record starts.
    pub last_offset: u64,
    /// The `prev` the segment's first record carries (or would carry).
    pub prev_of_first: Hash,
}

fn read_file(path: &Path) -> Result<Vec<u8>, LogError> {
    std::fs::read(path).map_err(|e| LogError::io(path, e))
}

/// Scans the last segment. A bad record with no good record after it is a
/// torn tail (reported through `valid_len`); one with a good record after it
/// is corruption.
pub(crate) fn scan_tail_segment(path: &Path, first: u64) -> Result<TailScan, LogError> {
    let bytes = read_file(path)?;
    let corrupt = |seq: u64, offset: usize, reason: String| LogError::Corrupt {
        seq,
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < MAGIC.len() {
        if MAGIC.starts_with(&bytes) {
            // Crashed while creating the segment: nothing in it was ever
            // acknowledged.
            return Ok(TailScan {
                file_len: bytes.len() as u64,
                valid_len: 0,
                next_seq: first,
                last_hash: None,
                last_offset: 0,
                prev_of_first: [0; 32],
            });
        }
        return Err(corrupt(first, 0, "not an event log segment".into()));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(first, 0, "not an event log segment".into()));
    }
    let mut offset = MAGIC.len();
    let mut expected = first;
    let mut last_hash: Option<Hash> = None;
    let mut last_offset = 0;
    let mut prev_of_first = [0; 32];
    while offset < bytes.len() {
        let problem = match frame::decode(&bytes[offset..]) {
            Ok(r) if r.seq != expected => {
                Some(format!("sequence {} where {expected} was due", r.seq))
            }
            Ok(r) if last_hash.is_some_and(|h| h != r.prev) => {
                Some("broken hash chain".to_string())
            }
            Ok(r) => {
                if last_hash.is_none() {
                    prev_of_first = r.prev;
                }
                last_hash = Some(r.hash());
                last_offset = offset as u64;
                offset += r.framed_len() as usize;
                expected += 1;
                continue;
            }
            Err(bad) => {
                if good_record_after(&bytes, offset + 1, expected) {
                    Some(bad.to_string())
                } else {
                    // A torn write: nothing from here on was acknowledged.
                    break;
                }
            }
        };
        if let Some(reason) = problem {
            return Err(corrupt(expected, offset, reason));
        }
    }
    Ok(TailScan {
        file_len: bytes.len() as u64,
        valid_len: offset as u64,
        next_seq: expected,
        last_hash,
        last_offset,
        prev_of_first,
    })
}

/// Whether any well-formed record numbered `min_seq` or later starts at or
/// after `from`. Every offset is a candidate, so the sequence number in a
/// candidate's header is checked first — it must lie between `min_seq` and
/// the most records the rest of the file could hold — and the CRC (over up
/// to 16 MiB) is computed only where it does: without this a damaged large
/// segment cost a CRC per byte, quadratic in its size.
fn good_record_after(bytes: &[u8], from: usize, min_seq: u64) -> bool {
    let end = bytes.len().saturating_sub(HEADER_LEN - 1);
    let most = min_seq.saturating_add((bytes.len().saturating_sub(from) / HEADER_LEN) as u64);
    (from..end).any(|i| {
        let Some(seq) = bytes.get(i + 8..i + 16) else {
            return false;
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(seq);
        let seq = u64::from_le_bytes(word);
        (min_seq..=most).contains(&seq)
            && frame::decode(&bytes[i..]).is_ok_and(|r| r.seq >= min_seq)
    })
}

/// The first well-formed record numbered `min_seq` or later that starts at
/// or after `from`, with its number (candidates filtered by their header's
/// number first, as in [`good_record_after`]).
pub(crate) fn first_good_record(bytes: &[u8], from: usize, min_seq: u64) -> Option<(usize, u64)> {
    let end = bytes.len().saturating_sub(HEADER_LEN - 1);
    let most = min_seq.saturating_add((bytes.len().saturating_sub(from) / HEADER_LEN) as u64);
    (from..end).find_map(|i| {
        let seq = bytes.get(i + 8..i + 16)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(seq);
        let seq = u64::from_le_bytes(word);
        if !(min_seq..=most).contains(&seq) {
            return None;
        }
        frame::decode(&bytes[i..])
            .ok()
            .filter(|r| r.seq >= min_seq)
            .map(|r| (i, r.seq))
    })
}

pub(crate) fn read_one(path: &Path, offset: u64, seq: u64) -> Result<Record, LogError> {
    let mut f = File::open(path).map_err(|e| LogError::io(path, e))?;
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| LogError::io(path, e))?;
    let mut header = [0u8; HEADER_LEN];
    let corrupt = |reason: String| LogError::Corrupt {
        seq,
        path: path.to_path_buf(),
        offset,
        reason,
    };
    f.read_exact(&mut header)
        .map_err(|_| corrupt("the record is cut short".into()))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if len > super::MAX_PAYLOAD {
        return Err(corrupt(Bad::Length(len).to_string()));
    }
    let mut buf = header.to_vec();
    buf.resize(HEADER_LEN + len as usize, 0);
    f.read_exact(&mut buf[HEADER_LEN..])
        .map_err(|_| corrupt("the record is cut short".into()))?;
    let r = frame::decode(&buf).map_err(|b| corrupt(b.to_string()))?;
    if r.seq != seq {
        return Err(corrupt(format!(
            "sequence {} where {seq} was expected",
            r.seq
        )));
    }
    Ok(r)
}

/// Sequential reader over all segments from a starting point, checking each
/// record's CRC, sequence number and link to the one before.
#[derive(Debug)]
pub struct Records {
    dir: PathBuf,
    segments: Vec<u64>,
    /// Index into `segments` of the open one.
    index: usize,
    reader: Option<BufReader<File>>,
    offset: u64,
    expected: Option<u64>,
    prev: Option<Hash>,
    done: bool,
    /// Reading a log being written: a short record at the end of the last
    /// segment ends the reading instead of being an error.
    live: bool,
}

impl Records {
    pub(crate) fn new(dir: PathBuf, segments: Vec<u64>, from: Option<(Pos, u64, Hash)>) -> Records {
        let (index, offset, expected, prev) = match from {
            Some((pos, seq, prev)) => (
                segments
                    .iter()
                    .position(|&s| s == pos.segment)
                    .unwrap_or(segments.len()),
                pos.offset,
                Some(seq),
                Some(prev),
            ),
            None => (0, MAGIC.len() as u64, segments.first().copied(), None),
        };
        Records {
            dir,
            segments,
            index,
            reader: None,
            offset,
            expected,
            prev,
            done: false,
            live: false,
        }
    }

    /// The first record read must be `seq` and link to `prev` (record 1 and
    /// zeros, or the archive anchor's successor and hash).
    pub(crate) fn starting(mut self, seq: u64, prev: Hash) -> Records {
        self.expected = Some(seq);
        self.prev = Some(prev);
        self
    }

    pub(crate) fn live(mut self) -> Records {
        self.live = true;
        self
    }

    /// The hash the first record read must link to; `None`: not checked
    /// (the records after it are still checked against each other).
    pub(crate) fn linking_to(mut self, prev: Option<Hash>) -> Records {
        self.prev = prev;
        self
    }

    fn at_last_segment(&self) -> bool {
        self.index + 1 >= self.segments.len()
    }

    fn path(&self) -> PathBuf {
        segment_path(&self.dir, self.segments[self.index])
    }

    fn corrupt(&self, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            seq: self.expected.unwrap_or(0),
            path: self.path(),
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn next_record(&mut self) -> Result<Option<(Pos, Record)>, LogError> {
        loop {
            if self.index >= self.segments.len() {
                return Ok(None);
            }
            if self.reader.is_none() {
                let path = self.path();
                let mut f = File::open(&path).map_err(|e| LogError::io(&path, e))?;
                let mut magic = [0u8; 8];
                f.read_exact(&mut magic)
                    .map_err(|_| self.corrupt("not an event log segment"))?;
                if &magic != MAGIC {
                    return Err(self.corrupt("not an event log segment"));
                }
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(self.offset))
                    .map_err(|e| LogError::io(&path, e))?;
                self.reader = Some(BufReader::with_capacity(1 << 16, f));
                if self.offset == MAGIC.len() as u64
                    && self.segments[self.index]
                        != self.expected.unwrap_or(self.segments[self.index])
                {
                    return Err(self.corrupt(format!(
                        "segment starts at {} but record {} was due",
                        self.segments[self.index],
                        self.expected.unwrap_or(0)
                    )));
                }
            }
            // A short record at the end of a live log's last segment is a
            // write in progress.
            let tail_may_be_short = self.live && self.at_last_segment();
            let Some(reader) = self.reader.as_mut() else {
                return Ok(None);
            };
            let mut header = [0u8; HEADER_LEN];
            match read_full(reader, &mut header) {
                Ok(0) => {
                    // End of this segment.
                    self.reader = None;
                    self.index += 1;
                    self.offset = MAGIC.len() as u64;
                    continue;
                }
                Ok(n) if n < HEADER_LEN && tail_may_be_short => return Ok(None),
                Ok(n) if n < HEADER_LEN => return Err(self.corrupt("the record is cut short")),
                Ok(_) => {}
                Err(e) => return Err(LogError::io(&self.path(), e)),
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            if len > super::MAX_PAYLOAD {
                return Err(self.corrupt(Bad::Length(len).to_string()));
            }
            let mut buf = header.to_vec();
            buf.resize(HEADER_LEN + len as usize, 0);
            match read_full(reader, &mut buf[HEADER_LEN..]) {
                Ok(n) if n == len as usize => {}
                Ok(_) if tail_may_be_short => return Ok(None),
                Ok(_) => return Err(self.corrupt("the record is cut short")),
                Err(e) => return Err(LogError::io(&self.path(), e)),
            }
            let r = frame::decode(&buf).map_err(|b| self.corrupt(b.to_string()))?;
            let expected = self.expected.unwrap_or(r.seq);
            if r.seq != expected {
                return Err(self.corrupt(format!("sequence {} where {expected} was due", r.seq)));
            }
            if self.prev.is_some_and(|p| p != r.prev) {
                return Err(
                    self.corrupt("broken hash chain: the record does not link to the one before")
                );
            }
            let pos = Pos {
                segment: self.segments[self.index],
                offset: self.offset,
            };
            self.offset += r.framed_len();
            self.expected = Some(r.seq + 1);
            self.prev = Some(r.hash());
            return Ok(Some((pos, r)));
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl Iterator for Records {
    type Item = Result<(Pos, Record), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(x)) => Some(Ok(x)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
