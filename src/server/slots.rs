//! Connection slots of the office server (issue 23, R11), in three pools
//! so that no one kind of client can take the others' room:
//!
//! - the **open pool** (all but the two below): anyone, up to the
//!   per-address cap of `serve`'s flags;
//! - the **reserve** (a quarter of the total, [`RESERVE_SHARE`]): only
//!   addresses a credential vouches for (`known.rs`), each up to what its
//!   kind needs (a display a handful, a staff PC a browser's worth) and
//!   each credential up to its addresses' worth — so a few stolen
//!   credentials hold a bounded part of it (red-team finding F1);
//! - the **newcomers' share** (a sixteenth, [`NEWCOMER_SHARE`]): never-seen
//!   addresses holding no more than a browser's first few connections, so
//!   that a staff PC on a new DHCP address can still reach `/login` while
//!   a flood fills the open pool. Small, so that a flood from many
//!   addresses that takes it still leaves the reserve alone; and each of
//!   its connections lasts [`NEWCOMER_LIFETIME`], so a flood that takes
//!   it gives it back within seconds.
//!
//!   When the share is full, a newcomer takes the oldest connection of the
//!   address holding the most of it (if that address holds at least two
//!   more than the newcomer): a flood from a dozen addresses that keep
//!   reconnecting can no longer hold it against a machine with one or two
//!   (replay red team N3: a never-seen PC reached `/login` in 2 of 10
//!   tries). Fair shares, not first come. The reserve works the same way
//!   by credential: when it is full, a credential takes the oldest
//!   connection of the one holding the most (insider red team: three
//!   stolen staff accounts held all 192).
//!
//! A slot is freed when the connection (or the WebSocket it became) ends.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;

use futures_util::task::AtomicWaker;

use super::known::{Credential, Voucher};

/// One slot in this many of the total is the known addresses' reserve.
pub const RESERVE_SHARE: usize = 4;
/// One slot in this many is kept for never-seen addresses.
pub const NEWCOMER_SHARE: usize = 16;
/// Connections a never-seen address may hold in the newcomers' share: a
/// browser's parallel connections to load the sign-in page.
pub const NEWCOMER_PER_ADDRESS: usize = 6;
/// How long a connection of the newcomers' share lasts: long enough to
/// load the sign-in page and sign in (after which the address is known),
/// short enough that a flood which takes the share gives it back.
pub const NEWCOMER_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Which pool a slot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Open,
    Reserve,
    Newcomer,
}

/// Tells a connection of the newcomers' share that a newcomer took its
/// slot: its counts are already given back; the connection ends at its
/// next poll.
#[derive(Debug, Default)]
pub struct Eviction {
    evicted: AtomicBool,
    waker: AtomicWaker,
    /// An answer is going out (set by the connection, `connections.rs`):
    /// such a connection goes last.
    answering: AtomicBool,
    /// Requests whose whole head was read and whose answer is not ready
    /// yet (the handler at work). Bytes alone do not count: a flood
    /// sending one byte a connection made itself un-evictable and cut a
    /// browser's page load (outside tester insider-rt5 F5).
    in_flight: AtomicUsize,
}

