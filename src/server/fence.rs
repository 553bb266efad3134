//! Fencing (issue 24, R9): a primary and a promoted standby never both
//! give numbers.
//!
//! - **Epochs.** A promotion records `promoted {epoch}` in the log (one
//!   more than the epoch in force), so every replica and backup knows which
//!   machine took over when. The promoted machine tells the old primary
//!   (`POST /api/fence`, with the standby device token the old primary
//!   issued) until it answers; the old primary then writes `<data>/replaced`
//!   (so it stays fenced across a restart), refuses every command with
//!   `replaced`, and says so on `/admin`.
//! - **Lease** (a partition, where the old primary cannot be told). A
//!   primary with an enabled standby device takes commands only while it
//!   holds a lease from that standby. The primary stamps each replication
//!   answer with a grant (its own monotonic clock and a per-process id);
//!   the standby echoes the last grant it received in its next request, and
//!   the primary's lease runs [`LEASE`] from that grant's time. A grant is
//!   made before the standby receives it, so the standby knows every lease
//!   the primary holds ends before (last answer received + [`LEASE`]): a
//!   promotion stops following, waits that long (plus [`MARGIN`]), and only
//!   then takes commands. A stale request delayed in the network or held by
//!   a frozen primary echoes an old grant and renews nothing. A primary
//!   whose standby is broken refuses commands until an admin disables or
//!   deletes the standby device (`/api/devices/{name}`).
//! - **Replicated before answered.** With a standby, a command is answered
//!   only once the standby has asked for the records after it (each
//!   request names the last record it holds), so a number handed to a
//!   visitor is always on the standby; a command the standby never got is
//!   answered `no_standby_lease` and stays only in the old primary's
//!   diverged tail (listed at `--rejoin`).
//! - **Devices carry the epoch.** Every answer names the epoch in force
//!   (`Madoguchi-Epoch`); the kiosk, staff and display pages remember the
//!   highest they have seen and send it back with their requests. A primary
//!   that gets a newer one from a device it knows has been replaced: it
//!   fences itself as `POST /api/fence` would ([`carry_epoch`]). A page that
//!   reaches a server older than its epoch says so and issues nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::{Duration, Instant};

/// How long a grant lets the primary take commands. Longer than the
/// standby's long poll and two round trips, so a healthy pair never lapses.
pub const LEASE: Duration = Duration::from_secs(6);
/// Added to the standby's wait: clock rate differences and the scheduling
/// of the two machines.
pub const MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Fence {
    /// This process's id in grants: a grant from before a restart is void.
    boot: u64,
    started: Instant,
    /// Primary: the lease the echoed grants give.
    lease_until: Mutex<Option<Instant>>,
    /// Primary: the epoch of the machine that replaced this one.
    replaced: Mutex<Option<u64>>,
    replaced_path: PathBuf,
    /// Standby: the last grant received and when.
    last_grant: Mutex<Option<(String, Instant)>>,
    /// Primary: the last record the standby said it holds.
    acked: tokio::sync::watch::Sender<u64>,
    /// The epoch in force in this server's log (a copy, read on every
    /// answer without asking the engine).
    epoch: AtomicU64,
    /// Standby: the primary's last record, as its last answer said (0 when
    /// not known, e.g. after a restart with the primary down).
    primary_last: AtomicU64,
}

/// The header that carries the epoch both ways.
pub const EPOCH_HEADER: &str = "madoguchi-epoch";

impl Fence {
    pub fn open(data: &Path) -> Fence {
        let replaced_path = data.join("replaced");
        let replaced = std::fs::read_to_string(&replaced_path)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        Fence {
            boot: rand::random(),
            started: Instant::now(),
            lease_until: Mutex::new(None),
            replaced: Mutex::new(replaced),
            replaced_path,
            last_grant: Mutex::new(None),
            acked: tokio::sync::watch::Sender::new(0),
            epoch: AtomicU64::new(0),
            primary_last: AtomicU64::new(0),
        }
    }

    /// Standby: the primary said its log ends at record `n`.
    pub fn note_primary_last(&self, n: u64) {
        self.primary_last.store(n, Ordering::SeqCst);
    }

    /// Standby: the primary's last record as last heard (0: not known).
    pub fn primary_last(&self) -> u64 {
        self.primary_last.load(Ordering::SeqCst)
    }

    /// The epoch in force here.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The log now holds epoch `n` (start-up, a promotion, records copied
    /// from the primary); epochs only rise.
    pub fn set_epoch(&self, n: u64) {
        self.epoch.fetch_max(n, Ordering::SeqCst);
    }

    /// Primary: the standby holds every record up to `seq`.
    pub fn ack(&self, seq: u64) {
        self.acked.send_if_modified(|a| {
            let newer = seq > *a;
            *a = (*a).max(seq);
            newer
        });
    }

