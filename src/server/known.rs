//! Addresses known to be the office's own (issue 23, R11): those from
//! which a valid session cookie or device token came lately. The
//! connection caps keep a share of the total slots for them
//! ([`RESERVE_SHARE`], `connections.rs`), so that strangers — clients
//! from many addresses holding keep-alive connections with a request
//! every few seconds — cannot take every slot and leave the staff
//! stations, kiosks and displays unable to connect.
//!
//! Addresses are kept whole (an IPv4-mapped IPv6 address as its IPv4),
//! not by IPv6 /64 as the sign-in throttle does: on an office LAN one /64
//! is the whole LAN, and a stranger on it would be "known".

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::App;

/// One slot in this many of the total is kept for known addresses.
pub const RESERVE_SHARE: usize = 4;
/// How long an address stays known after its last valid credential: a
/// week, so that a station known on Friday is still known on Monday
/// morning before anyone signs in again.
pub const REMEMBER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the credential of a known address is checked again (a
/// session lookup per request is not needed to keep it known).
const RENOTE: Duration = Duration::from_secs(60);
/// The most addresses remembered; the least recently seen go first.
const MAX_ADDRESSES: usize = 4096;

/// The known addresses; cheap to share.
#[derive(Debug, Default)]
pub struct KnownAddrs {
    seen: Mutex<HashMap<IpAddr, Instant>>,
}

fn key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl KnownAddrs {
    pub fn new() -> Arc<KnownAddrs> {
        Arc::new(KnownAddrs::default())
    }

    /// A valid credential came from `ip` now.
    pub fn note(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&key(ip)) {
            seen.retain(|_, at| at.elapsed() < REMEMBER);
            if seen.len() >= MAX_ADDRESSES {
                if let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(ip, _)| *ip) {
                    seen.remove(&oldest);
                }
            }
        }
        seen.insert(key(ip), Instant::now());
    }

    /// Whether a valid credential came from `ip` within [`REMEMBER`].
    pub fn is_known(&self, ip: IpAddr) -> bool {
        self.seen_within(ip, REMEMBER)
    }

    fn seen_within(&self, ip: IpAddr, within: Duration) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&key(ip)).is_some_and(|at| at.elapsed() < within)
    }
}

/// The slots strangers may hold out of `total`: all but the reserve.
pub fn for_strangers(total: usize) -> usize {
    total - total / RESERVE_SHARE
}

/// Notes the peer of every request that carries a valid session cookie or
/// device token (checked at most every [`RENOTE`] per address).
pub async fn note(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer {
        let headers = req.headers();
        let carries = headers.contains_key(axum::http::header::COOKIE)
            || headers.contains_key(axum::http::header::AUTHORIZATION);
        if carries && !app.known.seen_within(ip, RENOTE) && app.auth.identify(headers).is_some() {
            app.known.note(ip);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_known_once_noted_and_mapped_addresses_are_the_same() {
        let k = KnownAddrs::new();
        let v4: IpAddr = [10, 0, 0, 7].into();
        assert!(!k.is_known(v4));
        k.note(v4);
        assert!(k.is_known(v4));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert!(k.is_known(mapped));
        let neighbour: IpAddr = "fd00::2".parse().expect("ip");
        k.note("fd00::1".parse().expect("ip"));
        assert!(!k.is_known(neighbour), "no /64 grouping");
    }

    #[test]
    fn the_memory_is_bounded() {
        let k = KnownAddrs::new();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            k.note(IpAddr::from(i.to_be_bytes()));
        }
        assert!(k.seen.lock().map(|s| s.len()).unwrap_or(0) <= MAX_ADDRESSES);
    }

    #[test]
    fn a_quarter_is_reserved() {
        assert_eq!(for_strangers(896), 672);
        assert_eq!(for_strangers(60), 45);
        assert_eq!(for_strangers(1), 1);
    }
}
