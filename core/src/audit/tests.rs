//! The audit index on real folders: built as records are written it equals
//! one built from scratch (memory and sidecar bytes); a damaged sidecar is
//! cut or rebuilt; queries equal a scan of the whole log; a page's check
//! finds a changed record.

use std::path::Path;

use chrono::{FixedOffset, NaiveDate};

use super::*;
use crate::config::Config;
use crate::engine::{ConfigChoice, Engine, EngineOptions};
use crate::log::LogOptions;
use crate::simulate::{SimOptions, Simulator, TimedCommand};

fn tokyo() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("utc"))
}

fn sim(days: u32, seed: u64) -> Vec<TimedCommand> {
    Simulator::new(
        &Config::embedded_default(),
        SimOptions {
            start: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default(),
            days,
            seed,
            volume: 0.2,
        },
    )
    .flatten()
    .collect()
}

/// An engine on `dir` with small segments (so that pages cross them).
fn engine(dir: &Path) -> Engine {
    let opts = EngineOptions {
        log: LogOptions {
            segment_bytes: 8 * 1024,
        },
        ..EngineOptions::default()
    };
    Engine::open(dir, ConfigChoice::Stored, opts)
        .expect("open")
        .0
}

/// Runs `cmds`, each by one of three authors (or none).
fn run(engine: &mut Engine, cmds: &[TimedCommand]) {
    for (i, c) in cmds.iter().enumerate() {
        let by = ["yamada", "sato", ""][i % 3];
        let by = (!by.is_empty()).then(|| by.to_string());
        engine
            .execute_batch(&[(c.at, c.command.clone(), by)])
            .expect("engine");
    }
}

fn open_index(data: &Path, file: &str) -> AuditIndex {
    AuditIndex::open(&data.join("log"), &data.join(file), tokyo()).expect("index")
}

/// What an index holds, to compare two of them.
fn contents(i: &AuditIndex) -> impl PartialEq + std::fmt::Debug {
    let mut by: Vec<_> = i.by.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    by.sort();
    let mut counters: Vec<_> = i.counters.iter().map(|(k, v)| (*k, v.clone())).collect();
    counters.sort();
    let mut tickets: Vec<_> = i.tickets.iter().map(|(k, v)| (*k, v.clone())).collect();
    tickets.sort();
    (
        (i.base, i.next),
        i.offsets.clone(),
        i.segments.clone(),
        i.days.clone(),
        by,
        counters,
        tickets,
    )
}

/// The records answering `q`, by reading the whole log (the old way).
fn scan(data: &Path, q: &Query) -> Vec<u64> {
    crate::log::read_live(&data.join("log"))
        .expect("log")
        .map(|r| r.expect("record").1)
        .filter(|r| {
            let Ok(b) = serde_json::from_slice::<RecordBody>(&r.payload) else {
                return false;
            };
            q.date
                .is_none_or(|d| b.at.to_datetime(tokyo()).date_naive() == d)
                && q.by.as_ref().is_none_or(|s| b.by.as_ref() == Some(s))
                && q.counter
                    .is_none_or(|c| b.events.iter().any(|e| e.counter() == Some(c)))
                && q.ticket
                    .is_none_or(|t| b.events.iter().any(|e| e.ticket() == Some(t)))
        })
        .map(|r| r.seq)
        .collect()
}

fn queries() -> Vec<Query> {
    let d1 = NaiveDate::from_ymd_opt(2026, 11, 24);
    let d2 = NaiveDate::from_ymd_opt(2026, 11, 25);
    vec![
        Query::default(),
        Query {
            date: d1,
            ..Query::default()
        },
        Query {
            date: d2,
            ..Query::default()
        },
        Query {
            by: Some("sato".into()),
            ..Query::default()
        },
        Query {
            counter: Some(10),
            ..Query::default()
        },
        Query {
            ticket: Some(1003),
            ..Query::default()
        },
        Query {
            date: d2,
            by: Some("yamada".into()),
            counter: Some(10),
            ..Query::default()
        },
        Query {
            by: Some("nobody".into()),
            ..Query::default()
        },
    ]
}

