//! Staff accounts, sessions and device tokens (R11).
//!
//! - Accounts (admin, staff, auditor) with Argon2 password hashes, kept in
//!   `<data>/accounts.json` (written atomically: temp file, fsync, rename).
//! - Sessions live in memory, behind an HttpOnly, SameSite=Strict cookie,
//!   and end after an idle timeout. Every state-changing request made with a
//!   cookie must carry the session's CSRF token in `X-CSRF-Token`.
//! - Kiosks and displays are devices: an admin creates one and gets a
//!   one-time enrolment link; opening it on the device sets a long-lived
//!   device cookie. Only the token's SHA-256 is stored. A kiosk may only
//!   issue tickets and read the queues; a display may only read.
//! - Failed logins are throttled per account name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{HeaderMap, Method};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;

pub const SESSION_COOKIE: &str = "madoguchi_session";
pub const DEVICE_COOKIE: &str = "madoguchi_device";
const MAX_FAILURES: u32 = 5;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    username: String,
    role: Role,
    hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Device {
    name: String,
    role: Role,
    token_sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AccountsFile {
    users: Vec<User>,
    devices: Vec<Device>,
}

#[derive(Debug)]
struct Session {
    username: String,
    role: Role,
    csrf: String,
    last_seen: Instant,
}

#[derive(Debug)]
struct Enrolment {
    name: String,
    role: Role,
    expires: Instant,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The CSRF token a cookie-authenticated caller must send back.
    csrf: Option<String>,
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
}

#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    file: Mutex<AccountsFile>,
    sessions: Mutex<HashMap<String, Session>>,
    enrolments: Mutex<HashMap<String, Enrolment>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    idle: Duration,
}

