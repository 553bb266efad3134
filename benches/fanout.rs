//! The fan-out load generator the relay and peer benchmarks share: N TLS
//! WebSocket subscribers spread over client processes (each process may
//! hold at most 20,000 open files here, so ≤ 4,000 each), publish → receive
//! latency from a `"bench_t":<ns>` stamp the publisher puts in each
//! message, and the server's memory (PSS) and CPU from /proc. A bench
//! binary calls [`client_main`] first: when started as a client it runs the
//! subscribers and returns `true`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use hdrhistogram::Histogram;

pub const PER_PROCESS: usize = 4_000;
pub const ORIGIN: &str = "https://jokyo.example.test";

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// utime + stime of processes, in seconds.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|pid| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = s.rsplit_once(')').map_or("", |x| x.1);
            let f: Vec<&str> = after.split_whitespace().collect();
            let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            (get(11) + get(12)) as f64 / 100.0
        })
        .sum()
}

/// Proportional set size of processes in KiB (shared pages split between
/// the processes sharing them, so several workers are not counted twice).
pub fn pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// The default office's public status JSON as the renderer makes it.
pub fn status_payload() -> String {
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

/// The payload with a fresh send stamp.
pub fn stamped(payload: &str) -> String {
    payload.replacen('{', &format!("{{\"bench_t\":{},", now_ns()), 1)
}

#[allow(missing_debug_implementations)]
pub struct Subscribers {
    clients: Vec<(Child, std::sync::mpsc::Receiver<String>)>,
    pub connect_s: f64,
}

/// What the subscribers saw.
#[derive(Debug)]
pub struct Outcome {
    pub latency_us: Histogram<u64>,
    /// Per publish: when the last subscriber had it (µs), sorted.
    pub lasts: Vec<u64>,
    pub delivered: u64,
}

impl Subscribers {
    /// Connects `count` subscribers to `wss://127.0.0.1:<port><path>`.
    pub fn connect(addr: SocketAddr, ca: &Path, path: &str, count: usize) -> Subscribers {
        Self::connect_with(addr, ca, path, count, false)
    }

    /// As [`Self::connect`]; `e2e`: the subscribers report when the number
    /// served changes instead of reading a publisher's stamp (for
    /// [`Self::finish_raw`]).
    pub fn connect_with(
        addr: SocketAddr,
        ca: &Path,
        path: &str,
        count: usize,
        e2e: bool,
    ) -> Subscribers {
        let procs = count.div_ceil(PER_PROCESS).max(1);
        let t0 = Instant::now();
        let clients: Vec<_> = (0..procs)
            .map(|i| {
                let n = count / procs + usize::from(i < count % procs);
                let mut child = Command::new(std::env::current_exe().expect("exe"))
                    .env("MADOGUCHI_BENCH_ROLE", "client")
                    .env("ADDR", addr.to_string())
                    .env("COUNT", n.to_string())
                    .env("CA", ca)
                    .env("WSPATH", path)
                    .env("MADOGUCHI_BENCH_E2E", if e2e { "1" } else { "0" })
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
            })
            .collect();
        for (_, rx) in &clients {
            let line = rx
                .recv_timeout(Duration::from_secs(180))
                .expect("client ready");
            assert!(line.starts_with("ready"), "client: {line}");
        }
        Subscribers {
            clients,
            connect_s: t0.elapsed().as_secs_f64(),
        }
    }

    /// Tells the clients to report, and gathers the raw pairs they
    /// printed (`MADOGUCHI_BENCH_E2E`: the number served and when it was
    /// received, µs since the epoch).
    pub fn finish_raw(mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (child, rx) in &mut self.clients {
            let _ = child.stdin.take().map(|mut s| s.write_all(b"done\n"));
            let deadline = Instant::now() + Duration::from_secs(60);
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if line == "end" {
                    break;
                }
                let mut it = line.split_whitespace().map(|v| v.parse::<u64>());
                if let (Some(Ok(a)), Some(Ok(b))) = (it.next(), it.next()) {
                    out.push((a, b));
                }
            }
            let _ = child.wait();
        }
        out
    }

    /// Tells the clients to report, and gathers what they received.
    pub fn finish(mut self) -> Outcome {
        let mut latency_us = Histogram::<u64>::new(3).expect("hist");
        let mut last: std::collections::BTreeMap<u64, u64> = Default::default();
        let mut delivered = 0u64;
        for (child, rx) in &mut self.clients {
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
                let mut it = line.split_whitespace();
                if let (Some(stamp), Some(us)) = (it.next(), it.next()) {
                    let (Ok(stamp), Ok(us)) = (stamp.parse::<u64>(), us.parse::<u64>()) else {
                        continue;
                    };
                    let _ = latency_us.record(us.max(1));
                    delivered += 1;
                    let l = last.entry(stamp).or_insert(0);
                    *l = (*l).max(us);
                }
            }
            let _ = child.wait();
        }
        let mut lasts: Vec<u64> = last.into_values().collect();
        lasts.sort_unstable();
        Outcome {
            latency_us,
            lasts,
            delivered,
        }
    }
}

