//! Witnesses (R10): positions in the log that something outside the log has
//! seen — the last backup taken, the record the standby confirmed holding —
//! kept as small files in `<data>/witness/` so that a log which later holds
//! less than they saw is refused at start like one behind its snapshot.
//!
//! A witness is written only after the log held the record it names (a
//! backup reads the synced log; a standby confirms a record it received
//! from it), so a witness ahead of the log, or one whose record differs
//! from the log's at the same position, proves that records were lost or
//! replaced. Each file is written whole (temp file, sync, rename) and may
//! lag behind; it is never ahead of what was true. An unreadable witness
//! file proves nothing and is reported, not trusted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::Number;

/// The folder of witness files inside a data folder.
pub const DIR: &str = "witness";

/// Who saw the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `madoguchi backup` wrote a backup ending at this record.
    Backup,
    /// The standby confirmed holding every record up to this one.
    Standby,
    /// A snapshot store set aside (`state.sled.damaged-…`, kept whole): what
    /// it showed when it was moved, read once and never trusted for state.
    SetAside,
    /// The damaged folder's high-water mark (`highwater.rs`), carried into
    /// a repair by `recover`.
    HighWater,
    /// The damaged log's own seals (`SEALS.json`), carried into a repair by
    /// `recover`: the records its closed segments held.
    Seals,
}

impl Source {
    fn file(self) -> &'static str {
        match self {
            Source::Backup => "backup.json",
            Source::Standby => "standby.json",
            Source::SetAside => "set-aside.json",
            Source::HighWater => "highwater.json",
            Source::Seals => "seals.json",
        }
    }

    /// How the source is named in a refusal (Japanese / English).
    pub fn name(self) -> &'static str {
        match self {
            Source::Backup => "最新のバックアップ / the latest backup",
            Source::Standby => "待機系 / the standby",
            Source::SetAside => "退避したスナップショット / a set-aside snapshot store",
            Source::HighWater => "記録の到達点 (HIGHWATER) / the high-water mark",
            Source::Seals => "ログの封印 (SEALS.json) / the log's segment seals",
        }
    }
}

/// One witness: the last record it saw, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub source: Source,
    pub seq: u64,
    /// The hash of record `seq` (hex).
    pub hash: String,
    /// When it was seen (RFC 3339).
    pub at: String,
    /// Where the copy is: the backup file, the standby's address.
    pub place: String,
    /// The business day open at `seq` and each category's highest number
    /// issued by then, where the writer knew them (the standby's witness
    /// is written from the primary's state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub highest: BTreeMap<String, Number>,
}

impl Witness {
    /// One line for a refusal or a fault record.
    pub fn describe(&self) -> String {
        // A witness without a time (a high-water mark) shows none, not an
        // empty one (outside tester storage-rt10 F-G: "(…/HIGHWATER, )").
        let at = if self.at.is_empty() {
            String::new()
        } else {
            format!(", {}", self.at)
        };
        format!(
            "{} ({}{at}) は記録 {} まで保持 / holds records up to {}",
            self.source.name(),
            self.place,
            self.seq,
            self.seq
        )
    }
}

/// Writes `w` into `data`'s witness folder, replacing that source's
/// earlier witness.
pub fn record(data: &Path, w: &Witness) -> std::io::Result<()> {
    record_as(data, w, w.source.file())
}

/// [`record`] under its own file name (one per set-aside store).
pub fn record_as(data: &Path, w: &Witness, name: &str) -> std::io::Result<()> {
    let dir = data.join(DIR);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    let tmp = path.with_extension("json.part");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(w).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// What the witness folder says: the witnesses that could be read, and a
/// note for each file that could not (proof of nothing, but said).
pub fn read_all(data: &Path) -> (Vec<Witness>, Vec<String>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(data.join(DIR)) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            unreadable.push(format!("{}: {e}", data.join(DIR).display()));
            Vec::new()
        }
    };
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_capped(&path) {
            Ok(bytes) => match parse(&name, &bytes) {
                Ok(w) => found.push(w),
                Err(e) => unreadable.push(format!("{}: {e}", path.display())),
            },
            Err(e) => unreadable.push(format!("{}: {e}", path.display())),
        }
    }
    (found, unreadable)
}

