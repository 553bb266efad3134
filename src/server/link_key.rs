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
//!
//! The other direction (outside tester insider-rt12 A1: a man in the
//! middle edited the primary's answers, made a staff account admin on the
//! standby and planted a forged record): the primary signs every answer to
//! a signed request with its own answer key ([`answer_signer`],
//! `<data>/link-answer-key`), over the request's signature, the status, the
//! nonce and the body's bytes ([`answer_message`]). The standby learns the
//! key's public half at enrolment, vouched for by a tag under a key only
//! the holder of the link's code can make ([`answer_tag`]), and takes
//! nothing from an answer whose signature does not hold.

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
/// The account store's digest the standby holds is signed too (outside
/// tester insider-rt12 A1): changed on the way, the primary would never
/// send a changed store, and a demoted admin stayed admin on the standby.
pub fn message(nonce: &str, after: u64, hash: &str, lease: &str, accounts: &str) -> String {
    format!("madoguchi-replication-v3\n{nonce}\n{after}\n{hash}\n{lease}\n{accounts}")
}

/// What a standby that wrote down its primary's refusal signs with
/// `refused=true` (outside tester insider-rt10 N1): the refusal is the
/// standby's own statement, so a sniffed request of another kind cannot
/// be turned into one; with the nonce the primary handed out with its
/// 401/403, so a refusal recorded once lifts no later revocation
/// (insider-rt11 H2: 3, 4, 5 given twice).
pub fn refused_message(nonce: &str, after: u64, hash: &str, lease: &str, accounts: &str) -> String {
    format!("madoguchi-replication-refused-v3\n{nonce}\n{after}\n{hash}\n{lease}\n{accounts}")
}

/// The answer header that carries the next nonce for a standby's token.
pub const NONCE_HEADER: &str = "madoguchi-link-nonce";

/// How many unused nonces handed out in answer to a fresh request (one
/// that used its nonce: only the holder of the standby's key can make
/// one) a token keeps: a lost answer does not at once void the standby's.
const CHAINED_KEPT: usize = 4;

/// How many unused nonces handed out in answer to a stale request (the
/// standby's first, or any replay) a token keeps. They are kept apart from
/// the chained ones, so no number of replays pushes out the nonce the
/// standby is using; the standby uses one within a round trip.
const STARTS_KEPT: usize = 64;

/// How many request signatures a token remembers with the nonce each was
/// answered with (outside tester insider-rt14 R1).
const ANSWERED_KEPT: usize = 1024;

/// Nonces handed out to one standby token, and to which request.
#[derive(Debug, Default)]
struct Kept {
    /// Unused nonces, oldest first; `true`: handed out for a fresh request.
    unused: std::collections::VecDeque<(String, bool)>,
    /// Request signatures already answered, with the nonce each got.
    answered: std::collections::VecDeque<(String, String)>,
    /// The same, for a quick look-up.
    answered_sigs: std::collections::HashMap<String, String>,
}

impl Kept {
    fn push(&mut self, nonce: String, chained: bool) {
        self.unused.push_back((nonce, chained));
        let limit = if chained { CHAINED_KEPT } else { STARTS_KEPT };
        if self.unused.iter().filter(|(_, c)| *c == chained).count() > limit {
            if let Some(at) = self.unused.iter().position(|(_, c)| *c == chained) {
                self.unused.remove(at);
            }
        }
    }

    fn remember(&mut self, request_sig: &str, nonce: &str) {
        self.answered
            .push_back((request_sig.to_string(), nonce.to_string()));
        self.answered_sigs
            .insert(request_sig.to_string(), nonce.to_string());
        while self.answered.len() > ANSWERED_KEPT {
            if let Some((sig, _)) = self.answered.pop_front() {
                self.answered_sigs.remove(&sig);
            }
        }
    }

    fn take(&mut self, nonce: Option<&str>) -> bool {
        let Some(nonce) = nonce.filter(|n| !n.is_empty()) else {
            return false;
        };
        match self.unused.iter().position(|(n, _)| n == nonce) {
            Some(at) => {
                self.unused.drain(..=at);
                true
            }
            None => false,
        }
    }
}

/// Nonces handed out per standby token hash, in memory: a restart voids
/// them all, and the standby's next request is answered with a new one.
static NONCES: std::sync::Mutex<BTreeMap<String, Kept>> = std::sync::Mutex::new(BTreeMap::new());

