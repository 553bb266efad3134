//! The standalone relay (R6, R11): two TLS listeners — `public` serves the
//! site and its pushes to the internet, `ingest` takes signed bundles from
//! the office — sharing one in-memory site and one hub. Every connection
//! passes the limiter before its TLS handshake, the handshake has its own
//! timeout, hyper gets a timer so its header-read timeout really fires, and
//! a watchdog closes connections on which nothing moves. The ingest side
//! speaks HTTP/1.1 only (ALPN and server alike): one request at a time per
//! connection, so its body limit is per connection, not per HTTP/2 stream.

mod hello;
pub mod ingest;
mod public;
pub mod slots;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Limits};
use crate::conn::{Activity, Limiter, Slot, Tracked};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::site::Site;
use crate::store::Store;

#[derive(Debug)]
pub struct Relay {
    pub cfg: Config,
    keys: Vec<VerifyingKey>,
    site: RwLock<Arc<Site>>,
    /// Shared with the blocking task that writes a bundle (`lock_owned`).
    store: Arc<tokio::sync::Mutex<Store>>,
    pub hub: Hub,
    pub metrics: Metrics,
    limiter: Arc<Limiter>,
    /// The bytes bundle bodies being received may hold in all
    /// (`ingest.max_bytes_in_flight`): however many connections the office
    /// (or a thief of its key) opens, bodies in memory stay within it.
    inflight: Arc<tokio::sync::Semaphore>,
    /// One bundle's worth (`ingest.max_bundle_bytes`) more, for bodies on
    /// connections in the office's slots only (their hello carried the
    /// office's token): a holder of a stolen key uploading slowly on
    /// connections without one fills `inflight`, never this, so the
    /// office's bundles are not `busy` because of it (relay-rt9 F4).
    office_inflight: Arc<tokio::sync::Semaphore>,
    /// True while the served data is past its expiry.
    stale: watch::Sender<bool>,
    /// The nonces of the office's hello tokens taken (each once).
    hellos: hello::Nonces,
    /// Web Push (issue 20), unless `push.enabled = false`.
    pub push: Option<Arc<crate::push::Push>>,
    /// The WebSocket subscribers' writer loops, started by [`run`]
    /// (issue 21).
    fanout: OnceLock<crate::fanout::Fanout>,
}

impl crate::fanout::Host for Relay {
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn heartbeat(&self) -> bytes::Bytes {
        crate::ws::text_frame(&madoguchi_wire::time::heartbeat(
            madoguchi_wire::UnixMillis::now(),
        ))
    }
}

fn unix_now() -> madoguchi_wire::UnixSeconds {
    madoguchi_wire::UnixSeconds::now()
}

impl Relay {
    /// Opens the state folder and rebuilds the last served site.
    pub fn open(cfg: Config) -> anyhow::Result<Arc<Relay>> {
        let keys = cfg.office_keys();
        let (store, site) = Store::open(&cfg.state_dir, &keys)?;
        let metrics = Metrics::default();
        metrics.set_aside.store(store.set_aside, Ordering::Relaxed);
        metrics
            .last_seq
            .store(store.last_seq(), std::sync::atomic::Ordering::Relaxed);
        metrics
            .site_expires
            .store(site.expires.0, std::sync::atomic::Ordering::Relaxed);
        let stale = site.expires <= unix_now();
        let hub = Hub::with_backlog(cfg.limits.subscriber_queue);
        for (topic, body) in site.topic_payloads(site.files.keys()) {
            hub.publish(&topic, body);
        }
        // relay-rt2 F2(c): a push file that cannot be used must not take the
        // public site down; the relay runs without Web Push and says so.
        // A damaged push file is set aside and replaced (`push::open_state`);
        // one that cannot be read leaves the relay serving without Web Push,
        // and says so (stderr and `push_unavailable`).
        let push = match cfg.push.enabled {
            true => match crate::push::Push::open(&cfg) {
                Ok(p) => {
                    metrics.set_aside.fetch_add(p.set_aside, Ordering::Relaxed);
                    Some(p)
                }
                Err(e) => {
                    metrics.push_unavailable.store(true, Ordering::Relaxed);
                    // relay-rt5 R5: say whether it could not be read or
                    // not written (a full disk), as the error does.
                    let (ja, en) = match e {
                        crate::push::PushError::Write { .. } => (
                            "Web Push の状態ファイルを書き込めないため（ディスクの空きを確認してください）",
                            "Web Push state cannot be written (check the free space)",
                        ),
                        _ => (
                            "Web Push の状態ファイルが読めないため",
                            "Web Push state cannot be read",
                        ),
                    };
                    tracing::error!(
                        error = %e,
                        "{ja}、通知なしで公開を続けます (既存のファイルは変更していません) / {en}: serving the public site without Web Push (no existing file was renamed or replaced)"
                    );
                    None
                }
            },
            false => None,
        };
        let relay = Arc::new(Relay {
            push,
            limiter: Limiter::new(cfg.limits.connections, cfg.limits.connections_per_ip),
            inflight: Arc::new(tokio::sync::Semaphore::new(cfg.ingest.max_bytes_in_flight)),
            office_inflight: Arc::new(tokio::sync::Semaphore::new(cfg.ingest.max_bundle_bytes)),
            keys,
            site: RwLock::new(Arc::new(site)),
            store: Arc::new(tokio::sync::Mutex::new(store)),
            hub,
            metrics,
            stale: watch::channel(stale).0,
            hellos: hello::Nonces::default(),
            fanout: OnceLock::new(),
            cfg,
        });
        relay.note_impossible_sequence();
        if let Some(p) = &relay.push {
            p.start(&relay.hub, relay.stale_watch())?;
        }
        Ok(relay)
    }

