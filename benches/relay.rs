//! Relay benchmark (issue 7; R6): the real `madoguchi-relay` on loopback
//! with TLS, N WebSocket subscribers (1k, 5k, 15k) spread over several
//! client processes (each process may hold at most 20,000 open files here),
//! a publisher posting signed bundles to the ingest listener, and:
//! publish → receive latency per subscriber (p50/p99/max, HdrHistogram) and
//! the time until the last subscriber has it; relay memory per idle TLS
//! subscriber; relay CPU seconds per 1,000 delivered messages; static JSON
//! requests/s with `wrk` (Debian package) over TLS.
//!
//! `cargo bench --bench relay` (MADOGUCHI_BENCH_SUBSCRIBERS=1000,5000 to
//! choose the sizes). Loopback only; every loop is bounded in count and
//! time.

#[path = "../tests/relay_util.rs"]
#[allow(dead_code)]
mod relay_util;
#[allow(dead_code)]
mod util {
    pub fn bin() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_madoguchi"))
    }
}

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use madoguchi_relay::bundle::{pack, Header, Kind};

const PER_PROCESS: usize = 4_000;
const PUBLISHES: usize = 20;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn main() {
    if std::env::var("MADOGUCHI_BENCH_ROLE").as_deref() == Ok("client") {
        client();
        return;
    }
    let sizes: Vec<usize> = std::env::var("MADOGUCHI_BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "1000,5000,15000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let key = SigningKey::from_bytes(&[42; 32]);
    let relay = relay_util::start(
        &key,
        "connections = 19000\nconnections_per_ip = 19000\nheartbeat_s = 60\nsubscriber_queue = 16",
    );
    let payload = status_payload();
    println!(
        "relay benchmark — {} cores, payload {} bytes (the default office's public status JSON)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        payload.len()
    );
    let mut seq = 1;
    let publish = |seq: u64, kind: Kind| {
        let body = payload.replacen('{', &format!("{{\"bench_t\":{},", now_ns()), 1);
        let h = Header {
            seq,
            created: (now_ns() / 1_000_000_000) as i64,
            expires: (now_ns() / 1_000_000_000) as i64 + 3600,
            kind,
            base: seq - 1,
            files: vec![],
            removed: vec![],
        };
        let files = vec![("displays/status.json".to_string(), body.into_bytes())];
        let r = relay
            .http()
            .post(relay.ingest_url("/bundle"))
            .body(pack(&h, &files, &key))
            .send()
            .expect("publish");
        assert!(r.status().is_success(), "publish refused: {}", r.status());
    };
    publish(seq, Kind::Full);
    std::thread::sleep(Duration::from_millis(500));
    let rss_base = relay.rss_kib();
    println!(
        "relay RSS with the site and no subscribers: {} KiB",
        rss_base
    );
    println!();
    println!("| subscribers | connect s | RSS/subscriber | p50 ms | p99 ms | max ms | all delivered p50 / max ms | CPU s per 1k msgs |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        let procs = n.div_ceil(PER_PROCESS);
        let t0 = Instant::now();
        let mut clients: Vec<(Child, std::sync::mpsc::Receiver<String>)> = (0..procs)
            .map(|i| {
                let count = n / procs + usize::from(i < n % procs);
                spawn_client(&relay, count)
            })
            .collect();
        for (_, rx) in &clients {
            let line = rx
                .recv_timeout(Duration::from_secs(180))
                .expect("client ready");
            assert!(line.starts_with("ready"), "client: {line}");
        }
        let connect_s = t0.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(2));
        let rss = relay.rss_kib();
        let per_sub = (rss.saturating_sub(rss_base) as f64 * 1024.0) / n as f64;
        let cpu0 = cpu_ticks(relay.pid());
        let gap = Duration::from_millis((250 + n as u64 / 15).min(1500));
        for _ in 0..PUBLISHES {
            seq += 1;
            publish(seq, Kind::Delta);
            std::thread::sleep(gap);
        }
        let cpu = (cpu_ticks(relay.pid()) - cpu0) as f64 / 100.0;
        let mut all = Histogram::<u64>::new(3).expect("hist");
        let mut last_per_publish = vec![0u64; PUBLISHES];
        let mut delivered = 0u64;
        for (child, rx) in &mut clients {
            let _ = child.stdin.take().map(|mut s| s.write_all(b"done\n"));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(line) = rx.recv_timeout(left) else {
                    break;
                };
                if line == "end" {
                    break;
                }
                // "<publish index> <latency µs>"
                let mut it = line.split_whitespace();
                if let (Some(i), Some(us)) = (it.next(), it.next()) {
                    let (Ok(i), Ok(us)) = (i.parse::<usize>(), us.parse::<u64>()) else {
                        continue;
                    };
                    let _ = all.record(us.max(1));
                    delivered += 1;
                    if let Some(l) = last_per_publish.get_mut(i) {
                        *l = (*l).max(us);
                    }
                }
            }
            let _ = child.wait();
        }
        let expected = (n * PUBLISHES) as u64;
        let mut lasts = last_per_publish.clone();
        lasts.sort_unstable();
        println!(
            "| {n} | {connect_s:.1} | {:.1} KiB | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} | {:.3} |",
            per_sub / 1024.0,
            all.value_at_quantile(0.5) as f64 / 1000.0,
            all.value_at_quantile(0.99) as f64 / 1000.0,
            all.max() as f64 / 1000.0,
            lasts[lasts.len() / 2] as f64 / 1000.0,
            lasts[lasts.len() - 1] as f64 / 1000.0,
            cpu / (delivered as f64 / 1000.0).max(1e-9),
        );
        if delivered != expected {
            println!("  (delivered {delivered} of {expected} messages)");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    println!();
    wrk(&relay);
}

/// utime + stime of a process, in clock ticks (100 per second).
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn spawn_client(
    relay: &relay_util::Relay,
    count: usize,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("MADOGUCHI_BENCH_ROLE", "client")
        .env("ADDR", relay.public.to_string())
        .env("COUNT", count.to_string())
        .env("CA", &relay.certs.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("client");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The default office's public status JSON as the renderer makes it.
fn status_payload() -> String {
    use madoguchi_core::config::Config;
    let cfg = Config::embedded_default();
    let (st, at) = madoguchi_renderer::sample::sample(&cfg);
    let r = madoguchi_renderer::render::Renderer::new(None).expect("renderer");
    madoguchi_renderer::surfaces::surfaces(&cfg, &st, at)
        .iter()
        .find(|s| s.topic == "status")
        .and_then(|s| r.render(s).ok())
        .map(|r| r.json)
        .expect("status surface")
}

/// A client process: COUNT subscribers; prints "ready", then one line per
/// received publish ("<index> <µs>") once told "done" on stdin.
fn client() {
    let addr: std::net::SocketAddr = std::env::var("ADDR").expect("ADDR").parse().expect("addr");
    let count: usize = std::env::var("COUNT")
        .expect("COUNT")
        .parse()
        .expect("count");
    let ca = std::fs::read(std::env::var("CA").expect("CA")).expect("ca");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async move {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.expect("pem")).expect("root");
        }
        let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
        let ready = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
        for _ in 0..count {
            let tls = tls.clone();
            let tx = tx.clone();
            let ready = ready.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let Some(mut ws) = connect(addr, &tls, &gate).await else {
                    eprintln!("client: a subscriber could not connect");
                    ready.add_permits(1);
                    return;
                };
                ready.add_permits(1);
                let mut first: Option<u64> = None;
                while let Some(Ok(msg)) = ws.next().await {
                    let tokio_tungstenite::tungstenite::Message::Text(t) = msg else {
                        continue;
                    };
                    let got = now_ns();
                    let Some(i) = t.find("\"bench_t\":") else {
                        continue;
                    };
                    let digits: String = t[i + 10..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    let Ok(sent) = digits.parse::<u64>() else {
                        continue;
                    };
                    if first.is_none() {
                        // The current payload on connecting: not a delivery.
                        first = Some(sent);
                        continue;
                    }
                    let _ = tx.send((sent, got.saturating_sub(sent) / 1000));
                }
            });
        }
        let _ = ready.acquire_many(count as u32).await;
        println!("ready");
        let _ = std::io::stdout().flush();
        // Wait for "done" on stdin (bounded), then report.
        let _ = tokio::time::timeout(
            Duration::from_secs(600),
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(tx);
        let mut by_publish: Vec<u64> = Vec::new();
        let mut out = std::io::BufWriter::new(std::io::stdout());
        while let Ok((sent, us)) = rx.try_recv() {
            let idx = match by_publish.iter().position(|&s| s == sent) {
                Some(i) => i,
                None => {
                    by_publish.push(sent);
                    by_publish.len() - 1
                }
            };
            let _ = writeln!(out, "{idx} {us}");
        }
        let _ = writeln!(out, "end");
        let _ = out.flush();
    });
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn connect(
    addr: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    gate: &tokio::sync::Semaphore,
) -> Option<Wss> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let _permit = gate.acquire().await.ok()?;
    for _ in 0..5 {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
                .ok()?
                .to_owned();
            let stream = tls.connect(name, tcp).await.ok()?;
            let mut req = format!("wss://127.0.0.1:{}/ws?topic=status", addr.port())
                .into_client_request()
                .ok()?;
            req.headers_mut()
                .insert("Origin", relay_util::ORIGIN.parse().ok()?);
            let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(8192)
                .write_buffer_size(0);
            tokio_tungstenite::client_async_with_config(req, stream, Some(cfg))
                .await
                .ok()
                .map(|(ws, _)| ws)
        };
        if let Ok(Some(ws)) = tokio::time::timeout(Duration::from_secs(20), attempt).await {
            return Some(ws);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Static JSON requests/s over TLS with wrk, identity and brotli.
fn wrk(relay: &relay_util::Relay) {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk is not installed (apt-get install wrk): static requests/s not measured");
        return;
    }
    let url = relay.public_url("/displays/status.json");
    for (label, header) in [
        ("identity", "Accept-Encoding: identity"),
        ("br", "Accept-Encoding: br"),
    ] {
        let out = Command::new("wrk")
            .args(["-t2", "-c64", "-d10s", "--latency", "-H", header, &url])
            .output()
            .expect("wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec:"))
            .unwrap_or("Requests/sec: ?");
        let p99 = text
            .lines()
            .find(|l| l.trim_start().starts_with("99%"))
            .unwrap_or("99% ?");
        println!("wrk -t2 -c64 -d10s {label}: {rps}; latency {}", p99.trim());
    }
}