/// Runs as a client process when started as one; returns whether it did.
pub fn client_main() -> bool {
    if std::env::var("MADOGUCHI_BENCH_ROLE").as_deref() != Ok("client") {
        return false;
    }
    client();
    true
}

fn client() {
    let addr: SocketAddr = std::env::var("ADDR").expect("ADDR").parse().expect("addr");
    let count: usize = std::env::var("COUNT")
        .expect("COUNT")
        .parse()
        .expect("count");
    let ca = std::fs::read(std::env::var("CA").expect("CA")).expect("ca");
    let path = std::env::var("WSPATH").expect("WSPATH");
    let e2e = std::env::var("MADOGUCHI_BENCH_E2E").as_deref() == Ok("1");
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
            let (tls, tx, ready, gate, path) = (
                tls.clone(),
                tx.clone(),
                ready.clone(),
                gate.clone(),
                path.clone(),
            );
            tokio::spawn(async move {
                let Some(mut ws) = connect(addr, &path, &tls, &gate).await else {
                    eprintln!("client: a subscriber could not connect");
                    ready.add_permits(1);
                    return;
                };
                let connected = now_ns();
                ready.add_permits(1);
                let mut serving = None;
                while let Some(Ok(msg)) = ws.next().await {
                    let text = match &msg {
                        tokio_tungstenite::tungstenite::Message::Text(t) => t.as_str(),
                        _ => continue,
                    };
                    let got = now_ns();
                    if e2e {
                        // The office's own page: the number being served
                        // names the call; "<number> <received µs>" once per
                        // change (the first message is the current page).
                        let now = first_serving(text);
                        if now.is_some() && serving.is_some() && now != serving {
                            let _ = tx.send((now.unwrap_or(0), got / 1000));
                        }
                        if now.is_some() {
                            serving = now;
                        }
                        continue;
                    }
                    let Some(i) = text.find("\"bench_t\":") else {
                        continue;
                    };
                    let digits: String = text[i + 10..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    let Ok(sent) = digits.parse::<u64>() else {
                        continue;
                    };
                    // The current payload on connecting is not a delivery.
                    if sent < connected {
                        continue;
                    }
                    let _ = tx.send((sent, got.saturating_sub(sent) / 1000));
                }
            });
        }
        let _ = ready.acquire_many(count as u32).await;
        println!("ready");
        let _ = std::io::stdout().flush();
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
        // "<send stamp> <latency µs>": the stamp names the publish.
        let mut out = std::io::BufWriter::new(std::io::stdout());
        while let Ok((sent, us)) = rx.try_recv() {
            let _ = writeln!(out, "{sent} {us}");
        }
        let _ = writeln!(out, "end");
        let _ = out.flush();
    });
}

/// The first number in the page's `"serving":[…]` list, if any: with one
/// counter open, the number it called last.
fn first_serving(text: &str) -> Option<u64> {
    text.match_indices("\"serving\":[").find_map(|(i, m)| {
        let digits: String = text[i + m.len()..]
            .chars()
            .skip_while(|c| *c == '[')
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    })
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn connect(
    addr: SocketAddr,
    path: &str,
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
            let mut req = format!("wss://127.0.0.1:{}{path}", addr.port())
                .into_client_request()
                .ok()?;
            req.headers_mut().insert("Origin", ORIGIN.parse().ok()?);
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

/// Static requests/s over TLS with wrk: (requests/s, p99 text).
pub fn wrk(url: &str, header: &str) -> Option<(f64, String)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d10s", "--latency", "-H", header, url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .map(|l| l.trim().trim_start_matches("99%").trim().to_string())
        .unwrap_or_default();
    Some((rps, p99))
}
