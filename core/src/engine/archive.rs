//! Retention (R14): the archive step. Closed log segments whose every
//! record is older than a cut-off move to an archive folder; the live log
//! then starts at an anchor ([`crate::log::anchor`]) with a checkpoint of
//! the office after the last archived record (state, configuration and
//! every statistics cell), so start-up, rebuild and `audit verify` work
//! from the anchor and the statistics keep their history.
//!
//! The chain stays verifiable: the first live record links to the archived
//! last one; the step is itself a `log_archived` record naming that record's
//! hash and the checkpoint's SHA-256, so a changed checkpoint or anchor
//! fails `audit verify`; and [`verify_archive`] replays the archive from
//! record 1 and checks that it ends exactly at the anchor with exactly the
//! checkpoint's office. Nothing is edited or deleted in place: segments are
//! copied and synced before the anchor is written, and only then removed.
//! A step interrupted before the anchor is written leaves the live log
//! whole (at most a `log_archived` record and a checkpoint file that no
//! anchor names; running the step again completes it); after the anchor,
//! leftover segments below it are never read.
//!
//! Tickets of days before the anchor leave the snapshot store too (their
//! history is in the archive), so a rebuilt store and a kept one agree.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{apply_counted, io_err, Applied, Engine, EngineError, RecordBody};
use crate::config::Config;
use crate::log::{self, anchor, Anchor, Hash, Pos, Record, MAGIC};
use crate::model::{Event, Millis, Number, Ticket};
use crate::state::{Meta, State};
use crate::stats::Cell;
use crate::store::hex;

const CHECKPOINT_FORMAT: u32 = 1;

/// The office after the last archived record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub seq: u64,
    pub hash: String,
    pub meta: Meta,
    pub tickets: Vec<Ticket>,
    pub requests: BTreeMap<String, Number>,
    pub stats: BTreeMap<String, Cell>,
}

/// What one archive step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    pub segments: usize,
    pub bytes: u64,
    /// The last archived record.
    pub through: u64,
    /// The `log_archived` record.
    pub recorded_as: u64,
    pub archive: PathBuf,
    pub checkpoint_sha256: String,
}

/// One archived segment, as listed in the archive's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedSegment {
    pub file: String,
    pub first: u64,
    pub last: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// `archive-<through>.json` in the archive folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    pub format: u32,
    pub through: u64,
    pub through_hash: String,
    pub checkpoint: String,
    pub checkpoint_sha256: String,
    pub segments: Vec<ArchivedSegment>,
    pub created: String,
}

fn corrupt(seq: u64, reason: impl Into<String>) -> EngineError {
    EngineError::Corrupt {
        seq,
        reason: reason.into(),
    }
}

/// An office replayed in memory: configuration, state and statistics.
pub(super) struct Replay {
    pub config: Config,
    pub config_seq: u64,
    pub state: State,
    pub stats: BTreeMap<String, Cell>,
    pub seq: u64,
    pub hash: Hash,
}

impl Replay {
    /// The office at the start of the live log: the anchor's checkpoint
    /// (checked against its SHA-256), or a new office.
    pub fn start(
        log_dir: &Path,
        anchor: Option<&Anchor>,
        fallback: &Config,
    ) -> Result<Replay, EngineError> {
        let Some(a) = anchor else {
            return Ok(Replay {
                config: fallback.clone(),
                config_seq: 0,
                state: State::new(fallback),
                stats: BTreeMap::new(),
                seq: 0,
                hash: [0; 32],
            });
        };
        let c = read_checkpoint(log_dir, a)?;
        let config = match &a.config_source {
            Some(src) => {
                Config::parse_recorded(src, &format!("archive anchor (record {})", a.config_seq))?
            }
            None => fallback.clone(),
        };
        Ok(Replay {
            config,
            config_seq: a.config_seq,
            state: State::from_parts(
                c.meta,
                c.tickets.into_iter().map(|t| (t.number, t)).collect(),
                c.requests,
            ),
            stats: c.stats,
            seq: a.seq,
            hash: a.link()?,
        })
    }

