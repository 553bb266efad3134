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
        let mut line = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP madoguchi_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE madoguchi_relay_{name} {kind}");
            let _ = writeln!(out, "madoguchi_relay_{name} {v}");
        };
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let gi = |a: &AtomicI64| a.load(Ordering::Relaxed).to_string();
        line(
            "bundles_accepted_total",
            "counter",
            "Bundles accepted.",
            g(&self.bundles_accepted),
        );
        line(
            "bundles_rejected_total",
            "counter",
            "Bundles refused (signature, sequence, size, form).",
            g(&self.bundles_rejected),
        );
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
        let mut line = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP madoguchi_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE madoguchi_relay_{name} {kind}");
            let _ = writeln!(out, "madoguchi_relay_{name} {v}");
        };
        line(
            "sequence_impossible",
            "gauge",
            "1 while the held sequence is ahead of this relay's clock (recover with a signed reset).",
            u8::from(self.sequence_impossible.load(Ordering::Relaxed)).to_string(),
        );
        line(
            "resets_total",
            "counter",
            "Signed resets taken.",
            g(&self.resets),
        );
        line(
            "ingest_strangers_dropped_total",
            "counter",
            "Ingest connections dropped at accept: address not in ingest.allow.",
            g(&self.strangers_dropped),
        );
        line(
            "ingest_unproven_evicted_total",
            "counter",
            "Ingest connections without the office's signed head closed to admit a newer one.",
            g(&self.unproven_evicted),
        );
        line(
            "ingest_office_hellos_total",
            "counter",
            "Ingest connections whose TLS hello carried the office's token (the office's own slots).",
            g(&self.office_hellos),
        );
        line(
            "ingest_office_evicted_total",
            "counter",
            "Connections in the office's slots closed to admit a newer one of the office's.",
            g(&self.office_evicted),
        );
        line(
            "ingest_hello_invalid_total",
            "counter",
            "Ingest hello tokens malformed, stale or not signed for this relay (shared slots only).",
            g(&self.hello_invalid),
        );
        line(
            "ingest_hello_replayed_total",
            "counter",
            "Ingest hello tokens used a second time (copied off the wire; shared slots only).",
            g(&self.hello_replayed),
        );
        line(
            "ingest_hello_nonces_full_total",
            "counter",
            "Fresh ingest hello tokens refused because 4096 fresh ones are held (an office key may have leaked; shared slots only).",
            g(&self.hello_nonces_full),
        );
        line(
            "state_set_aside_total",
            "counter",
            "State files set aside at start-up because they were damaged or did not verify.",
            g(&self.set_aside),
        );
        line(
            "push_unavailable",
            "gauge",
            "1 while Web Push is enabled but its state files could not be read (the site is served without it; nothing was replaced).",
            u8::from(self.push_unavailable.load(Ordering::Relaxed)).to_string(),
        );
        line(
            "last_seq",
            "gauge",
            "Sequence number of the bundle served.",
            g(&self.last_seq),
        );
        line(
            "site_expires_seconds",
            "gauge",
            "Unix time after which the served data is stale.",
            gi(&self.site_expires),
        );
        line(
            "connections_open",
            "gauge",
            "Open public connections.",
            open_connections.to_string(),
        );
        line(
            "connections_refused_total",
            "counter",
            "Connections refused by the total or per-address limit.",
            g(&self.connections_refused),
        );
        line(
            "tls_handshakes_failed_total",
            "counter",
            "TLS handshakes that failed or timed out.",
            g(&self.handshakes_failed),
        );
        line(
            "requests_total",
            "counter",
            "Public HTTP requests.",
            g(&self.requests),
        );
        line(
            "websocket_subscribers",
            "gauge",
            "Open WebSocket subscribers.",
            gi(&self.ws_subscribers),
        );
        line(
            "sse_subscribers",
            "gauge",
            "Open Server-Sent Events subscribers.",
            gi(&self.sse_subscribers),
        );
        line(
            "messages_sent_total",
            "counter",
            "Push messages written to subscribers.",
            g(&self.messages_sent),
        );
        line(
            "slow_subscribers_dropped_total",
            "counter",
            "Subscribers dropped for falling behind.",
            g(&self.slow_subscribers_dropped),
        );
        line(
            "tls_cert_renewals_total",
            "counter",
            "Renewed certificates taken without a restart.",
            g(&self.cert_renewals),
        );
        line(
            "tls_cert_refusals_total",
            "counter",
            "New certificate files refused; the old certificate is still served.",
            g(&self.cert_refusals),
        );
        line(
            "tls_cert_refused",
            "gauge",
            "1 while a certificate file on disk is refused (the old one is served: fix the files).",
            u8::from(self.cert_refused.load(Ordering::Relaxed)).to_string(),
        );
        out
    }
}