    /// Primary: waits until the standby holds record `seq`, at most while
    /// the lease lasts; `false` if it did not.
    pub async fn wait_acked(&self, seq: u64) -> bool {
        let mut rx = self.acked.subscribe();
        let until = self
            .lease_until
            .lock()
            .ok()
            .and_then(|l| *l)
            .unwrap_or_else(Instant::now);
        let wait = until.saturating_duration_since(Instant::now());
        tokio::time::timeout(wait, rx.wait_for(|a| *a >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Primary: a grant for a replication answer.
    pub fn grant(&self) -> String {
        format!("{:x}-{}", self.boot, self.started.elapsed().as_millis())
    }

    /// Primary: a standby echoed `grant`; the lease runs from its time.
    pub fn renew(&self, grant: &str) {
        let Some((boot, ms)) = grant.split_once('-') else {
            return;
        };
        if u64::from_str_radix(boot, 16).ok() != Some(self.boot) {
            return;
        }
        let Ok(ms) = ms.parse::<u64>() else { return };
        let Some(until) = self
            .started
            .checked_add(Duration::from_millis(ms))
            .and_then(|t| t.checked_add(LEASE))
        else {
            return;
        };
        if until > Instant::now() + LEASE {
            // Not a grant this process made.
            return;
        }
        if let Ok(mut l) = self.lease_until.lock() {
            if l.is_none_or(|old| until > old) {
                *l = Some(until);
            }
        }
    }

    /// Primary: whether the lease is held now.
    pub fn leased(&self) -> bool {
        self.lease_until
            .lock()
            .ok()
            .and_then(|l| *l)
            .is_some_and(|u| Instant::now() < u)
    }

    /// The epoch that replaced this machine, if one did.
    pub fn replaced(&self) -> Option<u64> {
        self.replaced.lock().ok().and_then(|r| *r)
    }

    /// Primary: a newer epoch exists; refuse commands from now on, also
    /// after a restart.
    pub fn mark_replaced(&self, epoch: u64) -> std::io::Result<bool> {
        let mut r = self
            .replaced
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        if r.is_some_and(|e| e >= epoch) {
            return Ok(false);
        }
        std::fs::write(&self.replaced_path, format!("{epoch}\n"))?;
        *r = Some(epoch);
        Ok(true)
    }

    /// The machine rejoined as a standby: no longer fenced as a primary.
    pub fn clear_replaced(&self) -> std::io::Result<()> {
        if let Ok(mut r) = self.replaced.lock() {
            *r = None;
        }
        match std::fs::remove_file(&self.replaced_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Standby: an answer carrying `grant` arrived now.
    pub fn received(&self, grant: Option<&str>) {
        if let (Some(g), Ok(mut last)) = (grant, self.last_grant.lock()) {
            *last = Some((g.to_string(), Instant::now()));
        }
    }

    /// Standby: the grant to echo.
    pub fn echo(&self) -> Option<String> {
        self.last_grant
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(g, _)| g.clone()))
    }

    /// Standby: how long until every lease the primary may hold has ended.
    pub fn wait_before_promotion(&self) -> Duration {
        let last = self
            .last_grant
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|x| x.1));
        match last {
            None => Duration::ZERO,
            Some(at) => (at + LEASE + MARGIN).saturating_duration_since(Instant::now()),
        }
    }
}

/// Every answer names this server's epoch; a request from a known device
/// or account naming a newer one tells a primary it was replaced (the
/// device has seen the promoted machine). An unknown caller's header is
/// ignored: no stranger can fence the office.
pub async fn carry_epoch(State(app): State<Arc<super::App>>, req: Request, next: Next) -> Response {
    let claimed = req
        .headers()
        .get(EPOCH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = claimed {
        if n > app.fence.epoch() && !app.is_standby() && app.fence.replaced().is_none_or(|r| r < n)
        {
            if let Some(caller) = app.auth.identify(req.headers()) {
                match app.fence.mark_replaced(n) {
                    Ok(true) => app.faults.record(
                        "failover",
                        format!(
                            "replaced: {} has seen epoch {n} (a standby was promoted); this server takes no more commands",
                            caller.name
                        ),
                    ),
                    Ok(false) => {}
                    Err(e) => app
                        .faults
                        .record("failover", format!("cannot record being replaced: {e}")),
                }
            }
        }
    }
    let mut res = next.run(req).await;
    res.headers_mut()
        .insert(EPOCH_HEADER, HeaderValue::from(app.fence.epoch()));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_renews_only_in_its_own_process_and_lapses() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert!(!f.leased());
        f.renew("0-0");
        f.renew("nonsense");
        assert!(!f.leased(), "another process's grant");
        f.renew(&f.grant());
        assert!(f.leased());
        let other = Fence::open(dir.path());
        other.renew(&f.grant());
        assert!(!other.leased(), "a grant from before a restart is void");
    }

    #[test]
    fn being_replaced_survives_a_restart_and_an_older_epoch_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert_eq!(f.replaced(), None);
        assert!(f.mark_replaced(2).expect("write"));
        assert!(!f.mark_replaced(1).expect("older"));
        assert_eq!(Fence::open(dir.path()).replaced(), Some(2));
        f.clear_replaced().expect("clear");
        assert_eq!(Fence::open(dir.path()).replaced(), None);
    }

    #[test]
    fn the_standby_waits_a_lease_after_its_last_answer() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert_eq!(f.wait_before_promotion(), Duration::ZERO);
        f.received(Some("1-2"));
        assert!(f.wait_before_promotion() > LEASE);
        assert_eq!(f.echo().as_deref(), Some("1-2"));
    }

    #[test]
    fn the_epoch_only_rises() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        f.set_epoch(2);
        f.set_epoch(1);
        assert_eq!(f.epoch(), 2);
    }
}
