//! The commit feed (DESIGN.md data flow, step 2): every record the engine
//! makes durable is published here, in order, and everything that follows a
//! commit — the site build and LAN display push, the relay publisher,
//! day-close reports, standby replication, the fault watcher — is a
//! subscriber, never called by hand.
//!
//! The engine never waits for a subscriber. It keeps the most recent
//! records in memory and bumps a watch value; a subscriber that falls
//! further behind than that reads the missing records from the log itself
//! (the wake-up may be missed, the log is not). A subscriber that keeps its
//! cursor (the last sequence it handled) across a restart resumes with
//! [`FeedHandle::subscribe_after`] and sees every record exactly once.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use super::{EngineError, RecordBody};
use crate::log::{self, Record};

/// Records kept in memory for subscribers that are only a little behind
/// (few in tests, so that catching up from the log is a common path).
const RECENT: usize = if cfg!(test) { 8 } else { 4096 };

/// One durable log record as the feed delivers it.
#[derive(Debug)]
pub struct Commit {
    pub seq: u64,
    payload: Vec<u8>,
    body: OnceLock<Option<RecordBody>>,
}

impl Commit {
    fn new(seq: u64, payload: Vec<u8>) -> Commit {
        Commit {
            seq,
            payload,
            body: OnceLock::new(),
        }
    }

    /// The record's command time, author and events, decoded once for all
    /// subscribers. `None` only for a payload the engine could not have
    /// written (the log's own checks make that a corrupt log).
    pub fn body(&self) -> Option<&RecordBody> {
        self.body
            .get_or_init(|| serde_json::from_slice(&self.payload).ok())
            .as_ref()
    }

    /// The payload as it is in the log.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// What every subscriber reads from: the recent records and the log.
#[derive(Debug)]
struct Reader {
    log_dir: PathBuf,
    recent: Mutex<VecDeque<Arc<Commit>>>,
}

/// The engine's side of the feed. Only the engine holds it: when the engine
/// stops, subscribers see the feed close.
#[derive(Debug)]
pub(crate) struct Feed {
    reader: Arc<Reader>,
    durable: watch::Sender<u64>,
}

/// Hands out subscriptions; cheap to clone, and does not keep the feed open.
#[derive(Debug, Clone)]
pub struct FeedHandle {
    reader: Arc<Reader>,
    durable: watch::Receiver<u64>,
}

impl Feed {
    pub(crate) fn new(log_dir: PathBuf, last_seq: u64) -> Feed {
        Feed {
            reader: Arc::new(Reader {
                log_dir,
                recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            }),
            durable: watch::channel(last_seq).0,
        }
    }

    pub(crate) fn handle(&self) -> FeedHandle {
        FeedHandle {
            reader: self.reader.clone(),
            durable: self.durable.subscribe(),
        }
    }

    /// Publishes records `first_seq..` (their payloads, in order), already
    /// durable in the log.
    pub(crate) fn publish(&self, first_seq: u64, payloads: &[Vec<u8>]) {
        if payloads.is_empty() {
            return;
        }
        let last = first_seq + payloads.len() as u64 - 1;
        if let Ok(mut recent) = self.reader.recent.lock() {
            // Records at or after `first_seq` that are still held were cut
            // from the log (an import undone): they are replaced.
            while recent.back().is_some_and(|c| c.seq >= first_seq) {
                recent.pop_back();
            }
            for (i, p) in payloads.iter().enumerate() {
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back(Arc::new(Commit::new(first_seq + i as u64, p.clone())));
            }
        }
        self.durable.send_replace(last);
    }

    /// The log was cut back to `last_seq` (records never acknowledged: an
    /// import that failed while writing).
    pub(crate) fn cut_back(&self, last_seq: u64) {
        if let Ok(mut recent) = self.reader.recent.lock() {
            while recent.back().is_some_and(|c| c.seq > last_seq) {
                recent.pop_back();
            }
        }
        self.durable.send_replace(last_seq);
    }
}

impl FeedHandle {
    /// The last durable record.
    pub fn last_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    /// A subscriber that starts after the last durable record.
    pub fn subscribe(&self) -> Subscriber {
        self.subscribe_after(self.last_seq())
    }

    /// A subscriber that starts after record `cursor` (0: from the first
    /// record of the live log), catching up from the log first.
    pub fn subscribe_after(&self, cursor: u64) -> Subscriber {
        let mut wake = self.durable.clone();
        wake.mark_changed();
        Subscriber {
            reader: self.reader.clone(),
            cursor,
            wake,
        }
    }
}

impl Reader {
    fn read_after(&self, cursor: u64, up_to: u64) -> Result<Vec<Arc<Commit>>, EngineError> {
        if let Ok(recent) = self.recent.lock() {
            if recent.front().is_some_and(|c| c.seq <= cursor + 1) {
                return Ok(recent
                    .iter()
                    .filter(|c| c.seq > cursor && c.seq <= up_to)
                    .cloned()
                    .collect());
            }
        }
        // Further behind than memory reaches: from the log, which also
        // checks every CRC and link on the way.
        let mut out = Vec::new();
        for r in log::read_live_near(&self.log_dir, cursor + 1)? {
            let (_, record): (_, Record) = r?;
            if record.seq <= cursor {
                continue;
            }
            if record.seq > up_to {
                break;
            }
            out.push(Arc::new(Commit::new(record.seq, record.payload)));
        }
        Ok(out)
    }
}

/// One subscriber's cursor on the feed.
#[derive(Debug)]
pub struct Subscriber {
    reader: Arc<Reader>,
    cursor: u64,
    wake: watch::Receiver<u64>,
}

/// The engine is gone: no record will follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine has stopped")]
pub struct FeedClosed;

impl Subscriber {
    /// The last record this subscriber has been given.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Every durable record after the cursor, in order (possibly none), and
    /// moves the cursor past them.
    pub fn pending(&mut self) -> Result<Vec<Arc<Commit>>, EngineError> {
        let up_to = *self.wake.borrow_and_update();
        if up_to < self.cursor {
            // The log was cut back below what this subscriber saw: only an
            // import undone does that, and it acknowledged nothing.
            self.cursor = up_to;
            return Ok(Vec::new());
        }
        if up_to == self.cursor {
            return Ok(Vec::new());
        }
        let commits = self.reader.read_after(self.cursor, up_to)?;
        if let Some(last) = commits.last() {
            self.cursor = last.seq;
        }
        Ok(commits)
    }

