//! What a relay keeps on disk: the last full bundle and the deltas accepted
//! since — each written to a temp file, fsynced and renamed (and the folder
//! fsynced) before the bundle is served over HTTP or acknowledged. The
//! last accepted sequence number is the highest one on disk (a delta's is
//! in its file name), so it needs no file of its own and no second pair of
//! fsyncs. A restarted relay serves what it last accepted and refuses
//! anything at or below that sequence number, so no one can roll it back by
//! replaying an old signed bundle. (`last-seq`, which earlier relays wrote
//! after every bundle, is still read when present, and removed by the next
//! full bundle.)
//!
//! The chain of deltas since the last full bundle is bounded in count and
//! bytes ([`Store::chain`], checked by the ingest); a full bundle prunes it. A signed
//! reset is a full bundle, so storing it leaves nothing on disk that names
//! the old sequence.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::bundle::{self, Bundle, Kind};
use crate::site::Site;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("relay state folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("relay state file {path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    last_seq: u64,
    /// Deltas stored since the last full bundle, and their bytes.
    chain: (usize, u64),
    /// Files set aside when the folder was opened.
    pub set_aside: u64,
}

/// Written by relays before the sequence number came from the bundles.
const LAST_SEQ: &str = "last-seq";
const FULL: &str = "full.bundle";

impl Store {
    /// Opens (creating) the state folder and rebuilds the last served site.
    pub fn open(dir: &Path, keys: &[VerifyingKey]) -> Result<(Store, Site), StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let seq_path = dir.join(LAST_SEQ);
        let mut last_seq = match fs::read_to_string(&seq_path) {
            Ok(t) => t.trim().parse().map_err(|_| StoreError::Damaged {
                path: seq_path.clone(),
                why: format!("{:?} is not a sequence number", t.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&seq_path)(e)),
        };
        let mut site = Site::default();
        let mut chain = (0, 0);
        let mut aside_count = 0;
        let full = dir.join(FULL);
        if full.exists() {
            site = match load(&full, keys, &site) {
                Ok(s) => s,
                // relay-rt2 F2: damaged, or signed by a key no longer
                // configured (after a rotation). Set aside, never deleted
                // or served; the relay serves no current data until the
                // office's next full bundle (it sends one at once when a
                // delta is refused `wrong_base`).
                Err(e @ StoreError::Damaged { .. }) => {
                    let aside = set_aside(&full)?;
                    aside_count += 1;
                    tracing::error!(
                        error = %e,
                        aside = %aside.display(),
                        "保存されていた公開データ (full.bundle) は壊れているか、設定された庁舎の鍵で検証できません。 別名で退避し、庁舎から次の完全な束が届くまで「最新ではない」と表示します / the stored full bundle is damaged or does not verify with the configured office keys: set aside (renamed, not deleted); no current data is served until the office's next full bundle"
                    );
                    Site::default()
                }
                Err(e) => return Err(e),
            };
            let mut deltas: Vec<(u64, PathBuf)> = fs::read_dir(dir)
                .map_err(io(dir))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let seq = name.strip_prefix("delta-")?.strip_suffix(".bundle")?;
                    Some((seq.parse().ok()?, e.path()))
                })
                .collect();
            deltas.sort();
            chain = (
                deltas.len(),
                deltas
                    .iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum(),
            );
            // Even a delta that no longer loads was accepted once.
            if let Some((seq, _)) = deltas.last() {
                last_seq = last_seq.max(*seq);
            }
            for (_, path) in deltas {
                match load(&path, keys, &site) {
                    Ok(s) => site = s,
                    // A delta left over from before the full bundle.
                    Err(e) => tracing::warn!(error = %e, "stored delta skipped"),
                }
            }
        }
        last_seq = last_seq.max(site.seq);
        Ok((
            Store {
                dir: dir.to_path_buf(),
                last_seq,
                chain,
                set_aside: aside_count,
            },
            site,
        ))
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Deltas stored since the last full bundle, and their bytes.
    pub fn chain(&self) -> (usize, u64) {
        self.chain
    }

    /// Makes an accepted bundle durable (the caller has checked it is newer
    /// and applies to the current site).
    pub fn accept(&mut self, raw: &[u8], bundle: &Bundle) -> Result<(), StoreError> {
        let seq = bundle.header.seq;
        match bundle.header.kind {
            Kind::Full => {
                write_atomic(&self.dir, FULL, raw)?;
                // Older deltas no longer apply (a stale one fails its base
                // check on load), but each still names a sequence, which a
                // reset must not find again after a restart: pruned, and
                // the folder synced so the removal is durable.
                let mut removed = false;
                if let Ok(rd) = fs::read_dir(&self.dir) {
                    for e in rd.filter_map(|e| e.ok()) {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        if name.starts_with("delta-") || name == LAST_SEQ {
                            removed |= fs::remove_file(e.path()).is_ok();
                        }
                    }
                }
                if removed {
                    fs::File::open(&self.dir)
                        .and_then(|d| d.sync_all())
                        .map_err(io(&self.dir))?;
                }
                self.chain = (0, 0);
            }
            Kind::Delta => {
                write_atomic(&self.dir, &format!("delta-{seq:020}.bundle"), raw)?;
                self.chain.0 += 1;
                self.chain.1 = self.chain.1.saturating_add(raw.len() as u64);
            }
        }
        self.last_seq = seq;
        Ok(())
    }
}

