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
//! per standby token (`<data>/standby-link-keys.json`). The key is bound
//! at enrolment: the standby sends its public key with the one-time link
//! (`POST /enrol/CODE?as=standby&key=HEX`) and the primary keeps it for
//! the token it gives, so the token crossing the LAN in the answer is no
//! head start for a stand-in (outside tester insider-rt10 N2: a stand-in
//! that signed first owned the lease, 43 numbers twice). Only a request
//! signed with that key gets anything: records, accounts (N3: every
//! password hash), a lease renewal, an acknowledgement, a behind hold, and
//! a revoked standby's "I know I was revoked" (`refused=true`, signed as
//! such: N1, one unsigned request lifted the hold). Sniffed requests only
//! repeat grants the standby already echoed, which renew nothing newer.
//!
//! Upgrade: a standby enrolled before keys were bound has none kept; the
//! first signed request of its token registers its key, as before, and
//! the primary's /admin says so. A standby whose signed requests are
//! refused (another key is kept for its token) writes that down
//! (`<data>/link-key-refused`), says so on its /admin and is not promoted
//! without the override. A copy of the standby's whole data folder (a
//! disk image) carries the private key too; a promotion removes it
//! (`forget`), so a copy taken after the promotion cannot renew.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The standby's private key (hex of the 32-byte seed).
pub const KEY_FILE: &str = "standby-key";
/// The primary's public keys per standby token hash.
pub const KEYS_FILE: &str = "standby-link-keys.json";

/// What a replication request signs: the primary's single-use nonce
/// first (outside tester insider-rt11 M1: a sniffed signed request,
/// replayed minutes later, read every password hash), then the position,
/// hash and lease echo.
pub fn message(nonce: &str, after: u64, hash: &str, lease: &str) -> String {
    format!("madoguchi-replication-v2\n{nonce}\n{after}\n{hash}\n{lease}")
}

/// What a standby that wrote down its primary's refusal signs with
/// `refused=true` (outside tester insider-rt10 N1): the refusal is the
/// standby's own statement, so a sniffed request of another kind cannot
/// be turned into one; with the nonce the primary handed out with its
/// 401/403, so a refusal recorded once lifts no later revocation
/// (insider-rt11 H2: 3, 4, 5 given twice).
pub fn refused_message(nonce: &str, after: u64, hash: &str, lease: &str) -> String {
    format!("madoguchi-replication-refused-v2\n{nonce}\n{after}\n{hash}\n{lease}")
}

/// The answer header that carries the next nonce for a standby's token.
pub const NONCE_HEADER: &str = "madoguchi-link-nonce";

/// How many unused nonces a token keeps: a lost answer or a replay that
/// got a nonce of its own does not at once void the standby's.
const NONCES_KEPT: usize = 4;

/// Nonces handed out per standby token hash, in memory: a restart voids
/// them all, and the standby's next request is answered with a new one.
static NONCES: std::sync::Mutex<BTreeMap<String, std::collections::VecDeque<String>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Primary: a new single-use nonce for the token hash `token`.
pub fn issue_nonce(token: &str) -> String {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let mut all = NONCES.lock().unwrap_or_else(|p| p.into_inner());
    let kept = all.entry(token.to_string()).or_default();
    kept.push_back(nonce.clone());
    while kept.len() > NONCES_KEPT {
        kept.pop_front();
    }
    nonce
}

/// Primary: uses up `nonce` for `token`; whether it was handed out and
/// not used yet. Every nonce handed out before it is void too (the
/// standby uses them in order), so a request held back on the wire and
/// sent later is stale.
pub fn take_nonce(token: &str, nonce: Option<&str>) -> bool {
    let Some(nonce) = nonce.filter(|n| !n.is_empty()) else {
        return false;
    };
    let mut all = NONCES.lock().unwrap_or_else(|p| p.into_inner());
    let Some(kept) = all.get_mut(token) else {
        return false;
    };
    match kept.iter().position(|n| n == nonce) {
        Some(at) => {
            kept.drain(..=at);
            true
        }
        None => false,
    }
}