#[test]
fn built_as_records_are_written_it_equals_one_built_from_scratch() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    let mut e = engine(data);
    let cmds = sim(3, 5);
    let mut index = open_index(data, "kept.idx");
    for (k, chunk) in cmds.chunks(cmds.len() / 7 + 1).enumerate() {
        run(&mut e, chunk);
        if k % 3 == 2 {
            // A restart: the sidecar is read back and the rest caught up.
            drop(index);
            index = open_index(data, "kept.idx");
            assert_eq!(index.repaired(), None, "a clean sidecar is used as it is");
        } else {
            assert_eq!(index.catch_up().expect("catch up"), chunk.len() as u64);
        }
    }
    index.catch_up().expect("catch up");
    assert_eq!(index.last_seq(), e.seq());
    assert!(index.segments.len() > 3, "records span several segments");
    let scratch = open_index(data, "scratch.idx");
    assert_eq!(contents(&index), contents(&scratch));
    assert_eq!(
        std::fs::read(data.join("kept.idx")).expect("kept"),
        std::fs::read(data.join("scratch.idx")).expect("scratch"),
        "the same sidecar, byte for byte"
    );
    for q in queries() {
        let want = scan(data, &q);
        let hits = index.find(&q);
        assert_eq!(hits.all(), want, "{q:?}");
        assert_eq!(hits.len(), want.len());
        // The last page and the first are the scan's ends.
        let newest: Vec<u64> = want.iter().rev().take(10).copied().collect();
        assert_eq!(hits.newest(0, 10), newest, "{q:?}");
        let skip = want.len().saturating_sub(4);
        let oldest: Vec<u64> = want.iter().take(4).rev().copied().collect();
        assert_eq!(hits.newest(skip, 10), oldest, "{q:?}");
    }
    assert!(
        !index.find(&queries()[6]).is_empty(),
        "the combined query finds some"
    );
}

#[test]
fn a_damaged_or_foreign_sidecar_is_cut_or_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    let mut e = engine(data);
    run(&mut e, &sim(1, 9));
    let want = contents(&open_index(data, "audit.idx"));
    let path = data.join("audit.idx");
    let good = std::fs::read(&path).expect("read");

    // A flipped byte in the middle: the entries before it are kept, the rest
    // read again from the log.
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let i = open_index(data, "audit.idx");
    assert!(
        i.repaired().is_some_and(|r| r.contains("cut")),
        "{:?}",
        i.repaired()
    );
    assert_eq!(contents(&i), want);
    drop(i);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        good,
        "repaired in place"
    );

    // Torn at the end (zeros after a crash), and a lost tail.
    let mut bytes = good.clone();
    bytes.truncate(bytes.len() - 5);
    bytes.extend_from_slice(&[0; 300]);
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(contents(&open_index(data, "audit.idx")), want);
    std::fs::write(&path, &good[..good.len() / 3]).expect("write");
    assert_eq!(contents(&open_index(data, "audit.idx")), want);

    // A damaged header, another time zone: rebuilt.
    let mut bytes = good.clone();
    bytes[3] = b'X';
    std::fs::write(&path, &bytes).expect("write");
    let i = open_index(data, "audit.idx");
    assert!(i.repaired().is_some_and(|r| r.contains("header")));
    assert_eq!(contents(&i), want);
    drop(i);
    let utc = AuditIndex::open(
        &data.join("log"),
        &path,
        FixedOffset::east_opt(0).expect("utc"),
    )
    .expect("open");
    assert!(utc.repaired().is_some());
    drop(utc);

    // Another office's sidecar: its last entry is not this log's record.
    let other = tempfile::tempdir().expect("tmp");
    let mut o = engine(other.path());
    run(&mut o, &sim(1, 10));
    let _ = open_index(other.path(), "audit.idx");
    drop(o);
    std::fs::copy(other.path().join("audit.idx"), &path).expect("copy");
    let i = open_index(data, "audit.idx");
    assert!(i.repaired().is_some(), "a foreign sidecar is not used");
    assert_eq!(contents(&i), want);
}