    /// Sets the `sequence_impossible` gauge, and says so loudly when the
    /// held sequence is ahead of this relay's clock plus the allowed skew
    /// (accepted before the sequence rules, or the relay's clock is far
    /// behind): the office's bundles are refused until a signed reset
    /// (deploy/README.md, "Resetting a relay").
    pub fn note_impossible_sequence(&self) {
        let held = self.metrics.last_seq.load(Ordering::Relaxed);
        let impossible = madoguchi_wire::rules::held_is_impossible(
            held,
            madoguchi_wire::UnixMillis::now(),
            &self.cfg.ingest.rules(),
        );
        let was = self
            .metrics
            .sequence_impossible
            .swap(impossible, Ordering::Relaxed);
        if impossible && !was {
            tracing::error!(
                held,
                relay = %self.cfg.ingest.name,
                "the held sequence is ahead of this relay's clock: the office's bundles will be \
                 refused until it sends a signed reset (deploy/README.md, Resetting a relay)"
            );
        }
    }

    pub fn site(&self) -> Arc<Site> {
        self.site
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn swap(&self, site: Site) {
        let mut slot = self.site.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(site);
    }

    pub fn is_stale(&self) -> bool {
        *self.stale.borrow()
    }

    /// The writer loops, once [`run`] has started them.
    pub fn fanout(&self) -> Option<&crate::fanout::Fanout> {
        self.fanout.get()
    }

    pub fn stale_watch(&self) -> watch::Receiver<bool> {
        self.stale.subscribe()
    }

    fn limits(&self) -> &Limits {
        &self.cfg.limits
    }
}

/// Addresses the relay listens on (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub public: SocketAddr,
    pub ingest: SocketAddr,
}

/// Binds both listeners and serves until the process ends.
pub async fn run(relay: Arc<Relay>, on_bound: impl FnOnce(Bound)) -> anyhow::Result<()> {
    let (public_tls, public_cert) = crate::tls::reloadable_config(&relay.cfg.public.tls)?;
    let (ingest_tls, ingest_cert) = crate::tls::reloadable_config(&relay.cfg.ingest.tls)?;
    // The ingest side speaks HTTP/1.1 only: one request at a time per
    // connection, so the body limit is per connection, not per stream
    // (HTTP/2 multiplied it by 32 streams; red-team finding 2).
    let ingest_tls = {
        let mut c = (*ingest_tls).clone();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    };
    let limits = relay.limits();
    let public = bind(
        relay.cfg.public.listen,
        limits.listen_backlog,
        limits.listeners,
    )?;
    // The ingest line has one peer: one socket is plenty.
    let ingest = bind(relay.cfg.ingest.listen, limits.listen_backlog, 1)?;
    on_bound(Bound {
        public: public[0].local_addr()?,
        ingest: ingest[0].local_addr()?,
    });
    // One writer loop per core for the WebSocket subscribers (issue 21).
    relay.fanout.get_or_init(|| {
        crate::fanout::Fanout::start(
            &relay.hub,
            Arc::downgrade(&relay),
            relay.stale_watch(),
            relay.cfg.limits.heartbeat(),
            0,
        )
    });
    tokio::spawn(expiry_watch(relay.clone()));
    tokio::spawn(cert_watch(relay.clone(), vec![public_cert, ingest_cert]));
    // The ingest line has one legitimate peer; keep its own small limit so
    // a flood on the public side cannot starve it, or the reverse.
    // Unproven connections (no signed office head yet) give way to newer
    // ones when the limits are reached (`slots`).
    let ingest_slots = slots::Slots::new(64, 16, slots::GRACE);
    let weak = Arc::downgrade(&relay);
    ingest_slots.set_vouch(Arc::new(move |token: &[u8]| {
        weak.upgrade().is_some_and(|r| {
            r.hellos.vouches(
                token,
                &r.cfg.ingest.name,
                &r.keys,
                madoguchi_wire::UnixMillis::now(),
                Duration::from_secs(r.cfg.ingest.clock_skew_s),
            )
        })
    }));
    let mut tasks = Vec::new();
    for l in ingest {
        tasks.push(tokio::spawn(accept_loop(
            relay.clone(),
            l,
            TlsAcceptor::from(ingest_tls.clone()),
            Gate::Ingest(ingest_slots.clone()),
        )));
    }
    for l in public {
        tasks.push(tokio::spawn(accept_loop(
            relay.clone(),
            l,
            TlsAcceptor::from(public_tls.clone()),
            Gate::Public(relay.limiter.clone()),
        )));
    }
    let (first, _, _) = futures_util::future::select_all(tasks).await;
    first?
}

