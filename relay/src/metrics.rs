//! Counters for the Prometheus `/metrics` page, which only the ingest
//! listener serves (the public side shows nothing about the relay).

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use madoguchi_wire::Code;

#[derive(Debug, Default)]
pub struct Metrics {
    pub bundles_accepted: AtomicU64,
    pub bundles_rejected: AtomicU64,
    /// Refusals by code, in [`Code::ALL`] order.
    refused_by_code: [AtomicU64; Code::ALL.len()],
    /// Signed resets taken.
    pub resets: AtomicU64,
    /// The held sequence is ahead of this relay's clock plus the skew:
    /// only a signed reset brings the office back.
    pub sequence_impossible: AtomicBool,
    /// Ingest connections from addresses not in `ingest.allow`.
    pub strangers_dropped: AtomicU64,
    /// Unproven ingest connections closed to admit a newer one.
    pub unproven_evicted: AtomicU64,
    /// Ingest connections whose hello carried the office's token (its slots).
    pub office_hellos: AtomicU64,
    /// Office-slot connections closed to admit a newer office one.
    pub office_evicted: AtomicU64,
    /// Hello tokens malformed, stale or not signed for this relay.
    pub hello_invalid: AtomicU64,
    /// Hello tokens whose nonce was already used (copied off the wire).
    pub hello_replayed: AtomicU64,
    /// Fresh hello tokens refused because the nonces of 4096 fresh ones
    /// are held (only a holder of an office key can do that).
    pub hello_nonces_full: AtomicU64,
    /// State files set aside at start-up (damaged or unverifiable), the
    /// push files included.
    pub set_aside: AtomicU64,
    /// Web Push is enabled but its state could not be read: the site is
    /// served without it.
    pub push_unavailable: AtomicBool,
    pub last_seq: AtomicU64,
    pub site_expires: AtomicI64,
    pub connections_refused: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub requests: AtomicU64,
    pub ws_subscribers: AtomicI64,
    pub sse_subscribers: AtomicI64,
    pub messages_sent: AtomicU64,
    pub slow_subscribers_dropped: AtomicU64,
    /// Renewed certificates taken without a restart.
    pub cert_renewals: AtomicU64,
    /// New certificate files refused (the old certificate kept).
    pub cert_refusals: AtomicU64,
    /// True while the files on disk are a refused certificate.
    pub cert_refused: AtomicBool,
}

impl Metrics {
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused bundle under its code.
    pub fn refused(&self, code: Code) {
        Metrics::add(&self.bundles_rejected);
        if let Some(i) = Code::ALL.iter().position(|c| *c == code) {
            Metrics::add(&self.refused_by_code[i]);
        }
    }

    pub fn render(&self, open_connections: usize) -> String {
        let mut out = String::new();
        write_series(&mut out, BUNDLES, self, open_connections);
        let _ = writeln!(
            out,
            "# HELP madoguchi_relay_bundles_refused_total Bundles refused, by reply code.\n\
             # TYPE madoguchi_relay_bundles_refused_total counter"
        );
        for (c, n) in Code::ALL.iter().zip(&self.refused_by_code) {
            let _ = writeln!(
                out,
                "madoguchi_relay_bundles_refused_total{{code=\"{}\"}} {}",
                c.name(),
                n.load(Ordering::Relaxed)
            );
        }
        write_series(&mut out, OTHERS, self, open_connections);
        out
    }
}

/// One series of `/metrics`: name, Prometheus type, help text and how to
/// read it (from the counters and the number of open connections).
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Metrics, usize) -> String,
);

fn write_series(out: &mut String, rows: &[Series], m: &Metrics, open: usize) {
    for (name, kind, help, read) in rows {
        let _ = writeln!(out, "# HELP madoguchi_relay_{name} {help}");
        let _ = writeln!(out, "# TYPE madoguchi_relay_{name} {kind}");
        let _ = writeln!(out, "madoguchi_relay_{name} {}", read(m, open));
    }
}

fn g(a: &AtomicU64) -> String {
    a.load(Ordering::Relaxed).to_string()
}

fn gi(a: &AtomicI64) -> String {
    a.load(Ordering::Relaxed).to_string()
}

/// The bundle counters, written before the refusals by code.
const BUNDLES: &[Series] = &[
    (
        "bundles_accepted_total",
        "counter",
        "Bundles accepted.",
        |m, _| g(&m.bundles_accepted),
    ),
    (
        "bundles_rejected_total",
        "counter",
        "Bundles refused (signature, sequence, size, form).",
        |m, _| g(&m.bundles_rejected),
    ),
];