    pub fn apply(&mut self, record: &Record) -> Result<(), EngineError> {
        let body = RecordBody::decode(record)?;
        for e in &body.events {
            if let Event::ConfigApplied { source } = e {
                self.config =
                    Config::parse_recorded(source, &format!("event log record {}", record.seq))?;
                self.config_seq = record.seq;
            }
            // Every cell is in the map: a cell not there is zero.
            apply_counted(
                &self.config,
                &mut self.state,
                body.at,
                e,
                &mut self.stats,
                &mut |_| Cell::default(),
            )
            .map_err(|x| corrupt(record.seq, x.to_string()))?;
        }
        self.seq = record.seq;
        self.hash = record.hash();
        Ok(())
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            seq: self.seq,
            hash: hex(&self.hash),
            meta: self.state.meta.clone(),
            tickets: self.state.tickets.values().cloned().collect(),
            requests: self.state.requests.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The anchor's checkpoint, refused unless it is the one the anchor names.
pub fn read_checkpoint(log_dir: &Path, a: &Anchor) -> Result<Checkpoint, EngineError> {
    let path = log_dir.join(a.checkpoint_name());
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    if anchor::sha256_hex(&bytes) != a.checkpoint_sha256 {
        return Err(corrupt(
            a.seq,
            format!(
                "{} is not the checkpoint the archive anchor names",
                path.display()
            ),
        ));
    }
    let c: Checkpoint = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(a.seq, format!("checkpoint unreadable: {e}")))?;
    if c.seq != a.seq || c.hash != a.hash {
        return Err(corrupt(
            a.seq,
            "the checkpoint is not at the archive anchor",
        ));
    }
    Ok(c)
}

/// The start of day `date` in the office's time zone, as log time.
pub fn start_of(config: &Config, date: chrono::NaiveDate) -> Millis {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    Millis(
        midnight.and_utc().timestamp_millis()
            - i64::from(config.office.utc_offset.local_minus_utc()) * 1000,
    )
}

impl Engine {
    /// Moves the closed segments whose records are all before `before` to
    /// `to`. `None` when there is nothing that old (the segment being
    /// written is never archived). `progress` hears each step.
    pub fn archive(
        &mut self,
        before: Millis,
        to: &Path,
        progress: &mut dyn FnMut(String),
    ) -> Result<Option<ArchiveReport>, EngineError> {
        let closed = self.log.segments().len().saturating_sub(1);
        let candidates: Vec<u64> = self.log.segments()[..closed].to_vec();
        if candidates.is_empty() {
            return Ok(None);
        }
        // Which segments qualify: the oldest ones whose records all lie
        // before the cut-off. (A configuration is recorded at wall-clock
        // time, also when history is imported, so it does not count.)
        let log_dir = self.log.dir().to_path_buf();
        progress(format!("reading {} closed segment(s)", candidates.len()));
        let mut spans: Vec<(u64, u64, u64, bool)> = Vec::new(); // segment, first, last, old
        for r in self.log.records(None) {
            let (pos, record) = r?;
            if !candidates.contains(&pos.segment) {
                break;
            }
            let body = RecordBody::decode(&record)?;
            let old = body.at < before
                || body
                    .events
                    .iter()
                    .all(|e| matches!(e, Event::ConfigApplied { .. }));
            match spans.last_mut() {
                Some(s) if s.0 == pos.segment => {
                    s.2 = record.seq;
                    s.3 &= old;
                }
                _ => spans.push((pos.segment, record.seq, record.seq, old)),
            }
        }
        let old = spans.iter().take_while(|s| s.3).count();
        spans.truncate(old);
        let Some(last) = spans.last().map(|s| s.2) else {
            return Ok(None);
        };
        // The office after the last archived record.
        let mut cut = Replay::start(&log_dir, self.log.anchor(), &self.fallback_config)?;
        for r in self.log.records(None) {
            let (_, record) = r?;
            if record.seq > last {
                break;
            }
            cut.apply(&record)?;
        }
        let through = cut.seq;
        let checkpoint = cut.checkpoint();
        let checkpoint_bytes = serde_json::to_vec(&checkpoint).unwrap_or_default();
        let checkpoint_sha256 = anchor::sha256_hex(&checkpoint_bytes);
        let name = anchor::checkpoint_name(through);

        // 1. The archive: each segment read once, hashed, written and
        // synced (temp file, rename), then the manifest.
        fs::create_dir_all(to).map_err(io_err(to))?;
        let mut chosen = Vec::with_capacity(spans.len());
        let mut bytes = 0;
        for &(segment, first, last, _) in &spans {
            let src = log::segment_path(&log_dir, segment);
            let file = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let content = fs::read(&src).map_err(io_err(&src))?;
            progress(format!("copying {file} ({} bytes)", content.len()));
            anchor::write_file(to, &file, &content)?;
            bytes += content.len() as u64;
            chosen.push(ArchivedSegment {
                file,
                first,
                last,
                bytes: content.len() as u64,
                sha256: anchor::sha256_hex(&content),
            });
        }
        let manifest = ArchiveManifest {
            format: 1,
            through,
            through_hash: hex(&cut.hash),
            checkpoint: name.clone(),
            checkpoint_sha256: checkpoint_sha256.clone(),
            segments: chosen.clone(),
            created: chrono::Utc::now().to_rfc3339(),
        };
        anchor::write_file(to, &name, &checkpoint_bytes)?;
        anchor::write_file(
            to,
            &format!("archive-{through:020}.json"),
            &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )?;
        // 2. The checkpoint beside the live log, then the step in the log.
        anchor::write_file(&log_dir, &name, &checkpoint_bytes)?;
        let archive = to.display().to_string();
        let recorded_as = self.record_audit(
            Some("archive".into()),
            Event::LogArchived {
                through,
                through_hash: hex(&cut.hash),
                checkpoint_sha256: checkpoint_sha256.clone(),
                archive: archive.clone(),
            },
        )?;
        // 3. The anchor; only now do the archived segments leave the log.
        progress(format!("anchoring the log after record {through}"));
        self.log.set_anchor(Anchor {
            format: 1,
            seq: through,
            hash: hex(&cut.hash),
            config_seq: cut.config_seq,
            config_source: (cut.config_seq > 0).then(|| cut.config.source.clone()),
            checkpoint_sha256: checkpoint_sha256.clone(),
            archive: archive.clone(),
            archived_at: chrono::Utc::now().to_rfc3339(),
        })?;
        if self.config_at.0 <= through {
            // The configuration record itself was archived.
            self.config_at = (
                self.config_at.0,
                Pos {
                    segment: 0,
                    offset: 0,
                },
            );
        }
        if let Some(day) = &checkpoint.meta.day {
            self.store.purge_tickets_before(day.date)?;
        }
        self.flush_store()?;
        Ok(Some(ArchiveReport {
            segments: chosen.len(),
            bytes,
            through,
            recorded_as,
            archive: to.to_path_buf(),
            checkpoint_sha256,
        }))
    }

