//! Web Push from the mobile ticket page (issue 20; R2, R6, R11, R12): the
//! relay holds subscriptions keyed by a ticket's public token and, from
//! the `ticket` topic it already serves, pushes "your turn is near", "you
//! are called at counter N" and "please speak to staff" to the visitor's
//! browser (RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID). The
//! office sends nothing new and still accepts no connection.
//!
//! Parts: [`http`] takes subscriptions (the relay's only public write, so
//! hardened: body cap, strict schema, Origin, rate limits, caps, live
//! tickets only), [`guard`] keeps endpoints to the allow-listed push
//! services on public addresses, [`notice`] decides from the ticket data,
//! [`send`] encrypts ([`ece`], [`vapid`]) and delivers, [`store`] keeps the
//! subscriptions in the state folder.
//!
//! Everything after a request is answered — watching the ticket topic,
//! deciding, encrypting, resolving and sending — runs on a runtime of its
//! own on its own thread (its own task budget), so push traffic can never
//! take the workers that fan the status page out.

pub mod ece;
pub mod guard;
pub mod http;
pub mod notice;
pub mod send;
pub mod store;
pub mod vapid;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::hub::Hub;
use guard::Guard;
use notice::{Board, Fate};
use store::Subs;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot read push state {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// relay-rt5 R5: a full disk is a failed *write*, and says so.
    #[error("cannot write push state {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("push state file {path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error("push runtime: {0}")]
    Runtime(String),
}

/// `[push]` in the relay's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    pub enabled: bool,
    /// The operator's contact in every VAPID token (`mailto:` or `https:`);
    /// push services write to it when something is wrong.
    pub contact: String,
    /// Push services an endpoint may name: `host`, `*.suffix`, optionally
    /// `:port` (443 otherwise).
    pub services: Vec<String>,
    /// Private, loopback or link-local addresses the relay may still send
    /// to (none in production; tests list their local push service).
    pub private_ok: Vec<IpAddr>,
    /// Certificate authorities the outbound client trusts (PEM bundle).
    pub ca_file: PathBuf,
    pub max_body_bytes: usize,
    pub max_per_ticket: usize,
    pub max_total: usize,
    /// Subscribe/unsubscribe requests per minute from one address (IPv6:
    /// one /64) and for one ticket.
    pub per_address_per_minute: u32,
    pub per_ticket_per_minute: u32,
    /// Pushes in flight at once, and waiting to go.
    pub concurrency: usize,
    pub queue: usize,
    /// Pushes in flight at once to one push service (an endpoint's origin),
    /// within `concurrency`: a slow or hanging service holds only these
    /// and delays only its own subscribers (outside tester push-rt6 F3).
    pub per_service: usize,
    pub timeout_s: u64,
    /// Further tries after a timeout, 429 or 5xx (back-off 1 s, 2 s, 4 s…).
    pub retries: u32,
    /// How long a push service keeps an undelivered message.
    pub ttl_s: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            contact: "mailto:webpush@example.invalid".into(),
            // Chrome/Edge (FCM), Firefox (Mozilla autopush), Edge on
            // Windows (WNS), Safari (Apple).
            services: vec![
                "fcm.googleapis.com".into(),
                "updates.push.services.mozilla.com".into(),
                "*.notify.windows.com".into(),
                "web.push.apple.com".into(),
                "*.push.apple.com".into(),
            ],
            private_ok: vec![],
            ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
            max_body_bytes: 4096,
            max_per_ticket: 3,
            max_total: 20_000,
            per_address_per_minute: 20,
            per_ticket_per_minute: 10,
            concurrency: 32,
            queue: 4096,
            per_service: 8,
            timeout_s: 10,
            retries: 3,
            ttl_s: 900,
        }
    }
}