/// The id a standby sends for its link instead of the link's code
/// (outside tester insider-rt11 H1: the code crossed the LAN in clear in
/// the enrolment request, and a man in the middle swapped in his own key).
/// A one-way hash: an observer learns nothing that enrols or binds.
pub fn link_id(code: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("madoguchi-standby-link-id-v1\n{code}").as_bytes(),
    ))
}

/// The key only the holder of the link's code can make (domain-separated
/// from [`link_id`] and from the code's stored hash).
fn link_signer(code: &str) -> SigningKey {
    use sha2::{Digest, Sha256};
    let seed: [u8; 32] =
        Sha256::digest(format!("madoguchi-standby-link-key-v1\n{code}").as_bytes()).into();
    SigningKey::from_bytes(&seed)
}

fn key_binding(id: &str, key: &str) -> String {
    format!("madoguchi-standby-key-v1\n{id}\n{key}")
}

/// Standby: the proof that the link key `key` (hex) is sent by the holder
/// of the link's code: a signature with the code's own key over the link
/// id and the link key. An observer cannot make one for another key.
pub fn link_proof(code: &str, key: &str) -> String {
    let id = link_id(code);
    hex::encode(
        link_signer(code)
            .sign(key_binding(&id, key).as_bytes())
            .to_bytes(),
    )
}

/// The primary's file of standby links made by this version: per link id,
/// the code's stored hash and the public half of the code's key (nothing
/// in it enrols or proves anything: no code, no secret).
pub const LINKS_FILE: &str = "standby-links.json";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StandbyLink {
    /// `sha256(code)`, as the enrolment is kept (`auth.rs`).
    pub code_sha256: String,
    /// The public half of [`link_signer`], in hex.
    pub public: String,
}

fn load_links(data: &Path) -> std::io::Result<BTreeMap<String, StandbyLink>> {
    match std::fs::read_to_string(data.join(LINKS_FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
    }
}

/// Primary, when an admin makes a standby link: keeps what checks the
/// standby's proof ([`StandbyLink`]). Links whose enrolment is gone are
/// dropped (`live`: the code hashes still kept).
pub fn remember_link(data: &Path, code: &str, live: &[String]) -> std::io::Result<()> {
    use sha2::{Digest, Sha256};
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    let mut links = load_links(data).unwrap_or_default();
    let code_sha256 = hex::encode(Sha256::digest(code.as_bytes()));
    links.retain(|_, l| live.contains(&l.code_sha256) && l.code_sha256 != code_sha256);
    links.insert(
        link_id(code),
        StandbyLink {
            code_sha256,
            public: public_hex(&link_signer(code)),
        },
    );
    let text = serde_json::to_string_pretty(&links).unwrap_or_default();
    write_private(&data.join(LINKS_FILE), &text)
}

/// Primary: the standby link with this id, if this version made it.
pub fn standby_link(data: &Path, id: &str) -> std::io::Result<Option<StandbyLink>> {
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    Ok(load_links(data)?.get(id).cloned())
}

/// Whether a standby link made by this version has this code hash.
pub fn is_new_link(data: &Path, code_sha256: &str) -> bool {
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    load_links(data).is_ok_and(|l| l.values().any(|l| l.code_sha256 == code_sha256))
}

/// Primary: whether `proof` binds `key` for the link `link`.
pub fn proof_holds(link: &StandbyLink, id: &str, key: &str, proof: &str) -> bool {
    verify(&link.public, proof, &key_binding(id, key)).is_ok()
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
    let key = generate();
    keep(data, &key)?;
    Ok(key)
}

/// A new link key, not yet kept: an enrolment keeps it only once the
/// primary has bound it to a new token (a refused enrolment leaves the
/// key of the token it still holds).
pub fn generate() -> SigningKey {
    let seed: [u8; 32] = rand::random();
    SigningKey::from_bytes(&seed)
}

/// Keeps `key` as this standby's link key (0600).
pub fn keep(data: &Path, key: &SigningKey) -> std::io::Result<()> {
    write_private(&data.join(KEY_FILE), &hex::encode(key.to_bytes()))
}

/// Promoted: the key signs for no primary any more.
pub fn forget(data: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data.join(KEY_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Standby: `(public key, signature)` in hex for one request.
pub fn sign(
    key: &SigningKey,
    nonce: &str,
    after: u64,
    hash: &str,
    lease: &str,
) -> (String, String) {
    sign_text(key, &message(nonce, after, hash, lease))
}

/// Standby: `(public key, signature)` in hex of `msg`.
pub fn sign_text(key: &SigningKey, msg: &str) -> (String, String) {
    let sig = key.sign(msg.as_bytes());
    (public_hex(key), hex::encode(sig.to_bytes()))
}

/// The public half of `key`, in hex (sent in the enrolment request).
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Whether `key` is the hex of an Ed25519 public key.
pub fn is_public_key(key: &str) -> bool {
    parse_public(key).is_some()
}

fn parse_public(key: &str) -> Option<VerifyingKey> {
    hex::decode(key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
}

/// One reader-writer of the keys file at a time: two first requests
/// racing with different keys must not both be registered.
static KEEP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The keys kept per token hash. A keys file that is there but cannot be
/// read is no empty list: read as one, whoever signed next would be
/// registered as the standby.
fn load(data: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let path = data.join(KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
        Ok(t) => serde_json::from_str(&t).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged ({e}); restore it from a backup or enrol the standby again",
                    path.display()
                ),
            )
        }),
    }
}

