//! The steps of opening a data folder before anything is served (R10, R19,
//! issue 17): the folder's lock, the event log (a corrupt record is named
//! damage), the snapshot store (sled is a cache: an unreadable one is set
//! aside and rebuilt; a transient error refuses), and the comparison of the
//! log with every piece of evidence the office holds — the snapshot's last
//! acknowledged record and the witnesses outside the log (the last backup,
//! the standby's confirmed position). [`super::Engine::open`] runs them in
//! order.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{highwater, io_err, set_aside, witness, Damage, EngineError, Evidence, OpenReport};
use crate::log::{EventLog, LogError, LogOptions};
use crate::state::State;
use crate::store::{hex, SnapshotMeta, Store};

/// Takes the folder's lock: one process per data folder.
pub(super) fn lock(dir: &Path) -> Result<File, EngineError> {
    let lock_path = dir.join("LOCK");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(EngineError::InUse(dir.to_path_buf()));
    }
    Ok(lock)
}

/// Opens the event log without repairing it (a torn tail is cut only once
/// the evidence has been compared). A corrupt record refuses the start as
/// damage, with what the snapshot store still shows.
pub(super) fn open_log(
    log_dir: &Path,
    store_path: &Path,
    opts: LogOptions,
) -> Result<(EventLog, crate::log::OpenReport), EngineError> {
    match EventLog::open_unrepaired(log_dir, opts) {
        Ok(x) => Ok(x),
        Err(LogError::Corrupt {
            seq, path, reason, ..
        }) => {
            let evidence = store_path
                .exists()
                .then(|| Store::open(store_path).ok())
                .flatten()
                .and_then(|s| Evidence::read(&s));
            Err(EngineError::Damaged(Box::new(Damage {
                file: path,
                record: seq,
                problem: reason,
                log_ends_at: None,
                evidence,
            })))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens the snapshot store. One that cannot be read is set aside (kept for
/// inspection) and started afresh, to be rebuilt from the log; a transient
/// error (ENOSPC, EIO) refuses and touches nothing.
pub(super) fn open_store(store_path: &Path, report: &mut OpenReport) -> Result<Store, EngineError> {
    match Store::open(store_path) {
        Ok(s) => Ok(s),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => {
            // sled reports a full disk while opening as a corrupt snapshot
            // file (the one it could not write): with no room for even a
            // small file beside it, it is the disk, and nothing is moved
            // (outside tester storage-rt10 F-D: `audit verify` on a full
            // disk set the intact store aside and left an empty one).
            no_room_beside(store_path)?;
            tracing::warn!(error = %e, "snapshot store unreadable; setting it aside and rebuilding it from the event log");
            report.rebuilt = Some(format!("snapshot store unreadable: {e}"));
            report.set_aside = Some(set_aside(store_path)?);
            Ok(Store::open(store_path)?)
        }
    }
}

/// How much room a rebuilt snapshot store needs at the least.
const ROOM_FOR_STORE: usize = 1 << 20;

/// Refuses with the disk's error (ENOSPC, EIO) when a file of
/// [`ROOM_FOR_STORE`] bytes cannot be written and synced beside `path`;
/// the probe is removed either way.
fn no_room_beside(path: &Path) -> Result<(), EngineError> {
    use std::io::Write;
    let probe = path.with_extension("space-check");
    let written = File::create(&probe).and_then(|mut f| {
        f.write_all(&vec![0u8; ROOM_FOR_STORE])
            .and_then(|()| f.sync_all())
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A snapshot as loaded: the state to start from, or why it cannot be used.
pub(super) type Snapshot = Result<Option<(SnapshotMeta, State)>, String>;

/// What the comparison of the log with the evidence found.
pub(super) struct Checked {
    /// The snapshot, loaded before anything was cut or rebuilt.
    snapshot: Result<Option<(SnapshotMeta, State)>, crate::store::StoreError>,
    /// Records lost or changed, if the evidence proves any.
    damage: Option<Damage>,
    /// The damage came (also) from a witness outside the log.
    pub from_witness: bool,
    /// What the snapshot showed, lent to damage found later while loading.
    pub evidence: Option<Evidence>,
    /// The record the snapshot stands at, its hash and whether a stop
    /// wrote it, as found (for [`end_vouched`]).
    pub snapshot_at: Option<(u64, String, bool)>,
}

impl Checked {
    /// Compares the log with the snapshot's evidence and the witnesses,
    /// before anything is cut or rebuilt: the snapshot is written only
    /// after its records were synced, so one ahead of the log proves lost
    /// records.
    pub(super) fn examine(
        dir: &Path,
        log: &EventLog,
        log_report: &crate::log::OpenReport,
        store: &Store,
        mark: Option<&highwater::Mark>,
        report: &mut OpenReport,
    ) -> Result<Checked, EngineError> {
        let snapshot = match store.load() {
            Err(e) if e.is_transient() => return Err(e.into()),
            other => other,
        };
        let evidence = match &snapshot {
            Ok(Some((meta, state))) => Some(Evidence::from_snapshot(meta, Some(state))),
            Ok(None) => None,
            Err(_) => store
                .meta()
                .ok()
                .flatten()
                .map(|m| Evidence::from_snapshot(&m, None)),
        };
        report.evidence_seq = evidence.as_ref().map(|e| e.seq);
        let snapshot_at = store
            .meta()
            .ok()
            .flatten()
            .map(|m| (m.seq, m.hash, m.stopped));
        let behind_snapshot = evidence
            .clone()
            .filter(|e| e.seq > log.last_seq())
            .map(|ev| Damage {
                file: report_file(log, log_report),
                record: log.last_seq() + 1,
                problem: format!(
                    "スナップショットは記録 {} まで受付済みですが、ログは記録 {} で終わっています / the snapshot shows record {} acknowledged, but the log ends at record {}{}",
                    ev.seq,
                    log.last_seq(),
                    ev.seq,
                    log.last_seq(),
                    if log_report.truncated_bytes > 0 {
                        format!(" (then {} torn bytes)", log_report.truncated_bytes)
                    } else {
                        String::new()
                    }
                ),
                log_ends_at: Some(log.last_seq()),
                evidence: Some(ev),
            });
        let (mut witnesses, mut unreadable) = witness::read_all(dir);
        // The folder's own mark, and a damaged folder's carried into a
        // repair by `recover` (in the witness folder).
        let carried_dir = dir.join(witness::DIR);
        let carried = match highwater::read(&carried_dir) {
            Ok(m) => m,
            Err(e) => {
                unreadable.push(e.to_string());
                None
            }
        };
        let marks: Vec<(PathBuf, &highwater::Mark)> = mark
            .map(|m| (dir.join(highwater::FILE), m))
            .into_iter()
            .chain(
                carried
                    .as_ref()
                    .map(|m| (carried_dir.join(highwater::FILE), m)),
            )
            .collect();
        for (place, m) in &marks {
            witnesses.push(witness::Witness {
                source: witness::Source::HighWater,
                seq: m.seq,
                hash: m.hash.clone(),
                at: String::new(),
                place: place.display().to_string(),
                day: m.day,
                highest: m.highest.clone(),
            });
        }
        for note in unreadable {
            tracing::warn!(%note, "a witness file could not be read; it proves nothing");
            report
                .witness_notes
                .push(format!("unreadable witness: {note}"));
        }
        let mut seen = witnessed(log, log_report, &witnesses, evidence.as_ref());
        if let Some(ev) = seen.as_mut().and_then(|d| d.evidence.as_mut()) {
            // The marks' latest request ids: a retry of a lost one is told
            // to ask staff, never given a new ticket.
            for (_, m) in marks
                .iter()
                .filter(|(_, m)| m.day.is_some() && m.day == ev.day)
            {
                for (request, number, category) in &m.recent {
                    ev.requests.entry(request.clone()).or_insert(*number);
                    ev.categories
                        .entry(*number)
                        .or_insert_with(|| category.clone());
                }
            }
        }
        let from_witness = seen.is_some();
        // Both: the witnesses' damage already carries the snapshot's
        // evidence (`witnessed` starts from it); only its line is added.
        let damage = match (behind_snapshot, seen) {
            (Some(a), Some(mut b)) => {
                if let Some(eb) = b.evidence.as_mut() {
                    let snap = a.evidence.as_ref().map_or(0, |e| e.seq);
                    eb.seen_by.insert(
                        0,
                        format!(
                            "スナップショット (state.sled) は記録 {snap} まで受付済み / the snapshot shows record {snap} acknowledged"
                        ),
                    );
                }
                b.record = a.record.min(b.record);
                b.problem = format!("{}; {}", a.problem, b.problem);
                Some(b)
            }
            (a, b) => a.or(b),
        };
        Ok(Checked {
            snapshot,
            damage,
            from_witness,
            evidence,
            snapshot_at,
        })
    }

    /// Adds what `recover` set aside (or found unvouched) to the damage,
    /// making one if nothing else showed any: an `--accept-damage` start
    /// then records it, raises what it shows and refuses its requests.
    pub(super) fn add_set_aside(
        &mut self,
        extra: &super::SetAsideEvidence,
        log: &EventLog,
        log_report: &crate::log::OpenReport,
    ) {
        match self.damage.as_mut() {
            Some(d) => {
                if let Some(x) = extra.evidence.clone() {
                    d.evidence = Some(super::salvage::merge(d.evidence.take(), x));
                }
            }
            None => {
                let evidence = match extra.evidence.clone() {
                    Some(x) => Some(super::salvage::merge(self.evidence.clone(), x)),
                    None => self.evidence.clone(),
                };
                self.damage = Some(Damage {
                    file: report_file(log, log_report),
                    record: extra.first,
                    problem: extra.problem.clone(),
                    log_ends_at: Some(log.last_seq()),
                    evidence,
                });
            }
        }
    }

    /// Damage refuses the start unless `accept_damage` (returned, to be
    /// recorded); the snapshot is then never trusted.
    pub(super) fn decide(
        &mut self,
        accept_damage: bool,
    ) -> Result<(Snapshot, Option<Damage>), EngineError> {
        let accepted = match self.damage.take() {
            Some(d) if !accept_damage => return Err(EngineError::Damaged(Box::new(d))),
            other => other,
        };
        let snapshot = match std::mem::replace(&mut self.snapshot, Ok(None)) {
            Ok(s) if accepted.is_none() => Ok(s),
            // None to set aside (storage-rt14 N3': a warning about a
            // snapshot "ahead of the log" where state.sled was gone).
            Ok(None) => Ok(None),
            Ok(Some(_)) => Err(
                "a loss was accepted: the snapshot is not trusted (damage accepted)".to_string(),
            ),
            Err(e) => Err(e.to_string()),
        };
        Ok((snapshot, accepted))
    }
}

/// The damage the witnesses prove, if any: a witness that saw a record the
/// log no longer holds, or the log's last record different from the one a
/// witness saw at the same position. `snapshot` lends its numbers (the
/// witness may know none).
fn witnessed(
    log: &EventLog,
    log_report: &crate::log::OpenReport,
    witnesses: &[witness::Witness],
    snapshot: Option<&Evidence>,
) -> Option<Damage> {
    let last = log.last_seq();
    let last_hash = hex(&log.tail().last_hash);
    let ahead: Vec<&witness::Witness> = witnesses
        .iter()
        .filter(|w| {
            w.seq > last
                || (w.seq == last && w.seq > 0 && !w.hash.is_empty() && w.hash != last_hash)
        })
        .collect();
    let top = ahead.iter().map(|w| w.seq).max()?;
    let mut ev = snapshot.cloned().unwrap_or_default();
    ev.seq = ev.seq.max(top);
    ev.seen_by = ahead.iter().map(|w| w.describe()).collect();
    for w in &ahead {
        if ev.day.is_none() || w.day > ev.day {
            ev.day = w.day;
        }
        for (c, n) in &w.highest {
            let h = ev.highest.entry(c.clone()).or_insert(*n);
            *h = (*h).max(*n);
        }
    }
    let differs = ahead.iter().any(|w| w.seq == last);
    Some(Damage {
        file: report_file(log, log_report),
        record: if differs { last } else { last + 1 },
        problem: if differs {
            format!("ログの記録 {last} が、ログの外の証拠が持つものと違います / the log's record {last} differs from the one a witness outside the log holds")
        } else {
            format!(
                "ログの外の証拠は記録 {top} まで持っていますが、ログは記録 {last} で終わっています / a witness outside the log holds record {top}, but the log ends at record {last}"
            )
        },
        log_ends_at: Some(last),
        evidence: Some(ev),
    })
}

/// The file to name for a log that ends early: the torn segment, else the
/// last one, else the folder.
fn report_file(log: &EventLog, report: &crate::log::OpenReport) -> PathBuf {
    report.truncated_in.clone().unwrap_or_else(|| {
        log.segments()
            .last()
            .map(|&s| crate::log::segment_path(log.dir(), s))
            .unwrap_or_else(|| log.dir().to_path_buf())
    })
}

/// The high-water mark to compare the log with (`highwater.rs`). A new
/// folder (no mark, no snapshot) gets one once it is checked; a mark that
/// cannot be read, or none on a folder whose snapshot store has one, is
/// refused by name: it may have been the only evidence of the last
/// answers. `madoguchi recover` checks the log and writes it anew.
pub(super) fn high_water(
    dir: &Path,
    log: &EventLog,
    log_report: &crate::log::OpenReport,
    store: &Store,
    vouched: bool,
    report: &mut OpenReport,
) -> Result<Option<highwater::Mark>, EngineError> {
    let problem = match highwater::read(dir) {
        Ok(Some(m)) => return Ok(Some(m)),
        Ok(None) if !matches!(store.meta(), Ok(Some(_))) => {
            if log.last_seq() == 0 || vouched {
                return Ok(None);
            }
            // Nothing vouches for the log's end: a log that lost its last
            // records at a record boundary looks whole (outside tester
            // storage-rt8 F4: a silent start gave acknowledged numbers again).
            let last = log.last_seq();
            format!(
                "記録の到達点ファイル {file} もスナップショット (state.sled) もないため、ログの最後（記録 {last}）が受け付けた最後の記録かどうか確かめられません（その後の記録が失われていれば、同じ番号を二度お渡しします）。madoguchi recover --accept-damage で、各受付の番号をログの最大番号の {margin} 番先から再開し、そのことを記録できます / neither the high-water mark file {file} nor a snapshot (state.sled) is there: nothing vouches that the log's end (record {last}) is the last acknowledged record; `madoguchi recover --accept-damage` resumes every queue's numbers {margin} above the log's highest and records that",
                file = highwater::FILE,
                margin = UNVOUCHED_MARGIN,
            )
        }
        Ok(None) => match predates_mark(log, log_report, store) {
            Ok(note) => {
                // Written once the rest of the evidence is compared
                // (`Engine::open`), with a fault record and a line on stderr.
                report.high_water_created = Some(note);
                return Ok(None);
            }
            Err(why) => format!(
                "記録の到達点ファイル {} がありません / the high-water mark file is missing (deleted, or the folder was written by a version before it), and {why}: the end of the log cannot be checked",
                highwater::FILE
            ),
        },
        Err(e) => format!(
            "記録の到達点ファイルが読めません / the high-water mark cannot be read: {e}"
        ),
    };
    let problem = if problem.contains("--accept-damage") {
        problem
    } else {
        format!(
            "{problem}; `madoguchi recover` checks the log against the other evidence and writes it anew / recover で確認のうえ作り直せます"
        )
    };
    Err(EngineError::Damaged(Box::new(Damage {
        file: dir.join(highwater::FILE),
        record: log.last_seq() + 1,
        problem,
        log_ends_at: Some(log.last_seq()),
        evidence: Evidence::read(store),
    })))
}

/// The one rule for what vouches for the log's end (issue 17, outside
/// tester storage-rt14 K1, K2, N8; ARCHITECTURE.md "sled"), used by the
/// start, `recover`, `audit verify` and `--accept-damage`: a high-water
/// mark at (or beyond — then records are lost, found by the witnesses'
/// check) the log's end, or a snapshot a stop wrote at the log's end (its
/// record and hash; [`SnapshotMeta::stopped`] — one written while serving
/// may stand exactly where a cut log ends, storage-rt14 K2) or beyond it. A mark or snapshot behind the log's end vouches for
/// nothing past itself — with one exception: a mark *and* a snapshot both
/// behind it is what a crash between the log's sync and the mark's write
/// leaves (the snapshot is written beside the answers), and those records
/// were never answered, so a kill -9 starts with no question. With state.sled
/// gone as well, a mark behind the log's end vouches for nothing (N8).
/// The request-id journal never vouches (a missing one, or one ending
/// where the log ends, shows nothing of what a cut lost).
pub fn end_vouched(
    last: u64,
    last_hash: &str,
    mark: Option<u64>,
    snapshot: Option<(u64, &str, bool)>,
) -> bool {
    last == 0
        || mark.is_some_and(|m| m >= last)
        || snapshot
            .is_some_and(|(s, h, stopped)| s > last || (s == last && h == last_hash && stopped))
        // Both behind: a kill -9 between the log's sync and the mark's
        // write. The snapshot is written after the mark, so a crash never
        // leaves the mark behind the snapshot; a mark that is, is a stale
        // copy (outside tester storage-rt15 S1: it started silently and
        // gave acknowledged numbers again).
        || mark
            .zip(snapshot)
            .is_some_and(|(m, (s, _, _))| s <= m)
}

/// How far above the log's highest number each queue resumes when nothing
/// vouches for the log's end (no high-water mark, no snapshot) and the
/// loss is accepted: the lost tail's tickets, if any, are below it.
pub const UNVOUCHED_MARGIN: u32 = 100;

/// A folder from before the high-water mark (issue 17, the upgrade path):
/// no torn tail, a snapshot that reads and names the log's very last record
/// and hash, and a log whose every record and link checks. Then the mark
/// can be made from them; any sign of damage keeps the refusal (the mark
/// may have been the only evidence of the last answers). Returns the note
/// for stderr and the fault record, or why not.
fn predates_mark(
    log: &EventLog,
    log_report: &crate::log::OpenReport,
    store: &Store,
) -> Result<String, String> {
    let last = log.last_seq();
    if log_report.truncated_bytes > 0 {
        return Err(format!(
            "the log ends with {} torn bytes / ログの末尾が途中で切れています",
            log_report.truncated_bytes
        ));
    }
    let meta = match store.load() {
        Ok(Some((meta, state))) if state.check_invariants().is_ok() => meta,
        _ => return Err("the snapshot cannot be read / スナップショットが読めません".into()),
    };
    if !meta.stopped {
        return Err(format!(
            "the snapshot (record {}) was written while the office was serving, not by a stop (kill -9 or a power cut) / スナップショットは停止時に書かれたものではありません",
            meta.seq
        ));
    }
    if meta.seq != last || meta.hash != hex(&log.tail().last_hash) {
        return Err(format!(
            "the snapshot (record {}) does not match the log's end (record {last}) / スナップショットとログの末尾が一致しません",
            meta.seq
        ));
    }
    log_reads(log, None).map_err(|e| match e {
        // The record and why, not a whole refusal inside this one
        // (storage-rt8 F7).
        EngineError::Damaged(d) => format!(
            "記録 {} が読めません / the log does not verify: record {} ({}: {})",
            d.record,
            d.record,
            d.file.display(),
            d.problem
        ),
        other => format!("the log does not verify ({other})"),
    })?;
    Ok(format!(
        "記録の到達点ファイル {} がなかったため、ログ（記録 {last} まで、全記録を確認）とスナップショットが一致することを確かめて作成しました。以前の版のデータフォルダでなければ、削除された原因を確認してください。 / The high-water mark file {} was missing (a data folder from before it, or deleted): the log (records 1–{last}, every record checked) and the snapshot agree, so it was created from them. If this folder is not from an older version, find out why it was deleted.",
        highwater::FILE,
        highwater::FILE
    ))
}

/// Reads the whole log, checking every record and link: a rebuild that
/// would stop half-way is refused before anything is moved. A record that
/// cannot be read is damage, with `evidence`.
pub(super) fn log_reads(log: &EventLog, evidence: Option<Evidence>) -> Result<(), EngineError> {
    for r in log.records(None) {
        if let Err(e) = r {
            return Err(match e {
                LogError::Corrupt {
                    seq, path, reason, ..
                } => EngineError::Damaged(Box::new(Damage {
                    file: path,
                    record: seq,
                    problem: reason,
                    log_ends_at: None,
                    evidence,
                })),
                other => other.into(),
            });
        }
    }
    Ok(())
}

/// Keeps what a snapshot store about to be set aside as `aside` shows, as
/// a witness (`witness/set-aside-<name>.json`): the set-aside folder stays
/// evidence of how far the office went, read this once and never trusted
/// for state. Best effort: a store that shows nothing proves nothing.
pub(super) fn witness_store(dir: &Path, store: &Store, aside: &Path) {
    let Ok(Some(meta)) = store.meta() else {
        return;
    };
    let ev = Evidence::read(store).unwrap_or_default();
    let name = aside
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let w = witness::Witness {
        source: witness::Source::SetAside,
        seq: meta.seq,
        hash: meta.hash.clone(),
        at: chrono::Utc::now().to_rfc3339(),
        place: aside.display().to_string(),
        day: ev.day,
        highest: ev.highest,
    };
    if let Err(e) = witness::record_as(dir, &w, &format!("set-aside-{name}.json")) {
        tracing::warn!(error = %e, "could not keep what the set-aside snapshot showed");
    }
}

#[cfg(test)]
mod tests {
    use super::end_vouched;

    /// The one rule (ARCHITECTURE.md, "sled"): what vouches for the log's
    /// end, including the crash window and storage-rt15 S1's stale mark.
    #[test]
    fn what_vouches_for_the_logs_end() {
        let h = "ab";
        assert!(end_vouched(0, h, None, None), "an empty log");
        assert!(end_vouched(10, h, Some(10), None), "the mark at the end");
        assert!(
            end_vouched(10, h, None, Some((10, h, true))),
            "a stopped snapshot at the end"
        );
        assert!(
            !end_vouched(10, h, None, Some((10, h, false))),
            "written while serving"
        );
        assert!(
            !end_vouched(10, h, None, Some((10, "cd", true))),
            "another record"
        );
        assert!(!end_vouched(10, h, Some(9), None), "a mark behind");
        assert!(
            end_vouched(10, h, Some(9), Some((7, h, false))),
            "the kill -9 window"
        );
        assert!(
            !end_vouched(10, h, Some(5), Some((8, h, false))),
            "a mark behind the snapshot is a stale copy (S1)"
        );
    }
}
