//! The office's proof on the request head (R11; red-team finding 1 of
//! issue 22): every `POST /bundle` carries
//!
//! ```text
//! Madoguchi-Office: <unix_ms> <hex Ed25519 signature over "madoguchi-ingest-v1\n<relay name>\n<unix_ms>">
//! ```
//!
//! The relay checks it on the head, before it reads or buffers a byte of
//! the body: the time within its clock skew, the signature by any office
//! key, the relay name its own. Anyone without it (a stranger on an
//! allowed or NATed address, a second process on the office's host) is
//! answered 401 and the connection closed, so no one but the office can
//! upload a body, hold a body slot past the head deadline or make the
//! relay queue bundles. The head is not the bundle's authority — the
//! bundle carries its own signature — so a replay of a head (only
//! possible inside TLS, within the skew) gains nothing but the right to be
//! checked.

use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::time::UnixMillis;

/// The header's name (HTTP header names are case-insensitive).
pub const HEADER: &str = "madoguchi-office";

/// Separates this signature from the bundle's (whose bytes begin `MDGRLY1`).
const CONTEXT: &str = "madoguchi-ingest-v1";

fn message(relay: &str, at: UnixMillis) -> Vec<u8> {
    format!("{CONTEXT}\n{relay}\n{}", at.0).into_bytes()
}

/// The header value the office sends to relay `relay` at `at`.
pub fn head(key: &SigningKey, relay: &str, at: UnixMillis) -> String {
    let sig = crate::bundle::sign(key, &message(relay, at));
    format!("{} {}", at.0, hex::encode(sig))
}

/// Why a head was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Missing, malformed, for another relay, or not signed by an office key.
    Invalid,
    /// Signed by an office key for this relay, but made at `office`, further
    /// from the relay's clock than the skew allows (relay-rt2 F4: reported
    /// as a clock difference, not as a missing head).
    ClockSkew { office: UnixMillis },
}

/// The office's time in `value`, when it is a head the office made for
/// `relay` within `skew` of `now` (either way: the office's clock may be
/// behind or ahead). The signature is checked before the time, so only a
/// holder of an office key learns that the clocks differ.
pub fn verify(
    value: &[u8],
    relay: &str,
    keys: &[VerifyingKey],
    now: UnixMillis,
    skew: Duration,
) -> Result<UnixMillis, HeadError> {
    let text = std::str::from_utf8(value).map_err(|_| HeadError::Invalid)?;
    let (at, sig) = text.trim().split_once(' ').ok_or(HeadError::Invalid)?;
    let at = at.parse::<u64>().map_err(|_| HeadError::Invalid)?;
    let mut raw = [0u8; 64];
    if sig.len() != 128 || hex::decode_to_slice(sig, &mut raw).is_err() {
        return Err(HeadError::Invalid);
    }
    if !crate::bundle::signed_by(keys, &message(relay, UnixMillis(at)), &raw) {
        return Err(HeadError::Invalid);
    }
    let skew = u64::try_from(skew.as_millis()).unwrap_or(u64::MAX);
    if at.abs_diff(now.0) > skew {
        return Err(HeadError::ClockSkew {
            office: UnixMillis(at),
        });
    }
    Ok(UnixMillis(at))
}

/// Whether `value` is a head the office made for `relay` within `skew` of
/// `now` ([`verify`]).
pub fn check(
    value: &[u8],
    relay: &str,
    keys: &[VerifyingKey],
    now: UnixMillis,
    skew: Duration,
) -> bool {
    verify(value, relay, keys, now, skew).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
    const SKEW: Duration = Duration::from_secs(300);

    #[test]
    fn a_head_holds_only_for_its_relay_its_keys_and_its_time() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let keys = [k.verifying_key()];
        let h = head(&k, "relay-1", NOW);
        assert!(check(h.as_bytes(), "relay-1", &keys, NOW, SKEW));
        assert!(check(
            h.as_bytes(),
            "relay-1",
            &keys,
            NOW.plus(Duration::from_secs(299)),
            SKEW
        ));
        assert!(!check(h.as_bytes(), "relay-2", &keys, NOW, SKEW));
        assert!(!check(
            h.as_bytes(),
            "relay-1",
            &keys,
            NOW.plus(Duration::from_secs(301)),
            SKEW
        ));
        let ahead = head(&k, "relay-1", NOW.plus(Duration::from_secs(301)));
        assert!(!check(ahead.as_bytes(), "relay-1", &keys, NOW, SKEW));
        assert_eq!(
            verify(ahead.as_bytes(), "relay-1", &keys, NOW, SKEW),
            Err(HeadError::ClockSkew {
                office: NOW.plus(Duration::from_secs(301))
            }),
            "a signed head at the wrong time is a clock difference"
        );
        assert_eq!(
            verify(ahead.as_bytes(), "relay-2", &keys, NOW, SKEW),
            Err(HeadError::Invalid),
            "but only when it is signed for this relay"
        );
        let other = SigningKey::from_bytes(&[5; 32]);
        assert!(!check(
            head(&other, "relay-1", NOW).as_bytes(),
            "relay-1",
            &keys,
            NOW,
            SKEW
        ));
        for bad in [
            &b""[..],
            b"1",
            b"x y",
            b"\xff\xfe",
            h.replace(' ', "").as_bytes(),
        ] {
            assert!(!check(bad, "relay-1", &keys, NOW, SKEW));
        }
    }
}
