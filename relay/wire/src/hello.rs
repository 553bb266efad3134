//! The office's proof in its TLS ClientHello (R11; issue 22, red-team
//! relay-rt2 F1 with completed handshakes). Every ingest connection the
//! office opens offers, before `http/1.1`, one extra ALPN protocol id:
//!
//! ```text
//! mdg1.<hex: unix_ms (8 bytes, big-endian) ‖ nonce (16 bytes) ‖ Ed25519 signature (64 bytes)>
//! ```
//!
//! 181 bytes (ALPN allows 255), the signature over
//! `"madoguchi-hello-v1\n<relay name>\n<unix_ms>\n<nonce hex>"` by the
//! office's signing key. The relay reads the ClientHello before the
//! connection takes a slot: with a valid, fresh token whose nonce it has not
//! seen, the connection goes to the office's own slots, which nothing
//! without the key can fill; without one it goes to the small shared pool
//! (old offices, `/metrics` scrapers, anyone on an allowed address). The
//! relay never selects this protocol (it answers `http/1.1`), so a relay
//! that does not know it ignores it.
//!
//! The ClientHello is plaintext, so anyone on the path can copy a token:
//! the relay takes each nonce once within the freshness window (the caller
//! keeps the set; [`Proof::nonce`]), and a copy used first only earns a
//! slot for the short unproven deadlines — the bundle still needs the
//! signed request head ([`crate::auth`]), which travels inside TLS.

use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::time::UnixMillis;

/// How the token's protocol id begins.
pub const PREFIX: &[u8] = b"mdg1.";
/// Separates this signature from the head's and the bundle's.
const CONTEXT: &str = "madoguchi-hello-v1";
const RAW: usize = 8 + 16 + 64;
/// The token's length: [`PREFIX`] and the hex of time, nonce and signature.
pub const LEN: usize = PREFIX.len() + 2 * RAW;

/// A valid token's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// When the office made it, by its clock.
    pub at: UnixMillis,
    /// Used once: the relay refuses a token whose nonce it has seen.
    pub nonce: [u8; 16],
}

/// Why a token was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("not a token")]
    Malformed,
    #[error("made further from this relay's clock than the window allows")]
    Stale,
    #[error("not signed by an office key for this relay")]
    BadSignature,
}

fn message(relay: &str, at: UnixMillis, nonce: &[u8; 16]) -> Vec<u8> {
    format!("{CONTEXT}\n{relay}\n{}\n{}", at.0, hex::encode(nonce)).into_bytes()
}

/// The ALPN protocol id the office offers relay `relay` at `at`; `nonce`
/// must be random and new for every connection.
pub fn token(key: &SigningKey, relay: &str, at: UnixMillis, nonce: [u8; 16]) -> Vec<u8> {
    let sig = crate::bundle::sign(key, &message(relay, at, &nonce));
    let mut raw = Vec::with_capacity(RAW);
    raw.extend_from_slice(&at.0.to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&sig);
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(hex::encode(raw).as_bytes());
    out
}

/// The first offered protocol id that claims to be a token.
pub fn find<'a>(mut alpn: impl Iterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    alpn.find(|p| p.starts_with(PREFIX))
}

/// The proof in `token`, when the office made it for `relay` within
/// `window` of `now` (either way). The time is checked before the
/// signature: stale copies cost no curve arithmetic.
pub fn verify(
    token: &[u8],
    relay: &str,
    keys: &[VerifyingKey],
    now: UnixMillis,
    window: Duration,
) -> Result<Proof, HelloError> {
    let hexed = token.strip_prefix(PREFIX).ok_or(HelloError::Malformed)?;
    let mut raw = [0u8; RAW];
    if hexed.len() != 2 * RAW || hex::decode_to_slice(hexed, &mut raw).is_err() {
        return Err(HelloError::Malformed);
    }
    let (at, rest) = raw.split_at(8);
    let (nonce, sig) = rest.split_at(16);
    let at = UnixMillis(u64::from_be_bytes(
        at.try_into().map_err(|_| HelloError::Malformed)?,
    ));
    let nonce: [u8; 16] = nonce.try_into().map_err(|_| HelloError::Malformed)?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| HelloError::Malformed)?;
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if at.0.abs_diff(now.0) > window {
        return Err(HelloError::Stale);
    }
    if !crate::bundle::signed_by(keys, &message(relay, at, &nonce), &sig) {
        return Err(HelloError::BadSignature);
    }
    Ok(Proof { at, nonce })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn a_token_holds_only_for_its_relay_its_keys_and_its_time() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let keys = [k.verifying_key()];
        let t = token(&k, "relay-1", NOW, [7; 16]);
        assert_eq!(t.len(), LEN);
        assert!(t.len() <= 255, "an ALPN protocol id is at most 255 bytes");
        assert_eq!(
            verify(&t, "relay-1", &keys, NOW, WINDOW),
            Ok(Proof {
                at: NOW,
                nonce: [7; 16]
            })
        );
        let later = NOW.plus(Duration::from_secs(299));
        assert!(verify(&t, "relay-1", &keys, later, WINDOW).is_ok());
        assert_eq!(
            verify(&t, "relay-1", &keys, NOW.plus(WINDOW * 2), WINDOW),
            Err(HelloError::Stale)
        );
        assert_eq!(
            verify(&t, "relay-2", &keys, NOW, WINDOW),
            Err(HelloError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[5; 32]);
        assert_eq!(
            verify(&t, "relay-1", &[other.verifying_key()], NOW, WINDOW),
            Err(HelloError::BadSignature)
        );
        // Another nonce under the same signature does not verify.
        let mut swapped = t.clone();
        let i = PREFIX.len() + 16;
        swapped[i] = if swapped[i] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            verify(&swapped, "relay-1", &keys, NOW, WINDOW),
            Err(HelloError::BadSignature)
        );
        for bad in [
            &b""[..],
            b"mdg1.",
            b"h2",
            &t[..t.len() - 1],
            &[&t[..], b"0"].concat(),
        ] {
            assert_eq!(
                verify(bad, "relay-1", &keys, NOW, WINDOW),
                Err(HelloError::Malformed)
            );
        }
        let offered: [&[u8]; 3] = [b"h2", &t, b"http/1.1"];
        assert_eq!(find(offered.iter().copied()), Some(&t[..]));
        assert_eq!(find([&b"http/1.1"[..]].into_iter()), None);
    }
}
