//! The high-water mark (R10, issue 17, outside tester storage-rt6 F1/F2):
//! per-commit evidence of how far the log went, independent of sled (which
//! is flushed about once a second and can roll back with torn pages) and of
//! the log itself (whose tail a failing disk can lose after it was synced).
//!
//! `<data>/HIGHWATER` holds two fixed slots written in turn, each with its
//! own CRC: a write counter, the last record's sequence and hash, the
//! business day and each category's highest number issued. The engine
//! writes one slot (pwrite + fdatasync) after the log's sync and before the
//! answer, once per group-commit batch, so a torn slot is one whose batch
//! was never answered and the other slot still holds the previous one. A
//! log that ends before the mark, or whose record at the mark differs, is
//! refused at start like a deleted segment; `--accept-damage` raises the
//! numbers beyond the mark's. A file that cannot be read (both slots bad)
//! or is missing on an office that has a log is refused by name, with the
//! way out (`madoguchi recover`, which checks the log and writes it anew).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::Number;
use crate::state::State;

/// The file's name inside the data folder.
pub const FILE: &str = "HIGHWATER";
const SLOT: u64 = 4096;
const MAGIC: &[u8; 8] = b"MDGHWM01";

/// What one slot says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub seq: u64,
    /// The hash of record `seq` (hex).
    pub hash: String,
    #[serde(default)]
    pub day: Option<NaiveDate>,
    #[serde(default)]
    pub highest: BTreeMap<String, Number>,
    /// The latest kiosk/staff request ids of the day (up to [`RECENT`] per
    /// category) with their number and category: a retry of one whose
    /// record was lost is told to ask staff, not given a new ticket.
    #[serde(default)]
    pub recent: Vec<(String, Number, String)>,
}

/// How many of each category's latest request ids a mark keeps.
pub const RECENT: usize = 8;

impl Mark {
    /// The mark for `state` after record `seq` with `hash`.
    pub fn of(seq: u64, hash: String, state: &State) -> Mark {
        Mark::with_highest(seq, hash, state, highest_of(state))
    }

    /// [`Mark::of`] with each category's highest number already known
    /// (the engine keeps it as tickets are issued: scanning every ticket
    /// of the day on every commit, a string comparison each, was two
    /// fifths of the engine thread in the server bench, perf 2026-12-07).
    pub fn with_highest(
        seq: u64,
        hash: String,
        state: &State,
        highest: BTreeMap<String, Number>,
    ) -> Mark {
        let mut by_category: BTreeMap<&str, Vec<(Number, &str)>> = BTreeMap::new();
        for (request, number) in &state.requests {
            if let Some(t) = state.tickets.get(number) {
                by_category
                    .entry(t.category.as_str())
                    .or_default()
                    .push((*number, request.as_str()));
            }
        }
        let mut recent = Vec::new();
        for (category, mut v) in by_category {
            v.sort_unstable_by(|a, b| b.cmp(a));
            for (number, request) in v.into_iter().take(RECENT) {
                recent.push((request.to_string(), number, category.to_string()));
            }
        }
        Mark {
            seq,
            hash,
            day: state.meta.day.as_ref().map(|d| d.date),
            highest,
            recent,
        }
    }
}

/// Each category's highest number among the tickets `state` holds.
pub fn highest_of(state: &State) -> BTreeMap<String, Number> {
    // Tickets are in number order, so a category's first ticket from the
    // end is its highest.
    let mut top: BTreeMap<&str, Number> = BTreeMap::new();
    for t in state.tickets.values().rev() {
        top.entry(t.category.as_str()).or_insert(t.number);
    }
    top.into_iter().map(|(c, n)| (c.to_string(), n)).collect()
}

/// Why the file proves nothing.
#[derive(Debug, thiserror::Error)]
pub enum HighWaterError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: neither slot of the high-water mark is readable (both CRCs fail)", path.display())]
    Unreadable { path: PathBuf },
    #[error("{}: the mark is larger than its slot", path.display())]
    TooLarge { path: PathBuf },
}

/// The open file and the next slot's counter.
#[derive(Debug)]
pub struct HighWater {
    path: PathBuf,
    file: File,
    counter: u64,
}

