//! Fault records (R18): what the server sees go wrong — a command that
//! could not be recorded (a full disk), a display file not written, a
//! ticket printer failing, reports not written, a display that lost its
//! connection and did not come back, damaged storage found or accepted at
//! start-up, free space running low. Kept in memory for the admin page and
//! appended to `<data>/faults.jsonl`, which also carries them across
//! restarts (the admin page starts with the last ones). A fault that cannot
//! be written (the full disk may be the fault itself) is kept and written
//! once there is space again.
//!
//! Once after start, the whole event log is read in the background (every
//! CRC and link): start-up checks only each closed segment's ends, so a
//! flipped byte in the middle of an old segment becomes a `log-damaged`
//! fault within the first minute instead of waiting for an audit.
//!
//! Free space in the data folder is checked every 5 seconds; below
//! `MADOGUCHI_FREE_SPACE_WARN_MB` (default 1024 MB) a `disk-space` fault
//! warns before the disk is full.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many recent faults the admin page keeps.
const KEEP: usize = 200;
/// Default free-space warning threshold.
const DEFAULT_WARN_MB: u64 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub time: String,
    pub kind: String,
    pub message: String,
}

/// A fault as the admin page lists it: its kind named in Japanese
/// (browser red team F15), the raw kind beside it for the log file.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    pub time: String,
    pub kind: String,
    pub kind_ja: &'static str,
    pub message: String,
}

/// A fault kind's name on the admin page.
pub fn kind_ja(kind: &str) -> &'static str {
    match kind {
        "display" => "表示機",
        "printer" => "発券機のプリンター",
        "relay" => "中継サーバー",
        "standby" => "予備機",
        "standby-audit" => "予備機の記録",
        "failover" => "主機の切り替え",
        "disk" | "record" => "記録の書き込み",
        "disk-space" => "ディスクの空き",
        "damage" | "log-damaged" => "記録の損傷",
        "reports" => "報告ファイル",
        "issuing-held" => "発券機の発券停止",
        "hold_not_written" => "受付停止を書けない（ディスク）",
        _ => "その他",
    }
}

#[derive(Debug)]
struct Inner {
    file: PathBuf,
    recent: Mutex<VecDeque<Fault>>,
    /// Lines not yet written to the fault file.
    unwritten: Mutex<Vec<String>>,
    /// Open display connections per device.
    displays: Mutex<HashMap<String, usize>>,
}

#[derive(Debug)]
pub struct Faults {
    inner: Arc<Inner>,
}

impl Faults {
    pub fn new(data: &Path) -> Faults {
        let file = data.join("faults.jsonl");
        let recent = load_recent(&file);
        let inner = Arc::new(Inner {
            file,
            recent: Mutex::new(recent),
            unwritten: Mutex::new(Vec::new()),
            displays: Mutex::new(HashMap::new()),
        });
        let warn_mb = std::env::var("MADOGUCHI_FREE_SPACE_WARN_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_WARN_MB);
        spawn_watch(Arc::downgrade(&inner), data.to_path_buf(), warn_mb);
        Faults { inner }
    }

    pub fn record(&self, kind: &'static str, message: impl Into<String>) {
        self.inner.record(kind, message.into());
    }

    pub fn recent(&self) -> Vec<Fault> {
        self.inner
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The recent faults as the admin page lists them.
    pub fn rows(&self) -> Vec<FaultRow> {
        self.recent()
            .into_iter()
            .map(|f| FaultRow {
                kind_ja: kind_ja(&f.kind),
                time: f.time,
                kind: f.kind,
                message: f.message,
            })
            .collect()
    }

    pub fn display_connected(&self, device: &str) {
        if let Ok(mut d) = self.inner.displays.lock() {
            *d.entry(device.to_string()).or_default() += 1;
        }
    }

    /// Returns whether the device has no connection left.
    pub fn display_disconnected(&self, device: &str) -> bool {
        self.inner
            .displays
            .lock()
            .map(|mut d| {
                let n = d.entry(device.to_string()).or_default();
                *n = n.saturating_sub(1);
                *n == 0
            })
            .unwrap_or(false)
    }

    pub fn display_online(&self, device: &str) -> bool {
        self.inner
            .displays
            .lock()
            .map(|d| d.get(device).is_some_and(|n| *n > 0))
            .unwrap_or(true)
    }
}

impl Inner {
    fn record(&self, kind: &str, message: String) {
        let fault = Fault {
            time: chrono::Utc::now()
                .with_timezone(
                    &chrono::FixedOffset::east_opt(9 * 3600)
                        .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc)),
                )
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            kind: kind.to_string(),
            message,
        };
        tracing::warn!(kind, message = %fault.message, "fault");
        if let Ok(line) = serde_json::to_string(&fault) {
            if let Ok(mut u) = self.unwritten.lock() {
                u.push(line);
                // Bounded: a disk full for a whole day keeps the newest.
                let excess = u.len().saturating_sub(10 * KEEP);
                u.drain(..excess);
            }
            self.write_pending();
        }
        if let Ok(mut r) = self.recent.lock() {
            r.push_front(fault);
            r.truncate(KEEP);
        }
    }

