//! Staff accounts, sessions and device tokens (R11).
//!
//! - Accounts (admin, staff, auditor) with Argon2 password hashes, kept in
//!   `<data>/accounts.json` (written atomically: temp file, fsync, rename).
//!   An account or device can be disabled or deleted; the last enabled
//!   administrator cannot be.
//! - Sessions are server-side in `<data>/sessions.json`: only each token's
//!   SHA-256 is stored, with the account, when it started and when it was
//!   last used; a session ends after the idle timeout, after
//!   [`SESSION_MAX`] in any case, at logout, and at once when its account's
//!   role or password changes or the account is disabled or deleted. The
//!   role is read from the account on every request, never from the
//!   session. Sessions survive a restart.
//! - Every state-changing request made with a cookie must carry the CSRF
//!   token in `X-CSRF-Token`; the token is derived from the session or
//!   device token, so nothing else needs storing.
//! - Kiosks and displays are devices: an admin creates one and gets a
//!   one-time enrolment link (its code's SHA-256 kept in
//!   `<data>/enrolments.json` until used or expired); opening it on the
//!   device sets a device cookie valid [`DEVICE_DAYS`] days. Only the
//!   token's SHA-256 is stored.
//! - Failed sign-ins are throttled by [`super::throttle`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{HeaderMap, Method};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;

pub const SESSION_COOKIE: &str = "madoguchi_session";
pub const DEVICE_COOKIE: &str = "madoguchi_device";
/// A session ends this long after sign-in, however busy.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// Sessions one account may hold at once (a person at a few stations and
/// browsers, with room to spare); a new sign-in beyond it ends the least
/// recently used.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 16;
/// The device names the links printed at first start enrol (the console
/// says so beside each link).
pub const FIRST_KIOSK: &str = "kiosk-1";
pub const FIRST_DISPLAY: &str = "display-1";

/// A device token is valid this many days after enrolment.
pub const DEVICE_DAYS: i64 = 400;
/// How often a session's last use is written down (so an idle timeout
/// still holds after a restart, without a write per request).
const TOUCH_EVERY: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    Auditor,
    Kiosk,
    Display,
    /// A standby server following this one's log (read-only).
    Standby,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Auditor => "auditor",
            Role::Kiosk => "kiosk",
            Role::Display => "display",
            Role::Standby => "standby",
        }
    }

    /// The role as pages show it to people, Japanese and English (issue 18,
    /// outside tester pages-rt7: 「sato（staff）」 showed the raw id). The one
    /// list every page takes its role names from.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Role::Admin => ("管理者", "administrator"),
            Role::Staff => ("職員", "staff"),
            Role::Auditor => ("監査担当", "auditor"),
            Role::Kiosk => ("発券機", "kiosk"),
            Role::Display => ("表示機", "display"),
            Role::Standby => ("予備機", "standby"),
        }
    }

    /// The role's Japanese name (職員, 管理者, …).
    pub fn ja(self) -> &'static str {
        self.words().0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct User {
    username: String,
    role: Role,
    hash: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Device {
    name: String,
    role: Role,
    token_sha256: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    /// Unix seconds after which the token is refused (older files: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct AccountsFile {
    users: Vec<User>,
    devices: Vec<Device>,
}

/// A session as stored: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Session {
    token_sha256: String,
    username: String,
    started_at: i64,
    last_seen: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct SessionsFile {
    sessions: Vec<Session>,
}

/// A one-time enrolment code as stored: its SHA-256, not the code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Enrolment {
    code_sha256: String,
    name: String,
    role: Role,
    expires_at: i64,
    /// Withdrawn when a newer standby link was made before this one was
    /// used (one standby at a time): the name that newer link is for. Kept
    /// until it expires, so the old link says it was replaced instead of
    /// "used or expired" (outside tester, N2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaced_by: Option<String>,
    /// Set when a newer link for the same device name was made, or the
    /// name was enrolled through another link: this one no longer enrols
    /// (outside tester pages-rt9 F2: the link printed at first start took
    /// over a kiosk enrolled since from the page, without a word).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    superseded: bool,
    /// Who made the link: an administrator's name; none for the links
    /// printed at first start (outside tester pages-rt9 F2: the devices
    /// page lists every outstanding link with who made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    made_by: Option<String>,
    /// The link's id as a standby names it (`link_key::link_id`, never the
    /// code: insider-rt11 H1), so a kiosk's or display's link given to a
    /// standby is still refused as such, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_id: Option<String>,
}

/// An enrolment link that still enrols, as the devices page lists it
/// (issue 18, pages-rt9 F2): never the code, only an id derived from its
/// stored hash, which is what 取り消す sends back.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PendingLink {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub expires_at: i64,
    pub made_by: Option<String>,
}

/// A link's public id: the first 16 hex digits of its stored hash.
fn link_id(code_sha256: &str) -> &str {
    code_sha256.get(..16).unwrap_or(code_sha256)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct EnrolmentsFile {
    enrolments: Vec<Enrolment>,
}

/// Where a standby stands in the primary's store ([`Auth::standing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The enabled standby device of record.
    OfRecord,
    /// Its device is there but disabled or expired.
    Revoked(String),
    /// Another enabled standby device (this name) is the standby of record.
    Replaced(String),
    /// Its token is not a standby device there (deleted, or never came).
    Missing,
}

/// What an enrolment code is, when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// Unused and unexpired: the device's name and role.
    Open(String, Role),
    /// Withdrawn by a newer standby link: the name it was for, and the
    /// name the newer link is for.
    Replaced { name: String, by: String },
    /// Superseded: its name was enrolled through another link, or a newer
    /// link was made for it (issue 18, outside tester pages-rt10 N2: the
    /// page still offered the enrol button).
    Superseded(String),
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The CSRF token a cookie-authenticated caller must send back.
    csrf: Option<String>,
    /// The session's token hash (a person's session), to keep it when the
    /// person changes their own account.
    session: Option<String>,
}

impl Caller {
    /// Refuses unless the caller has one of `roles`.
    pub fn allow(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    pub fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    /// Whether this is a device (kiosk, display, standby), not a person.
    pub fn is_device(&self) -> bool {
        matches!(self.role, Role::Kiosk | Role::Display | Role::Standby)
    }
}

#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    sessions_path: PathBuf,
    enrolments_path: PathBuf,
    file: Mutex<AccountsFile>,
    sessions: Mutex<HashMap<String, Session>>,
    enrolments: Mutex<Vec<Enrolment>>,
    pub throttle: super::throttle::Throttle,
    idle: Duration,
    /// Bumped after every write of the account store, so the standby link
    /// sends the new store at once (see [`Carried`]).
    changes: tokio::sync::watch::Sender<u64>,
    /// Bumped when a credential may have been taken away (an account or
    /// device changed, disabled or deleted; a session ended), so open
    /// sockets ask again at once instead of at their next heartbeat
    /// (browser red team F11: a revoked display kept showing numbers).
    /// Not bumped when a session is merely touched: that would wake every
    /// socket for nothing.
    revocations: tokio::sync::watch::Sender<u64>,
    /// On a standby: the digest of the primary's store last taken, and the
    /// sessions that came with it (the others were opened here and are
    /// kept across the next update).
    received: Mutex<(Option<String>, std::collections::HashSet<String>)>,
    /// Where each session was last seen (by session hash; memory only):
    /// the browser and address it signed in from, the page last opened
    /// (issue 18, outside tester pages-rt10 N1: two sessions of one person
    /// could not be told apart on ログイン中の人).
    seen: Mutex<HashMap<String, Seen>>,
}