/// The largest witness file read: one is a few hundred bytes; a bigger
/// one (garbage) is unreadable, never read whole into memory.
pub const MAX_FILE: u64 = 1 << 20;

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut b = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut b)?;
    if b.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE} bytes / 大きすぎます"
        )));
    }
    Ok(b)
}

/// The witness in a file named `name` (`backup.json`, `set-aside-….json`,
/// …) from its bytes, never trusted: a file that names another source
/// than its name is refused. Fuzzed (`fuzz/fuzz_targets/witness_file.rs`).
pub fn parse(name: &str, bytes: &[u8]) -> Result<Witness, String> {
    match serde_json::from_slice::<Witness>(bytes) {
        Ok(w) if w.source.file() == name || name.starts_with("set-aside-") => Ok(w),
        Ok(_) => Err("names another source".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Moves the witness files aside once a loss was accepted: the log now
/// continues differently from what they saw. Returns where they went.
pub fn set_aside(data: &Path, after_seq: u64) -> std::io::Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    let paths: Vec<PathBuf> = match std::fs::read_dir(data.join(DIR)) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    || p.file_name().is_some_and(|n| n == super::highwater::FILE)
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for path in paths {
        let mut to = path.clone().into_os_string();
        to.push(format!(".accepted-at-{after_seq}"));
        let to = PathBuf::from(to);
        std::fs::rename(&path, &to)?;
        moved.push(to);
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(source: Source, seq: u64) -> Witness {
        Witness {
            source,
            seq,
            hash: "00".repeat(32),
            at: "2026-12-06T10:00:00Z".into(),
            place: "/backups/full.mdgb".into(),
            day: None,
            highest: BTreeMap::new(),
        }
    }

    #[test]
    fn written_witnesses_read_back_and_replace_their_source() {
        let d = tempfile::tempdir().expect("tempdir");
        record(d.path(), &witness(Source::Backup, 5)).expect("write");
        record(d.path(), &witness(Source::Backup, 9)).expect("write");
        record(d.path(), &witness(Source::Standby, 7)).expect("write");
        let (found, bad) = read_all(d.path());
        assert!(bad.is_empty());
        assert_eq!(
            found.iter().map(|w| (w.source, w.seq)).collect::<Vec<_>>(),
            vec![(Source::Backup, 9), (Source::Standby, 7)]
        );
    }

    #[test]
    fn a_garbled_witness_is_reported_not_trusted() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join(DIR)).expect("dir");
        std::fs::write(d.path().join(DIR).join("standby.json"), b"{\"seq\": 9").expect("write");
        let (found, bad) = read_all(d.path());
        assert!(found.is_empty());
        assert_eq!(bad.len(), 1, "{bad:?}");
    }

    #[test]
    fn set_aside_moves_every_witness() {
        let d = tempfile::tempdir().expect("tempdir");
        record(d.path(), &witness(Source::Backup, 5)).expect("write");
        record(d.path(), &witness(Source::Standby, 5)).expect("write");
        let moved = set_aside(d.path(), 3).expect("moved");
        assert_eq!(moved.len(), 2);
        assert!(read_all(d.path()).0.is_empty());
    }

    /// A smoke run of what `fuzz/fuzz_targets/witness_file.rs` fuzzes
    /// (issue 17): random bytes and changed real witness files, set-aside
    /// ones included, never panic; a file named for another source is
    /// refused.
    #[test]
    fn random_and_changed_witness_files_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let w = witness(Source::SetAside, 12);
        let good = serde_json::to_vec_pretty(&w).expect("json");
        assert_eq!(
            parse("set-aside-state.sled.damaged-1.json", &good),
            Ok(w.clone())
        );
        assert!(parse("backup.json", &good).is_err());
        for _ in 0..20_000 {
            let mut x = good.clone();
            let i = rng.random_range(0..x.len());
            x[i] = rng.random();
            if let Ok(v) = parse("set-aside-x.json", &x) {
                let _ = v.describe();
            }
            let n = rng.random_range(0..48);
            let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            let _ = parse("standby.json", &junk);
        }
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join(DIR)).expect("dir");
        std::fs::write(
            d.path().join(DIR).join("backup.json"),
            vec![b' '; MAX_FILE as usize + 10],
        )
        .expect("write");
        let (found, bad) = read_all(d.path());
        assert!(found.is_empty() && bad.len() == 1, "{bad:?}");
    }
}
