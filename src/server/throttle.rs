//! Sign-in throttling that a stranger cannot turn into a lock-out of a real
//! account (issue 23, R11).
//!
//! Three counters, each forgotten after [`FORGET`] without a failure:
//! - per (account, address): after [`PAIR_FAILURES`] failures that address
//!   waits before it may try that account again (1, 2, 4 … 32 minutes);
//! - per address: after [`ADDRESS_FAILURES`] failures over any accounts the
//!   address waits (5, 10 … minutes) — one machine cannot guess through
//!   every name;
//! - per account: after [`PAIR_FAILURES`] failures from anywhere, every
//!   sign-in to it waits [`ACCOUNT_DELAY`] first. A delay, not a lock: the
//!   real person signing in from their own station still gets in.
//!
//! The wait is answered with the minutes left.
//!
//! An IPv6 address counts by its /64 (one machine owns a whole /64), and a
//! sign-in turned away as busy ([`super::hash_gate`]) counts against its
//! address like a failure, so hammering the gate locks the hammerer. An
//! address where someone signed in rightly in the last [`KNOWN_FOR`] is
//! "known": the gate keeps places for it (red-team finding: a spray from
//! many addresses kept the gate full and the admin got 「混み合っています」
//! on 20 tries of 22).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const PAIR_FAILURES: u32 = 5;
pub const ADDRESS_FAILURES: u32 = 20;
pub const ACCOUNT_DELAY: Duration = Duration::from_secs(1);
const FORGET: Duration = Duration::from_secs(15 * 60);
/// How long an address stays known after a right sign-in.
pub const KNOWN_FOR: Duration = Duration::from_secs(12 * 3600);

/// The address as the counters key it: an IPv6 address by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(seg))
            }
        },
    }
}
/// Entries kept at most; past this the forgotten ones are dropped first.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    fails: u32,
    until: Option<Instant>,
    last: Instant,
    /// A refusal during the current wait has been reported.
    noted: bool,
}

impl Strikes {
    fn new(now: Instant) -> Strikes {
        Strikes {
            fails: 0,
            until: None,
            last: now,
            noted: false,
        }
    }

    fn fresh(&mut self, now: Instant) {
        let locked = self.until.is_some_and(|u| u > now);
        if !locked && now.duration_since(self.last) > FORGET {
            *self = Strikes::new(now);
        }
    }

    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .filter(|u| *u > now)
            .map(|u| u.duration_since(now))
    }

    /// The refusal for a wait, noting it.
    fn refuse(&mut self, wait: Duration) -> Locked {
        let first = !self.noted;
        self.noted = true;
        Locked { wait, first }
    }
}

#[derive(Debug, Default)]
struct Counters {
    pairs: HashMap<(String, IpAddr), Strikes>,
    addresses: HashMap<IpAddr, Strikes>,
    accounts: HashMap<String, Strikes>,
    /// Addresses with a right sign-in, and when.
    known: HashMap<IpAddr, Instant>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    counters: Mutex<Counters>,
    /// How many password checks run at once: [`super::hash_gate`].
    pub gate: super::hash_gate::HashGate,
}

/// A sign-in refused before its password is checked: how long to wait,
/// and whether it is the first refusal of this wait. Every refusal is
/// audited through `sign_in_audit.rs`, which bounds a flood's records
/// (pages-rt9 F7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub wait: Duration,
    pub first: bool,
}

/// Whole minutes left, at least one.
pub fn minutes(wait: Duration) -> u64 {
    wait.as_secs().div_ceil(60).max(1)
}

fn key(account: &str) -> String {
    account.to_lowercase()
}

fn prune<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Strikes>, now: Instant) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, s| s.until.is_some_and(|u| u > now) || now.duration_since(s.last) <= FORGET);
    }
}

impl Throttle {
    /// Before checking a password: [`Locked`] if this address must wait
    /// for this account, else the delay to take before checking.
    pub fn before(&self, account: &str, addr: IpAddr) -> Result<Duration, Locked> {
        let addr = address_key(addr);
        let now = Instant::now();
        let Ok(mut c) = self.counters.lock() else {
            return Ok(ACCOUNT_DELAY);
        };
        let account = key(account);
        if let Some(s) = c.addresses.get_mut(&addr) {
            s.fresh(now);
            if let Some(w) = s.wait(now) {
                return Err(s.refuse(w));
            }
        }
        if let Some(s) = c.pairs.get_mut(&(account.clone(), addr)) {
            s.fresh(now);
            if let Some(w) = s.wait(now) {
                return Err(s.refuse(w));
            }
        }
        let delay = c.accounts.get_mut(&account).map_or(Duration::ZERO, |s| {
            s.fresh(now);
            if s.fails >= PAIR_FAILURES {
                ACCOUNT_DELAY
            } else {
                Duration::ZERO
            }
        });
        Ok(delay)
    }

