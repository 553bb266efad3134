//! madoguchi-wire: the office ↔ relay protocol in one place, so both ends
//! share one definition (R6, R11; issues 16 and 22).
//!
//! - [`bundle`]: the signed bundle — header, file list, packing, signing and
//!   checking, the file paths and content types a bundle may carry.
//! - [`rules`]: the sequence and time rules a relay applies after the
//!   signature (how far ahead a sequence may be, clock skew, the longest
//!   lifetime, expiry, the signed reset) and the office's sequence counter.
//! - [`reply`]: the relay's typed answer to a bundle — accepted, or refused
//!   with a stable code; no free text.
//! - [`time`]: the units — instants as [`time::UnixSeconds`] or
//!   [`time::UnixMillis`], spans as [`std::time::Duration`] — and the
//!   office's keep-alive, expiry and the push heartbeat.
//! - [`keys`]: the text form of the office's keys.
//! - [`auth`]: the office's signed request head, checked before any body.
//! - [`hello`]: the office's token in its TLS ClientHello (ALPN), read
//!   before an ingest connection takes a slot.
//! - [`ticket`]: a ticket's secret tag and the public check of it (push
//!   subscriptions, issue 20).
//!
//! **Architecture Invariant:** this crate has no I/O, no HTTP stack and no
//! dependency on madoguchi-core, sled or minijinja; the relay links it and
//! never the core.

pub mod auth;
pub mod bundle;
pub mod hello;
pub mod keys;
pub mod reply;
pub mod rules;
pub mod ticket;
pub mod time;

pub use bundle::{Bundle, BundleError, FileEntry, Header, Kind, Reset};
pub use reply::{Code, Reply};
pub use time::{UnixMillis, UnixSeconds};