/// How the primary answers one request signed with the key kept for its
/// token ([`nonce_turn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// Its nonce was handed out and unused: used up now; `next` goes with
    /// the answer.
    Fresh { next: String },
    /// No unused nonce in it: answered `428` with `next` only. `again`:
    /// this very request (its signature) was answered before, and `next`
    /// is the nonce it got then (a replay, or a copy that arrived first).
    Stale { next: String, again: bool },
}

impl Turn {
    /// The nonce that goes with the answer.
    pub fn next(&self) -> &str {
        match self {
            Turn::Fresh { next } | Turn::Stale { next, .. } => next,
        }
    }

    pub fn is_fresh(&self) -> bool {
        matches!(self, Turn::Fresh { .. })
    }
}

/// Primary: the nonce for one request of the standby token `token` signed
/// with its kept key, whose signature is `request_sig` and that carries
/// `nonce` (outside tester insider-rt14 R1). A request answered before is
/// answered again with the nonce it got then, and nothing else: a replayed
/// line only ever gets its old nonce (useless without the standby's key,
/// and never fresh again), and when a copy of the standby's request reaches
/// the primary first, the standby's own, identical one gets the nonce the
/// copy got, which only the standby can use. A request not seen before
/// uses its nonce if it holds an unused one (the next is chained to it),
/// else gets a new one of its own; the two kinds are kept apart, so stale
/// requests — however many, and whoever sends them — never push out the
/// nonce the standby is using, and the standby's own stale request (after
/// a restart of either machine) always gets one.
pub fn nonce_turn(token: &str, request_sig: &str, nonce: Option<&str>) -> Turn {
    let mut all = NONCES.lock().unwrap_or_else(|p| p.into_inner());
    if all.len() > 64 && !all.contains_key(token) {
        // Only standby tokens get here; a bound against a flood of them.
        all.clear();
    }
    let kept = all.entry(token.to_string()).or_default();
    if let Some(next) = kept.answered_sigs.get(request_sig) {
        return Turn::Stale {
            next: next.clone(),
            again: true,
        };
    }
    let next = hex::encode(rand::random::<[u8; 16]>());
    let fresh = kept.take(nonce);
    kept.push(next.clone(), fresh);
    kept.remember(request_sig, &next);
    if fresh {
        Turn::Fresh { next }
    } else {
        Turn::Stale { next, again: false }
    }
}