/// The slot's bytes; request ids are left out, oldest first, until the
/// mark fits its slot (long ids must never fail a commit).
fn encode(counter: u64, mark: &Mark) -> Option<Vec<u8>> {
    let mut mark = mark.clone();
    loop {
        match encode_exact(counter, &mark) {
            Some(b) => return Some(b),
            None if !mark.recent.is_empty() => {
                mark.recent.pop();
            }
            None => return None,
        }
    }
}

fn encode_exact(counter: u64, mark: &Mark) -> Option<Vec<u8>> {
    let body = serde_json::to_vec(mark).ok()?;
    let mut buf = Vec::with_capacity(body.len() + 24);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&counter.to_le_bytes());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    (buf.len() as u64 <= SLOT).then_some(buf)
}

fn decode(slot: &[u8]) -> Option<(u64, Mark)> {
    if slot.get(..8)? != MAGIC {
        return None;
    }
    let counter = u64::from_le_bytes(slot.get(8..16)?.try_into().ok()?);
    let len = u32::from_le_bytes(slot.get(16..20)?.try_into().ok()?) as usize;
    let end = 20usize.checked_add(len)?;
    let crc = u32::from_le_bytes(slot.get(end..end + 4)?.try_into().ok()?);
    if crc32fast::hash(slot.get(..end)?) != crc {
        return None;
    }
    let mark = serde_json::from_slice(slot.get(20..end)?).ok()?;
    Some((counter, mark))
}

/// Reads the newest readable slot of `data`'s mark: `Ok(None)` when there
/// is no file.
pub fn read(data: &Path) -> Result<Option<Mark>, HighWaterError> {
    Ok(read_slots(data)?.map(|(_, m)| m))
}

fn read_slots(data: &Path) -> Result<Option<(u64, Mark)>, HighWaterError> {
    let path = data.join(FILE);
    // Two slots at most: a file grown past them (garbage, a copy gone
    // wrong) is never read whole into memory.
    let bytes = match File::open(&path).and_then(|f| {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, 2 * SLOT), &mut b).map(|_| b)
    }) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(HighWaterError::Io { path, source }),
    };
    decode_file(&bytes)
        .map(Some)
        .ok_or(HighWaterError::Unreadable { path })
}

/// The newest readable slot of a mark file's bytes, with its write
/// counter; `None` when neither slot reads. Bytes from the disk, never
/// trusted: fuzzed (`fuzz/fuzz_targets/highwater_slots.rs`).
pub fn decode_file(bytes: &[u8]) -> Option<(u64, Mark)> {
    // After the first write only slot 0 exists, shorter than a slot.
    let a = decode(&bytes[..bytes.len().min(SLOT as usize)]);
    let b = bytes
        .get(SLOT as usize..bytes.len().min(2 * SLOT as usize))
        .and_then(decode);
    match (a, b) {
        (Some(x), Some(y)) => Some(if x.0 >= y.0 { x } else { y }),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    }
}

/// A mark file's bytes for `mark` in slot 0 (test seeds, fuzz corpora).
pub fn encode_file(counter: u64, mark: &Mark) -> Option<Vec<u8>> {
    encode(counter, mark)
}

impl HighWater {
    /// Opens `data`'s mark for writing (creating the file when `create`),
    /// continuing its counter.
    pub fn open(data: &Path, create: bool) -> Result<HighWater, HighWaterError> {
        let path = data.join(FILE);
        let counter = read_slots(data)?.map_or(0, |(c, _)| c + 1);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&path)
            .map_err(|source| HighWaterError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(HighWater {
            path,
            file,
            counter,
        })
    }

