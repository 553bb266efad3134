//! The ingest side's connection slots (R11; issue 22, red-team relay-rt2
//! F1). A connection from an allowed address first waits in a lobby until
//! its TLS ClientHello has been read (a squatter that never sends one
//! stays there): the lobby is large, and when it is full its oldest
//! *silent* connection gives way to the newcomer, so silent connections
//! however many and however fast they reconnect cannot keep the office's
//! out of it. A connection has *spoken* when a whole first TLS record
//! waits unread (the start of a hello is not enough: relay-rt7). One that
//! has spoken is safe for [`LOBBY_GRACE`]: it is about to be judged by its
//! hello, and closing it at once would close the office's under a flood
//! faster than the relay reads hellos (relay-rt6 R1); when every
//! connection in a full lobby spoke within the grace, the newcomer is
//! refused instead. Whether a connection has spoken is
//! asked of the socket once until it has (one `peek` per silent connection
//! looked at, not per connection admitted).
//!
//! The ClientHello then decides the pool:
//! - **the office's slots** ([`Ticket::claim_office`]): the hello carried the
//!   office's fresh, signed, unused token ([`madoguchi_wire::hello`]). No one
//!   without the office's key gets one, so a process on the office's own
//!   address that completes TLS handshakes as fast as it likes cannot take
//!   them. When they are all taken (only the office, or a thief of its
//!   key, can do that) the oldest not yet proven by a signed head gives
//!   way, else the oldest.
//! - **the shared slots** ([`Ticket::claim`]), per address and in all: any
//!   other connection (an office of an older version, a `/metrics`
//!   scraper, a squatter). It holds its slot as *unproven* until its
//!   request head carries the office's signature ([`Ticket::prove`]); when
//!   the slots are full, the oldest unproven connection older than the
//!   grace gives way, and a proven one never does. Squatters can contend
//!   for these, never for the office's.
//!
//! (Connections not proven by a signed head are also held to short
//! handshake and head deadlines, `ingest.handshake_timeout_s` and
//! `ingest.unproven_head_timeout_s`.)

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a connection that has spoken is safe from eviction: enough for
/// the office's handshake and signed head on a slow line, shorter than the
/// unproven deadlines (2 s each by default).
pub const GRACE: Duration = Duration::from_secs(1);
/// Connections waiting for their ClientHello, per address and in all.
pub const LOBBY_PER_IP: usize = 128;
pub const LOBBY_TOTAL: usize = 256;
/// How long a lobby connection that has sent its hello is safe from
/// eviction: ample for its task to read the hello, so one older than this
/// is stuck or starved, and a newcomer may take its place rather than be
/// refused (relay-rt7: refusing newcomers for good kept the office out
/// 30 s under a flood).
pub const LOBBY_GRACE: Duration = Duration::from_millis(500);
/// The office's slots: more than its publisher ever holds at once (one
/// connection per push per relay).
pub const OFFICE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Lobby,
    Unproven,
    Proven,
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    state: State,
    /// In the office's slots (its hello carried the office's token).
    office: bool,
    /// When it entered its current state.
    since: Instant,
    /// A second handle on the socket, to see whether a lobby connection
    /// has bytes waiting that its task has not read yet (under load the
    /// task may not have run): such a one has spoken and is not evicted
    /// as silent.
    peek: Option<std::net::TcpStream>,
    /// `peek` once showed bytes: it stays so (they are the hello).
    spoken: bool,
    /// Its task has read its ClientHello and is judging it ([`Ticket::heard`]):
    /// nothing is waiting on the socket any more, so `peek` would call it
    /// silent, but it is the furthest from silent there is.
    heard: bool,
    /// Its waiting hello offers an office token that [`Slots::set_vouch`]'s
    /// check vouches for, once looked at ([`claims_token`]).
    claims: Option<bool>,
    evict: Arc<Notify>,
}

/// Checks an office hello token found in a waiting ClientHello (signature,
/// freshness, nonce not yet taken) without taking it ([`Slots::set_vouch`]).
pub type Vouch = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// The check set once the relay is up.
#[derive(Default)]
struct VouchCell(std::sync::OnceLock<Vouch>);

impl std::fmt::Debug for VouchCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Vouch(set)"
        } else {
            "Vouch(unset)"
        })
    }
}

