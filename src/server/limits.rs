//! Issuing rate limits (issue 23, R11): one kiosk, or one stolen kiosk
//! token, cannot use up a category's numbers for the day. Token buckets per
//! kiosk and per category (over every kiosk), checked before the command
//! reaches the engine, so a refused request burns no number. Staff issuing
//! for a visitor are signed in and audited by name, and not limited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Tickets one kiosk may take at once, and how fast that refills.
pub const ISSUER_BURST: f64 = 10.0;
pub const ISSUER_PER_MINUTE: f64 = 15.0;
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
    categories: HashMap<String, Bucket>,
}

#[derive(Debug, Default)]
pub struct IssueLimits {
    buckets: Mutex<Buckets>,
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
    /// Takes one ticket from `issuer`'s and `category`'s allowance, or says
    /// in how many seconds to try again (taking nothing).
    pub fn take(&self, issuer: &str, category: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut b) = self.buckets.lock() else {
            return Err(1);
        };
        let b = &mut *b;
        take(&mut b.issuers, issuer, now, ISSUER_BURST, ISSUER_PER_MINUTE)?;
        take(
            &mut b.categories,
            category,
            now,
            CATEGORY_BURST,
            CATEGORY_PER_MINUTE,
        )?;
        for (map, key) in [(&mut b.issuers, issuer), (&mut b.categories, category)] {
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

    #[test]
    fn one_issuer_is_limited_and_another_is_not() {
        let l = IssueLimits::default();
        for _ in 0..ISSUER_BURST as usize {
            assert!(l.take("kiosk-1", "idou").is_ok());
        }
        let wait = l.take("kiosk-1", "idou").expect_err("limited");
        assert!((1..=4).contains(&wait), "{wait}");
        assert!(l.take("kiosk-2", "idou").is_ok());
    }

    #[test]
    fn a_category_is_limited_across_issuers() {
        let l = IssueLimits::default();
        let mut ok = 0;
        for i in 0..200 {
            if l.take(&format!("k{}", i / 5), "idou").is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, CATEGORY_BURST as usize);
        assert!(l.take("fresh", "koseki").is_ok());
    }
}