/// Where a session was last seen (see [`Auth::seen`]).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// A short summary of the browser's User-Agent ("Chrome / Windows").
    pub agent: String,
    pub addr: String,
    /// The page last opened, in words (「5 番窓口の職員用画面」).
    pub page: String,
}

/// A short, plain summary of a User-Agent: browser and system.
pub fn agent_summary(ua: &str) -> String {
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("HeadlessChrome") {
        "Chrome（ヘッドレス）"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.is_empty() {
        "不明"
    } else {
        "その他"
    };
    let system = if ua.contains("Windows") {
        " / Windows"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        " / iOS"
    } else if ua.contains("Android") {
        " / Android"
    } else if ua.contains("Mac OS X") {
        " / Mac"
    } else if ua.contains("Linux") {
        " / Linux"
    } else {
        ""
    };
    format!("{browser}{system}")
}

/// The whole account store as the standby link and backups carry it
/// (issue 24): accounts with roles and Argon2 hashes, hashed device tokens,
/// hashed sessions and open enrolment codes — the same three files the
/// data folder holds, so a promoted standby or a restored spare signs in
/// the same people and devices with nothing enrolled again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Carried {
    accounts: AccountsFile,
    sessions: SessionsFile,
    enrolments: EnrolmentsFile,
}

impl Carried {
    /// A short fingerprint: the standby sends the one it holds, and gets
    /// the store again only when the primary's differs.
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_string(self).unwrap_or_default())
    }
}

pub fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill(&mut raw[..]);
    hex::encode(raw)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The CSRF token that goes with a session or device token.
fn csrf_of(token: &str) -> String {
    sha256_hex(&format!("csrf:{token}"))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A password people can type: no 0/O, 1/l/I.
fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::encode_b64(&rand::rng().random::<[u8; 16]>())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A cookie's value, parsed by the `cookie` crate.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        // `split_parse` borrows from the header: hand out that slice.
        .and_then(|c| c.value_raw())
}

/// Writes `value` as JSON to `path` atomically (temp file, fsync, rename,
/// fsync of the folder).
pub(super) fn write_atomically<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let text = serde_json::to_vec_pretty(value)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut t = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // Hashes and session tokens: the service user's only (outside
        // tester insider-rt9 F8; they were 0644).
        super::link_key::make_private(&tmp)
            .with_context(|| format!("cannot make {} private", tmp.display()))?;
        t.write_all(&text)?;
        t.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> anyhow::Result<Option<T>> {
    use anyhow::Context;
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is damaged", path.display()))
}

/// What the first start created, to be printed once.
#[derive(Debug)]
pub struct FirstStart {
    pub admin_password: String,
    pub kiosk_enrolment: String,
    pub display_enrolment: String,
}

/// A failed sign-in: a wrong name or password (audited, counted), or a
/// failure inside.
#[derive(Debug)]
pub enum SignInError {
    Wrong,
    Internal(String),
}

/// The answer of a standby link withdrawn by a newer one (N2).
pub fn link_replaced(name: &str, by: &str) -> ApiError {
    ApiError::Plain {
        status: axum::http::StatusCode::GONE,
        code: "enrolment_link_replaced",
        ja: format!("この登録リンク（予備機「{name}」用）は新しいリンクに置き換えられました。予備機は一台だけのため、あとから作られた予備機「{by}」用のリンクが有効です。新しいリンクを使うか、管理者に「端末」の画面で登録用リンクを作り直してもらってください"),
        en: format!("this enrolment link (standby \"{name}\") was replaced by a newer link (standby \"{by}\"): one standby at a time; use the newer link, or ask an administrator for a new one (管理 → 端末)"),
    }
}

/// The answer to a link whose device name was enrolled through another
/// link, or given a newer link: nothing is enrolled, and the device that
/// holds the name keeps it.
pub fn link_superseded(name: &str) -> ApiError {
    ApiError::Plain {
        status: axum::http::StatusCode::GONE,
        code: "enrolment_link_superseded",
        ja: format!("この登録リンク（端末「{name}」用）は使えません。同じ名前の端末が別のリンクで登録されたか、新しいリンクが作られました。この端末を登録するときは、管理者に「端末」の画面で新しい名前のリンクを作ってもらってください"),
        en: format!("this enrolment link (device \"{name}\") no longer enrols: a device of that name was enrolled through another link, or a newer link was made; ask an administrator for a new link (管理 → 端末)"),
    }
}

