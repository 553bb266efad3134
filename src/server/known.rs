//! Addresses known to be the office's own (issue 23, R11), each known
//! *through a credential*: a device (kiosk, display, standby) or a
//! person's account whose valid token or session came from it lately. The
//! connection slots (`slots.rs`) keep a reserve for known addresses, so
//! that strangers — clients from many addresses holding keep-alive
//! connections with a request every few seconds — cannot take every slot
//! and leave the staff stations, kiosks and displays unable to connect.
//!
//! A credential vouches for only a few addresses ([`Kind::addresses`]:
//! a device two, an account four; the newest replaces the oldest), and an
//! address it vouches for may hold only what that kind of client needs
//! in the reserve ([`Kind::connections`]: a display or kiosk a handful, a
//! staff PC a browser's worth). So one stolen display token, or any small
//! set of stolen credentials, holds a bounded part of the reserve however
//! many LAN addresses it is shown from (red-team finding F1: one display
//! token made six addresses known, and they took 767 of 768 slots).
//! Disabling, deleting or letting a device expire, or disabling or
//! deleting an account, forgets the addresses it vouched for at once
//! ([`forget_revoked`]), and the reserve connections it opened are closed
//! on their next request (`connections.rs`).
//!
//! Addresses are kept whole (an IPv4-mapped IPv6 address as its IPv4),
//! not by IPv6 /64 as the sign-in throttle does: on an office LAN one /64
//! is the whole LAN, and a stranger on it would be "known".

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::auth::{Caller, Role};
use super::App;

/// How long an address stays known after its last valid credential: a
/// week, so that a station known on Friday is still known on Monday
/// morning before anyone signs in again.
pub const REMEMBER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the credential of a known address is checked again (a
/// session lookup per request is not needed to keep it known).
const RENOTE: Duration = Duration::from_secs(60);
/// The most addresses remembered; the least recently seen go first.
const MAX_ADDRESSES: usize = 4096;

/// What kind of client a credential stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A kiosk, display or standby: one machine, a page and a socket.
    Device,
    /// A person's account: a browser on a staff PC or two.
    Person,
}

impl Kind {
    pub fn of(role: Role) -> Kind {
        match role {
            Role::Kiosk | Role::Display | Role::Standby => Kind::Device,
            Role::Admin | Role::Staff | Role::Auditor => Kind::Person,
        }
    }

    /// Addresses one credential of this kind vouches for at once.
    pub fn addresses(self) -> usize {
        match self {
            Kind::Device => 2,
            Kind::Person => 4,
        }
    }

    /// Connections an address it vouches for may hold in the reserve: a
    /// display's page, assets and socket; a browser's six parallel
    /// connections, its sockets and a second tab.
    pub fn connections(self) -> usize {
        match self {
            Kind::Device => 8,
            Kind::Person => 16,
        }
    }

    /// Reserve connections one credential may hold in all (its addresses'
    /// worth), however often it moves between addresses.
    pub fn per_credential(self) -> usize {
        self.addresses() * self.connections()
    }
}

/// A device's or an account's name (the two name spaces are apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Credential {
    pub device: bool,
    pub name: String,
}

impl Credential {
    pub fn of(caller: &Caller) -> Credential {
        Credential {
            device: caller.is_device(),
            name: caller.name.clone(),
        }
    }
}

/// What vouches for an address: the credential and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    pub credential: Credential,
    pub kind: Kind,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per address, the credentials that vouch for it and when each was
    /// last seen there.
    addrs: HashMap<IpAddr, Vec<(Voucher, Instant)>>,
    /// Per credential, the addresses it vouches for, oldest first.
    creds: HashMap<Credential, VecDeque<IpAddr>>,
}

impl Inner {
    fn drop_address(&mut self, ip: IpAddr) {
        for (v, _) in self.addrs.remove(&ip).unwrap_or_default() {
            if let Some(list) = self.creds.get_mut(&v.credential) {
                list.retain(|a| *a != ip);
                if list.is_empty() {
                    self.creds.remove(&v.credential);
                }
            }
        }
    }