/// Whether the first TLS record waiting on `s` offers an office hello
/// token ([`madoguchi_wire::hello::PREFIX`]) that `vouch` vouches for: it
/// decides who gives way in a full lobby (relay-rt9 F1), never a slot. The
/// prefix alone is not enough: a flooder copying it took the office's
/// place (outside tester relay-rt10 N1), so the token is checked as the
/// handshake will check it (without `vouch`, as in unit tests: the prefix).
/// `None` until a whole first record is waiting.
fn claims_token(s: &std::net::TcpStream, vouch: Option<&Vouch>) -> Option<bool> {
    let mut buf = [0u8; 2048];
    let n = match s.peek(&mut buf) {
        Ok(n) if n >= 5 && buf[0] == 0x16 => n,
        _ => return None,
    };
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if n < 5 + len && n < buf.len() {
        return None;
    }
    let prefix = madoguchi_wire::hello::PREFIX;
    let Some(at) = buf[..n].windows(prefix.len()).position(|w| w == prefix) else {
        return Some(false);
    };
    let token = &buf[at..n.min(at + madoguchi_wire::hello::LEN)];
    Some(vouch.is_none_or(|v| v(token)))
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Lobby,
    Shared,
    Office,
}

impl Entry {
    /// Its waiting hello offers an office token `vouch` vouches for
    /// (looked at once).
    fn claims(&mut self, vouch: Option<&Vouch>) -> Option<bool> {
        if self.claims.is_none() {
            self.claims = self.peek.as_ref().and_then(|p| claims_token(p, vouch));
        }
        self.claims
    }

    fn place(&self) -> Place {
        match (self.state, self.office) {
            (State::Lobby, _) => Place::Lobby,
            (_, true) => Place::Office,
            (_, false) => Place::Shared,
        }
    }

    /// A whole first TLS record (the ClientHello, or its first part) is
    /// waiting unread. Bytes alone are not enough: a peer sending the start
    /// of a hello and no more (relay-rt7) would otherwise be kept as
    /// "about to be judged" until its handshake deadline, and 128 of them
    /// filled an address's lobby so that the office's newcomers were
    /// refused. Such a one stays silent; once its own task has read what
    /// there is, nothing is waiting and it is silent too.
    fn has_spoken(&mut self) -> bool {
        if !self.spoken {
            self.spoken = self.peek.as_ref().is_some_and(|s| {
                let mut buf = [0u8; 2048];
                match s.peek(&mut buf) {
                    Ok(n) if n >= 5 && buf[0] == 0x16 => {
                        let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
                        n >= 5 + len || n == buf.len()
                    }
                    _ => false,
                }
            });
        }
        self.spoken
    }
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By admission order: the first match is the oldest.
    conns: BTreeMap<u64, Entry>,
}

impl Inner {
    /// Connections (of `ip`, or of anyone) in the lobby, or in the shared
    /// slots, or in the office's.
    fn count(&self, ip: Option<IpAddr>, place: Place) -> usize {
        self.conns
            .values()
            .filter(|e| e.place() == place && ip.is_none_or(|ip| e.ip == ip))
            .count()
    }

