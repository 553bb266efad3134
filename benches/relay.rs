//! Relay benchmark (issue 7; R6): the real `madoguchi-relay` on loopback
//! with TLS, N WebSocket subscribers (1k, 5k, 15k) spread over several
//! client processes (`fanout.rs`), a publisher posting signed bundles to the
//! ingest listener, and: publish → receive latency per subscriber
//! (p50/p99/max, HdrHistogram) and the time until the last subscriber has
//! it; relay memory per idle TLS subscriber; relay CPU seconds per 1,000
//! delivered messages; static JSON requests/s with `wrk` (Debian package)
//! over TLS.
//!
//! `cargo bench --bench relay` (MADOGUCHI_BENCH_SUBSCRIBERS=1000,5000 to
//! choose the sizes; `none` for wrk only; MADOGUCHI_BENCH_WRK=0 for no wrk;
//! MADOGUCHI_RELAY_BIN=<path> to measure another build of the relay). Loopback only; every loop is
//! bounded in count and time.

#![allow(missing_debug_implementations)]

#[path = "fanout.rs"]
pub mod fanout;
#[path = "../tests/relay_util.rs"]
#[allow(dead_code)]
pub mod relay_util;
#[allow(dead_code)]
mod util {
    pub fn bin() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_madoguchi"))
    }
}

use std::time::Duration;

use ed25519_dalek::SigningKey;
use madoguchi_wire::bundle::{pack, Header, Kind};
use madoguchi_wire::UnixSeconds;

use fanout::{cpu_seconds, pss_kib, stamped, status_payload, Subscribers};

const PUBLISHES: usize = 20;

/// The relay under the fan-out load: a publish function and its process.
pub struct Target {
    pub relay: relay_util::Relay,
    key: SigningKey,
    seq: u64,
    payload: String,
}

impl Target {
    pub fn start() -> Target {
        let mut t = Target::start_quiet();
        t.publish();
        t
    }

    /// A relay that has received nothing yet: a second relay joins with
    /// the first one's next bundle (`publish_to`), as a relay added to a
    /// running office does; its own first bundle would make the office's
    /// sequence a jump it refuses (issue 22).
    pub fn start_quiet() -> Target {
        let key = SigningKey::from_bytes(&[42; 32]);
        let relay = relay_util::start(
            &key,
            "connections = 19000\nconnections_per_ip = 19000\nheartbeat_s = 60\nsubscriber_queue = 16",
        );
        Target {
            relay,
            key,
            seq: 0,
            payload: status_payload(),
        }
    }

    pub fn publish(&mut self) {
        let b = self.next_bundle();
        self.post(b);
    }

    /// The same bundle to this relay and `others` at once (scale-out: N
    /// relays each fed by the office).
    pub fn publish_to(&mut self, others: &[&Target]) {
        // Full bundles: a relay that joined late has no base for a delta
        // (the office sends a relay it has not fed yet the whole site).
        let b = self.next_bundle_of(true);
        std::thread::scope(|s| {
            for o in others {
                let b = b.clone();
                s.spawn(move || o.post(b));
            }
            self.post(b);
        });
    }

    /// Posts a signed bundle to the ingest listener.
    pub fn post(&self, bundle: Vec<u8>) {
        let r = self
            .relay
            .http()
            .post(self.relay.ingest_url("/bundle"))
            .header(madoguchi_wire::auth::HEADER, self.relay.office_head())
            .body(bundle)
            .send()
            .expect("publish");
        assert!(r.status().is_success(), "publish refused: {}", r.status());
    }

    /// The next bundle: the payload with a fresh stamp.
    pub fn next_bundle(&mut self) -> Vec<u8> {
        self.next_bundle_of(false)
    }

    /// The next bundle, whole (`full`) or as a delta on the last one.
    fn next_bundle_of(&mut self, full: bool) -> Vec<u8> {
        self.seq += 1;
        let now = (fanout::now_ns() / 1_000_000_000) as i64;
        let h = Header {
            relay: relay_util::RELAY_NAME.into(),
            seq: self.seq,
            created: UnixSeconds(now),
            expires: UnixSeconds(now + 300),
            kind: if full || self.seq == 1 {
                Kind::Full
            } else {
                Kind::Delta
            },
            base: self.seq - 1,
            files: vec![],
            removed: vec![],
            reset: None,
        };
        let files = vec![(
            "displays/status.json".to_string(),
            stamped(&self.payload).into_bytes(),
        )];
        pack(&h, &files, &self.key)
    }
}