    fn unvouch(&mut self, ip: IpAddr, credential: &Credential) {
        if let Some(list) = self.addrs.get_mut(&ip) {
            list.retain(|(v, _)| v.credential != *credential);
            if list.is_empty() {
                self.addrs.remove(&ip);
            }
        }
    }
}

/// The known addresses; cheap to share.
#[derive(Debug, Default)]
pub struct KnownAddrs {
    inner: Mutex<Inner>,
}

fn key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl KnownAddrs {
    pub fn new() -> Arc<KnownAddrs> {
        Arc::new(KnownAddrs::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A valid credential of `kind` came from `ip` now. It vouches for at
    /// most [`Kind::addresses`]: the oldest of its addresses is forgotten.
    pub fn note(&self, ip: IpAddr, credential: Credential, kind: Kind) {
        let ip = key(ip);
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.addrs.len() >= MAX_ADDRESSES && !inner.addrs.contains_key(&ip) {
            let stale: Vec<IpAddr> = inner
                .addrs
                .iter()
                .filter(|(_, vs)| vs.iter().all(|(_, at)| at.elapsed() >= REMEMBER))
                .map(|(ip, _)| *ip)
                .collect();
            for old in stale {
                inner.drop_address(old);
            }
            if inner.addrs.len() >= MAX_ADDRESSES {
                let oldest = inner
                    .addrs
                    .iter()
                    .min_by_key(|(_, vs)| vs.iter().map(|(_, at)| *at).max())
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    inner.drop_address(oldest);
                }
            }
        }
        let list = inner.creds.entry(credential.clone()).or_default();
        list.retain(|a| *a != ip);
        list.push_back(ip);
        let mut evicted = Vec::new();
        while list.len() > kind.addresses() {
            if let Some(old) = list.pop_front() {
                evicted.push(old);
            }
        }
        for old in evicted {
            inner.unvouch(old, &credential);
        }
        let vouchers = inner.addrs.entry(ip).or_default();
        vouchers.retain(|(v, _)| v.credential != credential);
        vouchers.push((Voucher { credential, kind }, now));
    }

    /// What vouches for `ip` now (a person's account before a device:
    /// it allows more), if anything did within [`REMEMBER`].
    pub fn voucher(&self, ip: IpAddr) -> Option<Voucher> {
        self.voucher_within(ip, REMEMBER)
    }

    /// Whether `ip` is known now.
    pub fn is_known(&self, ip: IpAddr) -> bool {
        self.voucher(ip).is_some()
    }

    fn voucher_within(&self, ip: IpAddr, within: Duration) -> Option<Voucher> {
        let inner = self.lock();
        inner
            .addrs
            .get(&key(ip))?
            .iter()
            .filter(|(_, at)| at.elapsed() < within)
            .max_by_key(|(v, at)| (v.kind, *at))
            .map(|(v, _)| v.clone())
    }

    /// Forgets every address vouched for by a credential `keep` refuses
    /// (one disabled, deleted or expired).
    pub fn retain(&self, keep: impl Fn(&Credential) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<Credential> = inner.creds.keys().filter(|c| !keep(c)).cloned().collect();
        for credential in gone {
            for ip in inner.creds.remove(&credential).unwrap_or_default() {
                inner.unvouch(ip, &credential);
            }
        }
    }
}

/// Notes the peer of every request that carries a valid session cookie or
/// device token (checked at most every [`RENOTE`] per address).
pub async fn note(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer {
        let headers = req.headers();
        let carries = headers.contains_key(axum::http::header::COOKIE)
            || headers.contains_key(axum::http::header::AUTHORIZATION);
        if carries && app.known.voucher_within(ip, RENOTE).is_none() {
            if let Some(caller) = app.auth.identify(headers) {
                app.known
                    .note(ip, Credential::of(&caller), Kind::of(caller.role));
            }
        }
    }
    next.run(req).await
}

/// Whether a credential is still good: an enabled, unexpired device or an
/// enabled account.
fn still_valid(app: &App) -> impl Fn(&Credential) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let devices: Vec<String> = app
        .auth
        .devices()
        .into_iter()
        .filter(|d| !d.disabled && d.expires_at.is_none_or(|e| now < e))
        .map(|d| d.name)
        .collect();
    let people: Vec<String> = app
        .auth
        .people()
        .into_iter()
        .filter(|p| !p.disabled)
        .map(|p| p.username)
        .collect();
    move |c: &Credential| {
        if c.device {
            devices.contains(&c.name)
        } else {
            people.contains(&c.name)
        }
    }
}

