//! The subscriptions a relay holds, keyed by the browser's endpoint, and
//! their file in the state folder (`push/subscriptions.json`, written to a
//! temp file, fsynced and renamed), so they survive a restart until their
//! ticket ends or the day closes. Nothing personal is kept: the ticket's
//! public token, the browser's endpoint and keys, the threshold, the
//! language and what has been told.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::notice::{Lang, Progress, Threshold, Token};
use super::PushError;

const FILE: &str = "subscriptions.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sub {
    pub ticket: Token,
    pub endpoint: String,
    /// The browser's keys, base64url as it sent them (checked on entry).
    pub p256dh: String,
    pub auth: String,
    pub threshold: Threshold,
    pub lang: Lang,
    #[serde(default)]
    pub progress: Progress,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    subscriptions: Vec<Sub>,
}

/// Subscriptions in memory (bounded by `push.max_total`).
#[derive(Debug, Default)]
pub struct Subs {
    pub by_endpoint: HashMap<String, Sub>,
}

impl Subs {
    pub fn for_ticket(&self, t: &Token) -> usize {
        self.by_endpoint.values().filter(|s| s.ticket == *t).count()
    }
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The most a push state file may hold (far above `push.max_total`
/// subscriptions): a bigger one is not read into memory (outside tester
/// relay-rt5 R4: a 1.5 GB file took 1 GB of memory before the site came up).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// Reads a push state file: only a regular file of at most `max` bytes. A
/// FIFO or a device would block the relay's start before it listens
/// (outside tester relay-rt5 R2: a FIFO kept the whole public site down);
/// either is an I/O error, so push stops and the site stays up.
pub fn read_regular(p: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let m = fs::metadata(p)?;
    if !m.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if m.len() > max {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {max} a push state file may hold",
            m.len()
        )));
    }
    let mut out = Vec::new();
    fs::File::open(p)?.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::other("grew past the limit while read"));
    }
    Ok(out)
}

/// Creates `tmp` afresh for writing: a file or symlink left at that name is
/// removed first, so nothing is written through a symlink to a file
/// outside the state folder (outside tester relay-rt5 R3).
pub fn create_fresh(tmp: &Path, private: bool) -> std::io::Result<fs::File> {
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    opts.open(tmp)
}

/// Reads the file, if there is one. A file that does not parse is a loud,
/// named error (never silently emptied).
pub fn load(dir: &Path) -> Result<Subs, PushError> {
    let p = path(dir);
    let text = match read_regular(&p, MAX_STATE_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Subs::default()),
        Err(source) => return Err(PushError::Io { path: p, source }),
    };
    let disk: OnDisk = serde_json::from_slice(&text).map_err(|e| PushError::Damaged {
        path: p.clone(),
        why: e.to_string(),
    })?;
    if disk.version != VERSION {
        return Err(PushError::Damaged {
            path: p,
            why: format!("version {} (this relay reads {VERSION})", disk.version),
        });
    }
    Ok(Subs {
        by_endpoint: disk
            .subscriptions
            .into_iter()
            .map(|s| (s.endpoint.clone(), s))
            .collect(),
    })
}

/// Writes all subscriptions (a snapshot) durably.
pub fn save(dir: &Path, subs: Vec<Sub>) -> Result<(), PushError> {
    let p = path(dir);
    let body = serde_json::to_vec(&OnDisk {
        version: VERSION,
        subscriptions: subs,
    })
    .map_err(|e| PushError::Damaged {
        path: p.clone(),
        why: e.to_string(),
    })?;
    write_durably(&p, &body, false)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one: a fresh temporary file beside it, synced, renamed over, the
/// folder synced. A failure (a full disk, relay-rt5 R5) removes the
/// temporary file rather than leaving an empty one behind.
pub fn write_durably(path: &Path, bytes: &[u8], private: bool) -> Result<(), PushError> {
    let tmp = path.with_extension("tmp");
    let written = create_fresh(&tmp, private).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    });
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(PushError::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(path)
}

/// fsyncs the folder holding `file` (so a rename survives power loss).
pub fn sync_dir(file: &Path) -> Result<(), PushError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| PushError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside tester relay-rt5 R5: a write that fails (there a full disk;
    /// here a folder where the file should go, so the rename fails) is a
    /// `Write` error, not "cannot be read", and leaves no temporary file.
    #[test]
    fn a_failed_write_says_write_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join(FILE);
        fs::create_dir(&target).expect("a folder in the file's place");
        fs::write(target.join("inside"), b"x").expect("non-empty folder");
        let err = write_durably(&target, b"{}", false).expect_err("cannot replace a folder");
        assert!(matches!(err, PushError::Write { .. }), "{err:?}");
        assert!(err.to_string().starts_with("cannot write"), "{err}");
        assert!(
            !target.with_extension("tmp").exists(),
            "temporary file left behind"
        );
    }

    /// Outside tester relay-rt5 R2 and R3: a FIFO in place of a state
    /// file is refused at once (it blocked the start), and a symlink left
    /// at the temporary name is not written through.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_and_a_symlink_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join(FILE);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        assert!(load(dir.path()).is_err(), "refused, not blocked");
        fs::remove_file(&fifo).expect("rm");
        let outside = tempfile::tempdir().expect("tmp");
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").expect("victim");
        std::os::unix::fs::symlink(&victim, path(dir.path()).with_extension("tmp"))
            .expect("symlink");
        save(dir.path(), Vec::new()).expect("saved");
        assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
        assert!(fs::symlink_metadata(path(dir.path()))
            .expect("meta")
            .file_type()
            .is_file());
    }

    #[test]
    fn subscriptions_round_trip_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(load(dir.path()).expect("none yet").by_endpoint.is_empty());
        let s = Sub {
            ticket: Token::parse("2026-12-06/1001").expect("token"),
            endpoint: "https://fcm.googleapis.com/fcm/send/x".into(),
            p256dh: "BCVx".into(),
            auth: "BTBZ".into(),
            threshold: Threshold::Ahead(3),
            lang: Lang::Ko,
            progress: Progress {
                near_sent: true,
                ..Progress::default()
            },
        };
        save(dir.path(), vec![s.clone()]).expect("saved");
        let back = load(dir.path()).expect("loaded");
        assert_eq!(back.by_endpoint.get(&s.endpoint), Some(&s));
        fs::write(path(dir.path()), b"{\"version\":1,\"subscriptions\":[{").expect("damage");
        let err = load(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains("subscriptions.json"), "{err}");
    }
}