/// Standby: a value of its own for a request that holds no nonce of the
/// primary's (its first, or after an answer it could not use). Ed25519 is
/// deterministic: without it, such a request for the same position would
/// be the very bytes of one sniffed earlier, and the primary answers a
/// request it has seen only with the nonce it got then (outside tester
/// insider-rt14 R1). Never one the primary handed out, so it is stale.
pub fn own_nonce() -> String {
    format!("s{}", hex::encode(rand::random::<[u8; 16]>()))
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
    /// The primary's answer key ([`answer_signer`]) when the link was
    /// made, and its tag under the code ([`answer_tag`]): the enrolment
    /// answer hands both to the standby (outside tester insider-rt12 A1).
    /// A link made before answers were signed has none and is refused as
    /// old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_tag: Option<String>,
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
    let answer_key = public_hex(&answer_signer(data)?);
    let answer_tag = answer_tag(code, &answer_key);
    let _kept = KEEP.lock().unwrap_or_else(|p| p.into_inner());
    let mut links = load_links(data).unwrap_or_default();
    let code_sha256 = hex::encode(Sha256::digest(code.as_bytes()));
    links.retain(|_, l| live.contains(&l.code_sha256) && l.code_sha256 != code_sha256);
    links.insert(
        link_id(code),
        StandbyLink {
            code_sha256,
            public: public_hex(&link_signer(code)),
            answer_key: Some(answer_key),
            answer_tag: Some(answer_tag),
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

/// The primary's own long-lived key that signs every answer it gives a
/// standby's signed request (outside tester insider-rt12 A1: a man in the
/// middle who passed the standby's requests untouched but edited the
/// primary's JSON answers made a staff account admin on the standby, still
/// admin after its promotion, and planted a forged record). Hex of the
/// seed, 0600, made on first need, carried by backups.
pub const ANSWER_KEY_FILE: &str = "link-answer-key";
/// Beside a standby's link key: the public half of its primary's answer
/// key, taken at enrolment once its tag under the link's code held.
pub const PRIMARY_ANSWER_KEY_FILE: &str = "standby-answer-key";
/// The enrolment answer's headers: the primary's answer key, its tag under
/// the link's code, and the answer key's signature of what was enrolled.
pub const ANSWER_KEY_HEADER: &str = "madoguchi-link-answer-key";
pub const ANSWER_TAG_HEADER: &str = "madoguchi-link-answer-tag";
pub const ENROLLED_SIG_HEADER: &str = "madoguchi-link-enrolled-sig";
/// Every answer to a signed replication request: the answer key's
/// signature ([`answer_message`]).
pub const ANSWER_SIG_HEADER: &str = "madoguchi-link-answer-sig";

/// One maker of the answer key at a time.
static ANSWER_KEEP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Primary: its answer key, made (0600) on first need. A key file that is
/// there but cannot be read is an error, never silently replaced (every
/// standby holds the old key's public half).
pub fn answer_signer(data: &Path) -> std::io::Result<SigningKey> {
    let _kept = ANSWER_KEEP.lock().unwrap_or_else(|p| p.into_inner());
    let path = data.join(ANSWER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|seed| SigningKey::from_bytes(&seed))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged: restore it from a backup, or remove it and enrol the standby again",
                        path.display()
                    ),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate();
            write_private(&path, &hex::encode(key.to_bytes()))?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Primary: standby keys are bound (`standby-link-keys.json` has one)
/// but the answer key file is missing (outside tester insider-rt13 C4).
pub fn answer_key_lost(data: &Path) -> bool {
    !data.join(ANSWER_KEY_FILE).exists() && load(data).is_ok_and(|k| !k.is_empty())
}

/// Primary, when [`answer_key_lost`]: whether this folder ever had an
/// answer key (outside tester insider-rt14 R4). Every standby link made
/// since answer keys exist names it in `standby-links.json`, and the file
/// always keeps the last link made; a folder whose links name none (or
/// that has no such file) enrolled its standby with a version before
/// answer keys: an upgrade, which no backup can mend.
pub fn answer_key_ever_made(data: &Path) -> bool {
    load_links(data).is_ok_and(|l| l.values().any(|l| l.answer_key.is_some()))
}

/// The MAC key only the holder of the link's code can make, with its own
/// label (apart from [`link_id`], [`link_signer`] and the code's hash).
fn answer_mac_key(code: &str) -> ring::hmac::Key {
    use sha2::{Digest, Sha256};
    let k = Sha256::digest(format!("madoguchi-standby-answer-mac-v1\n{code}").as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k)
}

fn answer_key_text(answer_key: &str) -> String {
    format!("madoguchi-standby-answer-key-v1\n{answer_key}")
}

/// Primary, when the link is made (the code is at hand then, never
/// kept): the tag that tells the standby the answer key is its primary's.
pub fn answer_tag(code: &str, answer_key: &str) -> String {
    hex::encode(ring::hmac::sign(
        &answer_mac_key(code),
        answer_key_text(answer_key).as_bytes(),
    ))
}

/// Standby: whether `tag` makes `answer_key` its primary's, for the link's
/// `code` it holds (a man in the middle has only the link's id).
pub fn answer_tag_holds(code: &str, answer_key: &str, tag: &str) -> bool {
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    is_public_key(answer_key)
        && ring::hmac::verify(
            &answer_mac_key(code),
            answer_key_text(answer_key).as_bytes(),
            &tag,
        )
        .is_ok()
}

/// What the answer key signs at an enrolment: the link, the standby's
/// key and the token given (its SHA-256), so no token or key is swapped
/// in the answer.
fn enrolled_text(id: &str, standby_key: &str, token: &str) -> String {
    use sha2::{Digest, Sha256};
    let token = hex::encode(Sha256::digest(token.as_bytes()));
    format!("madoguchi-standby-enrolled-v1\n{id}\n{standby_key}\n{token}")
}

/// Primary: the answer key's signature of an enrolment.
pub fn sign_enrolled(key: &SigningKey, id: &str, standby_key: &str, token: &str) -> String {
    hex::encode(
        key.sign(enrolled_text(id, standby_key, token).as_bytes())
            .to_bytes(),
    )
}

/// Standby: whether `sig` is the answer key's signature of its enrolment.
pub fn enrolled_holds(
    answer_key: &str,
    id: &str,
    standby_key: &str,
    token: &str,
    sig: &str,
) -> bool {
    verify(answer_key, sig, &enrolled_text(id, standby_key, token)).is_ok()
}

/// What a signed answer answers (outside tester insider-rt13 E1): a
/// replication request, or the promotion's probe. Each kind has its own
/// label in the signed text, so a probe answer is never taken as a
/// replication answer, nor the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    Records,
    Probe,
}

impl AnswerKind {
    fn label(self) -> &'static str {
        match self {
            AnswerKind::Records => "records",
            AnswerKind::Probe => "probe",
        }
    }
}

/// Whom a signed answer is for (outside tester insider-rt13 E1: the
/// primary signed its answer to any request carrying `sig=`, a 401 to a
/// request with no token among them, so a man in the middle with no
/// credentials handed the standby a genuinely signed refusal "of its own
/// request"). The signed text names the token (its SHA-256, as the
/// primary keeps it), the standby's link key that signed the request,
/// and the request's signature; the primary signs only when that
/// signature holds under that key over what the kind's request signs, so
/// only the standby's own request, unchanged, gets an answer that names
/// its token and key.
#[derive(Debug, Clone, Copy)]
pub struct AnswerFor<'a> {
    pub kind: AnswerKind,
    /// The SHA-256 (hex) of the token the request carried.
    pub token_sha256: &'a str,
    /// The link key (hex) the request was signed with.
    pub key: &'a str,
    /// The request's signature (hex).
    pub request_sig: &'a str,
}

