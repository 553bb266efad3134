//! Fault records (R18): what the server sees go wrong — a command that
//! could not be recorded (a full disk), a display file not written, a
//! ticket printer failing, reports not written, a display that lost its
//! connection and did not come back. Kept in memory for the admin page and
//! appended to `<data>/faults.jsonl` (best effort: a full disk may be the
//! fault itself).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

/// How many recent faults the admin page keeps.
const KEEP: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub time: String,
    pub kind: &'static str,
    pub message: String,
}

#[derive(Debug)]
pub struct Faults {
    file: PathBuf,
    recent: Mutex<VecDeque<Fault>>,
    /// Open display connections per device.
    displays: Mutex<HashMap<String, usize>>,
}

impl Faults {
    pub fn new(data: &std::path::Path) -> Faults {
        Faults {
            file: data.join("faults.jsonl"),
            recent: Mutex::new(VecDeque::new()),
            displays: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(&self, kind: &'static str, message: impl Into<String>) {
        let fault = Fault {
            time: chrono::Utc::now()
                .with_timezone(
                    &chrono::FixedOffset::east_opt(9 * 3600)
                        .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc)),
                )
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            kind,
            message: message.into(),
        };
        tracing::warn!(kind, message = %fault.message, "fault");
        if let Ok(line) = serde_json::to_string(&fault) {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file)
                .and_then(|mut f| writeln!(f, "{line}"));
            if written.is_err() {
                tracing::warn!("the fault could not be written to the fault file");
            }
        }
        if let Ok(mut r) = self.recent.lock() {
            r.push_front(fault);
            r.truncate(KEEP);
        }
    }

    pub fn recent(&self) -> Vec<Fault> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn display_connected(&self, device: &str) {
        if let Ok(mut d) = self.displays.lock() {
            *d.entry(device.to_string()).or_default() += 1;
        }
    }

    /// Returns whether the device has no connection left.
    pub fn display_disconnected(&self, device: &str) -> bool {
        self.displays
            .lock()
            .map(|mut d| {
                let n = d.entry(device.to_string()).or_default();
                *n = n.saturating_sub(1);
                *n == 0
            })
            .unwrap_or(false)
    }

    pub fn display_online(&self, device: &str) -> bool {
        self.displays
            .lock()
            .map(|d| d.get(device).is_some_and(|n| *n > 0))
            .unwrap_or(true)
    }
}
