//! Seals: what each closed segment ended with, written when the log moves
//! on to a new segment (`SEALS.json` in the log folder: the segment's first
//! and last record, the last record's offset and hash, and the segment's
//! length). They are the log's own evidence of its shape, checked on every
//! open at the cost of one stat and two record reads per segment (never a
//! re-read of the history): a closed segment that is missing, shorter or
//! longer than it was sealed, whose last record changed, or whose successor
//! is missing or does not link to it, is damage — the newest segment
//! deleted leaves its predecessor sealed with nothing after it, which is
//! how the loss of a whole segment is told from a shorter history.
//!
//! A folder written before seals existed gets them on its first open, each
//! closed segment read once.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{anchor, LogError};

pub const SEALS_FILE: &str = "SEALS.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The segment's first record (its name).
    pub first: u64,
    /// Its last record, where that record starts, and its hash (hex).
    pub last: u64,
    pub last_offset: u64,
    pub last_hash: String,
    /// The segment's length in bytes when it was closed.
    pub len: u64,
}

/// The seals of the log in `dir` (none for a folder that has none yet).
pub fn read(dir: &Path) -> Result<Vec<Seal>, LogError> {
    let path = dir.join(SEALS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
            seq: 0,
            path,
            offset: 0,
            // Bilingual, and no record is named lost: the seals are the
            // log's evidence of its shape, not records (outside tester
            // storage-rt12 F-G'': English only, "records 0–2838 may be
            // lost"). `madoguchi recover` checks the log without them.
            reason: format!(
                "ログの封印ファイル SEALS.json が読めないため、ログの形（セグメントが欠けていないか）を確かめられません（記録そのものは失われていません）。madoguchi recover で確かめて作り直せます / the segment seals (SEALS.json) are unreadable, so the log's shape cannot be checked (no record is known lost); madoguchi recover checks the log and makes them again: {e}"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// Replaces the seals, durably (temp file, fsync, rename, folder fsync).
pub fn write(dir: &Path, seals: &[Seal]) -> Result<(), LogError> {
    let bytes = serde_json::to_vec_pretty(seals).unwrap_or_default();
    anchor::write_file(dir, SEALS_FILE, &bytes)
}
