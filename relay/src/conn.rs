//! Connection limits (R11): how many connections in total and per address,
//! and an I/O wrapper that records the last byte moved either way so that
//! idle connections are closed. A connection's slot is held by a guard that
//! the WebSocket or SSE task keeps after the HTTP connection hands its
//! socket over, so upgraded connections stay counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct Limiter {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping the last clone frees its slot.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Limiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            max_total,
            max_per_ip,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, or `None` when either limit
    /// is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Arc<Slot>> {
        let ip = network_of(ip);
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return None;
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Arc::new(Slot {
            limiter: self.clone(),
            ip,
        }))
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .limiter
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.limiter.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one "address" is for the per-address cap: an IPv4 address (an
/// IPv4-mapped IPv6 one counts as its IPv4 address), or an IPv6 /64 — one
/// home or phone is given a whole /64, so counting single IPv6 addresses
/// would give one client 2^64 of them (relay red team F9).
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The coarse clock of the idle timer (issue 21: the profile showed a
/// clock read per read and write, `Activity::touch`, at 1.8 %): one thread
/// reads the clock every [`TICK_MS`] and every stamp is one atomic load of
/// its last reading. The idle limits are in seconds; a tenth of a second
/// off is nothing to them.
mod coarse {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{LazyLock, Once};
    use std::time::{Duration, Instant};

    pub const TICK_MS: u64 = 100;

    static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
    static NOW_MS: AtomicU64 = AtomicU64::new(0);
    /// False when the ticking thread could not be started: every stamp
    /// then reads the clock itself.
    static TICKING: AtomicBool = AtomicBool::new(false);
    static START: Once = Once::new();

    fn read() -> u64 {
        u64::try_from(ORIGIN.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Starts the ticking thread (once per process).
    pub fn start() {
        START.call_once(|| {
            NOW_MS.store(read(), Ordering::Relaxed);
            let spawned = std::thread::Builder::new()
                .name("coarse-clock".into())
                .spawn(|| loop {
                    std::thread::sleep(Duration::from_millis(TICK_MS));
                    NOW_MS.store(read(), Ordering::Relaxed);
                });
            TICKING.store(spawned.is_ok(), Ordering::Relaxed);
        });
    }

    /// Milliseconds since the process's clock origin, at most one tick old.
    pub fn now_ms() -> u64 {
        if TICKING.load(Ordering::Relaxed) {
            NOW_MS.load(Ordering::Relaxed)
        } else {
            read()
        }
    }
}

/// Records when a byte last moved through the stream (to a tenth of a
/// second: the coarse clock).
#[derive(Debug)]
pub struct Activity {
    last: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        coarse::start();
        Arc::new(Activity {
            last: AtomicU64::new(coarse::now_ms()),
        })
    }

    /// One load of the coarse clock; the stamp is written only when the
    /// clock has moved on (so a busy stream does not write it each time).
    fn touch(&self) {
        let now = coarse::now_ms();
        if self.last.load(Ordering::Relaxed) != now {
            self.last.store(now, Ordering::Relaxed);
        }
    }

    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(coarse::now_ms().saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    /// Resolves once nothing has moved for `limit`.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= limit {
                return;
            }
            // At least a tick, so a stamp newer than the last tick is seen.
            tokio::time::sleep((limit - idle).max(Duration::from_millis(coarse::TICK_MS))).await;
        }
    }
}

#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_in_total_and_per_address_and_freed_on_drop() {
        let l = Limiter::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = l.admit(a).expect("a1");
        let a2 = l.admit(a).expect("a2");
        assert!(l.admit(a).is_none(), "per address");
        let b1 = l.admit(b).expect("b1");
        assert!(l.admit(b).is_none(), "in total");
        drop(a1);
        assert!(l.admit(b).is_some());
        drop((a2, b1));
        assert_eq!(l.open(), 0);
    }
}

#[cfg(test)]
mod network_tests {
    use super::*;

    #[test]
    fn one_ipv6_slash_64_is_one_address_and_mapped_ipv4_is_ipv4() {
        let l = Limiter::new(100, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let held: Vec<_> = [a, b].iter().filter_map(|ip| l.admit(*ip)).collect();
        assert_eq!(held.len(), 2);
        assert!(l.admit(b).is_none(), "a third from the same /64");
        assert!(l.admit(other).is_some(), "the next /64 is another address");
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        let h4: Vec<_> = [v4, mapped].iter().filter_map(|ip| l.admit(*ip)).collect();
        assert_eq!(h4.len(), 2);
        assert!(l.admit(v4).is_none(), "mapped IPv4 counts as IPv4");
        drop((held, h4));
        assert_eq!(l.open(), 0, "every slot given back");
    }
}