impl PushConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(self.contact.starts_with("mailto:") || self.contact.starts_with("https://")) {
            return Err("contact must start with mailto: or https://".into());
        }
        if self.enabled && self.services.is_empty() {
            return Err("services: list the push services (or set enabled = false)".into());
        }
        if self.max_body_bytes < 256
            || self.max_per_ticket == 0
            || self.concurrency == 0
            || self.queue == 0
            || self.per_service == 0
        {
            return Err(
                "max_body_bytes (≥ 256), max_per_ticket, concurrency, per_service and queue must be above 0"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Push figures for `/metrics`.
#[derive(Debug, Default)]
pub struct PushMetrics {
    pub accepted: AtomicU64,
    /// Refused subscribe/unsubscribe requests, by reason.
    pub refused: Mutex<HashMap<&'static str, u64>>,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub gone: AtomicU64,
    pub retries: AtomicU64,
    pub queue_full: AtomicU64,
    pub in_flight: AtomicU64,
    pub ended: AtomicU64,
    /// Pushes refused at connect time: the endpoint's name now resolves to
    /// an address the guard refuses (DNS rebinding).
    pub unsafe_address: AtomicU64,
}

impl PushMetrics {
    pub fn refuse(&self, reason: &'static str) {
        let mut m = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(reason).or_insert(0) += 1;
    }
}

/// Fixed one-minute windows of request counts, bounded in size.
#[derive(Debug, Default)]
struct Windows {
    minute: u64,
    by_address: HashMap<IpAddr, u32>,
    by_ticket: HashMap<String, u32>,
}

/// How long the writer gathers changes before one write (a subscriber
/// waits this long, and a write's time, for its answer).
const WRITE_BATCH_MS: u64 = 200;

/// Tracked keys at most (each window starts empty).
const MAX_TRACKED: usize = 100_000;

/// The rate key of an address: IPv6 by its /64 (one host holds a /64).
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[derive(Debug)]
pub struct Push {
    pub cfg: PushConfig,
    origins: Vec<String>,
    dir: PathBuf,
    pub vapid: vapid::Vapid,
    guard: Arc<Guard>,
    subs: Mutex<Subs>,
    windows: Mutex<Windows>,
    board: Mutex<Option<Arc<Board>>>,
    pub metrics: PushMetrics,
    /// The push runtime (its own thread).
    rt: tokio::runtime::Handle,
    outbox: mpsc::Sender<send::Job>,
    inbox: Mutex<Option<mpsc::Receiver<send::Job>>>,
    dirty: Notify,
    /// Changes asked to be written (a generation), and the last write:
    /// the generation it covered and whether it reached the disk. A new
    /// subscription is answered only once a write covering it is done
    /// (outside tester push-rt6 F4: a stop within 0.2 s of "subscribed"
    /// lost it).
    requested: AtomicU64,
    saved: tokio::sync::watch::Sender<(u64, bool)>,
    /// Subscribe checks (a DNS lookup each) in flight at once.
    checks: Arc<Semaphore>,
    /// Whether the office's data has expired (the relay's own flag).
    stale: Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
    /// Damaged files set aside when the folder was opened.
    pub set_aside: u64,
}

impl Push {
    /// Opens `state_dir/push` (the VAPID key, the subscriptions) and
    /// starts the push runtime's thread.
    pub fn open(cfg: &crate::config::Config) -> Result<Arc<Push>, PushError> {
        let dir = cfg.state_dir.join("push");
        fs_create(&dir)?;
        let (vapid, subs, set_aside) = open_state(&dir)?;
        let rt = runtime()?;
        let (outbox, inbox) = mpsc::channel(cfg.push.queue);
        let guard = Arc::new(Guard::new(&cfg.push.services, &cfg.push.private_ok));
        tracing::info!(subscriptions = subs.by_endpoint.len(), "web push ready");
        Ok(Arc::new(Push {
            origins: cfg.public.origins.clone(),
            dir,
            vapid,
            guard,
            subs: Mutex::new(subs),
            windows: Mutex::new(Windows::default()),
            board: Mutex::new(None),
            metrics: PushMetrics::default(),
            rt,
            outbox,
            inbox: Mutex::new(Some(inbox)),
            dirty: Notify::new(),
            requested: AtomicU64::new(0),
            saved: tokio::sync::watch::Sender::new((0, true)),
            checks: Arc::new(Semaphore::new(16)),
            stale: Mutex::new(None),
            set_aside,
            cfg: cfg.push.clone(),
        }))
    }

    /// Whether the office's data has expired.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|rx| *rx.borrow())
    }

    /// Starts watching the ticket topic, the sender and the writer;
    /// `stale` is the relay's flag for expired office data.
    pub fn start(
        self: &Arc<Self>,
        hub: &Hub,
        stale: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), PushError> {
        *self.stale.lock().unwrap_or_else(|p| p.into_inner()) = Some(stale);
        let client = send::client(&self.cfg, self.guard.clone())?;
        let sub = hub.subscribe("ticket");
        let me = self.clone();
        self.rt.spawn(async move { me.watch(sub).await });
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(inbox) = inbox {
            let me = self.clone();
            self.rt
                .spawn(async move { send::run(me, client, inbox).await });
        }
        let me = self.clone();
        self.rt.spawn(async move { me.writer().await });
        Ok(())
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn board(&self) -> Option<Arc<Board>> {
        self.board.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn count(&self) -> usize {
        self.subs().by_endpoint.len()
    }

    /// Follows the ticket topic: each new version decides every
    /// subscription (a lagging watcher just reads the newest).
    async fn watch(self: Arc<Self>, mut sub: crate::hub::Subscription) {
        use tokio::sync::broadcast::error::RecvError;
        if let Some(p) = sub.current.take() {
            self.update(&p.body);
        }
        loop {
            match sub.updates.recv().await {
                Ok(p) => self.update(&p.body),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// One new version of the ticket data.
    pub fn update(&self, body: &str) {
        let Some(board) = Board::parse(body) else {
            return;
        };
        let board = Arc::new(board);
        *self.board.lock().unwrap_or_else(|p| p.into_inner()) = Some(board.clone());
        self.decide_now(&board, None);
    }

    /// Decides every subscription (or only the one of `only`, a new one:
    /// the subscribe route runs on the public runtime and must not walk
    /// them all) against `board`; queues the notices and ends the
    /// subscriptions whose ticket or day is over.
    fn decide_now(&self, board: &Board, only: Option<&str>) {
        let mut jobs = Vec::new();
        let mut changed = false;
        let mut one = |s: &mut store::Sub| -> bool {
            let before = s.progress.clone();
            let (notice, fate) = notice::decide(board, &s.ticket, s.threshold, &mut s.progress);
            changed |= before != s.progress || fate == Fate::End;
            if let Some(n) = notice {
                jobs.extend(send::Job::new(s, notice::payload(&n, &s.ticket, s.lang)));
            }
            if fate == Fate::End {
                add(&self.metrics.ended);
            }
            fate == Fate::Keep
        };
        {
            let mut subs = self.subs();
            match only {
                None => subs.by_endpoint.retain(|_, s| one(s)),
                Some(endpoint) => {
                    if subs.by_endpoint.get_mut(endpoint).is_some_and(|s| !one(s)) {
                        subs.by_endpoint.remove(endpoint);
                    }
                }
            }
        }
        for j in jobs {
            self.enqueue(j);
        }
        if changed {
            self.mark_dirty();
        }
    }

    fn enqueue(&self, job: send::Job) {
        if self.outbox.try_send(job).is_err() {
            // Bounded: a flood of notices never grows memory.
            add(&self.metrics.queue_full);
        }
    }

    /// Drops a subscription (its push service said it is gone).
    pub fn forget(&self, endpoint: &str) {
        if self.subs().by_endpoint.remove(endpoint).is_some() {
            self.mark_dirty();
        }
    }

    /// Asks for the subscriptions to be written; the generation to wait
    /// for (see [`Self::written`]).
    fn mark_dirty(&self) -> u64 {
        let generation = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.dirty.notify_one();
        generation
    }

    /// Waits (at most `deadline`) until a write covering `generation` is
    /// done; whether it reached the disk.
    async fn written(&self, generation: u64, deadline: Duration) -> bool {
        let mut rx = self.saved.subscribe();
        let done = tokio::time::timeout(deadline, rx.wait_for(|(g, _)| *g >= generation)).await;
        matches!(done, Ok(Ok(v)) if v.1)
    }

    /// Writes the subscriptions after changes, at most a few times a second.
    async fn writer(self: Arc<Self>) {
        loop {
            self.dirty.notified().await;
            tokio::time::sleep(Duration::from_millis(WRITE_BATCH_MS)).await;
            // Read before the snapshot: every change marked up to here is
            // in it (a change is made before it is marked).
            let generation = self.requested.load(Ordering::SeqCst);
            let snapshot: Vec<store::Sub> = self.subs().by_endpoint.values().cloned().collect();
            let dir = self.dir.clone();
            let ok = match tokio::task::spawn_blocking(move || store::save(&dir, snapshot)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "push subscriptions not saved");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "push subscriptions not saved");
                    false
                }
            };
            self.saved.send_replace((generation, ok));
        }
    }

    /// The current minute's counters (a new minute starts them afresh);
    /// `None` when the tables are full (then everyone waits a minute).
    fn window<T>(&self, f: impl FnOnce(&mut Windows) -> T) -> Option<T> {
        let minute = now_s().max(0) as u64 / 60;
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.minute != minute {
            *w = Windows {
                minute,
                ..Windows::default()
            };
        }
        (w.by_address.len() < MAX_TRACKED && w.by_ticket.len() < MAX_TRACKED).then(|| f(&mut w))
    }

    /// Counts a request against its address's minute.
    fn admit_address(&self, ip: IpAddr) -> bool {
        let max = self.cfg.per_address_per_minute;
        self.window(|w| {
            let n = w.by_address.entry(rate_key(ip)).or_insert(0);
            *n = n.saturating_add(1);
            *n <= max
        })
        .unwrap_or(false)
    }

    /// Counts a request against its ticket's minute.
    fn admit_ticket(&self, token: &str) -> bool {
        let max = self.cfg.per_ticket_per_minute;
        self.window(|w| {
            let n = w.by_ticket.entry(token.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n <= max
        })
        .unwrap_or(false)
    }

    /// The `/metrics` lines.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let m = &self.metrics;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (addresses, tickets) = {
            let w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            (w.by_address.len() as u64, w.by_ticket.len() as u64)
        };
        for (name, kind, help, v) in [
            (
                "push_subscriptions",
                "gauge",
                "Web Push subscriptions held.",
                self.count() as u64,
            ),
            (
                "push_subscribe_accepted_total",
                "counter",
                "Subscriptions taken.",
                g(&m.accepted),
            ),
            (
                "push_sent_total",
                "counter",
                "Pushes the push service accepted.",
                g(&m.sent),
            ),
            (
                "push_failed_total",
                "counter",
                "Pushes given up (after retries, or refused).",
                g(&m.failed),
            ),
            (
                "push_gone_total",
                "counter",
                "Subscriptions dropped on 404/410 from the push service.",
                g(&m.gone),
            ),
            (
                "push_retries_total",
                "counter",
                "Push attempts retried after a timeout, 429 or 5xx.",
                g(&m.retries),
            ),
            (
                "push_queue_full_total",
                "counter",
                "Notices dropped because the push queue was full.",
                g(&m.queue_full),
            ),
            (
                "push_in_flight",
                "gauge",
                "Pushes being sent now.",
                g(&m.in_flight),
            ),
            (
                "push_ended_total",
                "counter",
                "Subscriptions ended with their ticket or day.",
                g(&m.ended),
            ),
            (
                "push_unsafe_address_total",
                "counter",
                "Pushes refused at connect time because the endpoint now resolves to a refused address (its subscription is dropped).",
                g(&m.unsafe_address),
            ),
            (
                "push_rate_addresses",
                "gauge",
                "Addresses counted in this minute's subscribe rate window.",
                addresses,
            ),
            (
                "push_rate_tickets",
                "gauge",
                "Tickets counted in this minute's subscribe rate window.",
                tickets,
            ),
        ] {
            let _ = writeln!(out, "# HELP madoguchi_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE madoguchi_relay_{name} {kind}");
            let _ = writeln!(out, "madoguchi_relay_{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP madoguchi_relay_push_refused_total Subscribe/unsubscribe requests refused, by reason.\n\
             # TYPE madoguchi_relay_push_refused_total counter"
        );
        let refused = m.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut reasons: Vec<_> = refused.iter().collect();
        reasons.sort();
        for (reason, n) in reasons {
            let _ = writeln!(
                out,
                "madoguchi_relay_push_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn now_s() -> i64 {
    madoguchi_wire::UnixSeconds::now().0
}

/// The VAPID key and the subscriptions in `dir`, and how many damaged
/// files were set aside (relay-rt2 F2(c)): a file that is there but does
/// not parse is renamed `<name>.set-aside-<unix seconds>` (kept for
/// inspection, never deleted) and replaced — a new key, an empty list —
/// so an optional feature's damaged file does not stop the relay nor Web
/// Push. A new key also sets the subscriptions aside: they were made for
/// the old key, and push services refuse pushes signed with another, so
/// those visitors must subscribe again. A file that cannot be *read* (EIO,
/// permissions, a folder in its place) may be fine: nothing is renamed or
/// replaced, and the error is returned (the relay then serves without
/// Web Push).
fn open_state(dir: &std::path::Path) -> Result<(vapid::Vapid, Subs, u64), PushError> {
    let mut aside = 0;
    let vapid = match vapid::Vapid::open(dir) {
        Err(PushError::Damaged { path, why }) => {
            let moved = set_aside(&path)?;
            aside += 1;
            tracing::error!(
                path = %path.display(),
                set_aside = %moved.display(),
                %why,
                "Web Push の鍵 (vapid.pk8) が壊れているため、別名で退避して新しい鍵を作りました。これまでの通知の登録は使えなくなるため、来庁者は登録し直す必要があります / the VAPID key is damaged: set aside (renamed, kept) and a new key made; subscriptions made for the old key cannot be used (visitors must subscribe again)"
            );
            let subs = store::path(dir);
            match std::fs::symlink_metadata(&subs) {
                Ok(_) => {
                    let moved = set_aside(&subs)?;
                    aside += 1;
                    tracing::error!(
                        path = %subs.display(),
                        set_aside = %moved.display(),
                        "古い鍵の通知の登録を別名で退避しました / the subscriptions made for the old VAPID key are set aside"
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(PushError::Io { path: subs, source }),
            }
            vapid::Vapid::open(dir)?
        }
        other => other?,
    };
    let subs = match store::load(dir) {
        Err(PushError::Damaged { path, why }) => {
            let moved = set_aside(&path)?;
            aside += 1;
            tracing::error!(
                path = %path.display(),
                set_aside = %moved.display(),
                %why,
                "Web Push の登録ファイルが壊れているため、別名で退避し、登録なしで始めます。来庁者は登録し直す必要があります / the push subscriptions file is damaged: set aside (renamed, kept); starting with none (visitors must subscribe again)"
            );
            Subs::default()
        }
        other => other?,
    };
    Ok((vapid, subs, aside))
}

/// Renames a damaged push file aside (the relay's one naming rule).
fn set_aside(path: &std::path::Path) -> Result<PathBuf, PushError> {
    crate::store::set_aside(path).map_err(|e| match e {
        crate::store::StoreError::Io { path, source } => PushError::Write { path, source },
        crate::store::StoreError::Damaged { path, why } => PushError::Damaged { path, why },
    })
}

fn fs_create(dir: &std::path::Path) -> Result<(), PushError> {
    std::fs::create_dir_all(dir).map_err(|source| PushError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// A current-thread runtime on a thread of its own, alive for the process.
fn runtime() -> Result<tokio::runtime::Handle, PushError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("push".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })
        .map_err(|e| PushError::Runtime(e.to_string()))?;
    rx.recv()
        .map_err(|e| PushError::Runtime(e.to_string()))?
        .map_err(PushError::Runtime)
}