fn store(data: &Path, keys: &BTreeMap<String, String>) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(keys).unwrap_or_default();
    write_private(&data.join(KEYS_FILE), &text)
}

/// Primary, at a standby's enrolment (outside tester insider-rt10 N2):
/// the public key the standby sent with its one-time link is its token's
/// key from the start, so no stand-in holding a copy of the token can
/// sign first and take the lease.
pub fn bind(data: &Path, token: &str, key: &str) -> std::io::Result<()> {
    if !is_public_key(key) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an Ed25519 public key",
        ));
    }
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    let mut keys = load(data)?;
    keys.insert(token.to_string(), key.to_string());
    store(data, &keys)
}

/// Primary: whether `msg` is signed with the key kept for the token hash
/// `token`. Registers nothing: a token without a kept key signs for
/// nothing here (outside tester insider-rt10 N1: a revoked standby's
/// refusal counts only when signed with its own key).
pub fn verify_kept(
    data: &Path,
    token: &str,
    key: Option<&str>,
    sig: Option<&str>,
    msg: &str,
) -> std::io::Result<bool> {
    let (Some(key), Some(sig)) = (key, sig) else {
        return Ok(false);
    };
    let kept = {
        let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
        load(data)?.get(token).cloned()
    };
    if kept.as_deref() != Some(key) {
        return Ok(false);
    }
    Ok(verify(key, sig, msg).is_ok())
}

