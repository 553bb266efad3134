//! How many password checks run at once (issue 23, R11). An argon2id check
//! takes a core for tens of milliseconds on purpose; a spray of sign-ins
//! from many addresses (each under its own throttle) queued every check
//! behind the others, and a real sign-in took 26 s. The gate lets as many
//! checks run as there are cores, lets a few more wait, and answers the
//! rest at once with 「混み合っています」 (503, Retry-After) instead of
//! queueing them; one address (an IPv6 /64) may hold only [`PER_ADDRESS`]
//! places, so a sprayer from one machine cannot fill the queue either, and
//! [`RESERVED`] more places are kept for addresses where someone signed in
//! rightly lately, so a spray from many addresses cannot keep the staff
//! and the admin out. The per-account delay is slept before a place is
//! taken: a place is held only while a check waits for a core or runs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Checks waiting (beyond those running) before new ones are turned away.
pub const WAITING: usize = 8;
/// Places (running or waiting) one address may hold.
pub const PER_ADDRESS: usize = 2;
/// Places only addresses known from a right sign-in may take.
pub const RESERVED: usize = 4;
/// The longest a check waits for a core before it is answered "busy".
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug)]
struct Inner {
    running: Arc<Semaphore>,
    /// Places held: in total and per address.
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
    capacity: usize,
}

/// The gate; cheap to clone.
#[derive(Debug, Clone)]
pub struct HashGate {
    inner: Arc<Inner>,
}

impl Default for HashGate {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashGate::new(cores)
    }
}

/// The gate is full, or this address holds its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A place at the gate: a running check once [`Place::run`] returns. Moved
/// into the blocking task, so a client that hangs up does not free the
/// core its check is still using.
#[derive(Debug)]
pub struct Place {
    inner: Arc<Inner>,
    addr: IpAddr,
    permit: Option<OwnedSemaphorePermit>,
}

impl HashGate {
    pub fn new(running: usize) -> HashGate {
        let running = running.max(1);
        HashGate {
            inner: Arc::new(Inner {
                running: Arc::new(Semaphore::new(running)),
                held: Mutex::new((0, HashMap::new())),
                capacity: running + WAITING,
            }),
        }
    }

    /// A place for a check from `addr` (`known` if someone signed in
    /// rightly from it lately), or [`Busy`] at once.
    pub fn enter(&self, addr: IpAddr, known: bool) -> Result<Place, Busy> {
        let addr = super::throttle::address_key(addr);
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *held;
        let mine = per.get(&addr).copied().unwrap_or(0);
        let capacity = self.inner.capacity + if known { RESERVED } else { 0 };
        if *total >= capacity || mine >= PER_ADDRESS {
            return Err(Busy);
        }
        *total += 1;
        per.insert(addr, mine + 1);
        Ok(Place {
            inner: self.inner.clone(),
            addr,
            permit: None,
        })
    }
}

impl Place {
    /// Waits for a core to check on ([`MAX_WAIT`] at most).
    pub async fn run(mut self) -> Result<Place, Busy> {
        let acquire = self.inner.running.clone().acquire_owned();
        match tokio::time::timeout(MAX_WAIT, acquire).await {
            Ok(Ok(p)) => {
                self.permit = Some(p);
                Ok(self)
            }
            _ => Err(Busy),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(n) = per.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_two_places_and_the_gate_its_capacity() {
        let gate = HashGate::new(2);
        let a = IpAddr::from([10, 0, 0, 1]);
        let first = gate.enter(a, false).expect("first");
        let _second = gate.enter(a, false).expect("second");
        assert_eq!(gate.enter(a, false).err(), Some(Busy));
        drop(first);
        let _third = gate.enter(a, false).expect("a place freed is free again");
        let mut others = Vec::new();
        for i in 0..(2 + WAITING - 2) {
            others.push(
                gate.enter(IpAddr::from([10, 0, 1, i as u8]), false)
                    .expect("room"),
            );
        }
        assert_eq!(
            gate.enter(IpAddr::from([10, 0, 2, 1]), false).err(),
            Some(Busy)
        );
        // A known address still finds a place.
        let _admin = gate
            .enter(IpAddr::from([10, 0, 3, 1]), true)
            .expect("reserved place");
    }

    #[tokio::test]
    async fn only_as_many_run_as_there_are_cores() {
        let gate = HashGate::new(1);
        let running = gate
            .enter(IpAddr::from([10, 0, 0, 1]), false)
            .expect("place")
            .run()
            .await
            .expect("runs");
        let waiting = gate
            .enter(IpAddr::from([10, 0, 0, 2]), false)
            .expect("place");
        let next = tokio::spawn(waiting.run());
        tokio::task::yield_now().await;
        assert!(!next.is_finished(), "the second waits for the core");
        drop(running);
        let second = next
            .await
            .expect("task")
            .expect("runs once the first is done");
        assert!(second.permit.is_some());
    }
}
