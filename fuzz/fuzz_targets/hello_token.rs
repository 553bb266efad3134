//! The relay's reading of the ALPN protocol ids in an ingest ClientHello
//! (`madoguchi_wire::hello`; anyone on an allowed address chooses every
//! byte): never a panic, a token taken only when it is the office's for
//! this relay, and the office's own token, changed in any byte, refused.
#![no_main]

mod alloc_cap;

use std::sync::OnceLock;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use madoguchi_wire::hello;
use madoguchi_wire::UnixMillis;

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
const WINDOW: Duration = Duration::from_secs(300);

/// Made once: deriving a key is a scalar multiplication.
fn keys() -> &'static (SigningKey, Vec<VerifyingKey>) {
    static K: OnceLock<(SigningKey, Vec<VerifyingKey>)> = OnceLock::new();
    K.get_or_init(|| {
        let k = SigningKey::from_bytes(&[7; 32]);
        let v = vec![k.verifying_key()];
        (k, v)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, keys) = keys();
    // The ALPN list as the hello carries it: one length byte per id.
    let mut ids = Vec::new();
    let mut rest = data.get(1..).unwrap_or_default();
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        ids.push(&tail[..n]);
        rest = &tail[n..];
    }
    if let Some(t) = hello::find(ids.iter().copied()) {
        if let Ok(p) = hello::verify(t, "relay-1", keys, NOW, WINDOW) {
            // Only the office's own token for this time and nonce (hex
            // in either case).
            assert!(hello::token(key, "relay-1", p.at, p.nonce).eq_ignore_ascii_case(t));
        }
    }
    // The office's token with one byte changed by the input.
    if let (Some(&mode), Some(&at)) = (data.first(), data.get(1)) {
        let mut nonce = [0u8; 16];
        for (n, b) in nonce.iter_mut().zip(data.iter().skip(2)) {
            *n = *b;
        }
        let made = NOW.plus(Duration::from_secs(u64::from(at)));
        let mut t = hello::token(key, "relay-1", made, nonce);
        assert!(hello::verify(&t, "relay-1", keys, NOW, WINDOW).is_ok());
        let i = usize::from(mode) % t.len();
        let x = data.get(18).copied().unwrap_or(1).max(1);
        t[i] ^= x;
        if let Ok(p) = hello::verify(&t, "relay-1", keys, NOW, WINDOW) {
            // Only a change hex reads the same (case) can still verify.
            assert_eq!((p.at, p.nonce), (made, nonce));
        }
    }
});