/// Listening sockets for `addr`: `count` of them (0: one per core) sharing
/// the port with `SO_REUSEPORT`, each with its own accept queue of
/// `backlog`, so a reconnect storm is spread over the cores instead of
/// overflowing one queue of the default 128.
pub fn bind(addr: SocketAddr, backlog: u32, count: usize) -> std::io::Result<Vec<TcpListener>> {
    let count = match count {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(64);
    // An exclusive bind first: `SO_REUSEPORT` alone would let a second
    // relay of the same user share the port silently; this one fails
    // loudly instead, and resolves port 0 for the shared sockets.
    let addr = std::net::TcpListener::bind(addr)?.local_addr()?;
    (0..count)
        .map(|_| {
            let s = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            s.set_reuseaddr(true)?;
            if count > 1 {
                s.set_reuseport(true)?;
            }
            s.bind(addr)?;
            s.listen(backlog)
        })
        .collect()
}

/// Takes renewed certificates: every `cert_check_s` the files are checked
/// for a change, and on SIGHUP they are loaded at once. Open connections
/// keep the certificate they shook hands with; a refused pair is a fault
/// (log and `tls_cert_refused`) and the old certificate stays.
async fn cert_watch(relay: Arc<Relay>, certs: Vec<Arc<crate::tls::Reloadable>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: certificates are checked on the timer only");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(relay.cfg.limits.cert_check_s.max(1)));
    tick.tick().await;
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let (mut refused, mut loaded) = (false, false);
        for c in &certs {
            match c.reload(force) {
                crate::tls::Reload::Unchanged => {}
                crate::tls::Reload::Loaded { renewed } => {
                    loaded = true;
                    if renewed {
                        Metrics::add(&relay.metrics.cert_renewals);
                        tracing::info!(cert = %c.cert_path().display(), "renewed certificate taken");
                    }
                }
                crate::tls::Reload::Refused(e) => {
                    refused = true;
                    Metrics::add(&relay.metrics.cert_refusals);
                    tracing::error!(error = %e, "new certificate refused; the old one is still served");
                }
            }
        }
        // The fault stands until files that load replace the refused ones
        // (a check that finds nothing changed leaves it as it is).
        if refused {
            relay.metrics.cert_refused.store(true, Ordering::Relaxed);
        } else if loaded {
            relay.metrics.cert_refused.store(false, Ordering::Relaxed);
        }
    }
}

/// Flips the stale flag when the served bundle's expiry passes.
async fn expiry_watch(relay: Arc<Relay>) {
    loop {
        let expires = relay.site().expires;
        let stale = expires <= unix_now();
        relay
            .stale
            .send_if_modified(|s| std::mem::replace(s, stale) != stale);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Public,
    Ingest,
}

/// How a listener admits connections.
#[derive(Debug, Clone)]
enum Gate {
    Public(Arc<Limiter>),
    Ingest(Arc<slots::Slots>),
}

/// An admitted connection's hold on its slot.
#[derive(Debug, Clone)]
enum Admission {
    Public(Arc<Slot>),
    Ingest(Arc<slots::Ticket>),
}

/// Takes connections off one listening socket. Each `accept` takes what
/// is queued without waiting (tokio waits only once the queue is empty),
/// and the loop does no more per connection than the address checks and a
/// spawn, so the queue drains as fast as connections arrive; the TLS
/// handshake runs in the connection's own task.
async fn accept_loop(
    relay: Arc<Relay>,
    listener: TcpListener,
    tls: TlsAcceptor,
    gate: Gate,
) -> anyhow::Result<()> {
    let side = match gate {
        Gate::Public(_) => Side::Public,
        Gate::Ingest(_) => Side::Ingest,
    };
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if side == Side::Ingest && !relay.cfg.ingest.allow.contains(&peer.ip().to_canonical()) {
            // Before TLS and before a slot: a stranger costs an accept.
            Metrics::add(&relay.metrics.strangers_dropped);
            drop(tcp);
            continue;
        }
        let admitted = match &gate {
            Gate::Public(l) => l.admit(peer.ip()).map(Admission::Public),
            Gate::Ingest(s) => {
                s.admit(peer.ip().to_canonical(), dup(&tcp))
                    .map(|(ticket, evicted)| {
                        for _ in 0..evicted {
                            Metrics::add(&relay.metrics.unproven_evicted);
                        }
                        Admission::Ingest(Arc::new(ticket))
                    })
            }
        };
        let Some(slot) = admitted else {
            Metrics::add(&relay.metrics.connections_refused);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let relay = relay.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_connection(relay, tcp, peer, tls, slot).await;
        });
    }
}

