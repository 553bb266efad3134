//! A whole log folder of one segment with these bytes: the tail scan and
//! shape check on open, then a full checked read and verify. Never a
//! panic, a hang or an unbounded allocation; errors are fine.
#![no_main]

mod alloc_cap;
use libfuzzer_sys::fuzz_target;
use madoguchi_core::log::{segment_path, EventLog, LogOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()) else {
        return;
    };
    // The first two bytes split the input into two segments (a closed one
    // and the last) when they can.
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) * 16)
        .min(data.len());
    let (a, b) = data.split_at(split);
    if b.is_empty() {
        let _ = std::fs::write(segment_path(dir.path(), 1), a);
    } else {
        let _ = std::fs::write(segment_path(dir.path(), 1), a);
        let second = 1 + u64::from(data.get(1).copied().unwrap_or(1) % 8);
        let _ = std::fs::write(segment_path(dir.path(), second), b);
    }
    let opts = LogOptions {
        segment_bytes: 4096,
    };
    if let Ok((mut log, _)) = EventLog::open_unrepaired(dir.path(), opts.clone()) {
        for r in log.records(None).take(10_000) {
            if r.is_err() {
                break;
            }
        }
        let _ = log.verify();
        // Repair, append, reopen: the log stays readable.
        if log.repair().is_ok() && log.append(&[b"{}".to_vec()]).is_ok() {
            drop(log);
            let (log, _) = EventLog::open(dir.path(), opts).expect("reopen after append");
            let _ = log.verify();
        }
    }
    let _ = madoguchi_core::log::read_live(dir.path()).map(|r| r.take(10_000).count());
});
