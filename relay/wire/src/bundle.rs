//! The signed bundle: how the office's public site travels, one way, to the
//! internet relays (R6, R11; DESIGN.md, data flow step 3).
//!
//! ```text
//! "MDGRLY1\n" | header length (u32 BE) | header JSON | file bodies | Ed25519 signature (64)
//! ```
//!
//! The signature covers every byte before it. The header names the sequence
//! number, creation and expiry times (Unix seconds), whether the bundle is
//! `full` (replaces the site) or a `delta` on top of sequence `base`, and the
//! files in body order with their lengths. Content types are not carried:
//! the relay derives them from the file name, so a bundle cannot make the
//! relay serve, say, HTML as a script.
//!
//! Checks run cheapest and safest first: size (by the caller, before the
//! body is even read), signature ([`verify`]), then structure ([`parse`]).
//! The sequence and time rules come after both ([`crate::rules`]).

#[cfg(not(fuzzing))]
use ed25519_dalek::{Signature, Signer, Verifier};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::time::UnixSeconds;

pub const MAGIC: &[u8; 8] = b"MDGRLY1\n";
const SIGNATURE_LEN: usize = 64;
/// A header larger than this is not one the office writes.
const MAX_HEADER: usize = 64 * 1024;
const MAX_FILES: usize = 512;
const MAX_PATH: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle too short or not a Madoguchi bundle")]
    NotABundle,
    #[error("signature does not verify with any configured office key")]
    BadSignature,
    #[error("bundle header is malformed: {0}")]
    BadHeader(String),
    #[error("bundle header names a reset wrongly")]
    BadReset,
    #[error("file list does not match the body ({0})")]
    BadBody(String),
    #[error("file path {0:?} is not allowed")]
    BadPath(String),
    #[error("key is malformed: {0}")]
    BadKey(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Replaces the whole site.
    Full,
    /// Changes files of the site as of sequence `base`.
    Delta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The relay this bundle is addressed to (its `ingest.name`, pinned in
    /// the office's `[[relays]]`): another relay refuses it, so a hostile
    /// relay cannot forward what the office signed for it. Empty in
    /// bundles from before the field, which no relay accepts now but a
    /// relay's stored copy still loads.
    #[serde(default)]
    pub relay: String,
    pub seq: u64,
    pub created: UnixSeconds,
    /// After this the relay shows the data as stale.
    pub expires: UnixSeconds,
    pub kind: Kind,
    /// For a delta: the sequence number it applies on top of.
    #[serde(default)]
    pub base: u64,
    pub files: Vec<FileEntry>,
    /// For a delta: paths that no longer exist.
    #[serde(default)]
    pub removed: Vec<String>,
    /// A signed reset ([`crate::rules`]); only on a full bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Reset>,
}

/// Names the one relay, and the sequence it holds, that a reset bundle
/// may bring back to the office's sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    pub relay: String,
    pub held: u64,
}

/// A verified bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub header: Header,
    /// `(path, body)` in header order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A file path a bundle may carry: relative, short, lower-case ASCII
/// segments, no `..`, no empty segment. Requests are matched against these
/// exactly, so nothing outside the bundle can be named.
pub fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PATH
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'.'
                        || b == b'_'
                        || b == b'-'
                })
        })
}

/// The content type served for a bundle path, by extension; `None` for a
/// kind of file the relay does not serve.
pub fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

/// Packs and signs a bundle (the office side).
pub fn pack(header: &Header, files: &[(String, Vec<u8>)], key: &SigningKey) -> Vec<u8> {
    let mut h = header.clone();
    h.files = files
        .iter()
        .map(|(p, b)| FileEntry {
            path: p.clone(),
            len: b.len() as u64,
        })
        .collect();
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&h).unwrap_or_default();
    let body_len: usize = files.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len() + body_len + SIGNATURE_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    for (_, b) in files {
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&sign(key, &out));
    out
}

/// The signature of `signed` (the bytes of a bundle before it) with `key`.
#[cfg(not(fuzzing))]
pub fn sign(key: &SigningKey, signed: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(signed).to_bytes()
}

/// Whether `sig` is a valid signature of `signed` by one of `keys`.
#[cfg(not(fuzzing))]
pub(crate) fn signed_by(keys: &[VerifyingKey], signed: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    keys.iter().any(|k| k.verify(signed, &sig).is_ok())
}

// Fuzzing builds only (cargo-fuzz sets `--cfg fuzzing`; no other build
// does): the Ed25519 arithmetic took 95 % of each execution of the ingest
// target (BENCHMARKS.md), which is about our parser and rules, not about
// ed25519-dalek. The stand-in keeps the same shape — a 64-byte value that
// only the holder of the key produces for exactly these bytes, and that
// random bytes fail — at a hash's cost, as BoringSSL's
// FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION does for its signatures.
#[cfg(fuzzing)]
fn fuzz_tag(key: &VerifyingKey, signed: &[u8]) -> [u8; SIGNATURE_LEN] {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new();
    h.update(key.as_bytes());
    h.update(signed);
    h.finalize().into()
}

#[cfg(fuzzing)]
pub fn sign(key: &SigningKey, signed: &[u8]) -> [u8; SIGNATURE_LEN] {
    fuzz_tag(&key.verifying_key(), signed)
}

#[cfg(fuzzing)]
pub(crate) fn signed_by(keys: &[VerifyingKey], signed: &[u8], sig: &[u8]) -> bool {
    keys.iter().any(|k| fuzz_tag(k, signed)[..] == *sig)
}

/// Checks the signature against `keys` (any may match: key rotation), then
/// the structure; returns the bundle.
pub fn verify(bytes: &[u8], keys: &[VerifyingKey]) -> Result<Bundle, BundleError> {
    if bytes.len() < MAGIC.len() + 4 + SIGNATURE_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    if !signed_by(keys, signed, sig) {
        return Err(BundleError::BadSignature);
    }
    parse(signed)
}

