//! The sequence and time rules (R6, R11), one definition for both ends:
//! the relay checks every bundle with [`check`] after its signature has
//! verified; the office makes its sequence numbers with [`next_sequence`]
//! and judges a relay's held sequence with [`held_is_impossible`].
//!
//! The office's sequence follows its wall clock in milliseconds, so a
//! relay can bound it: no sequence further ahead than the relay's own
//! clock plus the allowed skew. A sequence beyond that (2^64−1 from a
//! leaked key or a buggy office) would otherwise lock out every later
//! bundle. A relay that already holds one (accepted before these rules)
//! is recovered by a signed reset ([`crate::bundle::Reset`]): a full
//! bundle that names the relay and the sequence it holds, so it works
//! once, on that relay, and expires like any bundle.

use std::time::Duration;

use crate::bundle::{Header, Kind};
use crate::reply::Code;
use crate::time::UnixMillis;

/// The relay's configured bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How far the office's clock may run ahead of the relay's: bounds
    /// both `created` and the sequence.
    pub clock_skew: Duration,
    /// The longest `expires − created` a relay serves as live.
    pub max_lifetime: Duration,
}

pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(600);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// The two clocks a bundle is judged by: the relay's, and the office's as
/// its signed request head gave it ([`crate::auth::verify`], within the
/// skew of the relay's) at the same moment.
///
/// Whether a bundle has expired is judged by the office's clock, which
/// made it (relay-rt2 F3): a relay clock minutes ahead of the office's
/// (unauthenticated NTP) no longer refuses every bundle `expired`, while a
/// bundle already expired by the office's own clock — an old one replayed
/// — still is (and the sequence rules refuse replays anyway). How long it
/// is then live is counted on the relay's clock from when its head arrived
/// ([`expiry_on_relay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub relay: UnixMillis,
    pub office: UnixMillis,
}

impl Clocks {
    /// Both clocks agree (a test, the fuzzer, a stored bundle).
    pub fn same(now: UnixMillis) -> Clocks {
        Clocks {
            relay: now,
            office: now,
        }
    }
}

/// How a bundle that passed [`check`] is to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Above the held sequence: the normal case.
    Next,
    /// A signed reset: replaces the site and the held sequence, which may go down.
    Reset,
}

/// The highest sequence a relay may accept at `now`.
pub fn sequence_bound(now: UnixMillis, limits: &Limits) -> u64 {
    now.plus(limits.clock_skew).0
}

/// Whether a held sequence is one no honest office could have sent yet.
pub fn held_is_impossible(held: u64, now: UnixMillis, limits: &Limits) -> bool {
    held > sequence_bound(now, limits)
}

/// The rules for a verified bundle arriving at relay `relay`, which holds
/// sequence `held`, at `clocks`. Time first (a bundle from the wrong time is
/// wrong whatever its sequence), then the sequence.
pub fn check(
    h: &Header,
    held: u64,
    relay: &str,
    clocks: Clocks,
    limits: &Limits,
) -> Result<Admit, Code> {
    let now = clocks.relay;
    if h.relay != relay {
        return Err(Code::WrongRelay);
    }
    let now_s = now.seconds();
    if h.created > now_s.plus(limits.clock_skew) {
        return Err(Code::CreatedInFuture);
    }
    if h.expires <= h.created {
        return Err(Code::Malformed);
    }
    if h.expires > h.created.plus(limits.max_lifetime) {
        return Err(Code::LifetimeTooLong);
    }
    if h.expires <= clocks.office.seconds() {
        return Err(Code::Expired);
    }
    if h.seq > sequence_bound(now, limits) {
        return Err(Code::SequenceTooFarAhead);
    }
    if let Some(r) = &h.reset {
        return if h.kind == Kind::Full && r.relay == relay && r.held == held && h.seq > 0 {
            Ok(Admit::Reset)
        } else {
            Err(Code::ResetMismatch)
        };
    }
    if h.seq <= held {
        return Err(if held_is_impossible(held, now, limits) {
            Code::HeldSequenceImpossible
        } else {
            Code::OldSequence
        });
    }
    Ok(Admit::Next)
}

/// When a bundle received at `received` stops being live: its lifetime
/// (`expires − created`, bounded by [`check`]) counted from when the relay
/// received it, and never later than it says. A bundle made "in the
/// future" within the skew is not live for longer than it asked
/// (red-team finding 6: `created` = now + 299 s kept data live 15 min).
pub fn expiry_from(h: &Header, received: crate::time::UnixSeconds) -> crate::time::UnixSeconds {
    let life = h.expires.0.saturating_sub(h.created.0).max(0);
    crate::time::UnixSeconds(h.expires.0.min(received.0.saturating_add(life)))
}

/// When a bundle that passed [`check`] at `clocks` stops being live, on
/// the relay's clock: what was left of its life by the office's clock,
/// counted from then on the relay's, and never more than its lifetime.
pub fn expiry_on_relay(h: &Header, clocks: Clocks) -> crate::time::UnixSeconds {
    let life = h.expires.0.saturating_sub(h.created.0).max(0);
    let left = h
        .expires
        .0
        .saturating_sub(clocks.office.seconds().0)
        .clamp(0, life);
    crate::time::UnixSeconds(clocks.relay.seconds().0.saturating_add(left))
}

