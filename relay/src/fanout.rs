//! Per-worker write loops for the WebSocket subscribers (issue 21; R6).
//!
//! The profile of issue 21 left, besides the kernel's TCP path and
//! AES-GCM, one task wake-up per subscriber per publish: every subscriber
//! was a task woken by a broadcast channel. Now a publish is handed to a
//! few writer loops (one per core), and each writes the shared encoded
//! frame ([`crate::hub::Payload::frame`]) into its subscribers' TLS streams
//! in one pass, without waking any subscriber's task.
//!
//! A subscriber ([`Sub`]) keeps its stream behind a lock that the writer
//! and the subscriber's own task take in turn. A write goes straight into
//! the stream; what the socket does not take at once waits in the
//! subscriber's queue, and the stream is told to wake the subscriber's own
//! task when the socket can take more: only a slow subscriber's task is
//! ever woken for writing. A subscriber that falls `backlog` frames behind
//! is dropped and closed, and so is one whose writes have not moved for
//! [`WRITE_TIMEOUT`] (the slow-subscriber rule of `limits.subscriber_queue`).
//! The subscriber's task otherwise only waits for what the client sends —
//! control frames (ping, pong, close), anything else closes — so its read
//! side and the idle rules stay as they were. Heartbeats and the
//! `{"stale":true}` notice are written by the writer loops too, one frame
//! encoded once for all.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

use crate::hub::{Hub, Payload};
use crate::metrics::Metrics;
use crate::ws;

/// A subscriber's writes that have not moved for this long mean the reader
/// is gone or too slow: it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many subscribers a writer loop serves before it lets the other
/// tasks of its worker run (a publish to 15,000 takes a while).
const YIELD_EVERY: usize = 1024;

/// The `{"stale":true}` notice, encoded once.
pub static STALE: LazyLock<Bytes> = LazyLock::new(|| ws::text_frame("{\"stale\":true}"));

/// A subscriber's stream, whatever its type (the upgraded TLS stream in
/// the relay, an in-memory pipe in tests).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Why a subscriber's connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It fell `backlog` frames behind (counted as a slow subscriber).
    Slow,
    /// Its writes did not move for [`WRITE_TIMEOUT`].
    Stuck,
    /// The client closed its side or the stream failed.
    Gone,
    /// The client sent a close frame (its status code, to echo back).
    Closed(Vec<u8>),
    /// The client sent something other than a control frame.
    Refused,
    /// The relay is shutting the subscriber's writer down.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Written into the stream (or queued behind what is being written).
    Taken,
    /// The subscriber is over (or has just been dropped as slow).
    Over,
}

/// One WebSocket subscriber, shared by its writer loop and its own task.
pub struct Sub {
    topic: String,
    out: Mutex<Out>,
}

impl std::fmt::Debug for Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sub").field("topic", &self.topic).finish()
    }
}

struct Out {
    io: Option<Box<dyn Stream>>,
    /// Frames not yet taken by the stream; the first may be partly written.
    queue: VecDeque<Bytes>,
    offset: usize,
    /// Bytes taken by the stream since its last completed flush.
    unflushed: bool,
    /// The subscriber task's waker: the stream wakes it when the socket
    /// can take more (only a slow subscriber's).
    waker: Waker,
    /// Since when a write has been waiting for the socket.
    stuck_since: Option<Instant>,
    end: Option<End>,
    /// A write failed: nothing more can be written.
    broken: bool,
    backlog: usize,
    /// How often the subscriber's task was polled (for the tests: a
    /// publish must not wake it).
    polls: u64,
}

impl Out {
    /// Moves queued frames into the stream as far as it takes them now,
    /// then flushes; `cx` is woken when the socket can take more.
    fn pump(&mut self, cx: &mut Context<'_>) {
        if self.broken {
            return;
        }
        let Some(io) = self.io.as_mut() else {
            return;
        };
        while let Some(front) = self.queue.front() {
            match Pin::new(&mut *io).poll_write(cx, &front[self.offset..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.broken = true;
                    self.end.get_or_insert(End::Gone);
                    return;
                }
                Poll::Ready(Ok(n)) => {
                    self.unflushed = true;
                    self.offset += n;
                    if self.offset >= front.len() {
                        self.queue.pop_front();
                        self.offset = 0;
                    }
                }
                Poll::Pending => break,
            }
        }
        if self.unflushed {
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => {
                    self.broken = true;
                    self.end.get_or_insert(End::Gone);
                    return;
                }
                Poll::Pending => {}
            }
        }
        if self.queue.is_empty() && !self.unflushed {
            self.stuck_since = None;
        } else if self.stuck_since.is_none() {
            self.stuck_since = Some(Instant::now());
        }
    }

    /// Queues a frame behind what is waiting, or drops the subscriber
    /// when it is `backlog` frames behind already.
    fn push(&mut self, frame: Bytes) -> bool {
        if self.queue.len() >= self.backlog {
            self.end.get_or_insert(End::Slow);
            return false;
        }
        self.queue.push_back(frame);
        true
    }
}

