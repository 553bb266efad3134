//! Issuing rate limits (issue 23, R11): one kiosk, one staff account, or
//! one stolen kiosk token or staff session, cannot use up a category's
//! numbers for the day. Token buckets per issuer and per category (over
//! every issuer), checked before the command reaches the engine, so a
//! refused request burns no number. A kiosk may issue a queue's worth at
//! once ([`ISSUER_BURST`]); a person issuing for a visitor at the counter
//! a few a minute ([`PERSON_BURST`], [`PERSON_PER_MINUTE`]) — a staff
//! session used 982 numbers of a category in 30 s before (red-team
//! finding F3). Administrators are not limited: they may widen a
//! category's numbers, close and reopen the day anyway, and the last
//! numbers of a category are theirs to give.
//!
//! The buckets slow an issuer down; they do not stop it using a category
//! up over an hour (red-team finding F11). So one issuer also holds at
//! most a share of a category's numbers for the day ([`share_allows`]):
//! it may take a number only while what it took stays below what is left
//! for everybody else — at most half of the category, however long it
//! tries, and never the last number. Counted in memory: a restart of the
//! server (which no device can cause) starts the shares again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Tickets one kiosk may take at once, and how fast that refills.
pub const ISSUER_BURST: f64 = 10.0;
pub const ISSUER_PER_MINUTE: f64 = 15.0;
/// Tickets one person (a staff account) may issue at once, and how fast
/// that refills: a clerk issues for the visitor in front of them.
pub const PERSON_BURST: f64 = 5.0;
pub const PERSON_PER_MINUTE: f64 = 4.0;
/// Tickets of one category across every kiosk.
pub const CATEGORY_BURST: f64 = 60.0;
pub const CATEGORY_PER_MINUTE: f64 = 40.0;
/// Buckets kept at most (names come from the configuration and accounts,
/// but a bound costs nothing).
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, burst: f64, per_minute: f64) {
        let secs = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * per_minute / 60.0).min(burst);
        self.at = now;
    }

    /// Seconds until one token is there.
    fn wait(&self, per_minute: f64) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        (missing * 60.0 / per_minute).ceil().max(1.0) as u64
    }
}

#[derive(Debug, Default)]
struct Buckets {
    issuers: HashMap<String, Bucket>,
    people: HashMap<String, Bucket>,
    categories: HashMap<String, Bucket>,
}

/// Who takes a number: a device or a person, by name (a device and an
/// account may share a name; their allowances are apart).
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    pub name: &'a str,
    pub person: bool,
}

impl Issuer<'_> {
    fn key(&self) -> String {
        let kind = if self.person { "account" } else { "device" };
        format!("{kind}:{}", self.name)
    }
}

/// Numbers each issuer took today, per category.
#[derive(Debug, Default)]
struct Shares {
    date: Option<chrono::NaiveDate>,
    taken: HashMap<(String, String), u32>,
}

#[derive(Debug, Default)]
pub struct IssueLimits {
    buckets: Mutex<Buckets>,
    shares: Mutex<Shares>,
}

/// Whether an issuer that took `taken` numbers of a category today may
/// take one more while `left` remain: only if afterwards it still holds no
/// more than what is left to the others.
pub fn share_allows(taken: u32, left: u32) -> bool {
    taken.saturating_add(2) <= left
}

fn take(
    map: &mut HashMap<String, Bucket>,
    key: &str,
    now: Instant,
    burst: f64,
    per_minute: f64,
) -> Result<Bucket, u64> {
    if map.len() >= MAX_BUCKETS && !map.contains_key(key) {
        // Full buckets tell nothing: drop them.
        map.retain(|_, b| {
            let mut b = *b;
            b.refill(now, burst, per_minute);
            b.tokens < burst
        });
    }
    let b = map.entry(key.to_string()).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    b.refill(now, burst, per_minute);
    if b.tokens < 1.0 {
        return Err(b.wait(per_minute));
    }
    Ok(*b)
}