    /// Writes `mark` into the older slot and makes it durable.
    pub fn write(&mut self, mark: &Mark) -> Result<(), HighWaterError> {
        let buf = encode(self.counter, mark).ok_or_else(|| HighWaterError::TooLarge {
            path: self.path.clone(),
        })?;
        let at = (self.counter % 2) * SLOT;
        self.file
            .write_all_at(&buf, at)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| HighWaterError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.counter += 1;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes a fresh mark file for `data` (after `recover` checked the log):
/// both slots hold `mark`.
pub fn rewrite(data: &Path, mark: &Mark) -> Result<(), HighWaterError> {
    let path = data.join(FILE);
    let _ = std::fs::remove_file(&path);
    let mut hw = HighWater::open(data, true)?;
    hw.write(mark)?;
    hw.write(mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(seq: u64) -> Mark {
        Mark {
            seq,
            hash: "ab".repeat(32),
            day: None,
            highest: [("koseki".to_string(), seq as Number)].into(),
            recent: vec![("r1".into(), 1, "koseki".into())],
        }
    }

    #[test]
    fn the_newest_slot_wins_and_a_torn_one_falls_back_to_the_other() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(read(d.path()).expect("none").is_none());
        let mut hw = HighWater::open(d.path(), true).expect("open");
        hw.write(&mark(1)).expect("first");
        assert_eq!(read(d.path()).expect("one slot"), Some(mark(1)));
        for s in 2..=5 {
            hw.write(&mark(s)).expect("write");
        }
        assert_eq!(read(d.path()).expect("read"), Some(mark(5)));
        // Slot of write 4 (counter 4: slot 0) holds 5; tear it.
        let path = d.path().join(FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[30] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read(d.path()).expect("read"), Some(mark(4)));
        // Reopened, it goes on after the newest readable slot.
        let mut hw = HighWater::open(d.path(), false).expect("open");
        hw.write(&mark(6)).expect("write");
        assert_eq!(read(d.path()).expect("read"), Some(mark(6)));
        bytes = std::fs::read(&path).expect("read");
        bytes[30] ^= 0xff;
        bytes[SLOT as usize + 30] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            read(d.path()),
            Err(HighWaterError::Unreadable { .. })
        ));
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn long_request_ids_are_dropped_until_the_mark_fits_its_slot() {
        let mark = Mark {
            seq: 9,
            hash: "00".repeat(32),
            day: None,
            highest: BTreeMap::new(),
            recent: (0..40)
                .map(|i| ("x".repeat(300) + &i.to_string(), i, "k".into()))
                .collect(),
        };
        let bytes = encode(0, &mark).expect("fits");
        assert!(bytes.len() as u64 <= SLOT);
        let (_, back) = decode(&bytes).expect("decodes");
        assert!(back.recent.len() < 40 && !back.recent.is_empty());
    }
}

/// A smoke run of what `fuzz/fuzz_targets/highwater_slots.rs` fuzzes, in
/// the ordinary test suite (issue 17): random bytes and single-byte
/// changes of real marks never panic, and a changed byte is never read as
/// another mark than one of those written.
#[cfg(test)]
mod smoke {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn random_and_changed_mark_files_never_panic_or_read_as_another_mark() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let a = Mark {
            seq: 41,
            hash: "cd".repeat(32),
            day: NaiveDate::from_ymd_opt(2026, 12, 7),
            highest: [("koseki".to_string(), 1042 as Number)].into(),
            recent: vec![("k1-7".into(), 1042, "koseki".into())],
        };
        let b = Mark {
            seq: 42,
            ..a.clone()
        };
        let mut file = encode_file(6, &a).expect("fits");
        file.resize(SLOT as usize, 0);
        file.extend(encode_file(7, &b).expect("fits"));
        assert_eq!(decode_file(&file), Some((7, b.clone())));
        for _ in 0..20_000 {
            let mut x = file.clone();
            let i = rng.random_range(0..x.len());
            x[i] ^= rng.random_range(1..=255u8);
            if rng.random_bool(0.2) {
                x.truncate(rng.random_range(0..x.len()));
            }
            if let Some((_, m)) = decode_file(&x) {
                assert!(m == a || m == b, "a changed byte read as {m:?}");
            }
            let n = rng.random_range(0..64);
            let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            let _ = decode_file(&junk);
        }
        // Bytes past the two slots are never read.
        let mut long = file.clone();
        long.resize(2 * SLOT as usize, 0);
        long.extend(std::iter::repeat_n(0x41, 3 * SLOT as usize));
        assert_eq!(decode_file(&long), Some((7, b.clone())));
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join(FILE), &long).expect("write");
        assert_eq!(read(d.path()).expect("read"), Some(b));
    }
}