impl Sub {
    pub fn new(topic: &str, io: Box<dyn Stream>, backlog: usize) -> Arc<Sub> {
        Arc::new(Sub {
            topic: topic.to_string(),
            out: Mutex::new(Out {
                io: Some(io),
                queue: VecDeque::new(),
                offset: 0,
                unflushed: false,
                waker: Waker::noop().clone(),
                stuck_since: None,
                end: None,
                broken: false,
                backlog: backlog.max(1),
                polls: 0,
            }),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn lock(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer's side: the frame into the stream now, or queued behind
    /// what the socket has not taken yet. No task is woken unless the
    /// subscriber is over or the socket is full.
    pub fn offer(&self, frame: &Bytes) -> Offer {
        let mut o = self.lock();
        if o.end.is_some() {
            return Offer::Over;
        }
        let waiting = !o.queue.is_empty();
        if !o.push(frame.clone()) {
            o.waker.wake_by_ref();
            return Offer::Over;
        }
        if !waiting {
            let waker = o.waker.clone();
            o.pump(&mut Context::from_waker(&waker));
            if o.end.is_some() {
                waker.wake_by_ref();
                return Offer::Over;
            }
        }
        Offer::Taken
    }

    /// Ends the subscriber from outside (its writer loop stops).
    fn shut(&self) {
        let mut o = self.lock();
        o.end.get_or_insert(End::Shutdown);
        o.waker.wake_by_ref();
    }

    pub fn polls(&self) -> u64 {
        self.lock().polls
    }

    /// The subscriber task's side: keeps its waker for the stream, writes
    /// what waits, reads the client's control frames and answers them.
    /// Ready when the connection is to end, and why.
    fn poll_conn(&self, cx: &mut Context<'_>, st: &mut ReadState) -> Poll<End> {
        let mut o = self.lock();
        o.polls += 1;
        if !o.waker.will_wake(cx.waker()) {
            o.waker = cx.waker().clone();
        }
        o.pump(cx);
        loop {
            if let Some(end) = &o.end {
                return Poll::Ready(end.clone());
            }
            let Some(io) = o.io.as_mut() else {
                return Poll::Ready(End::Gone);
            };
            let room = ws::MAX_CONTROL_FRAME - st.pending.len();
            let mut buf = ReadBuf::new(&mut st.chunk[..room]);
            match Pin::new(io).poll_read(cx, &mut buf) {
                Poll::Pending => break,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let n = buf.filled().len();
                    st.pending.extend_from_slice(&st.chunk[..n]);
                }
                Poll::Ready(_) => return Poll::Ready(End::Gone),
            }
            loop {
                match ws::take_control(&mut st.pending) {
                    Ok(None) => break,
                    Ok(Some(ws::Control::Ping(data))) => {
                        if o.push(ws::frame(ws::OP_PONG, &data)) {
                            o.pump(cx);
                        }
                    }
                    Ok(Some(ws::Control::Pong)) => {}
                    Ok(Some(ws::Control::Close(code))) => {
                        return Poll::Ready(End::Closed(code));
                    }
                    // A data frame, a malformed or oversized frame.
                    Err(_) => return Poll::Ready(End::Refused),
                }
            }
        }
        if let Some(since) = o.stuck_since {
            let deadline = tokio::time::Instant::from_std(since + WRITE_TIMEOUT);
            let timer = st
                .stuck
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                o.end.get_or_insert(End::Stuck);
                return Poll::Ready(End::Stuck);
            }
        }
        Poll::Pending
    }

    /// After the end: what was partly written is finished (the stream
    /// must stay whole), the rest given up, then `last` (a close frame) is
    /// written and the stream shut down, all within one second; the stream
    /// is then dropped, which closes the socket.
    async fn close(&self, last: Option<Bytes>) {
        {
            let mut o = self.lock();
            o.end.get_or_insert(End::Gone);
            let partial = if o.offset > 0 {
                o.queue.pop_front()
            } else {
                None
            };
            o.queue.clear();
            o.queue.extend(partial);
            o.queue.extend(last);
        }
        let finish = std::future::poll_fn(|cx| {
            let mut o = self.lock();
            o.pump(cx);
            if o.broken {
                return Poll::Ready(());
            }
            if !o.queue.is_empty() || o.unflushed {
                return Poll::Pending;
            }
            match o.io.as_mut() {
                Some(io) => Pin::new(io).poll_shutdown(cx).map(|_| ()),
                None => Poll::Ready(()),
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(1), finish).await;
        let io = self.lock().io.take();
        drop(io);
    }
}

/// What a subscriber's task keeps between polls.
struct ReadState {
    /// What the subscriber sent that is not a whole frame yet (never more
    /// than one control frame).
    pending: Vec<u8>,
    chunk: [u8; ws::MAX_CONTROL_FRAME],
    stuck: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Runs a subscriber's own task until its connection ends: it waits for
/// what the client sends and, only when the socket was full, writes what
/// waits. Returns why it ended (a slow one is counted by the caller).
pub async fn serve(sub: &Arc<Sub>) -> End {
    let mut st = ReadState {
        pending: Vec::new(),
        chunk: [0; ws::MAX_CONTROL_FRAME],
        stuck: None,
    };
    let end = std::future::poll_fn(|cx| sub.poll_conn(cx, &mut st)).await;
    let last = match &end {
        End::Closed(code) => Some(ws::frame(ws::OP_CLOSE, code)),
        End::Gone => None,
        _ => Some(ws::frame(ws::OP_CLOSE, &[])),
    };
    sub.close(last).await;
    end
}

enum Cmd {
    /// A new subscriber and the topic's payload when it joined.
    Join(Arc<Sub>, Option<Arc<Payload>>),
    Publish(Arc<Payload>),
}

/// The writer loops of one relay.
#[derive(Debug)]
pub struct Fanout {
    writers: Vec<mpsc::UnboundedSender<Cmd>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Join(s, _) => write!(f, "Join({})", s.topic),
            Cmd::Publish(p) => write!(f, "Publish({} v{})", p.topic, p.version),
        }
    }
}

/// What a writer loop needs from its relay.
pub trait Host: Send + Sync + 'static {
    fn metrics(&self) -> &Metrics;
    /// The heartbeat frame to send now (not asked while the data is stale).
    fn heartbeat(&self) -> Bytes;
}

impl Fanout {
    /// Starts `loops` writer loops (one per core when 0) on the current
    /// runtime and taps `hub`'s publishes into them. A writer holds its
    /// host weakly and ends when the hub is dropped.
    pub fn start<H: Host>(
        hub: &Hub,
        host: Weak<H>,
        stale: watch::Receiver<bool>,
        heartbeat: Duration,
        loops: usize,
    ) -> Fanout {
        let loops = match loops {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut writers = Vec::with_capacity(loops);
        for _ in 0..loops {
            let (tx, rx) = mpsc::unbounded_channel();
            writers.push(tx);
            tokio::spawn(tokio::task::unconstrained(writer(
                rx,
                host.clone(),
                stale.clone(),
                heartbeat,
            )));
        }
        let taps = writers.clone();
        hub.set_tap(Box::new(move |p: &Arc<Payload>| {
            for w in &taps {
                let _ = w.send(Cmd::Publish(p.clone()));
            }
        }));
        Fanout {
            writers,
            next: AtomicUsize::new(0),
        }
    }

    /// Hands a subscriber to a writer loop (round robin), with the topic's
    /// latest payload; under the hub's lock, so no publish is missed or
    /// sent twice. False when the writers are gone.
    pub fn join(&self, hub: &Hub, sub: Arc<Sub>) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.writers.len().max(1);
        let Some(w) = self.writers.get(i) else {
            return false;
        };
        let topic = sub.topic.clone();
        hub.with_latest(&topic, |current| w.send(Cmd::Join(sub, current)).is_ok())
    }
}

/// Offers `frame` to every subscriber in `subs`, dropping the ones that
/// are over; returns how many took it.
async fn pass(subs: &mut Vec<Arc<Sub>>, frame: &Bytes, done: &mut usize) -> u64 {
    let mut taken = 0;
    let mut i = 0;
    while i < subs.len() {
        if subs[i].offer(frame) == Offer::Taken {
            taken += 1;
            i += 1;
        } else {
            subs.swap_remove(i);
        }
        *done += 1;
        if (*done).is_multiple_of(YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
    }
    taken
}

async fn writer<H: Host>(
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    host: Weak<H>,
    mut stale: watch::Receiver<bool>,
    heartbeat: Duration,
) {
    let mut topics: HashMap<String, Vec<Arc<Sub>>> = HashMap::new();
    let mut is_stale = *stale.borrow_and_update();
    let mut stale_open = true;
    let mut beat = tokio::time::interval(heartbeat.max(Duration::from_millis(100)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        let mut done = 0;
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                let Some(host) = host.upgrade() else { break };
                let sent = match cmd {
                    Cmd::Join(sub, current) => {
                        let mut sent = 0;
                        let mut alive = true;
                        if let Some(p) = current {
                            alive = sub.offer(&p.frame) == Offer::Taken;
                            sent += u64::from(alive);
                        }
                        if alive && is_stale {
                            alive = sub.offer(&STALE) == Offer::Taken;
                        }
                        if alive {
                            topics.entry(sub.topic.clone()).or_default().push(sub);
                        }
                        sent
                    }
                    Cmd::Publish(p) => match topics.get_mut(&p.topic) {
                        Some(subs) => pass(subs, &p.frame, &mut done).await,
                        None => 0,
                    },
                };
                host.metrics().messages_sent.fetch_add(sent, Ordering::Relaxed);
            }
            changed = stale.changed(), if stale_open => {
                if changed.is_err() {
                    stale_open = false;
                    continue;
                }
                let now = *stale.borrow_and_update();
                if now && !is_stale {
                    for subs in topics.values_mut() {
                        pass(subs, &STALE, &mut done).await;
                    }
                }
                is_stale = now;
            }
            _ = beat.tick() => {
                // No heartbeat once the data has expired: the page's own
                // staleness check then shows it too.
                if is_stale {
                    continue;
                }
                let Some(host) = host.upgrade() else { break };
                let frame = host.heartbeat();
                drop(host);
                for subs in topics.values_mut() {
                    pass(subs, &frame, &mut done).await;
                }
            }
        }
        topics.retain(|_, subs| !subs.is_empty());
    }
    for sub in topics.values().flatten() {
        sub.shut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    struct TestHost(Metrics);
    impl Host for TestHost {
        fn metrics(&self) -> &Metrics {
            &self.0
        }
        fn heartbeat(&self) -> Bytes {
            ws::text_frame("{\"heartbeat\":1}")
        }
    }

    struct Setup {
        hub: Arc<Hub>,
        fanout: Fanout,
        host: Arc<TestHost>,
        stale: watch::Sender<bool>,
    }

    fn setup(loops: usize) -> Setup {
        let hub = Arc::new(Hub::new());
        let host = Arc::new(TestHost(Metrics::default()));
        let (stale, rx) = watch::channel(false);
        let fanout = Fanout::start(
            &hub,
            Arc::downgrade(&host),
            rx,
            Duration::from_secs(3600),
            loops,
        );
        Setup {
            hub,
            fanout,
            host,
            stale,
        }
    }

    /// A subscriber served by its own task, as the relay does, and the
    /// client's end of its stream.
    fn subscribe(s: &Setup, topic: &str, pipe: usize) -> (Arc<Sub>, DuplexStream, Arc<AtomicU64>) {
        let (client, server) = tokio::io::duplex(pipe);
        let sub = Sub::new(topic, Box::new(server), 4);
        let ended = Arc::new(AtomicU64::new(0));
        let (task_sub, flag) = (sub.clone(), ended.clone());
        assert!(s.fanout.join(&s.hub, sub.clone()));
        tokio::spawn(async move {
            let end = serve(&task_sub).await;
            let code = match end {
                End::Slow => 1,
                End::Closed(_) => 2,
                End::Refused => 3,
                End::Gone => 4,
                _ => 5,
            };
            flag.store(code, Ordering::Relaxed);
        });
        (sub, client, ended)
    }

    /// Reads one unmasked server frame: (opcode, payload).
    async fn frame(c: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        c.read_exact(&mut h).await.expect("head");
        let len = match h[1] & 0x7F {
            126 => usize::from(c.read_u16().await.expect("len")),
            127 => c.read_u64().await.expect("len") as usize,
            n => usize::from(n),
        };
        let mut p = vec![0; len];
        c.read_exact(&mut p).await.expect("payload");
        (h[0] & 0x0F, p)
    }

    fn masked(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [9, 8, 7, 6];
        let mut v = vec![opcode_byte, 0x80 | payload.len() as u8];
        v.extend(mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    /// Issue 21: every subscriber gets the current payload and then every
    /// publish in order, written by the writer loops — and a publish wakes
    /// no subscriber's task (the old design woke each one per publish:
    /// its task was polled at least once per publish).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_reach_every_subscriber_without_waking_its_task() {
        let s = setup(2);
        s.hub.publish("board", "{\"v\":0}");
        let mut clients = Vec::new();
        for _ in 0..200 {
            clients.push(subscribe(&s, "board", 1 << 16));
        }
        let other = subscribe(&s, "counter/5", 1 << 16);
        for (_, c, _) in clients.iter_mut() {
            assert_eq!(frame(c).await, (ws::OP_TEXT, b"{\"v\":0}".to_vec()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let polls_before: u64 = clients.iter().map(|(s, _, _)| s.polls()).sum();
        for v in 1..=20 {
            s.hub.publish("board", format!("{{\"v\":{v}}}"));
        }
        for (_, c, _) in clients.iter_mut() {
            for v in 1..=20 {
                let want = format!("{{\"v\":{v}}}").into_bytes();
                assert_eq!(frame(c).await, (ws::OP_TEXT, want));
            }
        }
        let polls: u64 = clients.iter().map(|(s, _, _)| s.polls()).sum::<u64>() - polls_before;
        assert!(
            polls < 200,
            "200 subscribers × 20 publishes woke their tasks {polls} times"
        );
        assert_eq!(
            s.host.0.messages_sent.load(Ordering::Relaxed),
            200 * 21,
            "current + 20 publishes each, nothing to the other topic"
        );
        assert_eq!(other.0.polls(), 1, "the other topic's subscriber slept");
    }

    /// The slow-subscriber rule: a client that reads nothing falls behind
    /// and is dropped and closed; the others go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_that_reads_nothing_is_dropped_and_the_rest_go_on() {
        let s = setup(1);
        let (slow_sub, _slow, slow_end) = subscribe(&s, "board", 256);
        let (_, mut fast, fast_end) = subscribe(&s, "board", 1 << 20);
        let body = "x".repeat(1000);
        for _ in 0..20 {
            s.hub.publish("board", body.as_str());
        }
        for _ in 0..20 {
            assert_eq!(frame(&mut fast).await.1.len(), 1000);
        }
        let t0 = Instant::now();
        while slow_end.load(Ordering::Relaxed) == 0 && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(slow_end.load(Ordering::Relaxed), 1, "dropped as slow");
        assert_eq!(fast_end.load(Ordering::Relaxed), 0);
        // Its stream is let go (the socket closes) within the close grace.
        let t0 = Instant::now();
        while slow_sub.lock().io.is_some() && t0.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(slow_sub.lock().io.is_none(), "stream dropped");
        s.hub.publish("board", "{}");
        assert_eq!(frame(&mut fast).await.1, b"{}");
    }

    /// Control frames still work: a ping is answered, a close is echoed and
    /// ends the connection, a data frame from the client closes it.
    #[tokio::test]
    async fn pings_are_answered_and_a_close_is_echoed() {
        let s = setup(1);
        s.hub.publish("board", "{}");
        let (_, mut c, end) = subscribe(&s, "board", 1 << 16);
        assert_eq!(frame(&mut c).await.1, b"{}");
        c.write_all(&masked(0x89, b"hi")).await.expect("ping");
        assert_eq!(frame(&mut c).await, (ws::OP_PONG, b"hi".to_vec()));
        c.write_all(&masked(0x88, &[0x03, 0xE8]))
            .await
            .expect("close");
        assert_eq!(frame(&mut c).await, (ws::OP_CLOSE, vec![0x03, 0xE8]));
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
        assert_eq!(end.load(Ordering::Relaxed), 2);

        let (_, mut d, end) = subscribe(&s, "board", 1 << 16);
        assert_eq!(frame(&mut d).await.1, b"{}");
        d.write_all(&masked(0x81, b"data")).await.expect("text");
        assert_eq!(frame(&mut d).await, (ws::OP_CLOSE, vec![]));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(end.load(Ordering::Relaxed), 3);
    }

    /// Stale data: a subscriber is told once, at once, and heartbeats stop.
    #[tokio::test]
    async fn stale_is_told_to_every_subscriber() {
        let s = setup(2);
        s.hub.publish("board", "{}");
        let (_, mut a, _) = subscribe(&s, "board", 1 << 16);
        let (_, mut b, _) = subscribe(&s, "guidance/x", 1 << 16);
        assert_eq!(frame(&mut a).await.1, b"{}");
        s.stale.send_replace(true);
        assert_eq!(frame(&mut a).await.1, b"{\"stale\":true}");
        assert_eq!(frame(&mut b).await.1, b"{\"stale\":true}");
        let (_, mut c, _) = subscribe(&s, "board", 1 << 16);
        assert_eq!(frame(&mut c).await.1, b"{}");
        assert_eq!(frame(&mut c).await.1, b"{\"stale\":true}");
    }
}