    /// Moves the cursor to the last durable record without reading anything
    /// (a subscriber that rebuilds from the state, not from the events).
    pub fn skip_to_latest(&mut self) -> u64 {
        let up_to = *self.wake.borrow_and_update();
        self.cursor = up_to;
        up_to
    }

    /// Waits until a record after the cursor is durable.
    pub async fn changed(&mut self) -> Result<(), FeedClosed> {
        loop {
            if *self.wake.borrow() > self.cursor {
                return Ok(());
            }
            self.wake.changed().await.map_err(|_| FeedClosed)?;
        }
    }

    /// Whether the engine still runs (a closed feed yields nothing new).
    pub fn is_closed(&self) -> bool {
        self.wake.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::NaiveDate;

    use super::*;
    use crate::engine::{ConfigChoice, Engine, EngineOptions};
    use crate::simulate::{SimOptions, Simulator, TimedCommand};

    fn open(dir: &Path) -> Engine {
        Engine::open(dir, ConfigChoice::Stored, EngineOptions::default())
            .expect("open")
            .0
    }

    fn day(seed: u64) -> Vec<TimedCommand> {
        Simulator::new(
            &crate::config::Config::embedded_default(),
            SimOptions {
                start: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
                days: 2,
                seed,
                volume: 0.2,
            },
        )
        .flatten()
        .collect()
    }

    fn take(sub: &mut Subscriber, seen: &mut Vec<(u64, Vec<u8>)>) {
        for c in sub.pending().expect("pending") {
            assert!(c.body().is_some(), "record {} decodes", c.seq);
            seen.push((c.seq, c.payload().to_vec()));
        }
    }

    /// Every record exactly once, in order, across a restart: part of the
    /// day is taken live (from memory), part only after more than the
    /// in-memory window has passed (from the log), and the rest after the
    /// engine was closed and opened again, from the kept cursor.
    #[test]
    fn a_subscriber_sees_every_commit_once_in_order_across_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let cmds = day(7);
        assert!(cmds.len() > 4 * RECENT, "enough commands: {}", cmds.len());
        let (a, rest) = cmds.split_at(cmds.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut seen = Vec::new();

        let mut engine = open(dir.path());
        let mut sub = engine.feed().subscribe_after(0);
        for (i, cmd) in a.iter().enumerate() {
            let _ = engine.execute(cmd.at, &cmd.command).expect("engine");
            if i % 3 == 0 {
                take(&mut sub, &mut seen);
            }
        }
        take(&mut sub, &mut seen);
        // Fall behind by far more than memory holds.
        for cmd in b {
            let _ = engine.execute(cmd.at, &cmd.command).expect("engine");
        }
        take(&mut sub, &mut seen);
        let cursor = sub.cursor();
        assert_eq!(cursor, engine.seq());
        drop(engine);
        assert!(sub.is_closed(), "the feed closes with the engine");

        let mut engine = open(dir.path());
        let mut sub = engine.feed().subscribe_after(cursor);
        for cmd in c {
            let _ = engine.execute(cmd.at, &cmd.command).expect("engine");
        }
        take(&mut sub, &mut seen);
        take(&mut sub, &mut seen);

        let want: Vec<(u64, Vec<u8>)> = crate::log::read_live(&dir.path().join("log"))
            .expect("log")
            .map(|r| r.expect("record").1)
            .map(|r| (r.seq, r.payload))
            .collect();
        assert_eq!(seen.len(), want.len(), "every record once");
        assert!(seen == want, "the same records in the same order");
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_a_commit_and_ends_with_the_engine() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut engine = open(dir.path());
        let mut sub = engine.feed().subscribe();
        assert!(sub.pending().expect("pending").is_empty());
        engine.set_clock(crate::clock::Clock::Fixed(crate::model::Millis(0)));
        let shared = crate::engine::SharedEngine::start(engine);
        let handle = shared.handle();
        let waiter = tokio::spawn(async move {
            let woke = sub.changed().await;
            let got = sub.pending().expect("pending");
            (woke, got.len(), sub)
        });
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
        let at = crate::model::Millis(
            date.and_hms_opt(0, 30, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_millis(),
        );
        let h = handle.clone();
        tokio::task::spawn_blocking(move || {
            h.execute(Some(at), crate::model::Command::OpenDay { date }, None)
        })
        .await
        .expect("join")
        .expect("open day");
        let (woke, n, mut sub) = waiter.await.expect("join");
        assert_eq!((woke, n), (Ok(()), 1));
        drop(handle);
        tokio::task::spawn_blocking(move || shared.shutdown())
            .await
            .expect("join");
        assert_eq!(sub.changed().await, Err(FeedClosed));
    }
}