/// The answer when a link for one kind of device is used for another (a
/// kiosk's link given to `serve --standby-of`, N2): nothing is enrolled.
pub fn wrong_link(is: Role, want: Role) -> ApiError {
    let ja_of = |r: Role| match r {
        Role::Kiosk => "番号発券機",
        Role::Display => "表示機",
        Role::Standby => "予備機",
        _ => "職員",
    };
    ApiError::Plain {
        status: axum::http::StatusCode::CONFLICT,
        code: "enrolment_link_wrong_role",
        ja: format!("この登録リンクは{}用で、{}の登録用リンクではありません。何も登録していません（リンクはまだ使えます）。主機の管理画面「端末」で、種類「{}」の登録用リンクを作ってください", ja_of(is), ja_of(want), ja_of(want)),
        en: format!("this enrolment link is for a {}, not a {}: nothing was enrolled (the link is still valid); make a {} link on the primary (管理 → 端末)", is.name(), want.name(), want.name()),
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::Internal(format!("{e:#}"))
}

impl Auth {
    /// Loads `<data>/accounts.json` and `<data>/sessions.json`; on first
    /// start creates the admin account (its generated password is
    /// returned, to be printed once) and enrolment codes for a first kiosk
    /// and display.
    pub fn open(data: &Path, idle: Duration) -> anyhow::Result<(Auth, Option<FirstStart>)> {
        let path = data.join("accounts.json");
        let sessions_path = data.join("sessions.json");
        let file: Option<AccountsFile> = read_json(&path)?;
        let first = file.is_none();
        let stored: SessionsFile = read_json(&sessions_path)?.unwrap_or_default();
        let enrolments_path = data.join("enrolments.json");
        let codes: EnrolmentsFile = read_json(&enrolments_path)?.unwrap_or_default();
        let auth = Auth {
            path,
            sessions_path,
            enrolments_path,
            file: Mutex::new(file.unwrap_or_default()),
            sessions: Mutex::new(
                stored
                    .sessions
                    .into_iter()
                    .map(|s| (s.token_sha256.clone(), s))
                    .collect(),
            ),
            enrolments: Mutex::new(codes.enrolments),
            throttle: super::throttle::Throttle::default(),
            idle,
            changes: tokio::sync::watch::Sender::new(0),
            revocations: tokio::sync::watch::Sender::new(0),
            received: Mutex::new((None, std::collections::HashSet::new())),
            seen: Mutex::new(HashMap::new()),
        };
        if !first {
            return Ok((auth, None));
        }
        let admin_password = generate_password();
        let hash = hash_password(&admin_password).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        auth.with_file(|f| {
            f.users.push(User {
                username: "admin".into(),
                role: Role::Admin,
                hash,
                disabled: false,
            });
        })?;
        let kiosk_enrolment =
            auth.new_enrolment(FIRST_KIOSK, Role::Kiosk, Duration::from_secs(24 * 3600))?;
        let display_enrolment =
            auth.new_enrolment(FIRST_DISPLAY, Role::Display, Duration::from_secs(24 * 3600))?;
        Ok((
            auth,
            Some(FirstStart {
                admin_password,
                kiosk_enrolment,
                display_enrolment,
            }),
        ))
    }

    /// Whether an enabled standby device exists: then this primary needs
    /// its lease to take commands (`fence.rs`).
    pub fn has_standby(&self) -> bool {
        let now = unix_now();
        self.file.lock().is_ok_and(|f| {
            f.devices.iter().any(|d| {
                d.role == Role::Standby && !d.disabled && d.expires_at.is_none_or(|e| now < e)
            })
        })
    }

    /// The token hashes of every standby device, enabled or not: the keys
    /// a promoted standby's epoch proof is made with (`fence.rs`).
    pub fn standby_keys(&self) -> Vec<String> {
        self.file.lock().map_or_else(
            |_| Vec::new(),
            |f| {
                f.devices
                    .iter()
                    .filter(|d| d.role == Role::Standby)
                    .map(|d| d.token_sha256.clone())
                    .collect()
            },
        )
    }

    /// A new standby link withdraws any unused one: one standby at a time
    /// (red team F2: two standbys could both be promoted to the same
    /// epoch). The withdrawn links stay listed, marked with the name the
    /// new link is for, so they answer that they were replaced; returns
    /// the names they were for.
    pub fn withdraw_standby_links(&self, by: &str) -> anyhow::Result<Vec<String>> {
        self.with_enrolments(|list| {
            let mut names = Vec::new();
            for e in list
                .iter_mut()
                .filter(|e| e.role == Role::Standby && e.replaced_by.is_none())
            {
                e.replaced_by = Some(by.to_string());
                names.push(e.name.clone());
            }
            names
        })
    }

    /// Where the standby whose token is `token` stands in this store (on
    /// a standby: the primary's store as last received). Only the enabled
    /// standby of record may be promoted without an override (outside
    /// tester N1: a revoked standby left running was promoted beside the
    /// new one, and both gave the same numbers).
    pub fn standing(&self, token: &str) -> Standing {
        let hash = sha256_hex(token.trim());
        let now = unix_now();
        let Ok(f) = self.file.lock() else {
            return Standing::Missing;
        };
        let live = |d: &Device| !d.disabled && d.expires_at.is_none_or(|e| now < e);
        let other = f
            .devices
            .iter()
            .find(|d| d.role == Role::Standby && d.token_sha256 != hash && live(d))
            .map(|d| d.name.clone());
        let mine = f.devices.iter().find(|d| d.token_sha256 == hash);
        match (mine, other) {
            (_, Some(by)) => Standing::Replaced(by),
            (Some(d), None) if d.role == Role::Standby && live(d) => Standing::OfRecord,
            (Some(d), None) if d.role == Role::Standby => Standing::Revoked(d.name.clone()),
            _ => Standing::Missing,
        }
    }

    /// Deletes the device whose token this is (a promoted standby removes
    /// its own standby device: it has no standby of its own yet).
    pub fn delete_device_by_token(&self, token: &str) -> anyhow::Result<()> {
        let hash = sha256_hex(token);
        self.with_file(|f| f.devices.retain(|d| d.token_sha256 != hash))
    }

    /// The whole store as it is now.
    pub fn carried(&self) -> anyhow::Result<Carried> {
        let poisoned = || anyhow::anyhow!("account store lock poisoned");
        let accounts = self.file.lock().map_err(|_| poisoned())?.clone();
        let mut sessions: Vec<Session> = self
            .sessions
            .lock()
            .map_err(|_| poisoned())?
            .values()
            .cloned()
            .collect();
        sessions.sort_by(|a, b| a.token_sha256.cmp(&b.token_sha256));
        let enrolments = self.enrolments.lock().map_err(|_| poisoned())?.clone();
        Ok(Carried {
            accounts,
            sessions: SessionsFile { sessions },
            enrolments: EnrolmentsFile { enrolments },
        })
    }

    /// The digest of the primary's store this standby took last (none
    /// before the first).
    pub fn received_digest(&self) -> String {
        self.received
            .lock()
            .ok()
            .and_then(|r| r.0.clone())
            .unwrap_or_default()
    }

    /// Wakes when the store changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes when a credential may have been taken away.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// Takes the primary's whole store in place of this one (a standby):
    /// written atomically file by file, then swapped in memory. The
    /// standby's own first-start admin is gone from here on.
    /// Sessions opened on the standby itself (staff checking it before a
    /// switch) are kept while their account exists.
    pub fn replace(&self, carried: Carried) -> anyhow::Result<()> {
        let poisoned = || anyhow::anyhow!("account store lock poisoned");
        let digest = carried.digest();
        let mut received = self.received.lock().map_err(|_| poisoned())?;
        let mut file = self.file.lock().map_err(|_| poisoned())?;
        let mut sessions = self.sessions.lock().map_err(|_| poisoned())?;
        let mut codes = self.enrolments.lock().map_err(|_| poisoned())?;
        let from_primary: std::collections::HashSet<String> = carried
            .sessions
            .sessions
            .iter()
            .map(|s| s.token_sha256.clone())
            .collect();
        let mut merged: HashMap<String, Session> = sessions
            .iter()
            .filter(|(h, s)| {
                !received.1.contains(*h)
                    && carried
                        .accounts
                        .users
                        .iter()
                        .any(|u| u.username == s.username && !u.disabled)
            })
            .map(|(h, s)| (h.clone(), s.clone()))
            .collect();
        merged.extend(
            carried
                .sessions
                .sessions
                .into_iter()
                .map(|s| (s.token_sha256.clone(), s)),
        );
        let mut list: Vec<Session> = merged.values().cloned().collect();
        list.sort_by(|a, b| a.token_sha256.cmp(&b.token_sha256));
        write_atomically(&self.path, &carried.accounts)?;
        write_atomically(&self.sessions_path, &SessionsFile { sessions: list })?;
        write_atomically(&self.enrolments_path, &carried.enrolments)?;
        *file = carried.accounts;
        *sessions = merged;
        *codes = carried.enrolments.enrolments;
        *received = (Some(digest), from_primary);
        drop((file, sessions, codes, received));
        self.changes.send_modify(|v| *v += 1);
        self.revocations.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Changes the accounts file and writes it atomically.
    fn with_file<T>(&self, f: impl FnOnce(&mut AccountsFile) -> T) -> anyhow::Result<T> {
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("accounts lock poisoned"))?;
        let mut next = file.clone();
        let out = f(&mut next);
        write_atomically(&self.path, &next)?;
        *file = next;
        self.changes.send_modify(|v| *v += 1);
        self.revocations.send_modify(|v| *v += 1);
        Ok(out)
    }

    /// Changes the sessions and writes them atomically.
    fn with_sessions<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Session>) -> T,
    ) -> anyhow::Result<T> {
        self.change_sessions(f, false)
    }

    /// [`Self::with_sessions`]; with `in_memory_when_full`, a sessions file
    /// that cannot be written because the disk is full keeps the change in
    /// memory (written with the next change once there is space; gone with
    /// a restart): a sign-in needs no disk, so the administrator can still
    /// sign in and read why (outside tester storage-rt10 F-J: 500 internal;
    /// issue 17, R18).
    fn change_sessions<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Session>) -> T,
        in_memory_when_full: bool,
    ) -> anyhow::Result<T> {
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| anyhow::anyhow!("sessions lock poisoned"))?;
        let mut next = sessions.clone();
        let out = f(&mut next);
        let mut list: Vec<Session> = next.values().cloned().collect();
        list.sort_by(|a, b| a.token_sha256.cmp(&b.token_sha256));
        if let Err(e) = write_atomically(&self.sessions_path, &SessionsFile { sessions: list }) {
            let full = super::error::is_disk_full(e.as_ref());
            if !(in_memory_when_full && full) {
                return Err(e);
            }
            tracing::warn!(error = %format!("{e:#}"), "sessions file not written (disk full); the session is kept in memory");
        }
        let ended = sessions.keys().any(|k| !next.contains_key(k));
        *sessions = next;
        self.changes.send_modify(|v| *v += 1);
        if ended {
            self.revocations.send_modify(|v| *v += 1);
        }
        Ok(out)
    }

    /// Ends every session of `username` but `keep`.
    fn end_sessions(&self, username: &str, keep: Option<&str>) -> anyhow::Result<usize> {
        self.with_sessions(|s| {
            let before = s.len();
            s.retain(|h, x| x.username != username || Some(h.as_str()) == keep);
            before - s.len()
        })
    }

    /// Changes the enrolment codes (dropping expired ones) and writes them
    /// atomically, so a printed link still works after a restart.
    fn with_enrolments<T>(&self, f: impl FnOnce(&mut Vec<Enrolment>) -> T) -> anyhow::Result<T> {
        let mut codes = self
            .enrolments
            .lock()
            .map_err(|_| anyhow::anyhow!("enrolments lock poisoned"))?;
        let mut next = codes.clone();
        let now = unix_now();
        next.retain(|e| e.expires_at > now);
        let out = f(&mut next);
        // Nothing changed (a wrong code): no write, no fsync and no wake-up
        // of the standby link (red-team finding: a flood of wrong codes
        // made every staff command wait on the disk).
        if next == *codes {
            return Ok(out);
        }
        write_atomically(
            &self.enrolments_path,
            &EnrolmentsFile {
                enrolments: next.clone(),
            },
        )?;
        *codes = next;
        self.changes.send_modify(|v| *v += 1);
        Ok(out)
    }

    /// Whether `name` may be a device's: its characters, and no account's
    /// name or look-alike of another device's (the same device name again
    /// re-enrols that device).
    pub fn check_device_name(&self, name: &str) -> Result<(), ApiError> {
        let f = self
            .file
            .lock()
            .map_err(|_| internal(anyhow::anyhow!("accounts lock poisoned")))?;
        super::names::check_new(
            name,
            f.devices.iter().map(|d| d.name.as_str()),
            f.users.iter().map(|u| u.username.as_str()),
        )?;
        Ok(())
    }

    /// A one-time code that enrols a device when its link is opened.
    pub fn new_enrolment(&self, name: &str, role: Role, valid: Duration) -> anyhow::Result<String> {
        self.new_enrolment_by(name, role, valid, None)
    }

    /// [`Self::new_enrolment`], naming who made it (an administrator; none
    /// at first start).
    pub fn new_enrolment_by(
        &self,
        name: &str,
        role: Role,
        valid: Duration,
        made_by: Option<&str>,
    ) -> anyhow::Result<String> {
        let code = random_token(16);
        let stored = Enrolment {
            code_sha256: sha256_hex(&code),
            name: name.to_string(),
            role,
            expires_at: unix_now() + valid.as_secs() as i64,
            replaced_by: None,
            superseded: false,
            made_by: made_by.map(str::to_string),
            link_id: Some(super::link_key::link_id(&code)),
        };
        self.with_enrolments(|e| {
            for older in e.iter_mut().filter(|o| o.name == stored.name) {
                older.superseded = true;
            }
            e.push(stored);
        })?;
        Ok(code)
    }

    /// The kind of the unexpired link a standby named by its id
    /// ([`super::link_key::link_id`]), if this version made it.
    pub fn role_of_link_id(&self, id: &str) -> Option<Role> {
        self.with_enrolments(|list| {
            list.iter()
                .find(|e| e.link_id.as_deref() == Some(id))
                .map(|e| e.role)
        })
        .ok()
        .flatten()
    }

    /// The code hashes of every unexpired link, used or not replaced.
    pub fn enrolment_hashes(&self) -> Vec<String> {
        self.with_enrolments(|list| list.iter().map(|e| e.code_sha256.clone()).collect())
            .unwrap_or_default()
    }

    /// Every link that would still enrol its device (unused, unexpired,
    /// neither replaced nor superseded), soonest to expire first.
    pub fn pending_enrolments(&self) -> Vec<PendingLink> {
        let now = unix_now();
        let mut rows: Vec<PendingLink> = self
            .enrolments
            .lock()
            .map(|list| {
                list.iter()
                    .filter(|e| e.expires_at > now && e.replaced_by.is_none() && !e.superseded)
                    .map(|e| PendingLink {
                        id: link_id(&e.code_sha256).to_string(),
                        name: e.name.clone(),
                        role: e.role,
                        expires_at: e.expires_at,
                        made_by: e.made_by.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by(|a, b| (a.expires_at, &a.name).cmp(&(b.expires_at, &b.name)));
        rows
    }

    /// Withdraws an unused link by its [`PendingLink::id`]: it enrols
    /// nothing from now on (it answers as a used or expired link). Returns
    /// the device name and kind it was for, or none when no such link.
    pub fn revoke_enrolment(&self, id: &str) -> anyhow::Result<Option<(String, Role)>> {
        self.with_enrolments(|list| {
            let at = list
                .iter()
                .position(|e| id.len() == 16 && link_id(&e.code_sha256) == id)?;
            let gone = list.remove(at);
            Some((gone.name, gone.role))
        })
    }

    /// Whether a device of this name is enrolled and not revoked (the
    /// enrolment page warns that using the link replaces it).
    pub fn device_enrolled(&self, name: &str) -> bool {
        let now = unix_now();
        self.file
            .lock()
            .map(|f| {
                f.devices
                    .iter()
                    .any(|d| d.name == name && !d.disabled && d.expires_at.is_none_or(|e| now < e))
            })
            .unwrap_or(false)
    }

    /// What an enrolment code is for, if it is an unexpired one (the code
    /// is not used up).
    pub fn enrolment_for(&self, code: &str) -> Option<Code> {
        self.enrolment_for_hashed(&sha256_hex(code))
    }

    /// [`Self::enrolment_for`] by the code's hash (a standby sends only its
    /// link id and proof, never the code: `link_key.rs`, insider-rt11 H1).
    pub fn enrolment_for_hashed(&self, hash: &str) -> Option<Code> {
        let now = unix_now();
        self.with_enrolments(|list| {
            list.iter()
                .find(|e| e.code_sha256 == hash && e.expires_at > now)
                .map(|e| match &e.replaced_by {
                    Some(by) => Code::Replaced {
                        name: e.name.clone(),
                        by: by.clone(),
                    },
                    None if e.superseded => Code::Superseded(e.name.clone()),
                    None => Code::Open(e.name.clone(), e.role),
                })
        })
        .ok()
        .flatten()
    }

    /// Uses an enrolment code: stores the new device and returns its token,
    /// role and name. With `expect`, a code for another role is refused
    /// and not used up (a standby started with a kiosk's link, N2).
    #[cfg(test)]
    pub fn enrol(
        &self,
        code: &str,
        expect: Option<Role>,
    ) -> Result<(String, Role, String), ApiError> {
        self.enrol_hashed(&sha256_hex(code), expect)
    }

    /// [`Self::enrol`] by the code's hash (`link_key.rs`, insider-rt11 H1).
    pub fn enrol_hashed(
        &self,
        hash: &str,
        expect: Option<Role>,
    ) -> Result<(String, Role, String), ApiError> {
        let e = self
            .with_enrolments(|list| {
                let at = list.iter().position(|e| e.code_sha256 == hash)?;
                if list[at].replaced_by.is_some()
                    || list[at].superseded
                    || expect.is_some_and(|r| r != list[at].role)
                {
                    return Some(list[at].clone());
                }
                let used = list.remove(at);
                // Any other unused link for this name would later take the
                // device over: it stops enrolling now.
                for other in list.iter_mut().filter(|o| o.name == used.name) {
                    other.superseded = true;
                }
                Some(used)
            })
            .map_err(internal)?
            .ok_or(ApiError::NotFound)?;
        if let Some(by) = &e.replaced_by {
            return Err(link_replaced(&e.name, by));
        }
        if e.superseded {
            return Err(link_superseded(&e.name));
        }
        if let Some(want) = expect.filter(|r| *r != e.role) {
            return Err(wrong_link(e.role, want));
        }
        // A link made before one standby at a time was the rule (red team
        // F2) does not enrol a second standby.
        if e.role == Role::Standby && self.other_standby(&e.name) {
            return Err(ApiError::OneStandby);
        }
        let token = random_token(32);
        let name = e.name.clone();
        let device = Device {
            name: e.name,
            role: e.role,
            token_sha256: sha256_hex(&token),
            disabled: false,
            expires_at: Some(unix_now() + DEVICE_DAYS * 24 * 3600),
        };
        self.with_file(|f| {
            f.devices.retain(|d| d.name != device.name);
            f.devices.push(device);
        })
        .map_err(internal)?;
        Ok((token, e.role, name))
    }

    /// Checks a password and opens a session: returns the session token
    /// and the caller. Throttling is the caller's: [`super::throttle`].
    pub fn login(&self, username: &str, password: &str) -> Result<(String, Caller), SignInError> {
        let user = self
            .file
            .lock()
            .map_err(|_| SignInError::Internal("lock".into()))?
            .users
            .iter()
            .find(|u| u.username == username)
            .cloned();
        // Hash even for an unknown name, so timing does not tell names apart.
        let ok = match &user {
            Some(u) => verify_password(password, &u.hash),
            None => {
                let _ = hash_password(password);
                false
            }
        };
        let Some(user) = user.filter(|u| ok && !u.disabled) else {
            return Err(SignInError::Wrong);
        };
        let token = random_token(32);
        let hash = sha256_hex(&token);
        let now = unix_now();
        self.change_sessions(
            |s| {
                // Sessions past their time are dropped whenever one starts.
                let (idle, max) = (self.idle.as_secs() as i64, SESSION_MAX.as_secs() as i64);
                s.retain(|_, x| now - x.last_seen <= idle && now - x.started_at <= max);
                // A bound per account (insider red team: one account signing in
                // in a loop grew the sessions file, rewritten on every sign-in,
                // without end): the least recently used of its sessions ends.
                let mut mine: Vec<(i64, String)> = s
                    .values()
                    .filter(|x| x.username == user.username)
                    .map(|x| (x.last_seen, x.token_sha256.clone()))
                    .collect();
                if mine.len() >= MAX_SESSIONS_PER_ACCOUNT {
                    mine.sort();
                    for (_, old) in mine.iter().take(mine.len() + 1 - MAX_SESSIONS_PER_ACCOUNT) {
                        s.remove(old);
                    }
                }
                s.insert(
                    hash.clone(),
                    Session {
                        token_sha256: hash.clone(),
                        username: user.username.clone(),
                        started_at: now,
                        last_seen: now,
                    },
                );
            },
            true,
        )
        .map_err(|e| SignInError::Internal(format!("{e:#}")))?;
        let caller = Caller {
            name: user.username,
            role: user.role,
            csrf: Some(csrf_of(&token)),
            session: Some(hash),
        };
        Ok((token, caller))
    }

    /// Ends the caller's session.
    pub fn logout(&self, caller: &Caller) -> Result<(), ApiError> {
        if let Some(h) = &caller.session {
            self.with_sessions(|s| s.remove(h)).map_err(internal)?;
        }
        Ok(())
    }

    /// The person a session token belongs to, if the session is live and
    /// the account enabled. The role is the account's now.
    fn session_caller(&self, token: &str) -> Option<Caller> {
        let hash = sha256_hex(token);
        let now = unix_now();
        let (username, touch, expired) = {
            let sessions = self.sessions.lock().ok()?;
            let s = sessions.get(&hash)?;
            let expired = now - s.last_seen > self.idle.as_secs() as i64
                || now - s.started_at > SESSION_MAX.as_secs() as i64;
            (
                s.username.clone(),
                now - s.last_seen >= TOUCH_EVERY,
                expired,
            )
        };
        let user = self
            .file
            .lock()
            .ok()?
            .users
            .iter()
            .find(|u| u.username == username && !u.disabled)
            .cloned();
        if expired || user.is_none() {
            let _ = self.with_sessions(|s| s.remove(&hash));
            return None;
        }
        if touch {
            let _ = self.with_sessions(|s| {
                if let Some(x) = s.get_mut(&hash) {
                    x.last_seen = now;
                }
            });
        }
        let user = user?;
        Some(Caller {
            name: user.username,
            role: user.role,
            csrf: Some(csrf_of(token)),
            session: Some(hash),
        })
    }

    /// Identifies the caller, or `None` for an anonymous request.
    pub fn identify(&self, headers: &HeaderMap) -> Option<Caller> {
        if let Some(c) = cookie(headers, SESSION_COOKIE).and_then(|t| self.session_caller(t)) {
            return Some(c);
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let (token, via_cookie) = match (cookie(headers, DEVICE_COOKIE), bearer) {
            (Some(t), _) => (t, true),
            (None, Some(t)) => (t, false),
            (None, None) => return None,
        };
        let hash = sha256_hex(token);
        let file = self.file.lock().ok()?;
        let now = unix_now();
        let d = file.devices.iter().find(|d| {
            d.token_sha256 == hash && !d.disabled && d.expires_at.is_none_or(|e| now < e)
        })?;
        Some(Caller {
            name: d.name.clone(),
            role: d.role,
            // A cookie can be sent by a forged cross-site form; a bearer
            // header cannot.
            csrf: via_cookie.then(|| csrf_of(token)),
            session: None,
        })
    }

    /// The caller of a request that needs one of `roles`; for a
    /// state-changing method, also checks the CSRF token.
    pub fn require(
        &self,
        method: &Method,
        headers: &HeaderMap,
        roles: &[Role],
    ) -> Result<Caller, ApiError> {
        let caller = self.identify(headers).ok_or(ApiError::Unauthenticated)?;
        caller.allow(roles)?;
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            if let Some(expected) = caller.csrf() {
                let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
                if sent != Some(expected) {
                    return Err(ApiError::CsrfMissing);
                }
            }
        }
        Ok(caller)
    }

    /// Whether, after `change`, no enabled administrator would be left.
    fn leaves_no_admin(f: &AccountsFile) -> bool {
        !f.users.iter().any(|u| u.role == Role::Admin && !u.disabled)
    }

    /// Adds a staff account (`replace` false: refused when the ID is in
    /// use, so 「アカウントを作る」 never resets someone's password) or
    /// changes one (`replace` true: refused when there is none). A changed
    /// role or password ends the account's other sessions at once (all but
    /// `by`'s own).
    pub fn set_user(
        &self,
        username: &str,
        role: Role,
        password: &str,
        replace: bool,
        by: &Caller,
    ) -> Result<Option<Role>, ApiError> {
        if !matches!(role, Role::Admin | Role::Staff | Role::Auditor) {
            return Err(ApiError::BadRequest(
                "a person's role is admin, staff or auditor".into(),
            ));
        }
        super::names::check(username)?;
        if password.chars().count() < 10 {
            return Err(ApiError::Plain {
                status: axum::http::StatusCode::BAD_REQUEST,
                code: "password_too_short",
                ja: "パスワードは 10 文字以上にしてください".into(),
                en: "the password must be at least 10 characters".into(),
            });
        }
        // The ID against those in use, before the (slow) hash.
        {
            let f = self
                .file
                .lock()
                .map_err(|_| internal(anyhow::anyhow!("accounts lock poisoned")))?;
            let exists = f.users.iter().any(|u| u.username == username);
            match (exists, replace) {
                (true, false) => {
                    return Err(ApiError::Plain {
                        status: axum::http::StatusCode::CONFLICT,
                        code: "account_exists",
                        ja: format!("ID「{username}」のアカウントはすでにあります。役割やパスワードを変えるときは、一覧のその人の行で設定してください"),
                        en: format!("an account \"{username}\" already exists; change its role or password in its row of the list"),
                    })
                }
                (false, true) => return Err(ApiError::NotFound),
                (false, false) => super::names::check_new(
                    username,
                    f.users.iter().map(|u| u.username.as_str()),
                    f.devices.iter().map(|d| d.name.as_str()),
                )?,
                (true, true) => {}
            }
        }
        let hash = hash_password(password)?;
        let mut before = None;
        let refused = self
            .with_file(|f| {
                let mut next = f.clone();
                before = next
                    .users
                    .iter()
                    .find(|u| u.username == username)
                    .map(|u| u.role);
                next.users.retain(|u| u.username != username);
                next.users.push(User {
                    username: username.to_string(),
                    role,
                    hash,
                    disabled: false,
                });
                if Self::leaves_no_admin(&next) {
                    return true;
                }
                *f = next;
                false
            })
            .map_err(internal)?;
        if refused {
            return Err(ApiError::Invalid {
                ja: "最後の管理者は管理者でなくせません。先に別のアカウントを管理者にしてください（管理 → 職員アカウント）".into(),
                en: "the last administrator cannot be demoted: make another account an administrator first".into(),
            });
        }
        let keep = (by.name == username)
            .then_some(by.session.as_deref())
            .flatten();
        self.end_sessions(username, keep).map_err(internal)?;
        Ok(before)
    }

    /// Whether an enabled standby device other than `name` exists.
    fn other_standby(&self, name: &str) -> bool {
        let now = unix_now();
        self.file.lock().is_ok_and(|f| {
            f.devices.iter().any(|d| {
                d.role == Role::Standby
                    && d.name != name
                    && !d.disabled
                    && d.expires_at.is_none_or(|e| now < e)
            })
        })
    }

    /// The token hash of `name` if it is the standby of record: an
    /// enabled, unexpired standby device. Revoking or deleting it makes
    /// the primary wait until it is known to have learned it (`fence.rs`).
    pub fn standby_of_record_hash(&self, name: &str) -> Option<String> {
        let now = unix_now();
        let f = self.file.lock().ok()?;
        f.devices
            .iter()
            .find(|d| {
                d.name == name
                    && d.role == Role::Standby
                    && !d.disabled
                    && d.expires_at.is_none_or(|e| now < e)
            })
            .map(|d| d.token_sha256.clone())
    }

    /// The token hash of the standby device `name`, enabled or not.
    pub fn standby_hash(&self, name: &str) -> Option<String> {
        let f = self.file.lock().ok()?;
        f.devices
            .iter()
            .find(|d| d.name == name && d.role == Role::Standby)
            .map(|d| d.token_sha256.clone())
    }

    /// The hash of the device token a request presents (bearer header or
    /// device cookie), known here or not: a revoked standby is still told
    /// apart by it (`fence.rs`).
    /// The hash a device token is kept under.
    pub fn token_hash(token: &str) -> String {
        sha256_hex(token)
    }

    pub fn presented_token_hash(headers: &HeaderMap) -> Option<String> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        cookie(headers, DEVICE_COOKIE).or(bearer).map(sha256_hex)
    }

    /// Whether `name` is a standby device.
    pub fn is_standby_device(&self, name: &str) -> bool {
        self.file.lock().is_ok_and(|f| {
            f.devices
                .iter()
                .any(|d| d.name == name && d.role == Role::Standby)
        })
    }

    /// Disables (or enables again) a person's account or a device; a
    /// disabled one is refused at once. `Ok(false)`: no such name.
    pub fn set_disabled(&self, name: &str, device: bool, disabled: bool) -> Result<bool, ApiError> {
        // Enabling a revoked standby beside another: two standbys again.
        if device && !disabled && self.is_standby_device(name) && self.other_standby(name) {
            return Err(ApiError::OneStandby);
        }
        let outcome = self
            .with_file(|f| {
                let mut next = f.clone();
                let found = if device {
                    next.devices
                        .iter_mut()
                        .filter(|d| d.name == name)
                        .map(|d| d.disabled = disabled)
                        .count()
                } else {
                    next.users
                        .iter_mut()
                        .filter(|u| u.username == name)
                        .map(|u| u.disabled = disabled)
                        .count()
                };
                if found == 0 {
                    return Ok(false);
                }
                if Self::leaves_no_admin(&next) {
                    return Err(());
                }
                *f = next;
                Ok(true)
            })
            .map_err(internal)?;
        let found = outcome.map_err(|_| {
            ApiError::Invalid {
                ja: "最後の管理者は無効にできません。先に別のアカウントを管理者にしてください（管理 → 職員アカウント）".into(),
                en: "the last administrator cannot be disabled: make another account an administrator first".into(),
            }
        })?;
        if found && !device {
            self.end_sessions(name, None).map_err(internal)?;
        }
        Ok(found)
    }

    /// Deletes a person's account or a device. `Ok(false)`: no such name.
    pub fn delete(&self, name: &str, device: bool) -> Result<bool, ApiError> {
        let outcome = self
            .with_file(|f| {
                let mut next = f.clone();
                let before = next.users.len() + next.devices.len();
                if device {
                    next.devices.retain(|d| d.name != name);
                } else {
                    next.users.retain(|u| u.username != name);
                }
                if before == next.users.len() + next.devices.len() {
                    return Ok(false);
                }
                if Self::leaves_no_admin(&next) {
                    return Err(());
                }
                *f = next;
                Ok(true)
            })
            .map_err(internal)?;
        let found = outcome
            .map_err(|_| ApiError::Invalid {
                ja: "最後の管理者は削除できません。先に別のアカウントを管理者にしてください（管理 → 職員アカウント）".into(),
                en: "the last administrator cannot be deleted: make another account an administrator first".into(),
            })?;
        if found && !device {
            self.end_sessions(name, None).map_err(internal)?;
        }
        Ok(found)
    }
}

/// A person's account as the administration pages list it (no hash).
#[derive(Debug, Clone, Serialize)]
pub struct PersonRow {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
}

/// A device as the administration pages list it (no token hash).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// Unix seconds after which its token is refused.
    pub expires_at: Option<i64>,
}

/// A live session as the administration pages list it: `id` names it
/// for "end" without giving out the stored token hash.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    pub id: String,
    pub username: String,
    pub started_at: i64,
    pub last_seen: i64,
}