    /// Closes the oldest lobby connection of `ip` (or of anyone) that has
    /// spoken without offering an office token and is not being judged:
    /// room for a newcomer whose hello offers one when nothing else gives
    /// way (relay-rt9 F1: a flood of whole token-less hellos from the
    /// office's address, read slower than they came, filled its lobby and
    /// the office's newcomers were refused).
    fn evict_unclaimed(&mut self, ip: Option<IpAddr>, vouch: Option<&Vouch>) -> bool {
        let victim = self
            .conns
            .iter_mut()
            .filter(|(_, e)| {
                e.place() == Place::Lobby && !e.heard && ip.is_none_or(|ip| e.ip == ip)
            })
            .find_map(|(id, e)| (e.claims(vouch) == Some(false)).then_some(*id));
        match victim.and_then(|id| self.conns.remove(&id)) {
            Some(e) => {
                e.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// The address with the most connections in the lobby, and how many.
    fn crowded_lobby(&self) -> Option<(IpAddr, usize)> {
        let mut by_ip: std::collections::HashMap<IpAddr, usize> = Default::default();
        for e in self.conns.values().filter(|e| e.place() == Place::Lobby) {
            *by_ip.entry(e.ip).or_default() += 1;
        }
        by_ip.into_iter().max_by_key(|(_, n)| *n)
    }

    /// Closes the oldest connection (of `ip`, or of anyone) in `state` and
    /// `place` that has been in it for `grace`.
    /// In the lobby, the oldest that has not spoken (at any age), else the
    /// oldest that spoke more than `grace` ago — never one whose hello its
    /// task has read and is judging ([`Ticket::heard`]): that one leaves the
    /// lobby as soon as its token is checked (or at the handshake
    /// deadline), and only the relay reading a hello makes one.
    fn evict_oldest(
        &mut self,
        ip: Option<IpAddr>,
        place: Place,
        state: State,
        grace: Duration,
    ) -> bool {
        let candidates = self.conns.iter_mut().filter(|(_, e)| {
            e.state == state && e.place() == place && ip.is_none_or(|ip| e.ip == ip)
        });
        let victim = if state == State::Lobby {
            // The oldest silent one; else the oldest that spoke but has
            // waited past `grace` (the caller passes the lobby's grace).
            let mut silent = None;
            let mut stuck = None;
            for (id, e) in candidates {
                if !e.has_spoken() {
                    silent = Some((id, &*e));
                    break;
                }
                if e.heard {
                    continue;
                }
                if stuck.is_none() && e.since.elapsed() >= grace {
                    stuck = Some((id, &*e));
                }
            }
            silent.or(stuck).map(|(id, e)| (id, e, Duration::ZERO))
        } else {
            candidates
                .map(|(id, e)| (id, &*e, grace))
                .min_by_key(|(_, e, _)| e.since)
        }
        .filter(|(_, e, grace)| e.since.elapsed() >= *grace)
        .map(|(id, _, _)| *id);
        match victim.and_then(|id| self.conns.remove(&id)) {
            Some(e) => {
                e.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

#[derive(Debug)]
pub struct Slots {
    max_total: usize,
    max_per_ip: usize,
    office: usize,
    grace: Duration,
    lobby_per_ip: usize,
    lobby_total: usize,
    lobby_grace: Duration,
    vouch: VouchCell,
    inner: Mutex<Inner>,
}

/// One admitted ingest connection; dropping it frees its place.
#[derive(Debug)]
pub struct Ticket {
    slots: Arc<Slots>,
    id: u64,
    ip: IpAddr,
    proven: AtomicBool,
    /// In the office's slots (its hello carried the office's token).
    office: AtomicBool,
    evict: Arc<Notify>,
}

impl Slots {
    pub fn new(max_total: usize, max_per_ip: usize, grace: Duration) -> Arc<Slots> {
        Slots::with_lobby(max_total, max_per_ip, grace, LOBBY_PER_IP, LOBBY_TOTAL)
    }

    pub fn with_lobby(
        max_total: usize,
        max_per_ip: usize,
        grace: Duration,
        lobby_per_ip: usize,
        lobby_total: usize,
    ) -> Arc<Slots> {
        Arc::new(Slots {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            office: OFFICE,
            grace,
            lobby_per_ip: lobby_per_ip.max(1),
            lobby_total: lobby_total.max(1),
            lobby_grace: LOBBY_GRACE,
            vouch: VouchCell::default(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// How a waiting hello's token is checked before its newcomer is
    /// preferred in a full lobby (set once; later calls change nothing).
    pub fn set_vouch(&self, vouch: Vouch) {
        let _ = self.vouch.0.set(vouch);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection to the lobby; returns it and how many
    /// connections were closed to make room, or `None` when the lobby is
    /// full of connections that have spoken (the newcomer should close).
    /// `peek`: a duplicate of its (non-blocking) socket.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        peek: Option<std::net::TcpStream>,
    ) -> Option<(Ticket, usize)> {
        let vouch = self.vouch.0.get().cloned();
        let vouch = vouch.as_ref();
        let mut inner = self.lock();
        let mut evicted = 0;
        // Looked at only when nothing else gives way.
        let mut claims: Option<bool> = None;
        let mut claimed = |peek: &Option<std::net::TcpStream>| {
            claims = peek.as_ref().and_then(|p| claims_token(p, vouch));
            claims == Some(true)
        };
        if inner.count(Some(ip), Place::Lobby) >= self.lobby_per_ip {
            let room = inner.evict_oldest(Some(ip), Place::Lobby, State::Lobby, self.lobby_grace)
                || (claimed(&peek) && inner.evict_unclaimed(Some(ip), vouch));
            if !room {
                return None;
            }
            evicted += 1;
        }
        if inner.count(None, Place::Lobby) >= self.lobby_total {
            // relay-rt9 F1: the room is made by the address that holds the
            // most of the lobby, not by whoever is oldest: a flood from
            // one allowed host (of whole hellos, each safe for the grace)
            // cost the office's connection from another its place. A
            // newcomer from an address holding fewer than that one is
            // never refused for it: the crowded address's oldest silent
            // connection gives way, else its oldest that spoke (never a
            // hello its task is judging).
            let (crowded, most) = inner.crowded_lobby()?;
            let mine = inner.count(Some(ip), Place::Lobby);
            let grace = if mine < most {
                Duration::ZERO
            } else {
                self.lobby_grace
            };
            let room = inner.evict_oldest(Some(crowded), Place::Lobby, State::Lobby, grace)
                || (claimed(&peek) && inner.evict_unclaimed(None, vouch));
            if !room {
                return None;
            }
            evicted += 1;
        }
        let id = inner.next;
        inner.next += 1;
        let evict = Arc::new(Notify::new());
        inner.conns.insert(
            id,
            Entry {
                ip,
                state: State::Lobby,
                office: false,
                since: Instant::now(),
                peek,
                spoken: false,
                heard: false,
                claims,
                evict: evict.clone(),
            },
        );
        Some((
            Ticket {
                slots: self.clone(),
                id,
                ip,
                proven: AtomicBool::new(false),
                office: AtomicBool::new(false),
                evict,
            },
            evicted,
        ))
    }

    /// Connections in the shared slots.
    pub fn open(&self) -> usize {
        self.lock().count(None, Place::Shared)
    }

    /// Connections in the office's slots.
    pub fn office(&self) -> usize {
        self.lock().count(None, Place::Office)
    }
}

impl Ticket {
    /// The connection's hello carried no office token: it leaves the lobby
    /// for a shared slot, closing the oldest unproven connection past the
    /// grace when the slots are full. `None` when there is no slot for it
    /// (it should close), else how many were closed.
    pub fn claim(&self) -> Option<usize> {
        let s = &self.slots;
        let mut inner = s.lock();
        if !inner.conns.contains_key(&self.id) {
            return None;
        }
        let mut evicted = 0;
        if inner.count(Some(self.ip), Place::Shared) >= s.max_per_ip {
            if !inner.evict_oldest(Some(self.ip), Place::Shared, State::Unproven, s.grace) {
                return None;
            }
            evicted += 1;
        }
        if inner.count(None, Place::Shared) >= s.max_total {
            if !inner.evict_oldest(None, Place::Shared, State::Unproven, s.grace) {
                return None;
            }
            evicted += 1;
        }
        let e = inner.conns.get_mut(&self.id)?;
        e.state = State::Unproven;
        e.since = Instant::now();
        e.peek = None;
        Some(evicted)
    }

    /// The connection's hello carried the office's token: it leaves the
    /// lobby for one of the office's slots. When they are full, the oldest
    /// not yet proven by a signed head gives way (a copied token's), else
    /// the oldest: every one of them is the office's (or its key's). `None`
    /// when the connection was evicted from the lobby meanwhile, else how
    /// many were closed.
    pub fn claim_office(&self) -> Option<usize> {
        let s = &self.slots;
        let mut inner = s.lock();
        if !inner.conns.contains_key(&self.id) {
            return None;
        }
        let mut evicted = 0;
        if inner.count(None, Place::Office) >= s.office
            && (inner.evict_oldest(None, Place::Office, State::Unproven, Duration::ZERO)
                || inner.evict_oldest(None, Place::Office, State::Proven, Duration::ZERO))
        {
            evicted += 1;
        }
        let e = inner.conns.get_mut(&self.id)?;
        e.state = State::Unproven;
        e.office = true;
        e.since = Instant::now();
        e.peek = None;
        self.office.store(true, Ordering::Relaxed);
        Some(evicted)
    }

    /// Its task has read the ClientHello and is about to judge it (the
    /// token's signature takes a while, milliseconds in a debug build):
    /// from now the connection is not taken for a silent one, nor closed
    /// to make room (it leaves the lobby once judged). relay-rt9 F1, found with its t3 scripts:
    /// a hello read off the socket left nothing for `peek` to see, so
    /// under a flood of silent connections from the office's address the
    /// office's connection was closed as "the oldest silent one" while its
    /// token was being verified — 24 of 60 handshakes with a token failed
    /// ("tls handshake eof"), 0 of 60 without one.
    pub fn heard(&self) {
        if let Some(e) = self.slots.lock().conns.get_mut(&self.id) {
            if e.state == State::Lobby {
                e.spoken = true;
                e.heard = true;
                e.since = Instant::now();
                e.peek = None;
            }
        }
    }

    /// In the office's slots: its bundle bodies may use the office's share
    /// of the in-flight budget (relay-rt9 F4).
    pub fn is_office(&self) -> bool {
        self.office.load(Ordering::Relaxed)
    }

    /// The connection carried the office's signed head: it can no longer
    /// be evicted.
    pub fn prove(&self) {
        if self.proven.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(e) = self.slots.lock().conns.get_mut(&self.id) {
            e.state = State::Proven;
        }
    }

    /// It was closed to make room for a newer connection (and counted so).
    pub fn was_evicted(&self) -> bool {
        !self.slots.lock().conns.contains_key(&self.id)
    }

    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// Resolves when the connection has been evicted for a newer one.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.lock().conns.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spoke(s: &Arc<Slots>, ip: IpAddr) -> Ticket {
        let (t, _) = s.admit(ip, None).expect("admitted");
        t.claim().expect("a slot");
        t
    }

    #[test]
    fn a_full_address_evicts_its_oldest_unproven_connection_never_a_proven_one() {
        let s = Slots::new(64, 3, Duration::ZERO);
        let office: IpAddr = [10, 20, 0, 1].into();
        let first = spoke(&s, office);
        let second = spoke(&s, office);
        let third = spoke(&s, office);
        second.prove();
        // Full: the newcomer takes the oldest unproven slot (the first).
        let (fourth, _) = s.admit(office, None).expect("admitted");
        assert_eq!(fourth.claim(), Some(1));
        assert_eq!(s.open(), 3);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("rt");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), first.evicted())
                .await
                .expect("the oldest unproven connection is told to close");
        });
        // Then the next oldest unproven (the third), never the proven second.
        let _fifth = spoke(&s, office);
        fourth.prove();
        let sixth = spoke(&s, office);
        assert_eq!(s.open(), 3);
        sixth.prove();
        // Every slot proven: a newcomer gets none, nothing is evicted.
        let (seventh, _) = s.admit(office, None).expect("admitted");
        assert_eq!(seventh.claim(), None);
        drop((third, first));
        assert_eq!(s.open(), 3);
        drop(second);
        assert!(seventh.claim().is_some());
    }

    #[test]
    fn squatters_in_the_shared_slots_never_take_the_office_slots() {
        // A grace so long that no squatter is ever evicted in the shared slots.
        let s = Slots::new(4, 4, Duration::from_secs(60));
        let office: IpAddr = [10, 20, 0, 1].into();
        let squat: Vec<_> = (0..4).map(|_| spoke(&s, office)).collect();
        let (late, _) = s.admit(office, None).expect("admitted");
        assert_eq!(late.claim(), None, "the shared slots are full");
        let (ours, _) = s.admit(office, None).expect("admitted");
        assert_eq!(ours.claim_office(), Some(0), "the office's slot is free");
        assert_eq!((s.open(), s.office()), (4, 1));
        // Full office slots: the oldest gives way, but a connection not
        // yet proven by a signed head (a copied token's) before any proven.
        ours.prove();
        let mut rest: Vec<_> = (1..OFFICE)
            .map(|_| {
                let (t, _) = s.admit(office, None).expect("admitted");
                assert_eq!(t.claim_office(), Some(0));
                t.prove();
                t
            })
            .collect();
        let (copied, _) = s.admit(office, None).expect("admitted");
        assert_eq!(copied.claim_office(), Some(1));
        assert!(futures_util::FutureExt::now_or_never(ours.evicted()).is_some());
        let (next, _) = s.admit(office, None).expect("admitted");
        assert_eq!(next.claim_office(), Some(1));
        assert!(futures_util::FutureExt::now_or_never(copied.evicted()).is_some());
        assert!(rest
            .iter()
            .all(|t| futures_util::FutureExt::now_or_never(t.evicted()).is_none()));
        assert_eq!(s.office(), OFFICE);
        rest.push(next);
        drop((squat, rest, copied, ours));
        assert_eq!((s.open(), s.office()), (0, 0));
    }

    #[test]
    fn the_total_evicts_the_oldest_unproven_of_any_address() {
        let s = Slots::new(2, 2, Duration::ZERO);
        let a = spoke(&s, [10, 0, 0, 1].into());
        let b = spoke(&s, [10, 0, 0, 2].into());
        a.prove();
        let (c, _) = s.admit([10, 0, 0, 3].into(), None).expect("admitted");
        assert_eq!(c.claim(), Some(1));
        assert!(!b.is_proven());
        assert_eq!(s.open(), 2);
        drop(b);
        assert_eq!(s.open(), 2, "an evicted ticket's drop frees nothing twice");
    }

    #[test]
    fn a_connection_younger_than_the_grace_is_not_evicted() {
        let s = Slots::new(64, 1, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let _young = spoke(&s, ip);
        let (late, _) = s.admit(ip, None).expect("admitted");
        assert_eq!(late.claim(), None);
    }

    #[test]
    fn silent_connections_wait_in_the_lobby_and_give_way_there() {
        let s = Slots::with_lobby(64, 2, Duration::from_secs(60), 3, 100);
        let ip: IpAddr = [10, 0, 0, 1].into();
        // Silent squatters fill the lobby, never a slot.
        let squat: Vec<_> = (0..3)
            .map(|_| s.admit(ip, None).expect("admitted").0)
            .collect();
        assert_eq!(s.open(), 0);
        // The office's connection gets in, pushing the oldest squatter out…
        let (office, evicted) = s.admit(ip, None).expect("admitted");
        assert_eq!(evicted, 1);
        // …and two more squatters only push the older ones out.
        let more: Vec<_> = (0..2)
            .map(|_| s.admit(ip, None).expect("admitted").0)
            .collect();
        assert_eq!(office.claim(), Some(0), "still admitted, takes a slot");
        assert_eq!(s.open(), 1);
        drop((squat, more));
    }

    #[test]
    fn a_lobby_connection_with_bytes_waiting_is_not_evicted_as_silent() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = |hello: bool| {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            if hello {
                std::io::Write::write_all(&mut c, b"\x16\x03\x01\x00\x04\x01\x00\x00\x00")
                    .expect("hello");
            }
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            std::thread::sleep(Duration::from_millis(50));
            (c, a)
        };
        let s = Slots::with_lobby(64, 2, Duration::ZERO, 2, 100);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let (_c1, a1) = accepted(true);
        let (office, _) = s.admit(ip, Some(a1)).expect("admitted");
        let (_c2, a2) = accepted(false);
        let (_squatter, _) = s.admit(ip, Some(a2)).expect("admitted");
        // Full: the silent one goes, though the office's is older.
        let (_next, evicted) = s.admit(ip, None).expect("admitted");
        assert_eq!(evicted, 1);
        assert_eq!(office.claim(), Some(0));
    }

    /// relay-rt6 R1: a flood of connections that all send a hello faster
    /// than the relay reads them filled the lobby, and each newcomer closed
    /// the oldest: the office's. Now a lobby full of connections that have
    /// spoken refuses the newcomer and keeps the office's.
    #[test]
    fn a_lobby_full_of_spoken_connections_refuses_the_newcomer_not_the_oldest() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut clients = Vec::new();
        let mut spoken = |bytes: &[u8]| {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(&mut c, bytes).expect("hello");
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            clients.push(c);
            a
        };
        let mut s = Slots::with_lobby(64, 2, Duration::ZERO, 3, 100);
        Arc::get_mut(&mut s).expect("one owner").lobby_grace = Duration::from_secs(60);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let hello = b"\x16\x03\x01\x00\x04\x01\x00\x00\x00";
        let office = spoken(hello);
        let flood: Vec<_> = (0..2).map(|_| spoken(hello)).collect();
        std::thread::sleep(Duration::from_millis(50));
        let (office, _) = s.admit(ip, Some(office)).expect("admitted");
        let _flood: Vec<_> = flood
            .into_iter()
            .map(|a| s.admit(ip, Some(a)).expect("admitted"))
            .collect();
        for _ in 0..5 {
            let next = spoken(hello);
            std::thread::sleep(Duration::from_millis(20));
            assert!(s.admit(ip, Some(next)).is_none(), "the newcomer is refused");
        }
        assert!(!office.was_evicted());
        // relay-rt7: the start of a hello and no more is not "spoken": a
        // lobby of those gives way to the newcomer (here to the next one).
        drop(_flood);
        let half = b"\x16\x03\x01\x02\x00\x01";
        let halves: Vec<_> = (0..2)
            .map(|_| {
                let a = spoken(half);
                std::thread::sleep(Duration::from_millis(20));
                s.admit(ip, Some(a)).expect("room").0
            })
            .collect();
        let next = spoken(hello);
        std::thread::sleep(Duration::from_millis(20));
        let (_next, evicted) = s.admit(ip, Some(next)).expect("a half hello gives way");
        assert_eq!(evicted, 1);
        assert!(halves[0].was_evicted() && !office.was_evicted());
        drop((halves, _next));
        assert_eq!(office.claim(), Some(0), "the office's connection goes on");
        // A silent newcomer still gives way to the next one.
        let (silent, _) = s.admit(ip, None).expect("room");
        let (_a, _) = s.admit(ip, None).expect("room");
        let (_b, _) = s.admit(ip, None).expect("room");
        let (_c, evicted) = s.admit(ip, None).expect("the oldest silent one gives way");
        assert_eq!(evicted, 1);
        assert!(silent.was_evicted());
    }

    /// relay-rt7: a spoken connection waiting past the lobby's grace (stuck
    /// or starved) gives way to a newcomer rather than refusing it for good.
    #[test]
    fn a_spoken_connection_past_the_lobby_grace_gives_way() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut clients = Vec::new();
        let mut spoken = || {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(&mut c, b"\x16\x03\x01\x00\x04\x01\x00\x00\x00")
                .expect("hello");
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            clients.push(c);
            a
        };
        let mut s = Slots::with_lobby(64, 2, Duration::ZERO, 2, 100);
        Arc::get_mut(&mut s).expect("one owner").lobby_grace = Duration::from_millis(100);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let (a, b) = (spoken(), spoken());
        std::thread::sleep(Duration::from_millis(30));
        let (first, _) = s.admit(ip, Some(a)).expect("room");
        let (_second, _) = s.admit(ip, Some(b)).expect("room");
        std::thread::sleep(Duration::from_millis(150));
        let (_third, evicted) = s.admit(ip, None).expect("the stuck one gives way");
        assert_eq!(evicted, 1);
        assert!(first.was_evicted());
    }

    /// relay-rt9 F1 (found with its t3 scripts): a connection whose task
    /// has read its hello has nothing waiting on the socket, so `peek`
    /// took it for silent, and under a flood of silent connections it was
    /// closed as the oldest of them while its token was being verified.
    /// Told [`Ticket::heard`], it is not.
    #[test]
    fn a_hello_being_judged_is_not_evicted_as_silent() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut clients = Vec::new();
        // A socket with nothing waiting: its hello already read by its task.
        let mut read_off = || {
            clients.push(std::net::TcpStream::connect(addr).expect("connect"));
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            a
        };
        let mut s = Slots::with_lobby(64, 2, Duration::ZERO, 2, 100);
        Arc::get_mut(&mut s).expect("one owner").lobby_grace = Duration::from_secs(60);
        let ip: IpAddr = [10, 0, 0, 1].into();
        // As before: not told, the oldest goes although its hello was read.
        let (before, _) = s.admit(ip, Some(read_off())).expect("room");
        let (_silent, _) = s.admit(ip, None).expect("room");
        let (_next, evicted) = s.admit(ip, None).expect("room");
        assert_eq!(evicted, 1);
        assert!(before.was_evicted(), "the old behaviour");
        drop((_silent, _next));
        // Told: the silent squatters give way, however many come.
        let (office, _) = s.admit(ip, Some(read_off())).expect("room");
        office.heard();
        let squat: Vec<_> = (0..50)
            .map(|_| s.admit(ip, None).expect("a silent one gives way").0)
            .collect();
        assert!(!office.was_evicted());
        assert_eq!(office.claim_office(), Some(0));
        assert!(office.is_office());
        drop(squat);
    }

    /// relay-rt9 F1 from another allowed host: whole hellos from one
    /// address filled the shared lobby, and room was made by closing the
    /// oldest silent connection of anyone (the office's, its hello not yet
    /// in) or by refusing the office's newcomer. Now the crowded address
    /// makes the room, and a newcomer from an address holding less of the
    /// lobby is never refused for it.
    #[test]
    fn one_crowded_address_cannot_cost_another_its_place_in_the_lobby() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut clients = Vec::new();
        let mut spoken = || {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(&mut c, b"\x16\x03\x01\x00\x04\x01\x00\x00\x00")
                .expect("hello");
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            clients.push(c);
            a
        };
        let mut s = Slots::with_lobby(64, 16, Duration::ZERO, 100, 4);
        Arc::get_mut(&mut s).expect("one owner").lobby_grace = Duration::from_secs(60);
        let (office_ip, flood_ip): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        // The office's connection, its hello not in yet.
        let (office, _) = s.admit(office_ip, None).expect("room");
        let flood: Vec<_> = (0..3)
            .map(|_| {
                let a = spoken();
                std::thread::sleep(Duration::from_millis(20));
                s.admit(flood_ip, Some(a)).expect("room").0
            })
            .collect();
        // Full: the flood's newcomers make no room at the office's cost.
        for _ in 0..5 {
            let a = spoken();
            std::thread::sleep(Duration::from_millis(20));
            assert!(s.admit(flood_ip, Some(a)).is_none());
        }
        assert!(!office.was_evicted());
        // The office's next connection gets in: the crowded address's
        // oldest gives way, although it spoke within the grace.
        let (second, evicted) = s
            .admit(office_ip, None)
            .expect("the office's newcomer gets in");
        assert_eq!(evicted, 1);
        assert!(flood[0].was_evicted() && !flood[1].was_evicted());
        assert!(!office.was_evicted() && !second.was_evicted());
    }

    /// relay-rt9 F1, whole token-less hellos from the office's own address
    /// read slower than they came: its lobby full of connections that had
    /// spoken within the grace, the office's newcomers were refused (6 of
    /// 60 handshakes with a token in a run of rt9's script). A newcomer
    /// whose hello offers a token (by its prefix) now takes the place of
    /// the oldest that offers none; one without is still refused, and
    /// claimers never push out claimers.
    #[test]
    fn a_hello_offering_a_token_gets_into_a_lobby_full_of_hellos_without() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut clients = Vec::new();
        let mut spoken = |bytes: &[u8]| {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(&mut c, bytes).expect("hello");
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            clients.push(c);
            std::thread::sleep(Duration::from_millis(20));
            a
        };
        let plain = b"\x16\x03\x01\x00\x04\x01\x00\x00\x00";
        let token = b"\x16\x03\x01\x00\x0a\x01\x00\x00\x06mdg1.x";
        let mut s = Slots::with_lobby(64, 16, Duration::ZERO, 3, 100);
        Arc::get_mut(&mut s).expect("one owner").lobby_grace = Duration::from_secs(60);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let flood: Vec<_> = (0..3)
            .map(|_| s.admit(ip, Some(spoken(plain))).expect("room").0)
            .collect();
        assert!(
            s.admit(ip, Some(spoken(plain))).is_none(),
            "refused as before"
        );
        let (office, evicted) = s
            .admit(ip, Some(spoken(token)))
            .expect("the token's newcomer");
        assert_eq!(evicted, 1);
        assert!(flood[0].was_evicted() && !flood[1].was_evicted());
        let (second, _) = s.admit(ip, Some(spoken(token))).expect("again");
        assert!(flood[1].was_evicted() && !office.was_evicted());
        let (third, _) = s.admit(ip, Some(spoken(token))).expect("again");
        assert!(flood[2].was_evicted());
        // Only claimers left: a fourth is refused, none of them pushed out.
        assert!(s.admit(ip, Some(spoken(token))).is_none());
        assert!(!office.was_evicted() && !second.was_evicted() && !third.was_evicted());
    }

    #[test]
    fn a_flood_copying_the_token_prefix_is_not_preferred_over_the_office() {
        // Outside tester relay-rt10 N1: hellos offering a made-up token
        // with the office's prefix were "claimers" that never gave way,
        // so the office's newcomer was refused in a lobby full of them.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut clients = Vec::new();
        let mut spoken = |bytes: &[u8]| {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(&mut c, bytes).expect("hello");
            let (a, _) = l.accept().expect("accept");
            a.set_nonblocking(true).expect("nonblocking");
            clients.push(c);
            std::thread::sleep(Duration::from_millis(20));
            a
        };
        let fake = b"\x16\x03\x01\x00\x0d\x01\x00\x00\x09mdg1.fake";
        let good = b"\x16\x03\x01\x00\x0d\x01\x00\x00\x09mdg1.good";
        let mut s = Slots::with_lobby(64, 16, Duration::ZERO, 3, 100);
        Arc::get_mut(&mut s).expect("one owner").lobby_grace = Duration::from_secs(60);
        s.set_vouch(Arc::new(|t: &[u8]| t == b"mdg1.good"));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let flood: Vec<_> = (0..3)
            .map(|_| s.admit(ip, Some(spoken(fake))).expect("room").0)
            .collect();
        assert!(
            s.admit(ip, Some(spoken(fake))).is_none(),
            "a made-up token pushes no one out"
        );
        let (office, evicted) = s
            .admit(ip, Some(spoken(good)))
            .expect("the office's newcomer gets in");
        assert_eq!(evicted, 1);
        assert!(flood[0].was_evicted() && !office.was_evicted());
    }
}