fn load(path: &Path, keys: &[VerifyingKey], on: &Site) -> Result<Site, StoreError> {
    let raw = fs::read(path).map_err(io(path))?;
    let damaged = |why: String| StoreError::Damaged {
        path: path.to_path_buf(),
        why,
    };
    let b: Bundle = bundle::verify(&raw, keys).map_err(|e| damaged(e.to_string()))?;
    // Received when it was written: a restart does not make the data live
    // again for a whole lifetime.
    let received = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(b.header.created, |d| {
            madoguchi_wire::UnixSeconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
    let mut site = on
        .apply(&b)
        .map(|(s, _)| s)
        .map_err(|e| damaged(e.to_string()))?;
    site.expires = madoguchi_wire::rules::expiry_from(&b.header, received);
    Ok(site)
}

/// Renames `path` to `<name>.set-aside-<unix seconds>[-n]` beside it (never
/// deletes it) and returns the new path.
pub fn set_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Never over an earlier one (two set asides within a second).
    let aside = (0u32..1000)
        .map(|n| match n {
            0 => path.with_file_name(format!("{name}.set-aside-{now}")),
            n => path.with_file_name(format!("{name}.set-aside-{now}-{n}")),
        })
        .find(|p| matches!(fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound))
        .unwrap_or_else(|| path.with_file_name(format!("{name}.set-aside-{now}-last")));
    fs::rename(path, &aside).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(aside)
}

/// What start-up would set aside in the state folder, and why (for
/// `madoguchi-relay check`).
pub fn would_set_aside(dir: &Path, keys: &[VerifyingKey]) -> Vec<(PathBuf, String)> {
    let full = dir.join(FULL);
    match full.exists().then(|| load(&full, keys, &Site::default())) {
        Some(Err(StoreError::Damaged { why, .. })) => vec![(full, why)],
        _ => vec![],
    }
}

/// Temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{pack, Header, Reset};
    use ed25519_dalek::SigningKey;
    use madoguchi_wire::UnixSeconds;

    fn raw(seq: u64, kind: Kind, base: u64, body: &str) -> Vec<u8> {
        raw_reset(seq, kind, base, body, None)
    }

    fn raw_reset(seq: u64, kind: Kind, base: u64, body: &str, reset: Option<Reset>) -> Vec<u8> {
        let h = Header {
            relay: "r".into(),
            seq,
            created: UnixSeconds(1),
            expires: UnixSeconds(2),
            kind,
            base,
            files: vec![],
            removed: vec![],
            reset,
        };
        pack(
            &h,
            &[("index.html".into(), body.as_bytes().to_vec())],
            &SigningKey::from_bytes(&[3; 32]),
        )
    }

    #[test]
    fn a_restart_serves_the_last_accepted_site_and_remembers_its_sequence() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = [SigningKey::from_bytes(&[3; 32]).verifying_key()];
        {
            let (mut store, mut site) = Store::open(dir.path(), &keys).expect("open");
            for (seq, kind, base, body) in [
                (4, Kind::Full, 0, "a"),
                (5, Kind::Delta, 4, "b"),
                (6, Kind::Delta, 5, "c"),
            ] {
                let r = raw(seq, kind, base, body);
                let b = bundle::verify(&r, &keys).expect("verify");
                let (next, _) = site.apply(&b).expect("apply");
                store.accept(&r, &b).expect("accept");
                site = next;
            }
        }
        let (store, site) = Store::open(dir.path(), &keys).expect("reopen");
        assert_eq!(store.last_seq(), 6);
        assert_eq!(site.seq, 6);
        assert_eq!(
            site.lookup("/").map(|e| e.identity.clone()),
            Some(bytes::Bytes::from("c"))
        );
    }

    #[test]
    fn the_sequence_survives_a_restart_even_when_the_last_delta_is_damaged() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = [SigningKey::from_bytes(&[3; 32]).verifying_key()];
        {
            let (mut store, mut site) = Store::open(dir.path(), &keys).expect("open");
            for (seq, kind, base) in [(10, Kind::Full, 0), (11, Kind::Delta, 10)] {
                let r = raw(seq, kind, base, "x");
                let b = bundle::verify(&r, &keys).expect("verify");
                site = site.apply(&b).expect("apply").0;
                store.accept(&r, &b).expect("accept");
            }
        }
        assert!(!dir.path().join(LAST_SEQ).exists());
        fs::write(
            dir.path().join(format!("delta-{:020}.bundle", 11)),
            "broken",
        )
        .expect("w");
        let (store, site) = Store::open(dir.path(), &keys).expect("reopen");
        assert_eq!(site.seq, 10, "the damaged delta is not served");
        assert_eq!(
            store.last_seq(),
            11,
            "but its sequence is not accepted again"
        );
    }

    #[test]
    fn a_full_bundle_that_does_not_verify_is_set_aside_and_nothing_is_served() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = [SigningKey::from_bytes(&[3; 32]).verifying_key()];
        {
            let (mut store, _) = Store::open(dir.path(), &old).expect("open");
            let r = raw(10, Kind::Full, 0, "x");
            store
                .accept(&r, &bundle::verify(&r, &old).expect("verify"))
                .expect("accept");
        }
        // A key rotation: only the new key is configured.
        let new = [SigningKey::from_bytes(&[4; 32]).verifying_key()];
        assert_eq!(would_set_aside(dir.path(), &new).len(), 1);
        assert!(would_set_aside(dir.path(), &old).is_empty());
        let (store, site) = Store::open(dir.path(), &new).expect("starts");
        assert_eq!((store.last_seq(), site.seq, site.files.len()), (0, 0, 0));
        assert!(!dir.path().join(FULL).exists());
        let aside: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("full.bundle.set-aside-")
            })
            .collect();
        assert_eq!(aside.len(), 1, "renamed, not deleted");
        // A truncated one likewise.
        fs::write(dir.path().join(FULL), b"MDGRLY1").expect("w");
        let (_, site) = Store::open(dir.path(), &new).expect("starts");
        assert_eq!(site.seq, 0);
    }

    #[test]
    fn a_damaged_sequence_file_is_reported_not_reset() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join(LAST_SEQ), "garbage").expect("write");
        let err = Store::open(dir.path(), &[]).expect_err("must refuse");
        assert!(err.to_string().contains("last-seq"), "{err}");
    }

    #[test]
    fn the_delta_chain_is_counted_across_restarts_and_a_reset_leaves_no_old_sequence() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = [SigningKey::from_bytes(&[3; 32]).verifying_key()];
        // A relay from before the sequence rules, holding 2^64-1.
        fs::write(dir.path().join(LAST_SEQ), u64::MAX.to_string()).expect("w");
        let (mut store, mut site) = Store::open(dir.path(), &keys).expect("open");
        assert_eq!(store.last_seq(), u64::MAX);
        for (seq, kind, base) in [
            (10, Kind::Full, 0),
            (11, Kind::Delta, 10),
            (12, Kind::Delta, 11),
        ] {
            let r = raw(seq, kind, base, "x");
            let b = bundle::verify(&r, &keys).expect("verify");
            site = site.apply(&b).expect("apply").0;
            store.accept(&r, &b).expect("accept");
        }
        assert_eq!(store.chain().0, 2);
        assert!(store.chain().1 > 0);
        let (reopened, _) = Store::open(dir.path(), &keys).expect("reopen");
        assert_eq!(reopened.chain(), store.chain());
        let reset = Some(Reset {
            relay: "r".into(),
            held: 12,
        });
        let r = raw_reset(5, Kind::Full, 0, "y", reset);
        let b = bundle::verify(&r, &keys).expect("verify");
        store.accept(&r, &b).expect("accept reset");
        let (store, site) = Store::open(dir.path(), &keys).expect("reopen");
        assert_eq!((store.last_seq(), site.seq, store.chain()), (5, 5, (0, 0)));
    }
}
