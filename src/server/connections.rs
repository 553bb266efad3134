//! Connections to the office server (issue 23, R11): one client on the LAN
//! cannot starve the staff stations. Every TCP connection — plain HTTP or a
//! WebSocket after its upgrade — holds a slot, capped per address and in
//! total (the total kept under the process's open-file limit, so the server
//! never runs out of descriptors); a connection is closed when it sends
//! nothing within the head deadline of opening, when nothing has moved for
//! the idle timeout, or when a request head or body is still arriving after
//! the head deadline (slow headers, slow bodies).
//!
//! The slots come from three pools (`slots.rs`): an open pool for
//! anyone, a reserve of a quarter for addresses a credential vouches for
//! (`known.rs`), each address and credential up to what its kind needs,
//! and a small share for never-seen addresses. A flood from strangers on
//! many addresses, each asking something every few seconds so that no
//! idle timeout sheds it, fills only the open pool (and perhaps the
//! newcomers' share); a flood shown a stolen credential holds a few more
//! slots of the reserve and no more; the staff stations, kiosks and
//! displays still connect, and a staff PC on a new address reaches
//! `/login`. A reserve connection whose address is no longer vouched for
//! (its device revoked, its account disabled) is closed on its next
//! request.
//!
//! Under pressure — when three quarters of the total slots are taken —
//! the idle timeout shrinks to [`PRESSED_IDLE`]: keep-alive connections
//! from many addresses that only sit there are shed first, while the
//! display WebSockets (a heartbeat every 10 s) and clients that keep
//! asking stay. Without this a few hundred idle keep-alives held every
//! slot for the full idle timeout (75 s) and the staff stations waited.
//! Shedding stops once the server is out of pressure again.
//!
//! The caps and timers live in the socket wrapper the listener hands to
//! axum, so they hold for every route, and for a WebSocket as long as it
//! lives (the upgraded socket carries its slot).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::known::KnownAddrs;
use super::slots::{Pool, Slot, Slots};

/// Descriptors kept back from the total cap for the log, the snapshots,
/// reports and outgoing connections.
const RESERVED_FILES: usize = 128;

/// The idle timeout while the server is pressed for slots: longer than
/// the display heartbeat (10 s), so live displays are never shed.
pub const PRESSED_IDLE: Duration = Duration::from_secs(15);

/// Whether `open` connections out of `total` count as pressure.
fn pressed(open: usize, total: usize) -> bool {
    open.saturating_mul(4) >= total.saturating_mul(3)
}

/// The limits, from `serve`'s flags.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_address: usize,
    pub total: usize,
    pub idle: Duration,
    pub head: Duration,
}

/// The soft limit on open files of this process (Linux), if known.
pub fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The total cap: as asked, but never closer than [`RESERVED_FILES`] to
/// the open-file limit (1,024 under the systemd unit gives 896).
pub fn total_cap(asked: usize) -> usize {
    match open_files_limit() {
        Some(limit) => asked.min(limit.saturating_sub(RESERVED_FILES).max(16)),
        None => asked,
    }
}

/// The office's listener: admits a connection only within the caps, and
/// completes the TLS handshake first when the server speaks TLS. Accepting
/// runs on its own task; `axum::serve` takes ready connections.
#[derive(Debug)]
pub struct Guarded {
    ready: tokio::sync::mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Guarded {
    /// Starts accepting on `inner` (inside the runtime).
    pub fn new(
        inner: TcpListener,
        limits: Limits,
        tls: Option<tokio_rustls::TlsAcceptor>,
        known: Arc<KnownAddrs>,
    ) -> std::io::Result<Guarded> {
        let local = inner.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let slots = Slots::new(limits.total, limits.per_address);
        let task = tokio::spawn(accept_loop(inner, slots, limits, tls, known, tx));
        Ok(Guarded { ready, local, task })
    }
}

async fn accept_loop(
    inner: TcpListener,
    slots: Arc<Slots>,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    known: Arc<KnownAddrs>,
    tx: tokio::sync::mpsc::Sender<(Conn, SocketAddr)>,
) {
    let mut refused = 0u64;
    loop {
        let (tcp, peer) = match inner.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The pools: open, the reserve for addresses a credential vouches
        // for, the newcomers' share (red-team findings F1, F2).
        let Some(slot) = slots.admit(peer.ip(), known.voucher(peer.ip())) else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, "connection refused: too many connections");
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let io = GuardedIo::new(tcp, Box::new(slot), slots.clone(), known.clone(), limits);
        match &tls {
            None => {
                if tx.send((Conn::Plain(io), peer)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let shake = tokio::time::timeout(limits.head, acceptor.accept(io)).await;
                    if let Ok(Ok(stream)) = shake {
                        let _ = tx.send((Conn::Tls(Box::new(stream)), peer)).await;
                    }
                });
            }
        }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accepting task ended (only when the server stops).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A connection as axum sees it: plain, or inside TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(GuardedIo),
    Tls(Box<tokio_rustls::server::TlsStream<GuardedIo>>),
}