/// Every other series, in the order `/metrics` has always listed them.
const OTHERS: &[Series] = &[
    (
        "sequence_impossible",
        "gauge",
        "1 while the held sequence is ahead of this relay's clock (recover with a signed reset).",
        |m, _| u8::from(m.sequence_impossible.load(Ordering::Relaxed)).to_string(),
    ),
    (
        "resets_total",
        "counter",
        "Signed resets taken.",
        |m, _| g(&m.resets),
    ),
    (
        "ingest_strangers_dropped_total",
        "counter",
        "Ingest connections dropped at accept: address not in ingest.allow.",
        |m, _| g(&m.strangers_dropped),
    ),
    (
        "ingest_unproven_evicted_total",
        "counter",
        "Ingest connections without the office's signed head closed to admit a newer one.",
        |m, _| g(&m.unproven_evicted),
    ),
    (
        "ingest_office_hellos_total",
        "counter",
        "Ingest connections whose TLS hello carried the office's token (the office's own slots).",
        |m, _| g(&m.office_hellos),
    ),
    (
        "ingest_office_evicted_total",
        "counter",
        "Connections in the office's slots closed to admit a newer one of the office's.",
        |m, _| g(&m.office_evicted),
    ),
    (
        "ingest_hello_invalid_total",
        "counter",
        "Ingest hello tokens malformed, stale or not signed for this relay (shared slots only).",
        |m, _| g(&m.hello_invalid),
    ),
    (
        "ingest_hello_replayed_total",
        "counter",
        "Ingest hello tokens used a second time (copied off the wire; shared slots only).",
        |m, _| g(&m.hello_replayed),
    ),
    (
        "ingest_hello_nonces_full_total",
        "counter",
        "Fresh ingest hello tokens refused because 4096 fresh ones are held (an office key may have leaked; shared slots only).",
        |m, _| g(&m.hello_nonces_full),
    ),
    (
        "state_set_aside_total",
        "counter",
        "State files set aside at start-up because they were damaged or did not verify.",
        |m, _| g(&m.set_aside),
    ),
    (
        "push_unavailable",
        "gauge",
        "1 while Web Push is enabled but its state files could not be read (the site is served without it; nothing was replaced).",
        |m, _| u8::from(m.push_unavailable.load(Ordering::Relaxed)).to_string(),
    ),
    (
        "last_seq",
        "gauge",
        "Sequence number of the bundle served.",
        |m, _| g(&m.last_seq),
    ),
    (
        "site_expires_seconds",
        "gauge",
        "Unix time after which the served data is stale.",
        |m, _| gi(&m.site_expires),
    ),
    (
        "connections_open",
        "gauge",
        "Open public connections.",
        |_, open| open.to_string(),
    ),
    (
        "connections_refused_total",
        "counter",
        "Connections refused by the total or per-address limit.",
        |m, _| g(&m.connections_refused),
    ),
    (
        "tls_handshakes_failed_total",
        "counter",
        "TLS handshakes that failed or timed out.",
        |m, _| g(&m.handshakes_failed),
    ),
    (
        "requests_total",
        "counter",
        "Public HTTP requests.",
        |m, _| g(&m.requests),
    ),
    (
        "websocket_subscribers",
        "gauge",
        "Open WebSocket subscribers.",
        |m, _| gi(&m.ws_subscribers),
    ),
    (
        "sse_subscribers",
        "gauge",
        "Open Server-Sent Events subscribers.",
        |m, _| gi(&m.sse_subscribers),
    ),
    (
        "messages_sent_total",
        "counter",
        "Push messages written to subscribers.",
        |m, _| g(&m.messages_sent),
    ),
    (
        "slow_subscribers_dropped_total",
        "counter",
        "Subscribers dropped for falling behind.",
        |m, _| g(&m.slow_subscribers_dropped),
    ),
    (
        "tls_cert_renewals_total",
        "counter",
        "Renewed certificates taken without a restart.",
        |m, _| g(&m.cert_renewals),
    ),
    (
        "tls_cert_refusals_total",
        "counter",
        "New certificate files refused; the old certificate is still served.",
        |m, _| g(&m.cert_refusals),
    ),
    (
        "tls_cert_refused",
        "gauge",
        "1 while a certificate file on disk is refused (the old one is served: fix the files).",
        |m, _| u8::from(m.cert_refused.load(Ordering::Relaxed)).to_string(),
    ),
];
