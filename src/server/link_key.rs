//! The standby's link key (issue 24, outside tester insider-rt9 F11, R9,
//! R10, R11).
//!
//! The standby token proves who asks for records, but it is a bearer
//! token: it sits in a file on the standby and crosses the LAN on every
//! replication request (the link has no TLS). A stand-in holding a copy of
//! it could acknowledge records and echo lease grants, so the old primary
//! kept issuing while the real, cut-off standby was promoted (58 numbers
//! given twice). So what renews the lease and acknowledges records is a
//! signature: the standby makes an Ed25519 key pair of its own
//! (`<data>/standby-key`, 0600, never sent), and signs each request's
//! position, hash and lease echo with it. The primary keeps the public key
//! per standby token (`<data>/standby-link-keys.json`) from the first
//! signed request of that token, and from then on only a request signed
//! with that key renews the lease, acknowledges records or says the
//! primary is behind. Sniffed requests only repeat grants the standby
//! already echoed, which renew nothing newer.
//!
//! Limit: the first signed request of a token decides its key. A standby
//! signs from its first request after enrolment (milliseconds later); a
//! standby enrolled before this version registers with its first request
//! after the upgrade. A stand-in that registers first is the one whose
//! signatures count, and the real standby's requests then renew nothing:
//! the primary stops issuing (`no_standby_lease`) and a fault record names
//! the refused key, so it fails safe (no number twice) and loudly. A copy
//! of the standby's whole data folder (a disk image) carries the private
//! key too; a promotion removes it (`forget`), so a copy taken after the
//! promotion cannot renew.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The standby's private key (hex of the 32-byte seed).
pub const KEY_FILE: &str = "standby-key";
/// The primary's public keys per standby token hash.
pub const KEYS_FILE: &str = "standby-link-keys.json";

/// What a replication request signs.
pub fn message(after: u64, hash: &str, lease: &str) -> String {
    format!("madoguchi-replication-v1\n{after}\n{hash}\n{lease}")
}

/// Writes `text` to `path` readable by its owner only (0600), atomically.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        // An existing temp file keeps its mode: set it again.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    Ok(())
}

/// Makes a file its owner's only (0600); nothing on other systems.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Standby: its link key, made (0600) when it has none.
pub fn own(data: &Path) -> std::io::Result<SigningKey> {
    let path = data.join(KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(seed) = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            make_private(&path)?;
            return Ok(SigningKey::from_bytes(&seed));
        }
    }
    fresh(data)
}

/// Standby: a new link key (at enrolment: a new token gets a new key).
pub fn fresh(data: &Path) -> std::io::Result<SigningKey> {
    let seed: [u8; 32] = rand::random();
    write_private(&data.join(KEY_FILE), &hex::encode(seed))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Promoted: the key signs for no primary any more.
pub fn forget(data: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data.join(KEY_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Standby: `(public key, signature)` in hex for one request.
pub fn sign(key: &SigningKey, after: u64, hash: &str, lease: &str) -> (String, String) {
    let sig = key.sign(message(after, hash, lease).as_bytes());
    (
        hex::encode(key.verifying_key().to_bytes()),
        hex::encode(sig.to_bytes()),
    )
}

/// What the primary made of a request's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Signed with the token's key.
    Signed,
    /// Signed, and its key is now the token's (the token's first).
    Registered,
    /// No signature, a bad one, or another key than the token's.
    Unsigned(&'static str),
}

/// Primary: checks one request's signature under the key kept for the
/// token hash `token`, keeping the key of the token's first signed
/// request.
pub fn check(
    data: &Path,
    token: &str,
    key: Option<&str>,
    sig: Option<&str>,
    msg: &str,
) -> std::io::Result<Checked> {
    let (Some(key), Some(sig)) = (key, sig) else {
        return Ok(Checked::Unsigned("unsigned"));
    };
    let Some(public) = hex::decode(key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
    else {
        return Ok(Checked::Unsigned("bad_key"));
    };
    let Some(sig) = hex::decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
    else {
        return Ok(Checked::Unsigned("bad_signature"));
    };
    if public.verify_strict(msg.as_bytes(), &sig).is_err() {
        return Ok(Checked::Unsigned("bad_signature"));
    }
    // One reader-writer at a time: two first requests racing with
    // different keys must not both be registered.
    static KEEP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    let path = data.join(KEYS_FILE);
    // A keys file that is there but cannot be read is no empty list: read
    // as one, whoever signed next would be registered as the standby.
    let mut keys: BTreeMap<String, String> = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e),
        Ok(t) => serde_json::from_str(&t).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged ({e}); restore it from a backup or enrol the standby again",
                    path.display()
                ),
            )
        })?,
    };
    match keys.get(token) {
        Some(k) if k == key => Ok(Checked::Signed),
        Some(_) => Ok(Checked::Unsigned("other_key")),
        None => {
            keys.insert(token.to_string(), key.to_string());
            let text = serde_json::to_string_pretty(&keys).unwrap_or_default();
            write_private(&path, &text)?;
            Ok(Checked::Registered)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_keys_file_registers_no_one() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(KEYS_FILE), "{\"t\": \"ab").expect("torn");
        let a = SigningKey::from_bytes(&[1; 32]);
        let msg = message(5, "ab", "g-1");
        let (ka, sa) = sign(&a, 5, "ab", "g-1");
        let got = check(dir.path(), "t", Some(&ka), Some(&sa), &msg);
        assert!(got.is_err(), "{got:?}");
    }

    #[test]
    fn only_the_first_key_of_a_token_signs_for_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let msg = message(5, "ab", "g-1");
        let (ka, sa) = sign(&a, 5, "ab", "g-1");
        let (kb, sb) = sign(&b, 5, "ab", "g-1");
        let c = |k: &str, s: &str| check(dir.path(), "t", Some(k), Some(s), &msg).expect("check");
        assert_eq!(c(&ka, &sa), Checked::Registered);
        assert_eq!(c(&ka, &sa), Checked::Signed);
        assert_eq!(c(&kb, &sb), Checked::Unsigned("other_key"));
        assert_eq!(c(&ka, &sb), Checked::Unsigned("bad_signature"));
        let other = message(6, "ab", "g-1");
        assert_eq!(
            check(dir.path(), "t", Some(&ka), Some(&sa), &other).expect("check"),
            Checked::Unsigned("bad_signature")
        );
        assert_eq!(
            check(dir.path(), "t", None, None, &msg).expect("check"),
            Checked::Unsigned("unsigned")
        );
    }
}