/// What the answer key signs for each answer to a signed request: whom
/// it is for ([`AnswerFor`]: the kind, the token, the key and the
/// request's own signature, so an older answer, replayed, fits no later
/// request), the status, the nonce handed out with it, and the body's
/// exact bytes (as SHA-256).
pub fn answer_message(to: AnswerFor<'_>, status: u16, nonce: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let body = hex::encode(Sha256::digest(body));
    format!(
        "madoguchi-replication-answer-v2\n{}\n{}\n{}\n{}\n{status}\n{nonce}\n{body}",
        to.kind.label(),
        to.token_sha256,
        to.key,
        to.request_sig
    )
}

/// Primary: the signature of one answer, in hex.
pub fn sign_answer(
    key: &SigningKey,
    to: AnswerFor<'_>,
    status: u16,
    nonce: &str,
    body: &[u8],
) -> String {
    hex::encode(
        key.sign(answer_message(to, status, nonce, body).as_bytes())
            .to_bytes(),
    )
}

/// Standby: whether `sig` is its primary's signature of this answer to
/// its own request ([`AnswerFor`]).
pub fn answer_holds(
    answer_key: &str,
    to: AnswerFor<'_>,
    status: u16,
    nonce: &str,
    body: &[u8],
    sig: &str,
) -> bool {
    verify(answer_key, sig, &answer_message(to, status, nonce, body)).is_ok()
}

/// What a standby signs for the promotion's probe: a challenge of its
/// own, with its own label (never a replication request's text).
pub fn probe_message(challenge: &str) -> String {
    format!("madoguchi-replication-probe-v1\n{challenge}")
}

/// Primary: whether `sig` holds under the key `key` the request names
/// (kept for its token or not) over `msg`: only then is the answer
/// signed, and it names that key ([`AnswerFor`]).
pub fn signed_by(key: Option<&str>, sig: Option<&str>, msg: &str) -> bool {
    matches!((key, sig), (Some(k), Some(s)) if verify(k, s, msg).is_ok())
}

