//! The relay's configuration file (TOML). Two listeners: `public` for the
//! whole internet, `ingest` for the office's dedicated line; the limits
//! that keep either from being exhausted (R11).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const EXAMPLE: &str = include_str!("../relay.example.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub public: Public,
    pub ingest: Ingest,
    /// Where accepted bundles and the last sequence number are kept.
    pub state_dir: PathBuf,
    #[serde(default)]
    pub limits: Limits,
    /// Web Push from the mobile ticket page (issue 20).
    #[serde(default)]
    pub push: crate::push::PushConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Public {
    pub listen: SocketAddr,
    pub tls: Tls,
    /// Exact `Origin` values allowed to open a WebSocket.
    pub origins: Vec<String>,
    /// `Strict-Transport-Security` max-age in seconds.
    #[serde(default = "hsts")]
    pub hsts_max_age: u64,
}

fn hsts() -> u64 {
    31_536_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingest {
    pub listen: SocketAddr,
    pub tls: Tls,
    /// Office public keys (64 hex digits); any may sign (key rotation).
    pub office_keys: Vec<String>,
    #[serde(default = "max_bundle")]
    pub max_bundle_bytes: usize,
    /// Source addresses that may connect (the office, the monitoring
    /// host); everyone else is dropped at accept, before TLS, so strangers
    /// can never take the office's connection slots.
    pub allow: Vec<IpAddr>,
    /// This relay's name (`a-z 0-9 . _ -`), required: every bundle and
    /// every office head names the relay it is for, and this relay refuses
    /// any other (`wrong_relay`, 401), so what the office signed for one
    /// relay cannot be replayed at another. The office's `[[relays]]` entry
    /// pins the same name (`name = "..."`, by default the URL's host).
    pub name: String,
    /// How far the office's clock may run ahead of this relay's (bounds a
    /// bundle's `created` and its sequence).
    #[serde(default = "clock_skew")]
    pub clock_skew_s: u64,
    /// The longest `expires − created` served as live.
    #[serde(default = "max_lifetime")]
    pub max_lifetime_s: u64,
    /// Deltas kept since the last full bundle; beyond either bound the
    /// relay answers `full_bundle_needed`.
    #[serde(default = "max_deltas")]
    pub max_deltas: usize,
    #[serde(default = "max_delta_bytes")]
    pub max_delta_bytes: u64,
    /// The whole request head must arrive within this of the connection's
    /// start (after TLS) or of the previous answer.
    #[serde(default = "head_timeout")]
    pub head_timeout_s: u64,
    /// The TLS handshake of an ingest connection must end within this of
    /// its accept.
    #[serde(default = "short_deadline")]
    pub handshake_timeout_s: u64,
    /// A connection that has not yet shown the office's signed head must
    /// send one within this (after its handshake or its previous answer):
    /// only the office's proven connections keep `head_timeout_s`. Both
    /// short deadlines, and the eviction of the oldest unproven connection
    /// when an address's slots are full, keep a second process behind the
    /// office's address from holding the office's slots.
    #[serde(default = "short_deadline")]
    pub unproven_head_timeout_s: u64,
    /// The body must arrive within `body_grace_s` plus its length at this
    /// rate (a deadline for the whole body, not an idle timer).
    #[serde(default = "min_rate")]
    pub min_body_bytes_per_s: u64,
    #[serde(default = "body_grace")]
    pub body_grace_s: u64,
    /// Bundle bodies being received at once may hold this many bytes in
    /// all (declared lengths); a bundle that would exceed it waits (within
    /// its body grace) or is answered `busy`. Connections in the office's
    /// slots also have `max_bundle_bytes` reserved (relay-rt9 F4).
    #[serde(default = "in_flight")]
    pub max_bytes_in_flight: usize,
}

fn max_bundle() -> usize {
    4 * 1024 * 1024
}
fn clock_skew() -> u64 {
    madoguchi_wire::rules::DEFAULT_CLOCK_SKEW.as_secs()
}
fn max_lifetime() -> u64 {
    madoguchi_wire::rules::DEFAULT_MAX_LIFETIME.as_secs()
}
fn max_deltas() -> usize {
    200
}
fn max_delta_bytes() -> u64 {
    16 * 1024 * 1024
}
fn head_timeout() -> u64 {
    10
}
fn short_deadline() -> u64 {
    2
}
fn min_rate() -> u64 {
    madoguchi_wire::time::MIN_LINE_BYTES_PER_S
}
fn in_flight() -> usize {
    16 * 1024 * 1024
}
fn body_grace() -> u64 {
    5
}

impl Ingest {
    pub fn rules(&self) -> madoguchi_wire::rules::Limits {
        madoguchi_wire::rules::Limits {
            clock_skew: Duration::from_secs(self.clock_skew_s),
            max_lifetime: Duration::from_secs(self.max_lifetime_s),
        }
    }

    /// The deadline for a body of `len` bytes.
    pub fn body_deadline(&self, len: u64) -> Duration {
        let rate = self.min_body_bytes_per_s.max(1);
        Duration::from_secs(self.body_grace_s.saturating_add(len.div_ceil(rate)))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections in total (public side). Each needs a file
    /// descriptor; keep it under the process's open-file limit.
    pub connections: usize,
    pub connections_per_ip: usize,
    pub tls_handshake_timeout_s: u64,
    /// The whole request head must arrive within this (slowloris).
    pub header_read_timeout_s: u64,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout_s: u64,
    /// Request head size (HTTP/1.1 buffer and HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Largest WebSocket frame/message a subscriber may send. Subscribers
    /// may only send control frames, which are at most 125 bytes, so the
    /// relay reads no more than that whatever this says.
    pub ws_max_frame_bytes: usize,
    /// Largest pushed message (a `displays/<topic>.json` file); a bundle
    /// with a larger one is refused, so no subscriber is ever sent more.
    pub push_max_bytes: usize,
    /// Updates a subscriber may fall behind before it is dropped.
    pub subscriber_queue: usize,
    pub heartbeat_s: u64,
    /// Listen backlog of each listening socket (the kernel caps it at
    /// `net.core.somaxconn`): after a restart or a CDN failover a whole
    /// city's phones reconnect at once, and a full queue drops their SYNs
    /// (a 1 s retransmit each).
    pub listen_backlog: u32,
    /// Listening sockets per address (`SO_REUSEPORT`, each with its own
    /// queue and accept loop); 0: one per core.
    pub listeners: usize,
    /// How often the certificate files are checked for a renewal (SIGHUP
    /// checks at once).
    pub cert_check_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 18_000,
            connections_per_ip: 64,
            tls_handshake_timeout_s: 10,
            header_read_timeout_s: 10,
            idle_timeout_s: 90,
            max_header_bytes: 16 * 1024,
            ws_max_frame_bytes: 4 * 1024,
            push_max_bytes: 32 * 1024,
            subscriber_queue: 8,
            heartbeat_s: 20,
            listen_backlog: 4096,
            listeners: 0,
            cert_check_s: 30,
        }
    }
}