impl Conn {
    /// Its requests in flight (its slot's).
    fn requests(&self) -> super::slots::Requests {
        match self {
            Conn::Plain(io) => io.slot.requests(),
            Conn::Tls(s) => s.get_ref().0.slot.requests(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection's socket with its slot and timers.
#[derive(Debug)]
pub struct GuardedIo {
    inner: TcpStream,
    slot: Box<Slot>,
    /// Read for the pressure check (how many slots are taken).
    slots: Arc<Slots>,
    /// Asked, for a reserve slot, whether its address is still vouched for.
    known: Arc<KnownAddrs>,
    limits: Limits,
    /// When a byte last moved either way; `None` until the first one (a
    /// new connection is held to the head deadline instead).
    last_moved: Option<Instant>,
    /// Fires when nothing has moved for `limits.idle`, or when a request
    /// is still arriving at its head deadline.
    idle: Pin<Box<tokio::time::Sleep>>,
    /// When the client started sending what the server has not answered
    /// yet (a request head or body in progress).
    sending_since: Option<Instant>,
    /// For a slot of the newcomers' share: when it ends, whatever moves.
    ends: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Written but not yet flushed: an answer still going out.
    unflushed: bool,
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

impl GuardedIo {
    fn new(
        inner: TcpStream,
        slot: Box<Slot>,
        slots: Arc<Slots>,
        known: Arc<KnownAddrs>,
        limits: Limits,
    ) -> GuardedIo {
        // The newcomers' share is for reaching the sign-in page, not for
        // holding: a flood that took it gives it back within seconds.
        let ends = (slot.pool() == Pool::Newcomer)
            .then(|| Box::pin(tokio::time::sleep(super::slots::NEWCOMER_LIFETIME)));
        // A new connection must start its request within the head deadline.
        GuardedIo {
            ends,
            inner,
            slot,
            slots,
            known,
            limits,
            last_moved: None,
            idle: Box::pin(tokio::time::sleep(limits.head)),
            sending_since: None,
            unflushed: false,
        }
    }

    /// The idle timeout that holds now: shorter under pressure.
    fn idle_now(&self) -> Duration {
        if pressed(self.slots.open(), self.limits.total) {
            self.limits.idle.min(PRESSED_IDLE)
        } else {
            self.limits.idle
        }
    }

    /// The idle timer fired: the connection is closed if it has been idle
    /// for the timeout that holds now; otherwise the timer is set to look
    /// again (pressure may come later, so an idle connection is looked at
    /// every [`PRESSED_IDLE`] at most).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            let Some(last) = self.last_moved else {
                return true;
            };
            let quiet = last.elapsed();
            let limit = self.idle_now();
            if quiet >= limit {
                return true;
            }
            let next = (limit - quiet).min(PRESSED_IDLE);
            let at = tokio::time::Instant::now() + next;
            self.idle.as_mut().reset(at);
        }
    }

    /// Something moved: the timer runs to the idle timeout again. (A
    /// request that stops arriving half-way looks, to a socket, like one
    /// whose handler is still working — a sign-in hashing a password — so
    /// a stalled head is closed by the idle timeout, and only a head still
    /// trickling in after its deadline by the check in `poll_read`.)
    fn moved(&mut self) {
        self.last_moved = Some(Instant::now());
        let at = tokio::time::Instant::now() + self.limits.idle.min(PRESSED_IDLE);
        self.idle.as_mut().reset(at);
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(ends) = self.ends.as_mut() {
            if ends.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(timed_out("a newcomer's connection ended")));
            }
        }
        if self.slot.poll_evicted(cx) {
            return Poll::Ready(Err(timed_out("another took this connection's place")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let now = Instant::now();
                let since = *self.sending_since.get_or_insert(now);
                if now.duration_since(since) > self.limits.head {
                    return Poll::Ready(Err(timed_out("request head or body too slow")));
                }
                // A reserve slot is held only while a credential vouches
                // for its address: a revoked device's connections end at
                // their next request, not when the attacker lets them go.
                if self.slot.pool() == Pool::Reserve && !self.known.is_known(self.slot.ip()) {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        "address no longer vouched for",
                    )));
                }
                // Bytes in are not yet a request: it counts as answering
                // once its whole head is in (`serve`), not from its first
                // byte (outside tester insider-rt5 F5).
                self.moved();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Waiting for a request with the last answer out: idle
                // between requests, the first to give its slot up
                // (slots.rs, N3-b).
                if self.sending_since.is_none() && !self.unflushed {
                    self.slot.set_answering(false);
                }
                if self.idle_expired(cx) {
                    return Poll::Ready(Err(timed_out("idle connection")));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            // An answer: whatever the client sent was taken in time.
            self.sending_since = None;
            self.unflushed = true;
            self.slot.set_answering(true);
            self.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.sending_since = None;
            self.unflushed = true;
            self.slot.set_answering(true);
            self.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.unflushed = false;
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The slowest a request body may arrive once its head is in, beyond the
/// head deadline: 64 KiB a second (a LAN does a hundred times that).
const BODY_MIN_BYTES_PER_SEC: u64 = 64 * 1024;

/// How long the body of a request may take to arrive: the head deadline,
/// plus its declared length at [`BODY_MIN_BYTES_PER_SEC`].
fn body_deadline(head: Duration, content_length: Option<u64>) -> Duration {
    head + Duration::from_secs(content_length.unwrap_or(0) / BODY_MIN_BYTES_PER_SEC)
}

/// A request body that fails once its deadline passes: a body that stops
/// arriving half-way no longer holds the connection (and its handler)
/// until the idle timeout (red-team finding, issue 23: 75 s instead of
/// the 15 s head deadline). The handler's body read fails, the answer is
/// our 400, and hyper closes the connection, whose body was not read to
/// its end.
fn timed_body(body: hyper::body::Incoming, within: Duration) -> axum::body::Body {
    use futures_util::StreamExt;
    if hyper::body::Body::is_end_stream(&body) {
        return axum::body::Body::new(body);
    }
    let until = tokio::time::Instant::now() + within;
    let stream = axum::body::Body::new(body).into_data_stream();
    let timed = futures_util::stream::unfold(Some(stream), move |left| async move {
        let mut stream = left?;
        match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(axum::Error::new(timed_out("request body too slow"))),
                None,
            )),
        }
    });
    axum::body::Body::from_stream(timed)
}