/// The SHA-256 (hex) of a token, as the primary keeps and names it.
pub fn token_sha256(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Standby: keeps its primary's answer key (public, hex).
pub fn keep_primary_answer_key(data: &Path, key: &str) -> std::io::Result<()> {
    write_private(&data.join(PRIMARY_ANSWER_KEY_FILE), key)
}

/// Standby: its primary's answer key, if it was enrolled by a version
/// that takes one.
pub fn primary_answer_key(data: &Path) -> Option<String> {
    std::fs::read_to_string(data.join(PRIMARY_ANSWER_KEY_FILE))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|k| is_public_key(k))
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
    canonical_hex(key)
        .then(|| hex::decode(key).ok())
        .flatten()
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

/// Primary: whether `key` is kept for a standby token other than `token`
/// (revoked and deleted standbys' too; outside tester insider-rt14 R2: a
/// kiosk's token carrying a valid standby signature is a device in
/// between).
pub fn is_key_of_another(data: &Path, key: &str, token: &str) -> bool {
    load(data).is_ok_and(|keys| {
        keys.get(token).map(String::as_str) != Some(key) && keys.values().any(|k| k == key)
    })
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

/// Whether `s` is hex as `hex::encode` writes it (lower case). Keys and
/// signatures are compared and remembered by their text (the nonce each
/// request signature got, the answer kept for a repeated request): a copy
/// of a signed request with its signature in upper case decoded to the
/// same bytes, passed, and counted as a request never seen, so a tap
/// could take the standby's nonce again (outside tester insider-rt15 N2).
/// One spelling per key and signature makes text and bytes agree.
fn canonical_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks `sig` (hex) of `msg` under `key` (hex): the reason if not.
fn verify(key: &str, sig: &str, msg: &str) -> Result<(), &'static str> {
    let public = parse_public(key).ok_or("bad_key")?;
    let sig = canonical_hex(sig)
        .then(|| hex::decode(sig).ok())
        .flatten()
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

    /// insider-rt15 N2: the same signature spelt in upper case is no
    /// second valid request (it was, and got a fresh nonce).
    #[test]
    fn a_signature_or_key_in_upper_case_is_refused() {
        let sk = SigningKey::from_bytes(&[3; 32]);
        let key = hex::encode(sk.verifying_key().to_bytes());
        let sig = hex::encode(sk.sign(b"msg").to_bytes());
        assert_eq!(verify(&key, &sig, "msg"), Ok(()));
        assert_eq!(
            verify(&key, &sig.to_uppercase(), "msg"),
            Err("bad_signature")
        );
        let mut one = sig.clone().into_bytes();
        if let Some(c) = one.iter_mut().find(|c| c.is_ascii_lowercase()) {
            c.make_ascii_uppercase();
        }
        let one = String::from_utf8(one).unwrap_or_default();
        assert_ne!(one, sig, "a letter to change");
        assert_eq!(verify(&key, &one, "msg"), Err("bad_signature"));
        assert_eq!(verify(&key.to_uppercase(), &sig, "msg"), Err("bad_key"));
    }

    #[test]
    fn a_damaged_keys_file_registers_no_one() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(KEYS_FILE), "{\"t\": \"ab").expect("torn");
        let a = SigningKey::from_bytes(&[1; 32]);
        let msg = message("n", 5, "ab", "g-1", "d");
        let (ka, sa) = sign_text(&a, &message("n", 5, "ab", "g-1", "d"));
        let got = check(dir.path(), "t", Some(&ka), Some(&sa), &msg);
        assert!(got.is_err(), "{got:?}");
    }

    #[test]
    fn a_key_bound_at_enrolment_is_the_only_one_and_verify_registers_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let msg = message("n", 5, "ab", "g-1", "d");
        let (ka, sa) = sign_text(&a, &message("n", 5, "ab", "g-1", "d"));
        let (kb, sb) = sign_text(&b, &message("n", 5, "ab", "g-1", "d"));
        let refused = refused_message("n", 5, "ab", "g-1", "d");
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
        let msg = message("n", 5, "ab", "g-1", "d");
        let (ka, sa) = sign_text(&a, &message("n", 5, "ab", "g-1", "d"));
        let (kb, sb) = sign_text(&b, &message("n", 5, "ab", "g-1", "d"));
        let c = |k: &str, s: &str| check(dir.path(), "t", Some(k), Some(s), &msg).expect("check");
        assert_eq!(c(&ka, &sa), Checked::Registered);
        assert_eq!(c(&ka, &sa), Checked::Signed);
        assert_eq!(c(&kb, &sb), Checked::Unsigned("other_key"));
        assert_eq!(c(&ka, &sb), Checked::Unsigned("bad_signature"));
        let other = message("n", 6, "ab", "g-1", "d");
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
    fn only_the_codes_holder_takes_the_answer_key_and_an_answer_fits_one_request() {
        // Outside tester insider-rt12 A1.
        let dir = tempfile::tempdir().expect("tmp");
        remember_link(dir.path(), "code-1", &[]).expect("remember");
        let link = standby_link(dir.path(), &link_id("code-1"))
            .expect("read")
            .expect("kept");
        let signer = answer_signer(dir.path()).expect("answer key");
        assert_eq!(
            answer_signer(dir.path()).expect("again").to_bytes(),
            signer.to_bytes(),
            "made once"
        );
        let answer_key = link.answer_key.clone().expect("answer key kept");
        let tag = link.answer_tag.clone().expect("tag kept");
        assert_eq!(answer_key, public_hex(&signer));
        let text = std::fs::read_to_string(dir.path().join(LINKS_FILE)).expect("file");
        assert!(!text.contains("code-1"), "{text}");
        assert!(answer_tag_holds("code-1", &answer_key, &tag));
        // Another key with the same tag, or the tag under another code.
        let theirs = public_hex(&SigningKey::from_bytes(&[9; 32]));
        assert!(!answer_tag_holds("code-1", &theirs, &tag));
        assert!(!answer_tag_holds("code-2", &answer_key, &tag));
        assert!(!answer_tag_holds(
            "code-1",
            &theirs,
            &answer_tag("code-2", &theirs)
        ));
        // The enrolment: this link, this standby key, this token.
        let id = link_id("code-1");
        let enrolled = sign_enrolled(&signer, &id, "k1", "tok");
        assert!(enrolled_holds(&answer_key, &id, "k1", "tok", &enrolled));
        assert!(!enrolled_holds(&answer_key, &id, "k1", "tok2", &enrolled));
        assert!(!enrolled_holds(&answer_key, &id, "k2", "tok", &enrolled));
        // An answer: for whom (kind, token, key, request), its status,
        // nonce and exact bytes.
        let to = AnswerFor {
            kind: AnswerKind::Records,
            token_sha256: "t1",
            key: "k1",
            request_sig: "req-1",
        };
        let sig = sign_answer(&signer, to, 200, "n1", b"{\"records\":[]}");
        let holds = |to: AnswerFor<'_>, st: u16, n: &str, body: &[u8]| {
            answer_holds(&answer_key, to, st, n, body, &sig)
        };
        assert!(holds(to, 200, "n1", b"{\"records\":[]}"));
        let other = |f: &dyn Fn(&mut AnswerFor<'static>)| {
            let mut o = AnswerFor {
                kind: AnswerKind::Records,
                token_sha256: "t1",
                key: "k1",
                request_sig: "req-1",
            };
            f(&mut o);
            o
        };
        let body = b"{\"records\":[]}";
        assert!(
            !holds(other(&|o| o.request_sig = "req-2"), 200, "n1", body),
            "replayed"
        );
        // Insider-rt13 E1: another token, another key, another kind.
        assert!(!holds(other(&|o| o.token_sha256 = ""), 200, "n1", body));
        assert!(!holds(other(&|o| o.key = "k2"), 200, "n1", body));
        assert!(!holds(
            other(&|o| o.kind = AnswerKind::Probe),
            200,
            "n1",
            body
        ));
        assert!(!holds(to, 403, "n1", body));
        assert!(!holds(to, 200, "n2", body));
        assert!(!holds(to, 200, "n1", b"{\"records\":[1]}"));
        // A damaged answer key is an error, never a new key.
        std::fs::write(dir.path().join(ANSWER_KEY_FILE), "zz").expect("damage");
        assert!(answer_signer(dir.path()).is_err());
    }

    #[test]
    fn a_nonce_is_used_once_and_voids_the_ones_before_it() {
        // Outside tester insider-rt11 M1, H2.
        let a = nonce_turn("tok-n", "s1", None).next().to_string();
        let b = nonce_turn("tok-n", "s2", None).next().to_string();
        assert!(!nonce_turn("tok-n", "s3", None).is_fresh());
        assert!(!nonce_turn("other", "s4", Some(&b)).is_fresh());
        assert!(nonce_turn("tok-n", "s5", Some(&b)).is_fresh());
        assert!(!nonce_turn("tok-n", "s6", Some(&b)).is_fresh(), "used once");
        assert!(
            !nonce_turn("tok-n", "s7", Some(&a)).is_fresh(),
            "older than one used"
        );
    }

    #[test]
    fn a_replayed_request_only_ever_gets_its_old_nonce() {
        // Outside tester insider-rt14 R1: once the standby had lost its
        // nonce (a restart of either machine), one sniffed line replayed
        // 30 times a second took every new nonce the moment it was
        // handed out (one every 3 s), and the standby got none.
        let first = nonce_turn("tok-r1", "line", None);
        assert_eq!(
            first,
            Turn::Stale {
                next: first.next().to_string(),
                again: false
            }
        );
        for _ in 0..200 {
            assert_eq!(
                nonce_turn("tok-r1", "line", None),
                Turn::Stale {
                    next: first.next().to_string(),
                    again: true
                },
                "the same nonce, never a new one"
            );
        }
        // The standby's own request (another signature: its own random
        // value where it holds no nonce) gets one at once, and uses it.
        let mine = nonce_turn("tok-r1", "standby-1", Some("c-0123"));
        assert!(!mine.is_fresh());
        let used = nonce_turn("tok-r1", "standby-2", Some(mine.next()));
        assert!(used.is_fresh());
        // Replays of many other old lines push nothing of it out.
        for i in 0..500 {
            nonce_turn("tok-r1", &format!("old-{i}"), None);
        }
        assert!(nonce_turn("tok-r1", "standby-3", Some(used.next())).is_fresh());
    }

    #[test]
    fn a_copy_that_arrives_first_leaves_the_standby_the_same_nonce() {
        // Outside tester insider-rt14 R1 (the race): a tap's copy of the
        // standby's request reached the primary first and used its nonce;
        // the standby's own got a 428 without one.
        let start = nonce_turn("tok-race", "s0", None);
        let copy = nonce_turn("tok-race", "s1", Some(start.next()));
        assert!(copy.is_fresh());
        let own = nonce_turn("tok-race", "s1", Some(start.next()));
        assert_eq!(
            own,
            Turn::Stale {
                next: copy.next().to_string(),
                again: true
            }
        );
        assert!(nonce_turn("tok-race", "s2", Some(own.next())).is_fresh());
    }
}