/// A session's public id: derived from the stored hash, one way.
fn session_id(token_sha256: &str) -> String {
    sha256_hex(&format!("session-id:{token_sha256}"))[..16].to_string()
}

/// Reads for the administration pages (issue 18); they change nothing
/// stored, so they hold whatever storage the accounts live in.
impl Auth {
    /// Notes where the caller's session is (memory only): its browser and
    /// address when given, the page when given (pages-rt10 N1).
    pub fn note_seen(
        &self,
        caller: &Caller,
        agent: Option<&str>,
        addr: Option<String>,
        page: Option<String>,
    ) {
        let Some(h) = &caller.session else { return };
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        // Bounded: only live sessions are kept.
        if seen.len() > 4096 {
            if let Ok(live) = self.sessions.lock() {
                seen.retain(|k, _| live.contains_key(k));
            }
        }
        let x = seen.entry(h.clone()).or_default();
        if let Some(a) = agent {
            x.agent = agent_summary(a);
        }
        if let Some(a) = addr {
            x.addr = a;
        }
        if let Some(p) = page {
            x.page = p;
        }
    }

    /// Where the session with this public id was last seen, if noted.
    pub fn seen(&self, id: &str) -> Seen {
        self.seen
            .lock()
            .ok()
            .and_then(|s| {
                s.iter()
                    .find(|(h, _)| session_id(h) == id)
                    .map(|(_, x)| x.clone())
            })
            .unwrap_or_default()
    }

