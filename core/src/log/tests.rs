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
    let good = std::fs::read(&first_segment).expect("read");
    // A flip in the middle of a closed segment: opening only checks each
    // segment's ends...
    let mut bytes = good.clone();
    bytes[MAGIC.len() + HEADER_LEN + 2] ^= 1;
    std::fs::write(&first_segment, &bytes).expect("write");
    let (log, _) = EventLog::open(dir.path(), small()).expect("open");
    // ...but a full read or verify names the record.
    let err = log.verify().expect_err("broken");
    assert!(matches!(err, LogError::Corrupt { seq: 1, .. }), "{err}");
    assert!(err.to_string().contains("record"), "{err}");
    drop(log);
    // A flip in its last record is seen on open (the seal).
    let mut bytes = good.clone();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&first_segment, &bytes).expect("write");
    let err = EventLog::open(dir.path(), small()).expect_err("sealed end changed");
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
}

/// Each closed segment is sealed: a missing newest, middle or first
/// segment, a closed segment cut short or grown, and a broken link between
/// segments are refused on open, each naming the record.
#[test]
fn seals_reveal_missing_and_changed_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 40);
    let segments = log.segments.clone();
    assert!(segments.len() >= 4, "{segments:?}");
    assert_eq!(log.seals().len(), segments.len() - 1);
    drop(log);
    let saved: Vec<(PathBuf, Vec<u8>)> = segments
        .iter()
        .map(|&s| {
            let p = segment_path(dir.path(), s);
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    let restore = || {
        for (p, b) in &saved {
            std::fs::write(p, b).expect("restore");
        }
    };
    let refused = |what: &str| {
        let err = EventLog::open(dir.path(), small()).expect_err(what);
        assert!(matches!(err, LogError::Corrupt { .. }), "{what}: {err}");
        err.to_string()
    };
    let last = saved.len() - 1;
    // The newest segment deleted.
    std::fs::remove_file(&saved[last].0).expect("rm");
    let msg = refused("newest segment deleted");
    assert!(msg.contains("missing"), "{msg}");
    restore();
    // A middle one.
    std::fs::remove_file(&saved[1].0).expect("rm");
    assert!(refused("middle segment deleted").contains("missing"));
    restore();
    // The first one.
    std::fs::remove_file(&saved[0].0).expect("rm");
    refused("first segment deleted");
    restore();
    // A closed segment cut short, or grown.
    std::fs::write(&saved[1].0, &saved[1].1[..saved[1].1.len() - 3]).expect("cut");
    refused("closed segment cut");
    restore();
    let mut grown = saved[1].1.clone();
    grown.extend_from_slice(b"xx");
    std::fs::write(&saved[1].0, &grown).expect("grow");
    refused("closed segment grown");
    restore();
    // The first record of the next segment changed (its link).
    let mut b = saved[2].1.clone();
    b[MAGIC.len() + 20] ^= 0x40;
    std::fs::write(&saved[2].0, &b).expect("flip");
    refused("link broken");
    restore();
    // Intact again: opens.
    let (log, report) = EventLog::open(dir.path(), small()).expect("intact");
    assert_eq!(report, OpenReport::default());
    assert_eq!(log.last_seq(), 40);
}

/// A folder written before seals existed is sealed on its first open.
#[test]
fn a_folder_without_seals_is_sealed_on_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 30);
    let n = log.segments.len();
    drop(log);
    std::fs::remove_file(dir.path().join(seals::SEALS_FILE)).expect("rm seals");
    let (log, _) = EventLog::open(dir.path(), small()).expect("open");
    assert_eq!(log.seals().len(), n - 1);
    drop(log);
    assert_eq!(seals::read(dir.path()).expect("seals").len(), n - 1);
}

/// Opening without repairing changes no file; the torn tail is cut by
/// `repair` or by the next append.
#[test]
fn open_unrepaired_leaves_a_torn_tail_for_the_caller() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = fill(dir.path(), 12);
    let tail = log.tail();
    drop(log);
    let path = segment_path(dir.path(), tail.pos.segment);
    let mut f = OpenOptions::new().append(true).open(&path).expect("seg");
    f.write_all(&[1, 2, 3, 4, 5, 6, 7]).expect("torn");
    drop(f);
    let before = std::fs::read(&path).expect("read");
    let (mut log, report) = EventLog::open_unrepaired(dir.path(), small()).expect("open");
    assert_eq!(report.truncated_bytes, 7);
    assert_eq!(log.tail(), tail);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "nothing cut yet"
    );
    log.append(&[payload(13)]).expect("append");
    drop(log);
    let (log, report) = EventLog::open(dir.path(), small()).expect("reopen");
    assert_eq!(report, OpenReport::default());
    assert_eq!(log.verify().expect("verify").0, 13);
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