// ---------------------------------------------------------------------
// The account store sealed for the standby (issue 23/24, outside tester
// insider-rt14 D1, R11: without TLS on the office LAN anyone with a tap
// read every argon2id password hash and device token hash the primary
// sent its standby, and could guess staff passwords offline).
//
// The standby makes an X25519 key pair of its own (`<data>/standby-seal-key`,
// 0600, beside its link key, never sent) and names its public half in every
// signed request (`seal=HEX`, inside what its link key signs: [`with_seal`]),
// so a key put in on the way is refused with the request. The primary seals
// the account store for that key only ([`seal_accounts`]): an ephemeral
// X25519 key, HKDF-SHA256 over the shared secret, ChaCha20-Poly1305 with
// the standby's token hash, the request's position and nonce as associated
// data ([`accounts_aad`]). A standby that names no sealing key (the previous
// version) gets no account store at all; it keeps following the log.
// ---------------------------------------------------------------------

/// The standby's X25519 secret (hex), beside its link key.
pub const SEAL_KEY_FILE: &str = "standby-seal-key";

/// What the HKDF expands the shared secret for.
const SEAL_INFO: &[u8] = b"madoguchi-accounts-seal-v1";

/// Standby: its sealing secret, made (0600) when it has none.
pub fn own_seal_secret(data: &Path) -> std::io::Result<[u8; 32]> {
    let path = data.join(SEAL_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(secret) = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            make_private(&path)?;
            return Ok(secret);
        }
    }
    let secret = random_32()?;
    write_private(&path, &hex::encode(secret))?;
    Ok(secret)
}