/// A second handle on an accepted socket (for [`slots`] to peek at), or
/// `None` when the process is out of file descriptors.
fn dup(tcp: &tokio::net::TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    let fd = tcp.as_fd().try_clone_to_owned().ok()?;
    Some(std::net::TcpStream::from(fd))
}

async fn serve_connection(
    relay: Arc<Relay>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    slot: Admission,
) {
    let limits = relay.limits().clone();
    let (side, handshake, ticket) = match &slot {
        Admission::Public(_) => (Side::Public, limits.handshake(), None),
        Admission::Ingest(t) => (
            Side::Ingest,
            Duration::from_secs(relay.cfg.ingest.handshake_timeout_s),
            Some(t.clone()),
        ),
    };
    // An evicted ingest connection closes at once, in its handshake or after.
    let evicted = {
        let ticket = ticket.clone();
        async move {
            match ticket {
                Some(t) => t.evicted().await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::pin!(evicted);
    let activity = Activity::new();
    let io = Tracked::new(tcp, activity.clone());
    let handshaking = match &ticket {
        None => tls.accept(io),
        Some(t) => {
            // An ingest connection waits in the lobby until its ClientHello
            // has been read, which decides its pool (`slots`, `hello`).
            let lazy =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
            let start = tokio::select! {
                r = tokio::time::timeout(handshake, lazy) => match r {
                    Ok(Ok(s)) => s,
                    _ => {
                        Metrics::add(&relay.metrics.handshakes_failed);
                        return;
                    }
                },
                // Counted as evicted when it was closed.
                () = &mut evicted => return,
            };
            // Read: no longer taken for silent while its token is judged
            // (relay-rt9 F1).
            t.heard();
            if !claim_by_hello(&relay, peer, t, start.client_hello().alpn()) {
                return;
            }
            start.into_stream(tls.config().clone())
        }
    };
    let stream = tokio::select! {
        r = tokio::time::timeout(handshake, handshaking) => match r {
            Ok(Ok(s)) => s,
            _ => {
                Metrics::add(&relay.metrics.handshakes_failed);
                return;
            }
        },
        () = &mut evicted => return,
    };
    let r = relay.clone();
    let head = HeadClock::new();
    let head_in = head.clone();
    let admission = slot.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let r = r.clone();
        let admission = admission.clone();
        let head = head_in.clone();
        async move {
            let res = match admission {
                Admission::Public(slot) => public::handle(r, req, peer, slot).await,
                Admission::Ingest(ticket) => {
                    head.in_request();
                    let res = ingest::handle(r, req, peer, &ticket).await;
                    head.waiting();
                    res
                }
            };
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let conn = http_connection(side, &limits, stream, service);
    // A connection that has not yet shown the office's signed head gets
    // the short deadline — also in the office's slots, where a token copied
    // off the wire gets no longer — and a proven one the longer (an office
    // of the older kind keeps its connection in a pool between bundles).
    let head_limit = ticket.map(|t| HeadLimit {
        unproven: Duration::from_secs(relay.cfg.ingest.unproven_head_timeout_s),
        proven: Duration::from_secs(relay.cfg.ingest.head_timeout_s),
        ticket: t,
    });
    tokio::select! {
        _ = conn => {}
        _ = activity.idle(limits.idle()) => {}
        _ = head.overdue(head_limit.as_ref()) => {}
        () = &mut evicted => {}
    }
    drop(slot);
}

/// Judges an ingest connection's ClientHello (its ALPN carries the office's
/// signed token, `hello`) and claims a slot of the pool it earns: the
/// office's reserved slots or the shared ones. False when no slot is left
/// (the connection is then closed and counted).
fn claim_by_hello<'a>(
    relay: &Relay,
    peer: SocketAddr,
    t: &slots::Ticket,
    alpn: Option<impl Iterator<Item = &'a [u8]>>,
) -> bool {
    let verdict = relay.hellos.judge(
        alpn,
        &relay.cfg.ingest.name,
        &relay.keys,
        madoguchi_wire::UnixMillis::now(),
        Duration::from_secs(relay.cfg.ingest.clock_skew_s),
    );
    let claimed = match verdict {
        hello::Verdict::Office => {
            Metrics::add(&relay.metrics.office_hellos);
            t.claim_office().inspect(|n| {
                for _ in 0..*n {
                    Metrics::add(&relay.metrics.office_evicted);
                }
            })
        }
        other => {
            match other {
                hello::Verdict::Refused(hello::Refusal::Invalid) => {
                    Metrics::add(&relay.metrics.hello_invalid)
                }
                hello::Verdict::Refused(hello::Refusal::Replayed) => {
                    tracing::warn!(%peer, "ingest hello with a token already used: shared slots only");
                    Metrics::add(&relay.metrics.hello_replayed)
                }
                hello::Verdict::Refused(hello::Refusal::Full) => {
                    tracing::error!(%peer, "有効期間内の、事務所の鍵で署名された接続トークンが4096件を超えました。鍵の漏えいを疑い、鍵を交換してください / more than 4096 tokens signed with an office key are fresh at once: the key may have leaked, replace it; shared slots only");
                    Metrics::add(&relay.metrics.hello_nonces_full)
                }
                _ => {}
            }
            t.claim().inspect(|n| {
                for _ in 0..*n {
                    Metrics::add(&relay.metrics.unproven_evicted);
                }
            })
        }
    };
    if claimed.is_none() {
        // One closed for a newer connection was counted as evicted.
        if !t.was_evicted() {
            Metrics::add(&relay.metrics.connections_refused);
        }
        return false;
    }
    true
}

/// Serves HTTP on an accepted TLS stream: HTTP/1.1 and HTTP/2 on the public
/// side, HTTP/1.1 only on ingest (the office speaks nothing else), each with
/// the header deadline and size limits of [`Limits`].
fn http_connection<S>(
    side: Side,
    limits: &Limits,
    stream: tokio_rustls::server::TlsStream<Tracked<tokio::net::TcpStream>>,
    service: S,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<public::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    match side {
        Side::Public => {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read())
                .max_buf_size(limits.max_header_bytes.max(8192))
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_header_list_size(limits.max_header_bytes as u32)
                .max_concurrent_streams(32)
                .keep_alive_interval(Some(Duration::from_secs(30)));
            Box::pin(async move {
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            })
        }
        Side::Ingest => {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read())
                .max_buf_size(limits.max_header_bytes.max(8192))
                .keep_alive(true);
            Box::pin(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            })
        }
    }
}

