//! The office's token in an ingest connection's ClientHello
//! ([`madoguchi_wire::hello`]), judged before the connection takes a slot
//! (`slots`): valid, fresh and its nonce not seen before. The nonces seen
//! are kept for as long as their tokens would be fresh, so a token copied
//! off the wire (the ClientHello is plaintext) is taken once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use madoguchi_wire::hello::{self, HelloError};
use madoguchi_wire::UnixMillis;

/// The most nonces held. Only a holder of an office key can add one (the
/// signature is checked first); the office adds one per connection. When
/// full of fresh ones, further tokens are refused (their connections go to
/// the shared slots) rather than forgetting a nonce that could be replayed.
const MAX_NONCES: usize = 4096;

/// What an ingest connection's hello showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No token offered.
    None,
    /// The office's token, first use.
    Office,
    /// A token that was not taken.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, stale or not signed by an office key for this relay.
    Invalid,
    /// Its nonce was seen before (a copy).
    Replayed,
    /// Fresh, but the nonces of more than `MAX_NONCES` fresh tokens are
    /// held, which only a holder of an office key can cause (relay-rt5 R5:
    /// this was told as "replayed", pointing at a copier on the path).
    Full,
}

/// The nonces of the tokens taken, with the time each token was made.
#[derive(Debug)]
pub struct Nonces {
    seen: Mutex<HashMap<[u8; 16], u64>>,
    cap: usize,
}

impl Default for Nonces {
    fn default() -> Nonces {
        Nonces::with_cap(MAX_NONCES)
    }
}

impl Nonces {
    fn with_cap(cap: usize) -> Nonces {
        Nonces {
            seen: Mutex::new(HashMap::new()),
            cap,
        }
    }

    /// Whether `token` would be taken now (valid, fresh, its nonce not
    /// seen), without taking it: a lobby prefers such a newcomer
    /// (`slots`); a copied or made-up token is no better than none.
    pub fn vouches(
        &self,
        token: &[u8],
        relay: &str,
        keys: &[VerifyingKey],
        now: UnixMillis,
        window: Duration,
    ) -> bool {
        let Ok(proof) = hello::verify(token, relay, keys, now, window) else {
            return false;
        };
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        !seen.contains_key(&proof.nonce)
    }

    /// Judges the ALPN protocol ids `alpn` offered to relay `relay`.
    pub fn judge<'a>(
        &self,
        alpn: Option<impl Iterator<Item = &'a [u8]>>,
        relay: &str,
        keys: &[VerifyingKey],
        now: UnixMillis,
        window: Duration,
    ) -> Verdict {
        let Some(token) = alpn.and_then(hello::find) else {
            return Verdict::None;
        };
        let proof = match hello::verify(token, relay, keys, now, window) {
            Ok(p) => p,
            Err(HelloError::Malformed | HelloError::Stale | HelloError::BadSignature) => {
                return Verdict::Refused(Refusal::Invalid)
            }
        };
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&proof.nonce) {
            return Verdict::Refused(Refusal::Replayed);
        }
        if seen.len() >= self.cap {
            // A nonce whose token is no longer fresh cannot be replayed.
            seen.retain(|_, at| at.saturating_add(window_ms) >= now.0);
            if seen.len() >= self.cap {
                return Verdict::Refused(Refusal::Full);
            }
        }
        seen.insert(proof.nonce, proof.at.0);
        Verdict::Office
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn a_token_is_taken_once_and_forgotten_only_once_stale() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let keys = [k.verifying_key()];
        let n = Nonces::with_cap(8);
        let judge = |t: &[u8], now| {
            let offered: [&[u8]; 2] = [t, b"http/1.1"];
            n.judge(Some(offered.into_iter()), "relay-1", &keys, now, WINDOW)
        };
        let t = hello::token(&k, "relay-1", NOW, [1; 16]);
        assert_eq!(judge(&t, NOW), Verdict::Office);
        assert_eq!(judge(&t, NOW), Verdict::Refused(Refusal::Replayed));
        let other = hello::token(&k, "relay-2", NOW, [2; 16]);
        assert_eq!(judge(&other, NOW), Verdict::Refused(Refusal::Invalid));
        assert_eq!(judge(b"http/1.1", NOW), Verdict::None);
        assert_eq!(
            n.judge(
                None::<std::iter::Empty<&[u8]>>,
                "relay-1",
                &keys,
                NOW,
                WINDOW
            ),
            Verdict::None
        );
        // Full: fresh nonces are kept (new tokens refused), stale ones go.
        for i in 0..7u64 {
            let mut nonce = [0u8; 16];
            nonce[..8].copy_from_slice(&(i + 10).to_be_bytes());
            assert_eq!(
                judge(&hello::token(&k, "relay-1", NOW, nonce), NOW),
                Verdict::Office
            );
        }
        let late = hello::token(&k, "relay-1", NOW, [3; 16]);
        assert_eq!(judge(&late, NOW), Verdict::Refused(Refusal::Full));
        let later = NOW.plus(WINDOW * 2).plus(Duration::from_millis(1));
        let fresh = hello::token(&k, "relay-1", later, [3; 16]);
        assert_eq!(judge(&fresh, later), Verdict::Office);
        assert_eq!(n.seen.lock().map(|s| s.len()).unwrap_or(0), 1);
    }

    #[test]
    fn a_token_is_vouched_for_only_while_it_would_be_taken() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let keys = [k.verifying_key()];
        let n = Nonces::with_cap(8);
        let t = hello::token(&k, "relay-1", NOW, [3; 16]);
        assert!(n.vouches(&t, "relay-1", &keys, NOW, WINDOW));
        assert!(
            n.vouches(&t, "relay-1", &keys, NOW, WINDOW),
            "vouching takes nothing"
        );
        assert!(!n.vouches(&t, "relay-2", &keys, NOW, WINDOW));
        let mut forged = t.clone();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
        assert!(!n.vouches(&forged, "relay-1", &keys, NOW, WINDOW));
        let offered: [&[u8]; 1] = [&t];
        assert_eq!(
            n.judge(Some(offered.into_iter()), "relay-1", &keys, NOW, WINDOW),
            Verdict::Office
        );
        assert!(
            !n.vouches(&t, "relay-1", &keys, NOW, WINDOW),
            "a copy of a taken one"
        );
    }
}