fn random_32() -> std::io::Result<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| std::io::Error::other("no random bytes"))?;
    Ok(b)
}

/// The public half (hex) of the sealing secret `secret`.
pub fn seal_public_hex(secret: &[u8; 32]) -> String {
    hex::encode(curve25519_dalek::MontgomeryPoint::mul_base_clamped(*secret).to_bytes())
}

/// What a request signs when it names a sealing key: the message of its
/// kind, then the key. Without one the message is the previous version's,
/// so a standby of that version is still taken (it gets no accounts).
pub fn with_seal(msg: String, seal: &str) -> String {
    if seal.is_empty() {
        msg
    } else {
        format!("{msg}\nseal={seal}")
    }
}

/// The associated data of a sealed account store: for this token, in the
/// answer to the request at this position with this nonce. A box moved to
/// another standby, or to another of this standby's answers, does not open.
pub fn accounts_aad(token_sha256: &str, after: u64, nonce: &str) -> String {
    format!("madoguchi-accounts-v1\n{token_sha256}\n{after}\n{nonce}")
}

fn seal_key(shared: &[u8; 32], eph: &[u8; 32], to: &[u8; 32]) -> Option<ring::aead::LessSafeKey> {
    // An all-zero shared secret: `to` was a point of small order, which
    // seals for anyone.
    if shared.iter().all(|b| *b == 0) {
        return None;
    }
    let mut salt = Vec::with_capacity(64);
    salt.extend_from_slice(eph);
    salt.extend_from_slice(to);
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &salt).extract(shared);
    let okm = prk
        .expand(&[SEAL_INFO], &ring::aead::CHACHA20_POLY1305)
        .ok()?;
    let key: ring::aead::UnboundKey = okm.into();
    Some(ring::aead::LessSafeKey::new(key))
}