/// Runs for the server's life: whenever the accounts or devices change
/// (a device revoked, an account disabled or deleted, a standby taking
/// the primary's store), the addresses their credentials vouched for are
/// forgotten at once — not a week later (red-team finding F1).
pub async fn forget_revoked(app: Arc<App>) {
    let mut changes = app.auth.subscribe();
    loop {
        // Also once a minute: device tokens expire without a change.
        let _ = tokio::time::timeout(Duration::from_secs(60), changes.changed()).await;
        app.known.retain(still_valid(&app));
        if changes.has_changed().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str) -> Credential {
        Credential {
            device: true,
            name: name.into(),
        }
    }

    fn person(name: &str) -> Credential {
        Credential {
            device: false,
            name: name.into(),
        }
    }

    #[test]
    fn an_address_is_known_once_noted_and_mapped_addresses_are_the_same() {
        let k = KnownAddrs::new();
        let v4: IpAddr = [10, 0, 0, 7].into();
        assert!(!k.is_known(v4));
        k.note(v4, person("yamada"), Kind::Person);
        assert!(k.is_known(v4));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert!(k.is_known(mapped));
        let neighbour: IpAddr = "fd00::2".parse().expect("ip");
        k.note("fd00::1".parse().expect("ip"), person("sato"), Kind::Person);
        assert!(!k.is_known(neighbour), "no /64 grouping");
    }

    #[test]
    fn a_credential_vouches_for_a_few_addresses_the_newest_replacing_the_oldest() {
        let k = KnownAddrs::new();
        let ips: Vec<IpAddr> = (2..=7u8).map(|i| IpAddr::from([127, 0, 0, i])).collect();
        for ip in &ips {
            k.note(*ip, device("display-1"), Kind::Device);
        }
        let known: Vec<bool> = ips.iter().map(|ip| k.is_known(*ip)).collect();
        assert_eq!(known, [false, false, false, false, true, true]);
        for ip in &ips {
            k.note(*ip, person("yamada"), Kind::Person);
        }
        let known: Vec<bool> = ips.iter().map(|ip| k.is_known(*ip)).collect();
        assert_eq!(known, [false, false, true, true, true, true]);
        // Where both vouch, the account's allowance holds.
        assert_eq!(k.voucher(ips[5]).map(|v| v.kind), Some(Kind::Person));
    }

    #[test]
    fn a_revoked_credential_leaves_its_addresses_unknown_and_others_known() {
        let k = KnownAddrs::new();
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        k.note(a, device("display-1"), Kind::Device);
        k.note(b, device("display-1"), Kind::Device);
        k.note(b, person("yamada"), Kind::Person);
        k.retain(|c| *c != device("display-1"));
        assert!(!k.is_known(a));
        assert_eq!(
            k.voucher(b).map(|v| v.credential),
            Some(person("yamada")),
            "the account still vouches for its own address"
        );
        // A device and an account of the same name are different.
        k.note(a, device("yamada"), Kind::Device);
        k.retain(|c| c.device);
        assert!(k.is_known(a) && !k.is_known(b));
    }

    #[test]
    fn the_memory_is_bounded() {
        let k = KnownAddrs::new();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            k.note(
                IpAddr::from(i.to_be_bytes()),
                person(&i.to_string()),
                Kind::Person,
            );
        }
        assert!(k.lock().addrs.len() <= MAX_ADDRESSES);
    }
}