/// The head deadline of an ingest connection, by whether it has proven
/// itself the office's.
#[derive(Debug)]
struct HeadLimit {
    unproven: Duration,
    proven: Duration,
    ticket: Arc<slots::Ticket>,
}

impl HeadLimit {
    fn now(&self) -> Duration {
        if self.ticket.is_proven() {
            self.proven
        } else {
            self.unproven
        }
    }
}

/// When an ingest connection began waiting for its next request head
/// (after the handshake or the previous answer); `IN_REQUEST` while a
/// request is being handled. A deadline on the whole head, which bytes
/// trickling in do not extend (hyper's own timer starts at the first byte).
#[derive(Debug)]
struct HeadClock {
    origin: Instant,
    since_ms: AtomicU64,
}

const IN_REQUEST: u64 = u64::MAX;

impl HeadClock {
    fn new() -> Arc<HeadClock> {
        Arc::new(HeadClock {
            origin: Instant::now(),
            since_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(IN_REQUEST - 1)
    }

    fn in_request(&self) {
        self.since_ms.store(IN_REQUEST, Ordering::Relaxed);
    }

    fn waiting(&self) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once a head has been awaited for `limit`; never for `None`.
    async fn overdue(&self, limit: Option<&HeadLimit>) {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let limit_ms = u64::try_from(limit.now().as_millis()).unwrap_or(u64::MAX);
            let since = self.since_ms.load(Ordering::Relaxed);
            let wait = if since == IN_REQUEST {
                limit_ms
            } else {
                let waited = self.now_ms().saturating_sub(since);
                if waited >= limit_ms {
                    return;
                }
                limit_ms - waited
            };
            tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
        }
    }
}