/// Checks `sig` (hex) of `msg` under `key` (hex): the reason if not.
fn verify(key: &str, sig: &str, msg: &str) -> Result<(), &'static str> {
    let public = parse_public(key).ok_or("bad_key")?;
    let sig = hex::decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or("bad_signature")?;
    public
        .verify_strict(msg.as_bytes(), &sig)
        .map_err(|_| "bad_signature")
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
    if let Err(why) = verify(key, sig, msg) {
        return Ok(Checked::Unsigned(why));
    }
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    let mut keys = load(data)?;
    match keys.get(token) {
        Some(k) if k == key => Ok(Checked::Signed),
        Some(_) => Ok(Checked::Unsigned("other_key")),
        None => {
            keys.insert(token.to_string(), key.to_string());
            store(data, &keys)?;
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
        let msg = message("n", 5, "ab", "g-1");
        let (ka, sa) = sign(&a, "n", 5, "ab", "g-1");
        let got = check(dir.path(), "t", Some(&ka), Some(&sa), &msg);
        assert!(got.is_err(), "{got:?}");
    }

    #[test]
    fn a_key_bound_at_enrolment_is_the_only_one_and_verify_registers_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let msg = message("n", 5, "ab", "g-1");
        let (ka, sa) = sign(&a, "n", 5, "ab", "g-1");
        let (kb, sb) = sign(&b, "n", 5, "ab", "g-1");
        let refused = refused_message("n", 5, "ab", "g-1");
        let (kr, sr) = sign_text(&b, &refused);
        // Nothing kept: a signed refusal counts for nothing, and keeps
        // nothing.
        assert!(!verify_kept(dir.path(), "t", Some(&kr), Some(&sr), &refused).expect("v"));
        bind(dir.path(), "t", &public_hex(&a)).expect("bind");
        assert_eq!(
            check(dir.path(), "t", Some(&kb), Some(&sb), &msg).expect("check"),
            Checked::Unsigned("other_key")
        );
        assert_eq!(
            check(dir.path(), "t", Some(&ka), Some(&sa), &msg).expect("check"),
            Checked::Signed
        );
        assert!(!verify_kept(dir.path(), "t", Some(&kr), Some(&sr), &refused).expect("v"));
        let (kr, sr) = sign_text(&a, &refused);
        assert!(verify_kept(dir.path(), "t", Some(&kr), Some(&sr), &refused).expect("v"));
        // A request of another kind is not a refusal.
        assert!(!verify_kept(dir.path(), "t", Some(&ka), Some(&sa), &refused).expect("v"));
        assert!(bind(dir.path(), "u", "zz").is_err());
    }

    #[test]
    fn only_the_first_key_of_a_token_signs_for_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let msg = message("n", 5, "ab", "g-1");
        let (ka, sa) = sign(&a, "n", 5, "ab", "g-1");
        let (kb, sb) = sign(&b, "n", 5, "ab", "g-1");
        let c = |k: &str, s: &str| check(dir.path(), "t", Some(k), Some(s), &msg).expect("check");
        assert_eq!(c(&ka, &sa), Checked::Registered);
        assert_eq!(c(&ka, &sa), Checked::Signed);
        assert_eq!(c(&kb, &sb), Checked::Unsigned("other_key"));
        assert_eq!(c(&ka, &sb), Checked::Unsigned("bad_signature"));
        let other = message("n", 6, "ab", "g-1");
        assert_eq!(
            check(dir.path(), "t", Some(&ka), Some(&sa), &other).expect("check"),
            Checked::Unsigned("bad_signature")
        );
        assert_eq!(
            check(dir.path(), "t", None, None, &msg).expect("check"),
            Checked::Unsigned("unsigned")
        );
    }

    #[test]
    fn a_link_proof_binds_one_key_and_only_the_codes_holder_makes_one() {
        // Outside tester insider-rt11 H1.
        let dir = tempfile::tempdir().expect("tmp");
        remember_link(dir.path(), "code-1", &[]).expect("remember");
        let id = link_id("code-1");
        assert_ne!(id, "code-1");
        let link = standby_link(dir.path(), &id).expect("read").expect("kept");
        let text = std::fs::read_to_string(dir.path().join(LINKS_FILE)).expect("file");
        assert!(!text.contains("code-1"), "{text}");
        let ours = public_hex(&SigningKey::from_bytes(&[1; 32]));
        let theirs = public_hex(&SigningKey::from_bytes(&[2; 32]));
        let proof = link_proof("code-1", &ours);
        assert!(proof_holds(&link, &id, &ours, &proof));
        // The same proof with another key, or a proof from another code.
        assert!(!proof_holds(&link, &id, &theirs, &proof));
        assert!(!proof_holds(
            &link,
            &id,
            &theirs,
            &link_proof("code-2", &theirs)
        ));
        assert!(is_new_link(dir.path(), &link.code_sha256));
    }

    #[test]
    fn a_nonce_is_used_once_and_voids_the_ones_before_it() {
        // Outside tester insider-rt11 M1, H2.
        let a = issue_nonce("tok-n");
        let b = issue_nonce("tok-n");
        assert!(!take_nonce("tok-n", None));
        assert!(!take_nonce("other", Some(&b)));
        assert!(take_nonce("tok-n", Some(&b)));
        assert!(!take_nonce("tok-n", Some(&b)), "used once");
        assert!(!take_nonce("tok-n", Some(&a)), "older than one used");
    }
}