impl Eviction {
    /// Whether the slot was taken; otherwise `cx` is woken when it is.
    pub fn poll_evicted(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.evicted.load(Ordering::Acquire)
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    fn is_answering(&self) -> bool {
        self.answering.load(Ordering::Acquire) || self.in_flight.load(Ordering::Acquire) > 0
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    in_open: usize,
    reserve: usize,
    newcomer: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_credential: HashMap<Credential, usize>,
    /// The newcomers' share by address, and the reserve by credential:
    /// who holds which connections, oldest first.
    newcomers: Shares<IpAddr>,
    reserved: Shares<Credential>,
    next_id: u64,
}

/// One evictable connection: its id, address and notice.
type Held = (u64, IpAddr, Arc<Eviction>);

/// The connections of one pool by holder, for fair-share eviction.
#[derive(Debug)]
struct Shares<K> {
    by: HashMap<K, VecDeque<Held>>,
}

impl<K> Default for Shares<K> {
    fn default() -> Self {
        Shares { by: HashMap::new() }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Shares<K> {
    fn held(&self, k: &K) -> usize {
        self.by.get(k).map_or(0, VecDeque::len)
    }

    fn push(&mut self, k: K, h: Held) {
        self.by.entry(k).or_default().push_back(h);
    }

    fn remove(&mut self, k: &K, id: u64) {
        if let Some(q) = self.by.get_mut(k) {
            q.retain(|(x, _, _)| *x != id);
            if q.is_empty() {
                self.by.remove(k);
            }
        }
    }

    /// Ends a connection of a holder with at least two more than `mine` —
    /// or with any, for a holder with none yet, so that a flood spread one
    /// connection an address still lets a new machine in (replay red team
    /// N3-a). A connection idle between requests goes first (of the
    /// holders with the most, else of any such holder), the oldest first,
    /// so a newcomer's fresh connection is the last to go; one in the
    /// middle of answering only when none is idle, and then only of the
    /// holders with the most (replay red team N3-b: a browser's page load
    /// was cut mid-answer while its other connections sat idle). Returns
    /// it (already told).
    fn evict_for(&mut self, mine: usize) -> Option<(K, IpAddr)> {
        let most = self.by.values().map(VecDeque::len).max()?;
        if most < mine + 2 && !(mine == 0 && most >= 1) {
            return None;
        }
        let eligible = |len: usize| len >= mine + 2 || (mine == 0 && len >= 1);
        // (answering, fewer held, older) — the least goes.
        type Rank = (bool, std::cmp::Reverse<usize>, u64);
        let mut best: Option<(Rank, &K, usize)> = None;
        for (k, q) in &self.by {
            if !eligible(q.len()) {
                continue;
            }
            for (i, h) in q.iter().enumerate() {
                let answering = h.2.is_answering();
                if answering && q.len() < most {
                    continue;
                }
                let rank = (answering, std::cmp::Reverse(q.len()), h.0);
                if best.as_ref().is_none_or(|(b, _, _)| rank < *b) {
                    best = Some((rank, k, i));
                }
            }
        }
        let (_, victim, i) = best?;
        let victim = victim.clone();
        let q = self.by.get_mut(&victim)?;
        let (_, ip, e) = q.remove(i)?;
        if q.is_empty() {
            self.by.remove(&victim);
        }
        e.evict();
        Some((victim, ip))
    }
}

impl Counts {
    fn held_by(&self, ip: &IpAddr) -> usize {
        self.per_ip.get(ip).copied().unwrap_or(0)
    }

    /// Gives back one connection of `ip` in `pool`.
    fn release(&mut self, ip: IpAddr, pool: Pool) {
        self.total = self.total.saturating_sub(1);
        match pool {
            Pool::Open => self.in_open = self.in_open.saturating_sub(1),
            Pool::Reserve => self.reserve = self.reserve.saturating_sub(1),
            Pool::Newcomer => self.newcomer = self.newcomer.saturating_sub(1),
        }
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Frees a place in the full newcomers' share for an address that
    /// holds `mine` of it.
    fn evict_newcomer(&mut self, mine: usize) -> bool {
        match self.newcomers.evict_for(mine) {
            Some((_, ip)) => {
                self.release(ip, Pool::Newcomer);
                true
            }
            None => false,
        }
    }

    /// Frees a place in the full reserve for a credential that holds
    /// `mine` of it (insider red team: three stolen staff accounts held
    /// the whole reserve).
    fn evict_reserved(&mut self, mine: usize) -> bool {
        match self.reserved.evict_for(mine) {
            Some((cred, ip)) => {
                self.release(ip, Pool::Reserve);
                self.uncharge(&cred);
                true
            }
            None => false,
        }
    }

    fn uncharge(&mut self, cred: &Credential) {
        if let Some(n) = self.per_credential.get_mut(cred) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_credential.remove(cred);
            }
        }
    }
}

/// The slot counts and caps.
#[derive(Debug)]
pub struct Slots {
    total: usize,
    per_address: usize,
    counts: Mutex<Counts>,
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
    pool: Pool,
    /// For a reserve slot: the credential it is charged to.
    credential: Option<Credential>,
    /// For a slot of the newcomers' share or the reserve: its id and
    /// eviction notice.
    evictable: Option<(u64, Arc<Eviction>)>,
}

impl Slot {
    pub fn pool(&self) -> Pool {
        self.pool
    }

    /// Whether a newcomer took this slot (see the module doc); `cx` is
    /// woken when that happens.
    pub fn poll_evicted(&self, cx: &Context<'_>) -> bool {
        self.evictable
            .as_ref()
            .is_some_and(|(_, e)| e.poll_evicted(cx))
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Marks the requests of this connection as they are served (a
    /// request counts once its whole head is in).
    pub fn requests(&self) -> Requests {
        Requests(self.evictable.as_ref().map(|(_, e)| e.clone()))
    }

    /// The connection writes an answer (`true`) or has answered and
    /// waits for the next request (`false`): an idle one is evicted first.
    pub fn set_answering(&self, answering: bool) {
        if let Some((_, e)) = &self.evictable {
            e.answering.store(answering, Ordering::Release);
        }
    }
}

/// A connection's requests in flight (see [`Slot::requests`]).
#[derive(Debug, Clone, Default)]
pub struct Requests(Option<Arc<Eviction>>);

impl Requests {
    /// A request's whole head is in: the connection is answering until the
    /// guard goes (its answer is ready).
    pub fn begin(&self) -> InFlight {
        if let Some(e) = &self.0 {
            e.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        InFlight(self.0.clone())
    }
}

/// One request in flight; dropped when its answer is ready.
#[derive(Debug)]
pub struct InFlight(Option<Arc<Eviction>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(e) = &self.0 {
            e.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The reserve's size out of `total`.
pub fn reserve(total: usize) -> usize {
    total / RESERVE_SHARE
}

/// The newcomers' share out of `total` (at least one slot).
pub fn newcomers(total: usize) -> usize {
    (total / NEWCOMER_SHARE).max(1).min(total - reserve(total))
}

/// The open pool: what the reserve and the newcomers' share leave.
pub fn open_pool(total: usize) -> usize {
    total - reserve(total) - newcomers(total)
}

impl Slots {
    pub fn new(total: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            total: total.max(1),
            per_address: per_address.max(1),
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now, in every pool.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// A slot for a new connection from `ip`, which `voucher` vouches for
    /// (or nothing: a stranger), or `None` when every pool it may use is
    /// full for it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, voucher: Option<Voucher>) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut c = self.lock();
        let here = c.held_by(&ip);
        let full = c.total >= self.total;
        let (pool, credential) =
            if !full && c.in_open < open_pool(self.total) && here < self.per_address {
                (Pool::Open, None)
            } else if let Some(v) = voucher {
                let charged = c.per_credential.get(&v.credential).copied().unwrap_or(0);
                let mine = c.reserved.held(&v.credential);
                let fits = here < v.kind.connections()
                    && charged < v.kind.per_credential()
                    && ((!full && c.reserve < reserve(self.total)) || c.evict_reserved(mine));
                if !fits {
                    return None;
                }
                (Pool::Reserve, Some(v.credential))
            } else if here < NEWCOMER_PER_ADDRESS {
                let mine = c.newcomers.held(&ip);
                let room = (!full && c.newcomer < newcomers(self.total)) || c.evict_newcomer(mine);
                if !room {
                    return None;
                }
                (Pool::Newcomer, None)
            } else {
                return None;
            };
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        match pool {
            Pool::Open => c.in_open += 1,
            Pool::Reserve => c.reserve += 1,
            Pool::Newcomer => c.newcomer += 1,
        }
        if let Some(cred) = &credential {
            *c.per_credential.entry(cred.clone()).or_insert(0) += 1;
        }
        let evictable = (pool != Pool::Open).then(|| {
            c.next_id += 1;
            let entry = (c.next_id, Arc::new(Eviction::default()));
            let held = (entry.0, ip, entry.1.clone());
            match &credential {
                Some(cred) => c.reserved.push(cred.clone(), held),
                None => c.newcomers.push(ip, held),
            }
            entry
        });
        Some(Slot {
            slots: self.clone(),
            ip,
            pool,
            credential,
            evictable,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.lock();
        if let Some((id, e)) = &self.evictable {
            if e.is_evicted() {
                // Given back when another took its place.
                return;
            }
            match &self.credential {
                Some(cred) => c.reserved.remove(cred, *id),
                None => c.newcomers.remove(&self.ip, *id),
            }
        }
        c.release(self.ip, self.pool);
        if let Some(cred) = &self.credential {
            c.uncharge(cred);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::known::Kind;
    use super::*;

    fn display(name: &str) -> Option<Voucher> {
        Some(Voucher {
            credential: Credential {
                device: true,
                name: name.into(),
            },
            kind: Kind::Device,
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn the_pools_share_the_total() {
        assert_eq!(
            (open_pool(768), reserve(768), newcomers(768)),
            (528, 192, 48)
        );
        assert_eq!((open_pool(80), reserve(80), newcomers(80)), (55, 20, 5));
        assert_eq!((open_pool(1), reserve(1), newcomers(1)), (0, 0, 1));
    }

    #[test]
    fn a_flood_with_one_stolen_display_token_leaves_room_for_staff_and_newcomers() {
        let s = Slots::new(768, 128);
        let mut held = Vec::new();
        // Six addresses, 128 each; the display vouches for the last two.
        for last in 2..=7u8 {
            let v = if last >= 6 {
                display("display-1")
            } else {
                None
            };
            for _ in 0..128 {
                held.extend(s.admit(ip(last), v.clone()));
            }
        }
        // The sixth address already holds 16 of the open pool, past what a
        // display may hold: only the seventh takes from the reserve.
        assert_eq!(held.len(), 528 + 8, "the open pool and one display's 8");
        // A staff PC is admitted from the reserve; a new machine from the
        // newcomers' share, up to a browser's worth.
        let staff = Some(Voucher {
            credential: Credential {
                device: false,
                name: "yamada".into(),
            },
            kind: Kind::Person,
        });
        let staff_slots: Vec<Slot> = (0..20)
            .filter_map(|_| s.admit(ip(31), staff.clone()))
            .collect();
        assert_eq!(staff_slots.len(), 16);
        let new: Vec<Slot> = (0..10).filter_map(|_| s.admit(ip(70), None)).collect();
        assert_eq!(new.len(), NEWCOMER_PER_ADDRESS);
        assert!(new.iter().all(|x| x.pool() == Pool::Newcomer));
        // The flood's own addresses get nothing more.
        assert!(s.admit(ip(2), None).is_none());
        drop(held);
        assert_eq!(s.open(), 16 + NEWCOMER_PER_ADDRESS);
    }

    /// N3: a flood from twelve addresses that keep reconnecting shares
    /// the newcomers' share out evenly among itself, then gives way, one
    /// connection at a time, to never-seen machines; nobody takes from an
    /// address that holds as little as itself.
    #[test]
    fn newcomers_take_the_share_back_from_a_flood_of_many_addresses() {
        let s = Slots::new(768, 128);
        let waker = futures_util::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let mut open = Vec::new();
        for last in 2..=6u8 {
            open.extend((0..128).filter_map(|_| s.admit(ip(last), None)));
        }
        assert_eq!(open.len(), 528, "the open pool is full");
        let mut flood = Vec::new();
        for last in 100..112u8 {
            flood.extend((0..6).filter_map(|_| s.admit(ip(last), None)));
        }
        let live = |v: &[Slot]| v.iter().filter(|x| !x.poll_evicted(&cx)).count();
        assert_eq!(
            live(&flood),
            48,
            "the flood holds the whole share, 4 an address"
        );
        // Ten new machines, two connections each: every one admitted, each
        // taking one of the flood's connections.
        let mut new = Vec::new();
        for last in 200..210u8 {
            for _ in 0..2 {
                new.push(s.admit(ip(last), None).expect("a newcomer is admitted"));
            }
        }
        assert_eq!(live(&new), 20);
        assert_eq!(live(&flood), 28);
        assert_eq!(s.open(), 528 + 48, "the counts stay within the total");
        // Even shares now: no flood address and no new machine takes more.
        for last in (100..112u8).chain(200..210) {
            assert!(s.admit(ip(last), None).is_none(), "127.0.0.{last}");
        }
        assert_eq!(live(&new), 20);
        // Evicted slots are not given back twice.
        drop(flood);
        assert_eq!(s.open(), 528 + 20);
        drop(new);
        drop(open);
        assert_eq!(s.open(), 0);
    }

    /// N3-a: a flood of one connection from each of a hundred addresses
    /// still lets a never-seen machine in, and the machine's connection is
    /// the last to be taken back (the oldest goes first).
    #[test]
    fn a_flood_of_single_connections_still_lets_a_newcomer_in() {
        let s = Slots::new(768, 128);
        let waker = futures_util::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let mut open = Vec::new();
        for last in 2..=6u8 {
            open.extend((0..128).filter_map(|_| s.admit(ip(last), None)));
        }
        let v4 = |n: u16| IpAddr::from([127, 1, (n >> 8) as u8, n as u8]);
        let flood: Vec<Slot> = (0..100).filter_map(|n| s.admit(v4(n), None)).collect();
        assert_eq!(
            flood.len(),
            100,
            "each flood address is let in, the oldest go"
        );
        let new = s.admit(ip(250), None).expect("the newcomer is let in");
        let more: Vec<Slot> = (100..147).filter_map(|n| s.admit(v4(n), None)).collect();
        assert_eq!(more.len(), 47);
        assert!(
            !new.poll_evicted(&cx),
            "the newest connection is the last to go"
        );
        assert_eq!(s.open(), 528 + 48);
        drop((flood, more, new, open));
        assert_eq!(s.open(), 0);
    }

    /// N3-b: a browser holding four connections of the newcomers' share
    /// while single-connection addresses flood in loses the ones idle
    /// between requests, never the one answering while another is idle;
    /// with all four answering, the oldest goes as before.
    #[test]
    fn a_flood_takes_a_browsers_idle_connections_before_the_one_answering() {
        let s = Slots::new(768, 128);
        let waker = futures_util::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let mut open = Vec::new();
        for last in 2..=6u8 {
            open.extend((0..128).filter_map(|_| s.admit(ip(last), None)));
        }
        let v4 = |n: u16| IpAddr::from([127, 1, (n >> 8) as u8, n as u8]);
        // 44 flood addresses, one connection each; the browser opens four.
        let mut flood: Vec<Slot> = (0..44).filter_map(|n| s.admit(v4(n), None)).collect();
        let browser: Vec<Slot> = (0..4).filter_map(|_| s.admit(ip(250), None)).collect();
        assert_eq!((flood.len(), browser.len()), (44, 4));
        // Its oldest two are loading the page; the other two are idle.
        for b in &browser[..2] {
            b.set_answering(true);
        }
        // Two more flood addresses: the idle two go, the oldest (answering)
        // one stays.
        flood.extend((44..46).filter_map(|n| s.admit(v4(n), None)));
        assert_eq!(flood.len(), 46);
        let cut: Vec<bool> = browser.iter().map(|b| b.poll_evicted(&cx)).collect();
        assert_eq!(cut, [false, false, true, true], "idle ones go first");
        // Both left answer: a flood address's idle connection goes before
        // either (the browser now holds the most, but only idle ones are
        // taken from others first).
        for f in &flood {
            f.set_answering(false);
        }
        flood.extend(s.admit(v4(46), None));
        assert!(browser[..2].iter().all(|b| !b.poll_evicted(&cx)));
        assert!(flood[0].poll_evicted(&cx), "the oldest idle flood one");
        // With every connection answering, the biggest holder's oldest goes.
        for f in &flood {
            f.set_answering(true);
        }
        flood.extend(s.admit(v4(47), None));
        assert!(browser[0].poll_evicted(&cx));
        drop((flood, browser, open));
        assert_eq!(s.open(), 0);
    }

    /// Three stolen staff accounts that hold the whole reserve give way to
    /// a real staff member, a connection at a time, down to even shares.
    #[test]
    fn stolen_accounts_holding_the_reserve_give_way_to_a_real_one() {
        let s = Slots::new(768, 128);
        let waker = futures_util::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let person = |name: &str| {
            Some(Voucher {
                credential: Credential {
                    device: false,
                    name: name.into(),
                },
                kind: Kind::Person,
            })
        };
        let mut open = Vec::new();
        for last in 2..=6u8 {
            open.extend((0..128).filter_map(|_| s.admit(ip(last), None)));
        }
        // Each stolen account from its four addresses, 16 each: 3 × 64.
        let mut stolen = Vec::new();
        for (k, who) in ["a", "b", "c"].iter().enumerate() {
            for a in 0..4u8 {
                let last = 100 + 4 * k as u8 + a;
                stolen.extend((0..16).filter_map(|_| s.admit(ip(last), person(who))));
            }
        }
        let live = |v: &[Slot]| v.iter().filter(|x| !x.poll_evicted(&cx)).count();
        assert_eq!(live(&stolen), 192, "the reserve is full");
        // A staff PC: a browser's connections, each taking a stolen one's.
        let real: Vec<Slot> = (0..8)
            .filter_map(|_| s.admit(ip(31), person("yamada")))
            .collect();
        assert_eq!(real.len(), 8);
        assert_eq!(live(&real), 8);
        assert_eq!(live(&stolen), 184);
        assert_eq!(s.open(), 528 + 192);
        drop(stolen);
        assert_eq!(s.open(), 528 + 8, "nothing given back twice");
    }

    #[test]
    fn one_credential_holds_its_addresses_worth_however_often_it_moves() {
        let s = Slots::new(80, 20);
        let fill: Vec<Slot> = (0..55).filter_map(|_| s.admit(ip(200), None)).collect();
        assert_eq!(fill.len(), 20, "per address");
        let fill: Vec<Slot> = (201..=203u8)
            .flat_map(|a| (0..20).map(move |_| a))
            .filter_map(|a| s.admit(ip(a), None))
            .chain(fill)
            .collect();
        assert_eq!(fill.len(), 55 + 5, "the open pool, and a newcomer's share");
        let mut reserve = Vec::new();
        for last in 10..=20u8 {
            reserve.extend((0..8).filter_map(|_| s.admit(ip(last), display("display-1"))));
        }
        assert_eq!(reserve.len(), Kind::Device.per_credential());
    }
}