/// Serves `router` on the guarded listener until `signal`, then stops
/// gracefully (requests in flight are answered). Each connection is
/// served by hyper with a head deadline (`limits.head`, hyper's
/// `header_read_timeout`: a head begun must be in within it, however it
/// trickles — and the wait for the next head on a keep-alive connection
/// counts too), each request body within [`body_deadline`], and each
/// request knows its peer's address (`ConnectInfo`).
pub async fn serve(
    mut listener: Guarded,
    router: axum::Router,
    limits: Limits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::Listener;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    let mut signal = std::pin::pin!(signal);
    loop {
        let (io, peer) = tokio::select! {
            c = listener.accept() => c,
            () = &mut signal => break,
        };
        let inner = hyper_util::service::TowerToHyperService::new(router.clone());
        let requests = io.requests();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // hyper calls this once the whole head is in: from here
                // to the answer the connection is answering (slots.rs).
                let in_flight = requests.begin();
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let length = req
                    .headers()
                    .get(axum::http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let within = body_deadline(limits.head, length);
                let req = req.map(|b| timed_body(b, within));
                let answer = hyper::service::Service::call(&inner, req);
                async move {
                    let r = answer.await;
                    drop(in_flight);
                    r
                }
            });
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.head);
            builder.http2().enable_connect_protocol();
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::trace!(error = %e, "connection ended");
                        }
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_stays_under_the_open_file_limit() {
        if let Some(limit) = open_files_limit() {
            assert!(total_cap(usize::MAX) <= limit.saturating_sub(RESERVED_FILES).max(16));
        }
        assert!(total_cap(10) <= 10);
    }

    #[test]
    fn a_body_may_take_the_head_deadline_and_a_second_per_64_kib() {
        let head = Duration::from_secs(15);
        assert_eq!(body_deadline(head, None), head);
        assert_eq!(body_deadline(head, Some(1000)), head);
        assert_eq!(
            body_deadline(head, Some(10 * 64 * 1024)),
            Duration::from_secs(25)
        );
    }

    #[test]
    fn pressure_starts_at_three_quarters() {
        assert!(!pressed(0, 896));
        assert!(!pressed(671, 896));
        assert!(pressed(672, 896));
        assert!(pressed(896, 896));
    }
}