/// The structure of the signed part of a bundle (everything before the
/// signature). Public so that it can be fuzzed on its own: in the relay it
/// only ever sees bytes whose signature has verified.
pub fn parse(signed: &[u8]) -> Result<Bundle, BundleError> {
    let rest = signed
        .strip_prefix(&MAGIC[..])
        .ok_or(BundleError::NotABundle)?;
    let (len, rest) = rest.split_at_checked(4).ok_or(BundleError::NotABundle)?;
    let header_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if header_len > MAX_HEADER || header_len > rest.len() {
        return Err(BundleError::BadHeader("length out of range".into()));
    }
    let header: Header = serde_json::from_slice(&rest[..header_len])
        .map_err(|e| BundleError::BadHeader(e.to_string()))?;
    if header.files.len() > MAX_FILES || header.removed.len() > MAX_FILES {
        return Err(BundleError::BadHeader("too many files".into()));
    }
    if header.expires <= header.created {
        return Err(BundleError::BadHeader("expires before it was made".into()));
    }
    if let Some(r) = &header.reset {
        if header.kind != Kind::Full || !crate::reply::valid_relay_name(&r.relay) {
            return Err(BundleError::BadReset);
        }
    }
    let mut body = &rest[header_len..];
    let mut files = Vec::with_capacity(header.files.len());
    for f in &header.files {
        if !valid_path(&f.path) || content_type(&f.path).is_none() {
            return Err(BundleError::BadPath(f.path.clone()));
        }
        let len = usize::try_from(f.len).unwrap_or(usize::MAX);
        if len > body.len() {
            return Err(BundleError::BadBody(format!("{} is cut short", f.path)));
        }
        let (this, more) = body.split_at(len);
        files.push((f.path.clone(), this.to_vec()));
        body = more;
    }
    if !body.is_empty() {
        return Err(BundleError::BadBody(format!(
            "{} bytes after the last file",
            body.len()
        )));
    }
    if let Some(p) = header.removed.iter().find(|p| !valid_path(p)) {
        return Err(BundleError::BadPath(p.clone()));
    }
    Ok(Bundle { header, files })
}

pub use crate::keys::to_hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn header(seq: u64) -> Header {
        Header {
            relay: "relay-1".into(),
            seq,
            created: UnixSeconds(100),
            expires: UnixSeconds(220),
            kind: Kind::Full,
            base: 0,
            files: vec![],
            removed: vec![],
            reset: None,
        }
    }

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("index.html".into(), b"<p>hi</p>".to_vec()),
            ("displays/status.json".into(), b"{\"a\":1}".to_vec()),
        ]
    }

    #[test]
    fn a_packed_bundle_verifies_and_round_trips() {
        let bytes = pack(&header(7), &files(), &key(1));
        let b = verify(&bytes, &[key(1).verifying_key()]).expect("valid");
        assert_eq!(b.header.seq, 7);
        assert_eq!(b.files, files());
    }

    #[test]
    fn any_configured_key_may_sign_for_rotation() {
        let bytes = pack(&header(7), &files(), &key(2));
        assert!(verify(&bytes, &[key(1).verifying_key(), key(2).verifying_key()]).is_ok());
        assert_eq!(
            verify(&bytes, &[key(1).verifying_key()]),
            Err(BundleError::BadSignature)
        );
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = pack(&header(7), &files(), &key(1));
        let keys = [key(1).verifying_key()];
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(verify(&b, &keys).is_err(), "flip at {i} accepted");
        }
        for n in 0..bytes.len() {
            assert!(verify(&bytes[..n], &keys).is_err(), "cut at {n} accepted");
        }
    }

    #[test]
    fn paths_outside_the_bundle_cannot_be_signed_in() {
        for bad in [
            "../etc/passwd",
            "/abs.html",
            "a//b.html",
            "a/./b.html",
            "A.html",
            "x.exe",
            "noext",
        ] {
            let bytes = pack(&header(1), &[(bad.into(), b"x".to_vec())], &key(1));
            assert!(
                matches!(
                    verify(&bytes, &[key(1).verifying_key()]),
                    Err(BundleError::BadPath(_))
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn a_reset_rides_only_on_a_full_bundle_and_names_a_relay_narrowly() {
        let keys = [key(1).verifying_key()];
        let mut h = header(7);
        h.reset = Some(Reset {
            relay: "relay-1".into(),
            held: u64::MAX,
        });
        let b = verify(&pack(&h, &files(), &key(1)), &keys).expect("reset");
        assert_eq!(b.header.reset.map(|r| r.held), Some(u64::MAX));
        h.kind = Kind::Delta;
        assert_eq!(
            verify(&pack(&h, &files(), &key(1)), &keys),
            Err(BundleError::BadReset)
        );
        h.kind = Kind::Full;
        h.reset = Some(Reset {
            relay: "Relay 1\n".into(),
            held: 1,
        });
        assert_eq!(
            verify(&pack(&h, &files(), &key(1)), &keys),
            Err(BundleError::BadReset)
        );
        // A header without the field (every bundle before resets) reads as none.
        let old = pack(&header(7), &files(), &key(1));
        assert!(!String::from_utf8_lossy(&old).contains("reset"));
    }

    #[test]
    fn parse_refuses_short_and_foreign_input_without_panicking() {
        for bad in [
            &b""[..],
            b"MDGRLY1\n",
            b"MDGRLY1\n\0\0",
            b"MDGRLY1\n\xff\xff\xff\xff{}",
        ] {
            assert!(parse(bad).is_err());
        }
    }
}