impl Limits {
    pub fn handshake(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_s)
    }
    pub fn header_read(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_s)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s)
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_s)
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut c: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if c.ingest.office_keys.is_empty() {
            return Err(invalid(
                "ingest.office_keys: at least one office key is needed".into(),
            ));
        }
        if c.ingest.allow.is_empty() {
            return Err(invalid(
                "ingest.allow: list the office's source addresses (and the monitoring host's)"
                    .into(),
            ));
        }
        if !madoguchi_wire::reply::valid_relay_name(&c.ingest.name) {
            return Err(invalid(
                "ingest.name: 1-64 of a-z, 0-9, '.', '_', '-'".into(),
            ));
        }
        if c.ingest.max_lifetime_s == 0 || c.ingest.min_body_bytes_per_s == 0 {
            return Err(invalid(
                "ingest.max_lifetime_s and ingest.min_body_bytes_per_s must be above 0".into(),
            ));
        }
        if c.ingest.max_bytes_in_flight < c.ingest.max_bundle_bytes
            || c.ingest.max_bytes_in_flight > u32::MAX as usize
        {
            return Err(invalid(
                "ingest.max_bytes_in_flight must be at least max_bundle_bytes (and under 4 GiB)"
                    .into(),
            ));
        }
        for k in &c.ingest.office_keys {
            madoguchi_wire::keys::verifying_key_from_hex(k)
                .map_err(|e| invalid(format!("ingest.office_keys {k:?}: {e}")))?;
        }
        if c.public.listen == c.ingest.listen {
            return Err(invalid(
                "public.listen and ingest.listen must differ".into(),
            ));
        }
        c.push.check().map_err(|e| invalid(format!("push: {e}")))?;
        // Relative paths are relative to the configuration file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut c.public.tls.cert,
            &mut c.public.tls.key,
            &mut c.ingest.tls.cert,
            &mut c.ingest.tls.key,
            &mut c.state_dir,
            &mut c.push.ca_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }

    pub fn office_keys(&self) -> Vec<ed25519_dalek::VerifyingKey> {
        self.ingest
            .office_keys
            .iter()
            .filter_map(|k| madoguchi_wire::keys::verifying_key_from_hex(k).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_names_its_errors() {
        let c =
            Config::parse(EXAMPLE, Path::new("/etc/madoguchi-relay/relay.toml")).expect("example");
        assert_eq!(c.limits.connections_per_ip, 64);
        assert!(c.state_dir.is_absolute());
        let bad = EXAMPLE.replace("connections_per_ip", "connections_per_ipp");
        let err = Config::parse(&bad, Path::new("r.toml")).expect_err("typo");
        assert!(err.to_string().contains("connections_per_ipp"), "{err}");
        assert_eq!(c.ingest.allow.len(), 1);
        let open = EXAMPLE.replace("allow = [\"10.20.0.1\"]", "allow = []");
        let err = Config::parse(&open, Path::new("r.toml")).expect_err("no allow-list");
        assert!(err.to_string().contains("ingest.allow"), "{err}");
        assert_eq!(c.push.max_per_ticket, 3);
        // relay-rt2 F6: the demo office's full bundle (148 KB) over a
        // 20 KB/s line takes 7.4 s; the default deadline allows for it.
        assert!(c.ingest.body_deadline(148_090) > Duration::from_millis(7_405));
        assert!(
            Config::parse(
                &EXAMPLE.replace("min_body_bytes_per_s = 8192\n", ""),
                Path::new("r.toml")
            )
            .expect("default rate")
            .ingest
            .body_deadline(148_090)
                > Duration::from_millis(7_405)
        );
        assert_eq!(c.ingest.unproven_head_timeout_s, 2);
        assert!(c.push.services.iter().any(|s| s == "fcm.googleapis.com"));
        let bad = EXAMPLE.replace("contact = \"mailto:", "contact = \"tel:");
        let err = Config::parse(&bad, Path::new("r.toml")).expect_err("contact");
        assert!(err.to_string().contains("push: contact"), "{err}");
    }
}