/// Primary: `plain` sealed for the standby's sealing key `to` (hex):
/// `(ephemeral public key, box)`, both hex. `None` if `to` is no usable
/// key. Each box has a key of its own (a new ephemeral key), so the
/// nonce may be fixed.
pub fn seal_accounts(to: &str, aad: &str, plain: &[u8]) -> Option<(String, String)> {
    let to: [u8; 32] = hex::decode(to).ok()?.try_into().ok()?;
    let eph_secret = random_32().ok()?;
    let eph = curve25519_dalek::MontgomeryPoint::mul_base_clamped(eph_secret).to_bytes();
    let shared = curve25519_dalek::MontgomeryPoint(to)
        .mul_clamped(eph_secret)
        .to_bytes();
    let key = seal_key(&shared, &eph, &to)?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        ring::aead::Nonce::assume_unique_for_key([0; 12]),
        ring::aead::Aad::from(aad.as_bytes()),
        &mut buf,
    )
    .ok()?;
    Some((hex::encode(eph), hex::encode(buf)))
}

/// Standby: the account store sealed for its secret `secret`, opened;
/// `None` if it does not open (changed, another's, another answer's).
pub fn open_accounts(secret: &[u8; 32], eph: &str, sealed: &str, aad: &str) -> Option<Vec<u8>> {
    let eph: [u8; 32] = hex::decode(eph).ok()?.try_into().ok()?;
    let mut buf = hex::decode(sealed).ok()?;
    let to = curve25519_dalek::MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
    let shared = curve25519_dalek::MontgomeryPoint(eph)
        .mul_clamped(*secret)
        .to_bytes();
    let key = seal_key(&shared, &eph, &to)?;
    let plain = key
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key([0; 12]),
            ring::aead::Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod seal_tests {
    use super::*;

    #[test]
    fn a_sealed_store_opens_only_for_its_key_and_its_answer() {
        let secret = [7u8; 32];
        let public = seal_public_hex(&secret);
        let aad = accounts_aad("t", 5, "n");
        let plain = br#"{"users":[{"hash":"$argon2id$v=19$secret"}]}"#;
        let (eph, sealed) = seal_accounts(&public, &aad, plain).expect("sealed");
        assert!(!sealed.contains(&hex::encode(b"argon2id")));
        assert_eq!(
            open_accounts(&secret, &eph, &sealed, &aad).as_deref(),
            Some(&plain[..])
        );
        // Another key, another position, a changed byte: nothing.
        assert!(open_accounts(&[8u8; 32], &eph, &sealed, &aad).is_none());
        assert!(open_accounts(&secret, &eph, &sealed, &accounts_aad("t", 6, "n")).is_none());
        let mut changed = hex::decode(&sealed).expect("hex");
        changed[0] ^= 1;
        assert!(open_accounts(&secret, &eph, &hex::encode(changed), &aad).is_none());
        // A point of small order (here: zero) is no key to seal for.
        assert!(seal_accounts(&hex::encode([0u8; 32]), &aad, plain).is_none());
    }
}