/// One row: subscribers, connect time, memory per subscriber, latencies,
/// CPU per 1,000 messages.
pub fn fan_out(
    n: usize,
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    path: &str,
    pids: &dyn Fn() -> Vec<u32>,
    publish: &mut dyn FnMut(),
) -> (String, Row) {
    let base = pss_kib(&pids());
    let subs = Subscribers::connect(addr, ca, path, n);
    std::thread::sleep(Duration::from_secs(2));
    let per_sub = (pss_kib(&pids()).saturating_sub(base) as f64 * 1024.0) / n as f64;
    let cpu0 = cpu_seconds(&pids());
    let gap = Duration::from_millis((250 + n as u64 / 15).min(1500));
    for _ in 0..PUBLISHES {
        publish();
        std::thread::sleep(gap);
    }
    let cpu = cpu_seconds(&pids()) - cpu0;
    let connect_s = subs.connect_s;
    let o = subs.finish();
    let row = Row {
        connect_s,
        last_ms: o.lasts.last().copied().unwrap_or(0) as f64 / 1000.0,
        per_sub_kib: per_sub / 1024.0,
        p50_ms: o.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: o.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: o.latency_us.max() as f64 / 1000.0,
        cpu_per_1k: cpu / (o.delivered as f64 / 1000.0).max(1e-9),
    };
    let mut line = format!(
        "| {n} | {connect_s:.1} | {:.1} KiB | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} | {:.3} |",
        row.per_sub_kib,
        row.p50_ms,
        row.p99_ms,
        row.max_ms,
        o.lasts.get(o.lasts.len() / 2).copied().unwrap_or(0) as f64 / 1000.0,
        o.lasts.last().copied().unwrap_or(0) as f64 / 1000.0,
        row.cpu_per_1k,
    );
    let expected = (n * PUBLISHES) as u64;
    if o.delivered != expected {
        line.push_str(&format!(
            "\n  (delivered {} of {expected} messages)",
            o.delivered
        ));
    }
    (line, row)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    pub connect_s: f64,
    /// The worst publish: when its last subscriber had it.
    pub last_ms: f64,
    pub per_sub_kib: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu_per_1k: f64,
}

pub const HEADER: &str = "| subscribers | connect s | memory (PSS) per subscriber | p50 ms | p99 ms | max ms | all delivered p50 / max ms | CPU s per 1k msgs |\n|---|---|---|---|---|---|---|---|";

pub fn sizes() -> Vec<usize> {
    std::env::var("MADOGUCHI_BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "1000,5000,15000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

#[allow(dead_code)]
fn main() {
    if fanout::client_main() {
        return;
    }
    let mut t = Target::start();
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "relay benchmark — {} cores, payload {} bytes (the default office's public status JSON)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        t.payload.len()
    );
    println!(
        "relay PSS with the site and no subscribers: {} KiB",
        pss_kib(&[t.relay.pid()])
    );
    // What the publish path spends on a changed file before any fsync:
    // SHA-256 ETag, gzip and brotli of this payload.
    let body = stamped(&t.payload).into_bytes();
    let rounds = 200;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(madoguchi_relay::site::Entry::new(
            "displays/status.json",
            body.clone(),
        ));
    }
    println!(
        "making a site entry (SHA-256, gzip, brotli) of the payload: {:.3} ms",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds)
    );
    println!();
    println!("{HEADER}");
    let (addr, ca, pid) = (t.relay.public, t.relay.certs.ca.clone(), t.relay.pid());
    for n in sizes() {
        let (line, _) = fan_out(n, addr, &ca, "/ws?topic=status", &|| vec![pid], &mut || {
            t.publish()
        });
        println!("{line}");
        std::thread::sleep(Duration::from_secs(2));
    }
    println!();
    if std::env::var("MADOGUCHI_BENCH_WRK").as_deref() == Ok("0") {
        return;
    }
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("wrk is not installed (apt-get install wrk): static requests/s not measured");
        return;
    }
    let url = t.relay.public_url("/displays/status.json");
    for (label, header) in [
        ("identity", "Accept-Encoding: identity"),
        ("br", "Accept-Encoding: br"),
    ] {
        if let Some((rps, p99)) = fanout::wrk(&url, header) {
            println!("wrk -t2 -c64 -d10s {label}: {rps:.0} requests/s; p99 {p99}");
        }
    }
}