impl IssueLimits {
    /// Whether `issuer` may take one more number of `category` on `date`
    /// while `left` remain.
    pub fn share_left(
        &self,
        date: chrono::NaiveDate,
        issuer: Issuer<'_>,
        category: &str,
        left: u32,
    ) -> bool {
        let Ok(mut s) = self.shares.lock() else {
            return false;
        };
        if s.date != Some(date) {
            s.date = Some(date);
            s.taken.clear();
        }
        let taken = s
            .taken
            .get(&(issuer.key(), category.to_string()))
            .copied()
            .unwrap_or(0);
        share_allows(taken, left)
    }

    /// `issuer` took a number of `category` on `date`.
    pub fn took(&self, date: chrono::NaiveDate, issuer: Issuer<'_>, category: &str) {
        let Ok(mut s) = self.shares.lock() else {
            return;
        };
        if s.date != Some(date) {
            s.date = Some(date);
            s.taken.clear();
        }
        *s.taken
            .entry((issuer.key(), category.to_string()))
            .or_insert(0) += 1;
    }

    /// Takes one ticket from `issuer`'s and `category`'s allowance, or says
    /// in how many seconds to try again (taking nothing).
    pub fn take(&self, issuer: Issuer<'_>, category: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut b) = self.buckets.lock() else {
            return Err(1);
        };
        let b = &mut *b;
        let key = issuer.key();
        let (own, burst, per_minute) = if issuer.person {
            (&mut b.people, PERSON_BURST, PERSON_PER_MINUTE)
        } else {
            (&mut b.issuers, ISSUER_BURST, ISSUER_PER_MINUTE)
        };
        take(own, &key, now, burst, per_minute)?;
        take(
            &mut b.categories,
            category,
            now,
            CATEGORY_BURST,
            CATEGORY_PER_MINUTE,
        )?;
        for (map, key) in [(own, key.as_str()), (&mut b.categories, category)] {
            if let Some(x) = map.get_mut(key) {
                x.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str) -> Issuer<'_> {
        Issuer {
            name,
            person: false,
        }
    }

    fn person(name: &str) -> Issuer<'_> {
        Issuer { name, person: true }
    }

    #[test]
    fn one_issuer_is_limited_and_another_is_not() {
        let l = IssueLimits::default();
        for _ in 0..ISSUER_BURST as usize {
            assert!(l.take(device("kiosk-1"), "idou").is_ok());
        }
        let wait = l.take(device("kiosk-1"), "idou").expect_err("limited");
        assert!((1..=4).contains(&wait), "{wait}");
        assert!(l.take(device("kiosk-2"), "idou").is_ok());
        // An account of the same name has its own, smaller allowance.
        for _ in 0..PERSON_BURST as usize {
            assert!(l.take(person("kiosk-1"), "koseki").is_ok());
        }
        let wait = l.take(person("kiosk-1"), "koseki").expect_err("limited");
        assert!((1..=15).contains(&wait), "{wait}");
    }

    #[test]
    fn one_device_takes_at_most_half_and_never_the_last_number() {
        let (mut left, mut taken) = (999u32, 0u32);
        while share_allows(taken, left) {
            taken += 1;
            left -= 1;
        }
        assert_eq!((taken, left), (499, 500));
        assert!(!share_allows(0, 1), "the last number is left to others");
        let l = IssueLimits::default();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
        assert!(l.share_left(day, device("k"), "idou", 3));
        l.took(day, device("k"), "idou");
        assert!(!l.share_left(day, device("k"), "idou", 2));
        assert!(l.share_left(day, device("other"), "idou", 2));
        assert!(
            l.share_left(day, person("k"), "idou", 2),
            "apart from the device"
        );
        l.took(day, person("tanaka"), "idou");
        assert!(!l.share_left(day, person("tanaka"), "idou", 2));
        assert!(l.share_left(day.succ_opt().unwrap_or_default(), device("k"), "idou", 2));
    }

    #[test]
    fn a_category_is_limited_across_issuers() {
        let l = IssueLimits::default();
        let mut ok = 0;
        for i in 0..200 {
            if l.take(device(&format!("k{}", i / 5)), "idou").is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, CATEGORY_BURST as usize);
        assert!(l.take(device("fresh"), "koseki").is_ok());
    }
}
