//! Where the live log starts once its oldest segments have been archived
//! (retention, R14). `ANCHOR.json` in the log folder names the last
//! archived record (sequence number and hash: the first live record must
//! link to it), the configuration in force after it, and the checkpoint
//! file beside it (`checkpoint-<seq>.json`: the office's state and
//! statistics after that record, by SHA-256), so that a rebuild or an
//! audit starts from the anchor instead of from record 1. The archiving
//! itself records the anchor in the log (`log_archived`), so the anchor and
//! its checkpoint are covered by the hash chain that follows them.
//!
//! Without an anchor the log must start at record 1 linking to zeros: a
//! removed first segment is corruption, not a shorter history.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{sync_dir, Hash, LogError};
use crate::store::{hex, parse_hex};

pub const ANCHOR_FILE: &str = "ANCHOR.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub format: u32,
    /// The last archived record and its hash.
    pub seq: u64,
    pub hash: String,
    /// The configuration in force after `seq` and the record that set it
    /// (0 and none: the built-in one).
    pub config_seq: u64,
    pub config_source: Option<String>,
    /// SHA-256 of the checkpoint file.
    pub checkpoint_sha256: String,
    /// Where the archived segments went, and when.
    pub archive: String,
    pub archived_at: String,
}

impl Anchor {
    /// The hash the first live record links to.
    pub fn link(&self) -> Result<Hash, LogError> {
        parse_hex(&self.hash).ok_or_else(|| LogError::Corrupt {
            seq: self.seq + 1,
            path: PathBuf::from(ANCHOR_FILE),
            offset: 0,
            reason: "the archive anchor's hash is unreadable".into(),
        })
    }

    pub fn checkpoint_name(&self) -> String {
        checkpoint_name(self.seq)
    }
}

pub fn checkpoint_name(seq: u64) -> String {
    format!("checkpoint-{seq:020}.json")
}

/// The anchor of the log in `dir`, if its history has been archived.
pub fn read(dir: &Path) -> Result<Option<Anchor>, LogError> {
    let path = dir.join(ANCHOR_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LogError::Corrupt {
                seq: 0,
                path,
                offset: 0,
                reason: format!("the archive anchor is unreadable: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// Writes `bytes` as `dir/name`: temp file, fsync, rename, folder fsync.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| LogError::io(&tmp, e))?;
    fs::rename(&tmp, &dst).map_err(|e| LogError::io(&dst, e))?;
    sync_dir(dir)
}

pub fn write(dir: &Path, anchor: &Anchor) -> Result<(), LogError> {
    let bytes = serde_json::to_vec_pretty(anchor).unwrap_or_default();
    write_file(dir, ANCHOR_FILE, &bytes)
}

/// The first live record's sequence number and the hash it links to.
pub fn origin(anchor: Option<&Anchor>) -> Result<(u64, Hash), LogError> {
    match anchor {
        Some(a) => Ok((a.seq + 1, a.link()?)),
        None => Ok((1, [0; 32])),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes).into())
}