/// Rewrites one byte of record `seq`'s payload and its CRC, so that only
/// the hash chain can tell.
fn tamper(data: &Path, index: &AuditIndex, seq: u64) {
    let pos = index.pos_of(seq).expect("indexed");
    let file = crate::log::segment_path(&data.join("log"), pos.segment);
    let mut bytes = std::fs::read(&file).expect("segment");
    let at = pos.offset as usize;
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("len")) as usize;
    let payload = at + crate::log::HEADER_LEN;
    let digit = (payload..payload + len)
        .find(|&i| bytes[i].is_ascii_digit())
        .expect("a digit");
    bytes[digit] = if bytes[digit] == b'9' {
        b'8'
    } else {
        bytes[digit] + 1
    };
    let mut c = crc32fast::Hasher::new();
    c.update(&bytes[at + 8..at + 16]);
    c.update(&bytes[at + 16..at + 48]);
    c.update(&bytes[payload..payload + len]);
    bytes[at + 4..at + 8].copy_from_slice(&c.finalize().to_le_bytes());
    std::fs::write(&file, bytes).expect("write");
}

#[test]
fn a_page_reads_its_records_and_its_check_finds_a_changed_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    let mut e = engine(data);
    run(&mut e, &sim(2, 3));
    let index = open_index(data, "audit.idx");
    let all = index.find(&Query::default());
    let page = all.newest(20, 20);
    let (records, check) = index.read_checked(&page).expect("read");
    assert!(check.ok(), "{check:?}");
    assert_eq!(
        check.links, 21,
        "20 records linked to their predecessors, the successor to the newest"
    );
    let mut seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    seqs.reverse();
    assert_eq!(seqs, page);
    // The first page: the very first record links to the log's origin.
    let first = all.newest(all.len() - 5, 5);
    let (_, check) = index.read_checked(&first).expect("read");
    assert!(check.ok() && check.links == 6, "{check:?}");
    // Scattered records (a filter): each is read with its neighbours.
    let sato = index.find(&Query {
        by: Some("sato".into()),
        ..Query::default()
    });
    let (records, check) = index.read_checked(&sato.newest(0, 30)).expect("read");
    assert!(check.ok() && records.len() == 30, "{check:?}");

    // A changed record breaks its successor's link: the page that shows
    // it says so, and still shows its rows; another page does not.
    let victim = page[7];
    tamper(data, &index, victim);
    let (records, check) = index.read_checked(&page).expect("read");
    assert_eq!(records.len(), 20);
    let (bad, why) = check.broken.clone().expect("found");
    assert_eq!(bad, victim + 1, "{why}");
    assert!(why.contains("chain"), "{why}");
    let (_, other) = index.read_checked(&all.newest(0, 20)).expect("read");
    assert!(other.ok());
    // The record's successor alone on a page still fails: its link to the
    // changed one is checked.
    let (_, check) = index.read_checked(&[victim + 1]).expect("read");
    assert!(!check.ok());
}

/// Sign-ins are found under the account they were for, failed ones too
/// (their operator is "name from address"): `?staff=admin` shows the
/// attempts against admin (insider red team).
#[test]
fn sign_ins_are_found_under_their_account() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    let mut e = engine(data);
    let failed = e
        .record_audit(
            Some("admin from 192.0.2.9".into()),
            Event::Login {
                account: "admin".into(),
                ok: false,
            },
        )
        .expect("audit");
    let ok = e
        .record_audit(
            Some("admin".into()),
            Event::Login {
                account: "admin".into(),
                ok: true,
            },
        )
        .expect("audit");
    let other = e
        .record_audit(
            Some("admin".into()),
            Event::AccountChanged {
                account: "sato".into(),
                role: "staff".into(),
            },
        )
        .expect("audit");
    drop(e);
    let index = open_index(data, "audit.idx");
    let by = |who: &str| {
        index
            .find(&Query {
                by: Some(who.into()),
                ..Query::default()
            })
            .all()
    };
    assert_eq!(by("admin"), vec![failed, ok, other]);
    assert!(by("admin from 192.0.2.9").is_empty());
    assert!(
        by("sato").is_empty(),
        "the changed account is not the operator"
    );
}