pub fn random_token(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What the first start created, to be printed once.
#[derive(Debug)]
pub struct FirstStart {
    pub admin_password: String,
    pub kiosk_enrolment: String,
    pub display_enrolment: String,
}

impl Auth {
    /// Loads `<data>/accounts.json`; on first start creates the admin
    /// account (its generated password is returned, to be printed once) and
    /// enrolment codes for a first kiosk and display.
    pub fn open(data: &Path, idle: Duration) -> anyhow::Result<(Auth, Option<FirstStart>)> {
        use anyhow::Context;
        let path = data.join("accounts.json");
        let (file, first) = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: AccountsFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", path.display()))?;
            (file, false)
        } else {
            (AccountsFile::default(), true)
        };
        let auth = Auth {
            path,
            file: Mutex::new(file),
            sessions: Mutex::new(HashMap::new()),
            enrolments: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            idle,
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
            });
        })?;
        let kiosk_enrolment =
            auth.new_enrolment("kiosk-1", Role::Kiosk, Duration::from_secs(24 * 3600));
        let display_enrolment =
            auth.new_enrolment("display-1", Role::Display, Duration::from_secs(24 * 3600));
        Ok((
            auth,
            Some(FirstStart {
                admin_password,
                kiosk_enrolment,
                display_enrolment,
            }),
        ))
    }

    /// Changes the accounts file and writes it atomically.
    fn with_file<T>(&self, f: impl FnOnce(&mut AccountsFile) -> T) -> anyhow::Result<T> {
        use anyhow::Context;
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("accounts lock poisoned"))?;
        let mut next = file.clone();
        let out = f(&mut next);
        let text = serde_json::to_vec_pretty(&next)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut t = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            t.write_all(&text)?;
            t.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        *file = next;
        Ok(out)
    }

    /// A one-time code that enrols a device when its link is opened.
    pub fn new_enrolment(&self, name: &str, role: Role, valid: Duration) -> String {
        let code = random_token(16);
        if let Ok(mut e) = self.enrolments.lock() {
            e.insert(
                code.clone(),
                Enrolment {
                    name: name.to_string(),
                    role,
                    expires: Instant::now() + valid,
                },
            );
        }
        code
    }

    /// Uses an enrolment code: stores the new device and returns its token
    /// and role.
    pub fn enrol(&self, code: &str) -> Result<(String, Role, String), ApiError> {
        let e = self
            .enrolments
            .lock()
            .map_err(|_| ApiError::Internal("enrolment lock".into()))?
            .remove(code)
            .filter(|e| e.expires > Instant::now())
            .ok_or(ApiError::NotFound)?;
        let token = random_token(32);
        let name = e.name.clone();
        let device = Device {
            name: e.name,
            role: e.role,
            token_sha256: sha256_hex(&token),
        };
        self.with_file(|f| {
            f.devices.retain(|d| d.name != device.name);
            f.devices.push(device);
        })
        .map_err(|x| ApiError::Internal(x.to_string()))?;
        Ok((token, e.role, name))
    }

    /// Checks a password (with throttling) and opens a session: returns the
    /// session token and its CSRF token.
    pub fn login(&self, username: &str, password: &str) -> Result<(String, Caller), ApiError> {
        let key = username.to_lowercase();
        {
            let failures = self
                .failures
                .lock()
                .map_err(|_| ApiError::Internal("lock".into()))?;
            if let Some((n, until)) = failures.get(&key) {
                if *n >= MAX_FAILURES && *until > Instant::now() {
                    return Err(ApiError::TooManyAttempts);
                }
            }
        }
        let user = self
            .file
            .lock()
            .map_err(|_| ApiError::Internal("lock".into()))?
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
        let Some(user) = user.filter(|_| ok) else {
            let mut failures = self
                .failures
                .lock()
                .map_err(|_| ApiError::Internal("lock".into()))?;
            let entry = failures.entry(key).or_insert((0, Instant::now()));
            entry.0 += 1;
            if entry.0 >= MAX_FAILURES {
                let wait = 30u64 << (entry.0 - MAX_FAILURES).min(5);
                entry.1 = Instant::now() + Duration::from_secs(wait);
            }
            return Err(ApiError::Unauthenticated);
        };
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&key);
        }
        let token = random_token(32);
        let csrf = random_token(16);
        let caller = Caller {
            name: user.username.clone(),
            role: user.role,
            csrf: Some(csrf.clone()),
        };
        self.sessions
            .lock()
            .map_err(|_| ApiError::Internal("lock".into()))?
            .insert(
                token.clone(),
                Session {
                    username: user.username,
                    role: user.role,
                    csrf,
                    last_seen: Instant::now(),
                },
            );
        Ok((token, caller))
    }

    /// Whether `username` is an account (failed sign-ins of accounts are
    /// audited; random names are not, so they cannot flood the log).
    pub fn knows(&self, username: &str) -> bool {
        self.file
            .lock()
            .map(|f| f.users.iter().any(|u| u.username == username))
            .unwrap_or(false)
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let (Some(token), Ok(mut s)) = (cookie(headers, SESSION_COOKIE), self.sessions.lock()) {
            s.remove(token);
        }
    }

    /// Identifies the caller, or `None` for an anonymous request.
    pub fn identify(&self, headers: &HeaderMap) -> Option<Caller> {
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let mut sessions = self.sessions.lock().ok()?;
            let expired = sessions
                .get(token)
                .is_some_and(|s| s.last_seen.elapsed() > self.idle);
            if expired {
                sessions.remove(token);
            } else if let Some(s) = sessions.get_mut(token) {
                s.last_seen = Instant::now();
                return Some(Caller {
                    name: s.username.clone(),
                    role: s.role,
                    csrf: Some(s.csrf.clone()),
                });
            }
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
        let d = file.devices.iter().find(|d| d.token_sha256 == hash)?;
        Some(Caller {
            name: d.name.clone(),
            role: d.role,
            // A cookie can be sent by a forged cross-site form; a bearer
            // header cannot.
            csrf: via_cookie.then(|| sha256_hex(&format!("csrf:{token}"))),
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

    /// Adds or replaces a staff account.
    pub fn set_user(&self, username: &str, role: Role, password: &str) -> Result<(), ApiError> {
        if !matches!(role, Role::Admin | Role::Staff | Role::Auditor) {
            return Err(ApiError::BadRequest(
                "a person's role is admin, staff or auditor".into(),
            ));
        }
        if username.is_empty() || username.len() > 64 || password.chars().count() < 10 {
            return Err(ApiError::BadRequest(
                "the name must be 1–64 characters and the password at least 10".into(),
            ));
        }
        let hash = hash_password(password)?;
        self.with_file(|f| {
            f.users.retain(|u| u.username != username);
            f.users.push(User {
                username: username.to_string(),
                role,
                hash,
            });
        })
        .map_err(|e| ApiError::Internal(e.to_string()))
    }
}