    /// Whether `username` names an account of this office (case as
    /// sign-in compares it).
    pub fn is_account(&self, username: &str) -> bool {
        let name = username.to_lowercase();
        self.file
            .lock()
            .map(|f| f.users.iter().any(|u| u.username.to_lowercase() == name))
            .unwrap_or(false)
    }

    pub fn people(&self) -> Vec<PersonRow> {
        self.file
            .lock()
            .map(|f| {
                f.users
                    .iter()
                    .map(|u| PersonRow {
                        username: u.username.clone(),
                        role: u.role,
                        disabled: u.disabled,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn devices(&self) -> Vec<DeviceRow> {
        self.file
            .lock()
            .map(|f| {
                f.devices
                    .iter()
                    .map(|d| DeviceRow {
                        name: d.name.clone(),
                        role: d.role,
                        disabled: d.disabled,
                        expires_at: d.expires_at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live sessions (past their time ones left out), oldest first.
    pub fn sessions(&self) -> Vec<SessionRow> {
        let now = unix_now();
        let (idle, max) = (self.idle.as_secs() as i64, SESSION_MAX.as_secs() as i64);
        let mut rows: Vec<SessionRow> = self
            .sessions
            .lock()
            .map(|s| {
                s.values()
                    .filter(|x| now - x.last_seen <= idle && now - x.started_at <= max)
                    .map(|x| SessionRow {
                        id: session_id(&x.token_sha256),
                        username: x.username.clone(),
                        started_at: x.started_at,
                        last_seen: x.last_seen,
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by_key(|r| (r.started_at, r.id.clone()));
        rows
    }

    /// Ends the session with this public id; returns its account.
    pub fn end_session(&self, id: &str) -> Result<Option<String>, ApiError> {
        self.with_sessions(|s| {
            let key = s.keys().find(|h| session_id(h) == id).cloned()?;
            s.remove(&key).map(|x| x.username)
        })
        .map_err(internal)
    }
}

impl Caller {
    /// The public id of this caller's own session (a person's).
    pub fn session_id(&self) -> Option<String> {
        self.session.as_deref().map(session_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().expect("tmp");
        let (auth, _) = Auth::open(dir.path(), Duration::from_secs(600)).expect("open");
        (dir, auth)
    }

    fn code_of(e: ApiError) -> &'static str {
        e.parts().1
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// N1 (R9, R11): only the enabled standby device of record stands as
    /// it; a revoked, deleted or replaced one, or a kiosk's token, does not.
    #[test]
    fn only_the_enabled_standby_of_record_stands_as_it() {
        let (_dir, auth) = auth();
        assert_eq!(auth.standing("no such token"), Standing::Missing);
        let code = auth
            .new_enrolment("standby-1", Role::Standby, DAY)
            .expect("link");
        let (first, ..) = auth.enrol(&code, Some(Role::Standby)).expect("enrol");
        assert_eq!(auth.standing(&first), Standing::OfRecord);
        assert_eq!(auth.standing(&format!("{first}\n")), Standing::OfRecord);
        assert!(auth.set_disabled("standby-1", true, true).expect("revoke"));
        assert_eq!(auth.standing(&first), Standing::Revoked("standby-1".into()));
        let code = auth
            .new_enrolment("standby-2", Role::Standby, DAY)
            .expect("link");
        let (second, ..) = auth.enrol(&code, Some(Role::Standby)).expect("enrol");
        assert_eq!(auth.standing(&second), Standing::OfRecord);
        assert_eq!(
            auth.standing(&first),
            Standing::Replaced("standby-2".into())
        );
        assert!(auth.delete("standby-1", true).expect("delete"));
        assert_eq!(
            auth.standing(&first),
            Standing::Replaced("standby-2".into())
        );
        assert!(auth.delete("standby-2", true).expect("delete"));
        assert_eq!(auth.standing(&second), Standing::Missing);
        // A kiosk's link is refused to a standby and not used up; the
        // kiosk's token is no standby's.
        let code = auth
            .new_enrolment("kiosk-2", Role::Kiosk, DAY)
            .expect("link");
        let refused = auth
            .enrol(&code, Some(Role::Standby))
            .expect_err("kiosk link");
        assert_eq!(code_of(refused), "enrolment_link_wrong_role");
        let (kiosk, role, _) = auth.enrol(&code, None).expect("still valid");
        assert_eq!(role, Role::Kiosk);
        assert_eq!(auth.standing(&kiosk), Standing::Missing);
    }

    /// N2 (R11): a newer standby link withdraws an unused one, which then
    /// says it was replaced (not "used or expired") and enrols nothing;
    /// other kinds of link are untouched.
    #[test]
    fn a_newer_standby_link_withdraws_an_unused_one_which_says_so() {
        let (_dir, auth) = auth();
        let old = auth
            .new_enrolment("standby-a", Role::Standby, DAY)
            .expect("link");
        let kiosk = auth
            .new_enrolment("kiosk-2", Role::Kiosk, DAY)
            .expect("link");
        assert_eq!(
            auth.withdraw_standby_links("standby-b").expect("withdraw"),
            vec!["standby-a".to_string()]
        );
        let new = auth
            .new_enrolment("standby-b", Role::Standby, DAY)
            .expect("link");
        let replaced = Code::Replaced {
            name: "standby-a".into(),
            by: "standby-b".into(),
        };
        assert_eq!(auth.enrolment_for(&old), Some(replaced.clone()));
        let refused = auth.enrol(&old, Some(Role::Standby)).expect_err("old");
        assert_eq!(code_of(refused), "enrolment_link_replaced");
        assert_eq!(auth.enrolment_for(&old), Some(replaced));
        assert_eq!(
            auth.enrolment_for(&kiosk),
            Some(Code::Open("kiosk-2".into(), Role::Kiosk))
        );
        let (token, ..) = auth.enrol(&new, Some(Role::Standby)).expect("new");
        assert_eq!(auth.standing(&token), Standing::OfRecord);
        // Withdrawn once: a later link names nothing again.
        assert!(auth
            .withdraw_standby_links("standby-c")
            .expect("withdraw")
            .is_empty());
    }

    /// pages-rt9 F2: a link for a device name stops enrolling once that
    /// name gets a newer link or is enrolled through another link, so the
    /// link printed at first start cannot take over a kiosk enrolled since
    /// from the page.
    #[test]
    fn an_older_link_for_a_name_cannot_take_the_device_over() {
        let (_dir, auth) = auth();
        let printed = auth
            .new_enrolment("kiosk-1", Role::Kiosk, DAY)
            .expect("link");
        let page = auth
            .new_enrolment("kiosk-1", Role::Kiosk, DAY)
            .expect("link");
        let (token, ..) = auth.enrol(&page, Some(Role::Kiosk)).expect("page link");
        let refused = auth
            .enrol(&printed, Some(Role::Kiosk))
            .expect_err("printed");
        assert_eq!(code_of(refused), "enrolment_link_superseded");
        let hash = sha256_hex(&token);
        assert!(
            auth.file
                .lock()
                .expect("file")
                .devices
                .iter()
                .any(|d| d.name == "kiosk-1" && d.token_sha256 == hash),
            "the kiosk enrolled from the page keeps its name"
        );
        // Two links made before either was used: using one retires the other.
        let a = auth
            .new_enrolment("display-9", Role::Display, DAY)
            .expect("link");
        auth.enrol(&a, Some(Role::Display)).expect("a");
        let b = auth
            .new_enrolment("display-8", Role::Display, DAY)
            .expect("link");
        let c = auth
            .new_enrolment("display-7", Role::Display, DAY)
            .expect("link");
        auth.enrol(&c, Some(Role::Display)).expect("c");
        auth.enrol(&b, Some(Role::Display))
            .expect("another name is untouched");
    }

    /// pages-rt9 F2: the outstanding links are listed (with who made
    /// them, never their codes), and a withdrawn one enrols nothing.
    #[test]
    fn outstanding_links_are_listed_and_a_revoked_one_enrols_nothing() {
        let (_dir, auth) = auth();
        let first = auth
            .new_enrolment("kiosk-1", Role::Kiosk, DAY)
            .expect("link");
        let page = auth
            .new_enrolment_by("display-2", Role::Display, DAY, Some("admin"))
            .expect("link");
        // The first start's display-1 link, display-2 and the newer
        // kiosk-1 link (the first start's kiosk-1 link is superseded).
        let listed = auth.pending_enrolments();
        assert_eq!(listed.len(), 3, "{listed:?}");
        let display = listed
            .iter()
            .find(|l| l.name == "display-2")
            .expect("display-2 listed");
        assert_eq!(display.made_by.as_deref(), Some("admin"));
        assert!(listed
            .iter()
            .all(|l| l.id.len() == 16 && !first.contains(&l.id) && !page.contains(&l.id)));
        assert_eq!(auth.revoke_enrolment("not-an-id").expect("ok"), None);
        assert_eq!(
            auth.revoke_enrolment(&display.id).expect("ok"),
            Some(("display-2".to_string(), Role::Display))
        );
        assert!(matches!(
            auth.enrol(&page, Some(Role::Display)),
            Err(ApiError::NotFound)
        ));
        assert_eq!(auth.pending_enrolments().len(), 2);
        // Enrolled: kiosk-1's link leaves the list, the name is enrolled.
        assert!(!auth.device_enrolled("kiosk-1"));
        auth.enrol(&first, Some(Role::Kiosk)).expect("first");
        assert!(auth.device_enrolled("kiosk-1"));
        let left: Vec<String> = auth
            .pending_enrolments()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(left, ["display-1"]);
    }
}
