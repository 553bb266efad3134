use std::fs::OpenOptions;
use std::io::Write;

use super::*;

fn small() -> LogOptions {
    // Tiny segments make rotation, the rare path, happen all the time.
    LogOptions { segment_bytes: 256 }
}

fn payload(i: u64) -> Vec<u8> {
    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat((i % 7) as usize)).into_bytes()
}

fn fill(dir: &Path, n: u64) -> EventLog {
    let (mut log, _) = EventLog::open(dir, small()).expect("open");
    for i in 1..=n {
        log.append(&[payload(i)]).expect("append");
    }
    log
}

fn all(log: &EventLog) -> Vec<Record> {
    log.records(None).map(|r| r.expect("record").1).collect()
}

#[test]
fn appends_survive_reopen_across_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 40);
    assert!(log.segments.len() > 3, "rotated: {:?}", log.segments);
    let tail = log.tail();
    drop(log);
    let (log, report) = EventLog::open(dir.path(), small()).expect("reopen");
    assert_eq!(report, OpenReport::default());
    assert_eq!(log.tail(), tail);
    let records = all(&log);
    assert_eq!(records.len(), 40);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.payload, payload(i as u64 + 1));
    }
    assert_eq!(log.verify().expect("verify"), (40, tail.last_hash));
}

#[test]
fn batch_append_is_one_group() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut log, _) = EventLog::open(dir.path(), LogOptions::default()).expect("open");
    let batch: Vec<Vec<u8>> = (1..=100).map(payload).collect();
    let pos = log.append(&batch).expect("append");
    assert_eq!(log.last_seq(), 100);
    let first = log.read_at(pos, 1).expect("read");
    assert_eq!(first.payload, payload(1));
    let from_middle: Vec<u64> = log
        .records(None)
        .skip(50)
        .map(|r| r.expect("ok").1.seq)
        .collect();
    assert_eq!(from_middle.first(), Some(&51));
}

#[test]
fn torn_tail_is_cut_off_and_appending_continues() {
    for cut in [1usize, 10, HEADER_LEN, HEADER_LEN + 3] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = fill(dir.path(), 10);
        let good = log.tail();
        // A record written only in part, as a crash leaves it.
        let mut buf = Vec::new();
        frame::encode(&mut buf, 11, &good.last_hash, &payload(11));
        let path = segment_path(dir.path(), good.pos.segment);
        let mut f = OpenOptions::new().append(true).open(&path).expect("seg");
        f.write_all(&buf[..cut.min(buf.len() - 1)]).expect("write");
        drop(f);
        drop(log);
        let (reopened, report) = EventLog::open(dir.path(), small()).expect("reopen");
        log = reopened;
        assert_eq!(
            report.truncated_bytes,
            cut.min(buf.len() - 1) as u64,
            "cut {cut}"
        );
        assert_eq!(log.tail(), good);
        log.append(&[payload(99)]).expect("append after repair");
        assert_eq!(log.verify().expect("verify").0, 11);
    }
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 3);
    let path = segment_path(dir.path(), log.tail().pos.segment);
    drop(log);
    let mut f = OpenOptions::new().append(true).open(&path).expect("seg");
    f.write_all(&[0u8; 100]).expect("zeros");
    drop(f);
    let (log, report) = EventLog::open(dir.path(), small()).expect("reopen");
    assert_eq!(report.truncated_bytes, 100);
    assert_eq!(log.last_seq(), 3);
}

#[test]
fn a_bad_record_before_a_good_one_is_corruption_with_its_number() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut log, _) = EventLog::open(dir.path(), LogOptions::default()).expect("open");
    for i in 1..=5 {
        log.append(&[payload(i)]).expect("append");
    }
    let path = segment_path(dir.path(), 1);
    drop(log);
    let mut bytes = std::fs::read(&path).expect("read");
    // Flip a payload byte of record 3.
    let mut offset = MAGIC.len();
    for i in 1..=2 {
        offset += HEADER_LEN + payload(i).len();
    }
    bytes[offset + HEADER_LEN + 2] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");
    let err = EventLog::open(dir.path(), LogOptions::default()).expect_err("corrupt");
    match err {
        LogError::Corrupt { seq, .. } => assert_eq!(seq, 3),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn corruption_in_an_earlier_segment_is_found_by_reading() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 30);
    let first_segment = segment_path(dir.path(), 1);
    drop(log);
    let mut bytes = std::fs::read(&first_segment).expect("read");
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&first_segment, &bytes).expect("write");
    // Opening only looks at the last segment...
    let (log, _) = EventLog::open(dir.path(), small()).expect("open");
    // ...but a full read or verify names the record.
    let err = log.verify().expect_err("broken");
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("record"), "{err}");
}

/// A record rewritten with a valid CRC (tampering) breaks the hash chain.
#[test]
fn tampering_breaks_the_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 6);
    let records = all(&log);
    let path = segment_path(dir.path(), 1);
    drop(log);
    let mut bytes = std::fs::read(&path).expect("read");
    let target = &records[1];
    let mut forged = Vec::new();
    let mut payload = target.payload.clone();
    payload[5] = b'9';
    frame::encode(&mut forged, target.seq, &target.prev, &payload);
    let start = MAGIC.len() + records[0].framed_len() as usize;
    bytes.splice(start..start + forged.len(), forged.iter().copied());
    std::fs::write(&path, &bytes).expect("write");
    let (log, _) = EventLog::open(dir.path(), small()).expect("open (tail intact)");
    match log.verify().expect_err("chain") {
        LogError::Corrupt { seq, reason, .. } => {
            assert_eq!(seq, 3, "the record after the forged one");
            assert!(reason.contains("chain"), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn rollback_undoes_appends_across_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = fill(dir.path(), 5);
    let mark = log.tail();
    let segments = log.segments.clone();
    for i in 6..=40 {
        log.append(&[payload(i)]).expect("append");
    }
    log.rollback_to(mark).expect("rollback");
    assert_eq!(log.segments, segments);
    drop(log);
    let (log, report) = EventLog::open(dir.path(), small()).expect("reopen");
    assert_eq!(report, OpenReport::default());
    assert_eq!(log.tail(), mark);
    assert_eq!(log.verify().expect("verify").0, 5);
}

#[test]
fn reading_from_a_position_checks_the_link() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 20);
    let (pos, r10) = log.records(None).nth(9).expect("10th").expect("ok");
    let from = Some((pos, 10, r10.prev));
    assert_eq!(log.records(from).count(), 11);
    let wrong = Some((pos, 10, [7u8; 32]));
    assert!(log.records(wrong).any(|r| r.is_err()));
}

/// A reader beside a live writer stops before a record still being written.
#[test]
fn a_live_read_stops_before_a_half_written_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 12);
    let tail = log.tail();
    let mut buf = Vec::new();
    frame::encode(&mut buf, 13, &tail.last_hash, &payload(13));
    let path = segment_path(dir.path(), tail.pos.segment);
    let mut f = OpenOptions::new().append(true).open(&path).expect("seg");
    f.write_all(&buf[..buf.len() / 2]).expect("half");
    drop(f);
    let seqs: Vec<u64> = read_live(dir.path())
        .expect("read")
        .map(|r| r.expect("ok").1.seq)
        .collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
}