    /// Writes the faults not yet in the file, in order; on failure they
    /// stay for the next try.
    fn write_pending(&self) {
        let Ok(mut u) = self.unwritten.lock() else {
            return;
        };
        if u.is_empty() {
            return;
        }
        let text: String = u.iter().map(|l| format!("{l}\n")).collect();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_data()));
        match written {
            Ok(()) => u.clear(),
            Err(e) => {
                // A partial line may be left: the reader skips what does not
                // parse, and the whole lines are written again.
                tracing::warn!(error = %e, pending = u.len(), "faults not written yet; retrying later");
            }
        }
    }
}

/// A clean stop (SIGTERM, SIGINT) drops the last holder: the faults kept
/// while the disk was full are written then, not lost with the process
/// (outside tester storage-rt8 F6: six `disk` faults gone when the server
/// was stopped within 5 s of space returning).
impl Drop for Inner {
    fn drop(&mut self) {
        self.write_pending();
    }
}

/// The last faults of the file, newest first (lines that do not parse,
/// such as one cut by a full disk, are skipped).
fn load_recent(file: &Path) -> VecDeque<Fault> {
    let mut out = VecDeque::new();
    let Ok(f) = std::fs::File::open(file) else {
        return out;
    };
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        if let Ok(fault) = serde_json::from_str::<Fault>(&line) {
            out.push_front(fault);
            out.truncate(KEEP);
        }
    }
    out
}

/// Every 5 s while the server runs: writes the faults kept while the disk
/// was full, and warns once each time free space falls below the threshold.
fn spawn_watch(inner: Weak<Inner>, data: PathBuf, warn_mb: u64) {
    let _ = std::thread::Builder::new()
        .name("madoguchi-faults".into())
        .spawn(move || {
            if let Some(why) = check_log(&data) {
                if let Some(inner) = inner.upgrade() {
                    inner.record("log-damaged", why);
                }
            }
            let mut low = false;
            loop {
                std::thread::sleep(Duration::from_secs(5));
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                inner.write_pending();
                if let Some(free) = free_bytes(&data) {
                    let now_low = free < warn_mb.saturating_mul(1024 * 1024);
                    if now_low && !low {
                        inner.record(
                            "disk-space",
                            format!(
                                "disk space low: {} MB free in the data folder (warning below {warn_mb} MB) / ディスクの空きが少なくなっています",
                                free / (1024 * 1024)
                            ),
                        );
                    }
                    low = now_low;
                }
            }
        });
}

/// Reads the whole live log (read-only, beside the writer); says where it
/// is damaged, if it is.
pub fn check_log(data: &Path) -> Option<String> {
    let reader = match madoguchi_core::log::read_live(&data.join("log")) {
        Ok(r) => r,
        Err(e) => return Some(damaged_message(&e)),
    };
    for r in reader {
        if let Err(e) = r {
            return Some(damaged_message(&e));
        }
    }
    None
}

fn damaged_message(e: &madoguchi_core::log::LogError) -> String {
    format!(
        "the event log is damaged: {e}. The office runs on from its snapshot, but a rebuild would stop there: stop the server at a quiet moment and run madoguchi recover with the latest backups (docs/manual-ja.md 8) / 記録ファイルの一部が壊れています。業務は続けられますが、早めに復旧手順を行ってください"
    )
}

/// Free bytes for an unprivileged writer on the filesystem of `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    fs2::available_space(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use madoguchi_core::log::{segment_path, EventLog, LogOptions};

    #[test]
    fn a_flip_in_the_middle_of_an_old_segment_is_found() {
        let dir = tempfile::tempdir().expect("tmp");
        let log_dir = dir.path().join("log");
        let (mut log, _) =
            EventLog::open(&log_dir, LogOptions { segment_bytes: 512 }).expect("open");
        for i in 0..40 {
            log.append(&[format!("{{\"n\":{i}}}").into_bytes()])
                .expect("append");
        }
        assert!(log.segments().len() > 2);
        drop(log);
        assert_eq!(check_log(dir.path()), None);
        let first = segment_path(&log_dir, 1);
        let mut bytes = std::fs::read(&first).expect("read");
        bytes[8 + 48 + 3] ^= 1;
        std::fs::write(&first, &bytes).expect("flip");
        let msg = check_log(dir.path()).expect("found");
        assert!(
            msg.contains("record 1") && msg.contains("madoguchi recover"),
            "{msg}"
        );
    }
}
