//! A bound on the audit records of failed sign-ins (issue 23, R11, red-team
//! finding F9). Every failed sign-in is accounted for, but failures from
//! many addresses wrote one record each without bound. Per account and
//! window ([`window`], ten minutes), the first [`ONE_BY_ONE`] failures are
//! recorded one by one; the rest are counted and written as one summary
//! record when the window ends (how many, from how many addresses). Sign-ins
//! refused while an address waits (one record per wait, `throttle.rs`) are
//! counted apart, so that the failures stay in the records one by one. At
//! most [`MAX_ACCOUNTS`] names (and kinds) are followed per window — a spray over many
//! invented names shares one more entry, `*` — so a window writes at most
//! (`MAX_ACCOUNTS` + 1) × (`ONE_BY_ONE` + 1) records, however many tries.
//! The lock-out counters (`throttle.rs`) are untouched by this: they see
//! every failure.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use madoguchi_core::model::Event;

use super::App;

/// Failures of one account recorded one by one in a window.
pub const ONE_BY_ONE: u32 = 5;
/// Account names followed one by one per window; the rest share `*`.
pub const MAX_ACCOUNTS: usize = 16;
/// The window when `MADOGUCHI_SIGNIN_AUDIT_WINDOW_SECS` does not say
/// otherwise (tests shorten it).
const WINDOW: Duration = Duration::from_secs(10 * 60);

/// The window in force.
pub fn window() -> Duration {
    std::env::var("MADOGUCHI_SIGNIN_AUDIT_WINDOW_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(WINDOW, Duration::from_secs)
}

#[derive(Debug)]
struct Tally {
    recorded: u32,
    quiet: u32,
    addresses: HashSet<IpAddr>,
}

#[derive(Debug)]
struct Windowed {
    start: Instant,
    accounts: HashMap<(String, bool), Tally>,
}

/// One window's failures of an account not recorded one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub account: String,
    /// Refusals while waiting, not failed checks.
    pub refused: bool,
    pub count: u32,
    pub addresses: usize,
}

impl Summary {
    /// The record's `by`, e.g. `admin ×412 from 103 addresses (…)`.
    pub fn by(&self, window: Duration) -> String {
        format!(
            "{} ×{} from {} addresses ({} within {} s, recorded as one)",
            self.account,
            self.count,
            self.addresses,
            if self.refused {
                "sign-ins refused while waiting"
            } else {
                "failed sign-ins"
            },
            window.as_secs()
        )
    }
}

#[derive(Debug)]
pub struct SignInAudit {
    window: Duration,
    state: Mutex<Windowed>,
}

impl Default for SignInAudit {
    fn default() -> Self {
        SignInAudit::new(window())
    }
}

impl SignInAudit {
    pub fn new(window: Duration) -> SignInAudit {
        SignInAudit {
            window,
            state: Mutex::new(Windowed {
                start: Instant::now(),
                accounts: HashMap::new(),
            }),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// A failed sign-in to `account` from `addr` (`refused` while the
    /// address waits, else a failed check): whether to record it one by
    /// one (otherwise it is in the window's summary).
    pub fn failed(&self, account: &str, addr: IpAddr, refused: bool) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_lowercase(), refused);
        let key = if s.accounts.contains_key(&key) || s.accounts.len() < MAX_ACCOUNTS {
            key
        } else {
            ("*".to_string(), refused)
        };
        let t = s.accounts.entry(key).or_insert(Tally {
            recorded: 0,
            quiet: 0,
            addresses: HashSet::new(),
        });
        if t.recorded < ONE_BY_ONE {
            t.recorded += 1;
            return true;
        }
        t.quiet += 1;
        if t.addresses.len() < 100_000 {
            t.addresses.insert(addr);
        }
        false
    }

    /// The summaries of a window that has ended (and a new window), or
    /// nothing while it runs.
    pub fn due(&self) -> Vec<Summary> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.start.elapsed() < self.window {
            return Vec::new();
        }
        s.start = Instant::now();
        let mut out: Vec<Summary> = s
            .accounts
            .drain()
            .filter(|(_, t)| t.quiet > 0)
            .map(|((account, refused), t)| Summary {
                account,
                refused,
                count: t.quiet,
                addresses: t.addresses.len(),
            })
            .collect();
        out.sort_by(|a, b| (&a.account, a.refused).cmp(&(&b.account, b.refused)));
        out
    }
}

/// Writes each ended window's summaries, looking a few times a window.
pub async fn run(app: Arc<App>) {
    let every =
        (app.sign_in_audit.window() / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        for s in app.sign_in_audit.due() {
            let by = s.by(app.sign_in_audit.window());
            app.audit(
                Some(by),
                Event::Login {
                    account: s.account,
                    ok: false,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_recorded_a_few_times_and_summed_up_once() {
        let a = SignInAudit::new(Duration::ZERO);
        let mut one_by_one = 0;
        for i in 0..1000u32 {
            let addr = IpAddr::from((i % 250).to_be_bytes());
            if a.failed(if i % 2 == 0 { "admin" } else { "ADMIN" }, addr, false) {
                one_by_one += 1;
            }
        }
        assert_eq!(one_by_one, ONE_BY_ONE);
        assert_eq!(
            a.due(),
            vec![Summary {
                account: "admin".into(),
                refused: false,
                count: 1000 - ONE_BY_ONE,
                addresses: 250
            }]
        );
        assert!(a.due().is_empty(), "a new window");
    }

    #[test]
    fn invented_names_share_one_entry() {
        let a = SignInAudit::new(Duration::ZERO);
        let recorded = (0..1000)
            .filter(|i| a.failed(&format!("nobody{i}"), IpAddr::from([10, 0, 0, 1]), false))
            .count();
        assert_eq!(recorded, MAX_ACCOUNTS + ONE_BY_ONE as usize);
        let due = a.due();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].account, "*");
        assert_eq!(recorded + due[0].count as usize, 1000);
    }
}