    /// Starts a rebuild at the anchor's checkpoint (the caller has cleared
    /// the store); returns false when the log has no anchor.
    pub(super) fn start_from_anchor(&mut self) -> Result<bool, EngineError> {
        let Some(a) = self.log.anchor().cloned() else {
            return Ok(false);
        };
        let r = Replay::start(self.log.dir(), Some(&a), &self.fallback_config)?;
        self.config = r.config;
        self.config_at = (
            r.config_seq,
            Pos {
                segment: 0,
                offset: 0,
            },
        );
        self.dirty = r
            .state
            .tickets
            .values()
            .map(|t| (t.date, t.number))
            .collect();
        if let Some(day) = &r.state.meta.day {
            self.dirty_requests = r
                .state
                .requests
                .iter()
                .map(|(id, n)| (day.date, id.clone(), *n))
                .collect();
        }
        self.state = r.state;
        self.highest = super::highwater::highest_of(&self.state);
        self.stats_pending = r.stats;
        self.applied = Applied {
            seq: a.seq,
            hash: r.hash,
            next_pos: Pos {
                segment: a.seq + 1,
                offset: MAGIC.len() as u64,
            },
        };
        Ok(true)
    }
}

/// What [`verify_archive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCheck {
    pub records: u64,
    pub segments: usize,
    pub through: u64,
}

impl Engine {
    /// Checks an archive folder against the live log's anchor: every
    /// archived record from 1, every link, ending exactly at the anchor; and
    /// a replay of it gives exactly the checkpoint the live log starts from.
    pub fn verify_archive(&self, archive: &Path) -> Result<ArchiveCheck, EngineError> {
        verify_archive(archive, self.log.dir(), &self.fallback_config)
    }
}

fn verify_archive(
    archive: &Path,
    log_dir: &Path,
    fallback: &Config,
) -> Result<ArchiveCheck, EngineError> {
    let a = anchor::read(log_dir)?
        .ok_or_else(|| corrupt(0, "this log has no archive anchor: nothing was archived"))?;
    let (segments, records_from_1) = log::read_from_start(archive)?;
    let mut replay = Replay::start(archive, None, fallback)?;
    let mut records = 0;
    for r in records_from_1 {
        let (_, record) = r?;
        if record.seq > a.seq {
            break;
        }
        replay.apply(&record)?;
        records += 1;
    }
    if replay.seq != a.seq || hex(&replay.hash) != a.hash {
        return Err(corrupt(
            replay.seq + 1,
            format!(
                "the archive ends at record {} but the live log starts after record {}",
                replay.seq, a.seq
            ),
        ));
    }
    let want = read_checkpoint(log_dir, &a)?;
    let config_matches = replay.config_seq == a.config_seq
        && (a.config_source.is_none() || a.config_source.as_ref() == Some(&replay.config.source));
    if replay.checkpoint() != want || !config_matches {
        return Err(corrupt(
            a.seq,
            "replaying the archive does not give the checkpoint the live log starts from",
        ));
    }
    Ok(ArchiveCheck {
        records,
        segments: segments.len(),
        through: a.seq,
    })
}