/// The office's next sequence after `prev`: its clock in milliseconds, or
/// one more than the last when the clock has not moved on. `None` only at
/// the end of the range, which no clock reaches — checked, never wrapped.
pub fn next_sequence(prev: u64, now: UnixMillis) -> Option<u64> {
    Some(now.0.max(prev.checked_add(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Reset;
    use crate::time::UnixSeconds;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn h(seq: u64, created: i64, life: i64) -> Header {
        let c = NOW.seconds().0 + created;
        Header {
            relay: "r1".into(),
            seq,
            created: UnixSeconds(c),
            expires: UnixSeconds(c.saturating_add(life)),
            kind: Kind::Full,
            base: 0,
            files: vec![],
            removed: vec![],
            reset: None,
        }
    }

    fn chk(h: &Header, held: u64) -> Result<Admit, Code> {
        check(h, held, "r1", Clocks::same(NOW), &Limits::default())
    }

    #[test]
    fn each_rule_has_its_own_code() {
        let seq = NOW.0;
        assert_eq!(chk(&h(seq, 0, 60), seq - 1), Ok(Admit::Next));
        assert_eq!(chk(&h(seq, 301, 60), 0), Err(Code::CreatedInFuture));
        assert_eq!(chk(&h(seq, 299, 60), 0), Ok(Admit::Next));
        assert_eq!(chk(&h(seq, 0, 601), 0), Err(Code::LifetimeTooLong));
        assert_eq!(chk(&h(seq, 0, i64::MAX), 0), Err(Code::LifetimeTooLong));
        assert_eq!(chk(&h(seq, -120, 60), 0), Err(Code::Expired));
        assert_eq!(chk(&h(seq, -60, 60), 0), Err(Code::Expired));
        assert_eq!(chk(&h(u64::MAX, 0, 60), 0), Err(Code::SequenceTooFarAhead));
        assert_eq!(
            chk(&h(seq + 300_001, 0, 60), 0),
            Err(Code::SequenceTooFarAhead)
        );
        assert_eq!(chk(&h(seq, 0, 60), seq), Err(Code::OldSequence));
        assert_eq!(
            chk(&h(seq, 0, 60), u64::MAX),
            Err(Code::HeldSequenceImpossible)
        );
    }

    #[test]
    fn a_reset_works_once_on_the_relay_and_sequence_it_names() {
        let mut r = h(NOW.0, 0, 60);
        r.reset = Some(Reset {
            relay: "r1".into(),
            held: u64::MAX,
        });
        assert_eq!(chk(&r, u64::MAX), Ok(Admit::Reset));
        assert_eq!(
            chk(&r, NOW.0),
            Err(Code::ResetMismatch),
            "replayed after it worked"
        );
        assert_eq!(
            check(&r, u64::MAX, "r2", Clocks::same(NOW), &Limits::default()),
            Err(Code::WrongRelay),
            "addressed to another relay"
        );
        let mut other = r.clone();
        other.reset = Some(Reset {
            relay: "r2".into(),
            held: u64::MAX,
        });
        assert_eq!(chk(&other, u64::MAX), Err(Code::ResetMismatch));
        r.kind = Kind::Delta;
        assert_eq!(chk(&r, u64::MAX), Err(Code::ResetMismatch));
        let mut late = h(NOW.0, -120, 60);
        late.reset = Some(Reset {
            relay: "r1".into(),
            held: u64::MAX,
        });
        assert_eq!(chk(&late, u64::MAX), Err(Code::Expired));
    }

    #[test]
    fn a_bundle_for_another_relay_is_refused_and_life_counts_from_receipt() {
        let mut other = h(NOW.0, 0, 60);
        other.relay = "r2".into();
        assert_eq!(chk(&other, 0), Err(Code::WrongRelay));
        let early = h(NOW.0, 299, 600);
        assert_eq!(chk(&early, 0), Ok(Admit::Next));
        assert_eq!(expiry_from(&early, NOW.seconds()).0, NOW.seconds().0 + 600);
        let normal = h(NOW.0, -5, 60);
        assert_eq!(expiry_from(&normal, NOW.seconds()), normal.expires);
    }

    #[test]
    fn a_relay_clock_minutes_ahead_takes_fresh_bundles_and_refuses_old_ones() {
        // relay-rt2 F3: the relay's clock 90 s ahead of the office's.
        let office = UnixMillis(NOW.0 - 90_000);
        let clocks = Clocks { relay: NOW, office };
        let fresh = h(office.0, -90, 60);
        assert_eq!(fresh.created, office.seconds());
        assert_eq!(
            check(&fresh, 0, "r1", clocks, &Limits::default()),
            Ok(Admit::Next)
        );
        assert_eq!(
            expiry_on_relay(&fresh, clocks).0,
            NOW.seconds().0 + 60,
            "live for its minute on the relay's clock"
        );
        // Made 70 s before the office's now: expired by the office's clock.
        let old = h(office.0 - 70_000, -160, 60);
        assert_eq!(
            check(&old, 0, "r1", clocks, &Limits::default()),
            Err(Code::Expired)
        );
        // Half its life gone by the office's clock: half is left.
        let half = h(office.0, -120, 60);
        assert_eq!(expiry_on_relay(&half, clocks).0, NOW.seconds().0 + 30);
    }

    #[test]
    fn the_office_sequence_follows_the_clock_and_never_wraps() {
        assert_eq!(next_sequence(0, UnixMillis(5)), Some(5));
        assert_eq!(next_sequence(9, UnixMillis(5)), Some(10));
        assert_eq!(next_sequence(u64::MAX, UnixMillis(5)), None);
        assert!(held_is_impossible(u64::MAX, NOW, &Limits::default()));
        assert!(!held_is_impossible(NOW.0 + 1000, NOW, &Limits::default()));
    }
}