    /// A wrong password (or unknown name) from `addr`.
    pub fn failed(&self, account: &str, addr: IpAddr) {
        let addr = address_key(addr);
        let now = Instant::now();
        let Ok(mut c) = self.counters.lock() else {
            return;
        };
        let account = key(account);
        prune(&mut c.pairs, now);
        prune(&mut c.addresses, now);
        prune(&mut c.accounts, now);
        let pair = c
            .pairs
            .entry((account.clone(), addr))
            .or_insert(Strikes::new(now));
        pair.fresh(now);
        pair.fails += 1;
        pair.last = now;
        if pair.fails >= PAIR_FAILURES {
            let minutes = 1u64 << (pair.fails - PAIR_FAILURES).min(5);
            pair.until = Some(now + Duration::from_secs(60 * minutes));
            pair.noted = false;
        }
        let a = c.addresses.entry(addr).or_insert(Strikes::new(now));
        a.fresh(now);
        a.fails += 1;
        a.last = now;
        if a.fails >= ADDRESS_FAILURES {
            let minutes = 5u64 << ((a.fails - ADDRESS_FAILURES) / 5).min(4);
            a.until = Some(now + Duration::from_secs(60 * minutes));
            a.noted = false;
        }
        let acc = c.accounts.entry(account).or_insert(Strikes::new(now));
        acc.fresh(now);
        acc.fails += 1;
        acc.last = now;
    }

    /// A sign-in from `addr` turned away as busy: a strike for the address
    /// (not for any account).
    pub fn busy(&self, addr: IpAddr) {
        let addr = address_key(addr);
        let now = Instant::now();
        let Ok(mut c) = self.counters.lock() else {
            return;
        };
        prune(&mut c.addresses, now);
        let a = c.addresses.entry(addr).or_insert(Strikes::new(now));
        a.fresh(now);
        a.fails += 1;
        a.last = now;
        if a.fails >= ADDRESS_FAILURES {
            let minutes = 5u64 << ((a.fails - ADDRESS_FAILURES) / 5).min(4);
            a.until = Some(now + Duration::from_secs(60 * minutes));
            a.noted = false;
        }
    }

    /// Whether someone signed in rightly from `addr` lately.
    pub fn known(&self, addr: IpAddr) -> bool {
        let addr = address_key(addr);
        self.counters.lock().is_ok_and(|c| {
            c.known
                .get(&addr)
                .is_some_and(|at| at.elapsed() <= KNOWN_FOR)
        })
    }

    /// The right password from `addr`: that pair and the account's delay
    /// are cleared (the address's own count is not: a valid account must
    /// not reset a guesser's budget).
    pub fn succeeded(&self, account: &str, addr: IpAddr) {
        let addr = address_key(addr);
        if let Ok(mut c) = self.counters.lock() {
            let now = Instant::now();
            if c.known.len() >= MAX_ENTRIES {
                c.known.retain(|_, at| now.duration_since(*at) <= KNOWN_FOR);
            }
            if c.known.len() < MAX_ENTRIES {
                c.known.insert(addr, now);
            }
            let account = key(account);
            c.pairs.remove(&(account.clone(), addr));
            c.accounts.remove(&account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stranger_locks_only_their_own_address() {
        let t = Throttle::default();
        let evil = IpAddr::from([10, 0, 0, 66]);
        let desk = IpAddr::from([10, 0, 0, 7]);
        for _ in 0..PAIR_FAILURES {
            assert!(t.before("KACHO", evil).is_ok());
            t.failed("KACHO", evil);
        }
        let locked = t.before("kacho", evil).expect_err("locked");
        assert_eq!(minutes(locked.wait), 1);
        assert!(locked.first, "the first refusal is reported");
        assert!(!t.before("kacho", evil).expect_err("locked").first);
        // The real person's station: a short delay, not a lock.
        assert_eq!(t.before("kacho", desk), Ok(ACCOUNT_DELAY));
        t.succeeded("kacho", desk);
        assert_eq!(t.before("kacho", desk), Ok(Duration::ZERO));
        assert!(t.before("kacho", evil).is_err());
    }

    #[test]
    fn an_ipv6_machine_counts_as_its_64_and_busy_answers_count() {
        let t = Throttle::default();
        for i in 0..ADDRESS_FAILURES {
            let ip: IpAddr = format!("fd00:1:2:3::{:x}", i + 1).parse().expect("ip");
            assert!(t.before(&format!("u{i}"), ip).is_ok());
            t.busy(ip);
        }
        let other: IpAddr = "fd00:1:2:3:ffff::9".parse().expect("ip");
        assert!(t.before("admin", other).is_err(), "the same /64 waits");
        let elsewhere: IpAddr = "fd00:1:2:4::1".parse().expect("ip");
        assert!(t.before("admin", elsewhere).is_ok());
        assert!(!t.known(elsewhere));
        t.succeeded("admin", elsewhere);
        assert!(t.known("fd00:1:2:4::77".parse().expect("ip")));
    }

    #[test]
    fn one_address_cannot_guess_through_every_name() {
        let t = Throttle::default();
        let evil = IpAddr::from([10, 0, 0, 66]);
        for i in 0..ADDRESS_FAILURES {
            assert!(t.before(&format!("user{i}"), evil).is_ok());
            t.failed(&format!("user{i}"), evil);
        }
        let locked = t.before("someone-else", evil).expect_err("address locked");
        assert_eq!(minutes(locked.wait), 5);
        assert!(t
            .before("someone-else", IpAddr::from([10, 0, 0, 8]))
            .is_ok());
    }
}
