//! Benchmarks against real peers, side by side in one run (issue 8):
//! our relay and nginx with the nchan module (Debian packages `nginx` and
//! `libnginx-mod-nchan`, config in `bench/peers/nginx-nchan.conf`), both on
//! TLS with the same certificate, the same subscribers (`fanout.rs`: TLS
//! WebSocket clients in several processes), the same payload and publishes;
//! and both serving the same static JSON to `wrk`. Prints each side's rows
//! and the ratios ours / nchan.
//!
//! Bun's built-in WebSocket server (npm package `bun`, uWebSockets) runs
//! `bench/peers/bun-pubsub.js` as the second push peer, and Pushpin (Debian
//! package `pushpin`, `bench/peers/pushpin.conf`, a GRIP origin in this
//! process) the third. Writes the plot `bench/results/latency.svg`, then the
//! office end to end: a staff call on the office server until the relay's
//! subscribers (as many as the largest fan-out size) have it
//! (`MADOGUCHI_BENCH_E2E_ONLY=<n>` runs only that step).
//!
//! `cargo bench --bench peers` (MADOGUCHI_BENCH_SUBSCRIBERS as for the
//! relay bench), or `bench/run`, which installs the peers. Loopback only;
//! bounded in count and time.

#![allow(missing_debug_implementations)]

#[path = "common.rs"]
mod common;
#[path = "relay.rs"]
#[allow(dead_code)]
mod relay_bench;
#[allow(dead_code)]
mod util {
    pub fn bin() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_madoguchi"))
    }
}
use relay_bench::{fanout, relay_util};

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fanout::stamped;
use relay_bench::{fan_out, Row, HEADER};

const CONF: &str = include_str!("../bench/peers/nginx-nchan.conf");

struct Nginx {
    child: Child,
    addr: SocketAddr,
    publish_url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(certs: &relay_util::Certs, payload: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tmp");
        for d in ["site/displays", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        std::fs::write(dir.path().join("site/displays/status.json"), payload).expect("site");
        let (port, pub_port) = (relay_util::free_port(), relay_util::free_port());
        let conf = CONF
            .replace("{DIR}", &dir.path().display().to_string())
            .replace("{PORT}", &port.to_string())
            .replace("{PUB_PORT}", &pub_port.to_string())
            .replace("{CERT}", &certs.cert.display().to_string())
            .replace("{KEY}", &certs.key.display().to_string());
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (apt-get install nginx libnginx-mod-nchan)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            addr,
            publish_url: format!("http://127.0.0.1:{pub_port}/pub/status"),
            _dir: dir,
        }
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        process_tree(self.child.id())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (a SIGKILL left them).
        stop_gently(&mut self.child);
    }
}

/// SIGTERM, a few seconds to exit, then SIGKILL.
fn stop_gently(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Bun's WebSocket server running `bench/peers/bun-pubsub.js`.
struct BunPeer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl BunPeer {
    fn start(certs: &relay_util::Certs, payload: &str) -> Option<BunPeer> {
        let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers");
        let bun = peers.join("node_modules/.bin/bun");
        if !bun.exists() {
            eprintln!("bun is missing: npm ci --prefix bench/peers (bench/run does)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("status.json");
        std::fs::write(&file, payload).expect("static");
        let port = relay_util::free_port();
        let child = Command::new(bun)
            .arg(peers.join("bun-pubsub.js"))
            .env("PORT", port.to_string())
            .env("CERT", &certs.cert)
            .env("KEY", &certs.key)
            .env("STATIC", &file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "bun did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(BunPeer {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for BunPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PUSHPIN_CONF: &str = include_str!("../bench/peers/pushpin.conf");

/// Pushpin (condure, zurl, pushpin-proxy, pushpin-handler) with its origin:
/// a small HTTP server in this process that answers each WebSocket-over-HTTP
/// OPEN with a GRIP subscription to `status` (the origin only works at
/// connect time; it is not counted in Pushpin's memory or CPU).
struct PushpinPeer {
    child: Child,
    addr: SocketAddr,
    publish_url: String,
    _origin: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl PushpinPeer {
    fn start(certs: &relay_util::Certs) -> Option<PushpinPeer> {
        if Command::new("pushpin").arg("--version").output().is_err() {
            eprintln!("pushpin is missing: apt-get install pushpin (bench/run does)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        for d in ["run", "log", "runner/certs"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let origin = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let listener = origin
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("origin");
        let origin_port = listener.local_addr().expect("addr").port();
        origin.spawn(async move {
            let app = axum::Router::new().fallback(grip_origin);
            let _ = axum::serve(listener, app).await;
        });
        let ports: Vec<u16> = (0..6).map(|_| relay_util::free_port()).collect();
        let conf = PUSHPIN_CONF
            .replace("{DIR}", &dir.path().display().to_string())
            .replace("{PORT}", &ports[0].to_string())
            .replace("{TLS_PORT}", &ports[1].to_string())
            .replace("{PUB_PORT}", &ports[2].to_string())
            .replace("{ZMQ_PULL}", &ports[3].to_string())
            .replace("{ZMQ_SUB}", &ports[4].to_string())
            .replace("{ZMQ_CMD}", &ports[5].to_string());
        let path = dir.path().join("pushpin.conf");
        std::fs::write(&path, conf).expect("conf");
        std::fs::write(
            dir.path().join("routes"),
            format!("* 127.0.0.1:{origin_port},over_http\n"),
        )
        .expect("routes");
        // condure reads `<name>.crt` / `<name>.key`; the runner names the
        // default identity after the port.
        let certs_dir = dir.path().join("runner/certs");
        std::fs::copy(
            &certs.cert,
            certs_dir.join(format!("default_{}.crt", ports[1])),
        )
        .expect("cert");
        std::fs::copy(
            &certs.key,
            certs_dir.join(format!("default_{}.key", ports[1])),
        )
        .expect("key");
        let child = Command::new("pushpin")
            .arg("--config")
            .arg(&path)
            .arg("--merge-output")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let addr: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let publish: SocketAddr = ([127, 0, 0, 1], ports[2]).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err()
            || std::net::TcpStream::connect(publish).is_err()
        {
            assert!(Instant::now() < deadline, "pushpin did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(PushpinPeer {
            child,
            addr,
            publish_url: format!("http://{publish}/publish/"),
            _origin: origin,
            _dir: dir,
        })
    }

    /// A publish as Pushpin's HTTP publishing API takes it.
    fn item(payload: &str) -> String {
        serde_json::json!({"items": [{"channel": "status",
            "formats": {"ws-message": {"content": payload}}}]})
        .to_string()
    }
}

impl Drop for PushpinPeer {
    fn drop(&mut self) {
        // The runner stops its services on SIGTERM; a kill would leave them.
        stop_gently(&mut self.child);
    }
}

/// The origin's side of WebSocket-over-HTTP: OPEN is accepted with a GRIP
/// subscription to the one topic; other events (DISCONNECT, CLOSE) need no
/// answer.
async fn grip_origin(body: axum::body::Bytes) -> impl axum::response::IntoResponse {
    let events = if body.starts_with(b"OPEN") {
        let control = r#"c:{"type":"subscribe","channel":"status"}"#;
        format!("OPEN\r\nTEXT {:x}\r\n{control}\r\n", control.len())
    } else {
        String::new()
    };
    (
        [
            ("content-type", "application/websocket-events"),
            ("sec-websocket-extensions", "grip"),
        ],
        events,
    )
}

/// A process and its children (nginx's workers, Pushpin's services).
fn process_tree(root: u32) -> Vec<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{root}/task/{root}/children")).unwrap_or_default();
    std::iter::once(root)
        .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
        .collect()
}

const NAMES: [&str; 4] = ["madoguchi-relay", "nginx + nchan", "Bun", "Pushpin"];

fn main() {
    if fanout::client_main() {
        return;
    }
    // Only the office end to end, at this many subscribers (issue 21).
    if let Some(n) = std::env::var("MADOGUCHI_BENCH_E2E_ONLY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        office_end_to_end(n);
        return;
    }
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("nginx is missing: apt-get install nginx libnginx-mod-nchan wrk");
        std::process::exit(1);
    }
    let mut ours = relay_bench::Target::start();
    let payload = fanout::status_payload();
    let nginx = Nginx::start(&ours.relay.certs, &payload);
    // bench/run measures against nchan only (the issue's peer; ≤ 15 min
    // on 2 cores); MADOGUCHI_BENCH_PEERS=all adds Bun and Pushpin.
    let all_peers = std::env::var("MADOGUCHI_BENCH_PEERS").as_deref() == Ok("all");
    let bun = all_peers
        .then(|| BunPeer::start(&ours.relay.certs, &payload))
        .flatten();
    let pushpin = all_peers
        .then(|| PushpinPeer::start(&ours.relay.certs))
        .flatten();
    let http = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(ours.relay.certs.ca_pem.as_bytes()).expect("ca"),
        )
        .build()
        .expect("client");
    let post_body = |url: &str, body: String| {
        let r = http.post(url).body(body).send().expect("peer publish");
        assert!(r.status().is_success(), "publish to {url}: {}", r.status());
    };
    let post = |url: &str| post_body(url, stamped(&payload));
    // Pushpin takes the payload wrapped in its publishing API's JSON.
    let push_pushpin = |url: &str| post_body(url, PushpinPeer::item(&stamped(&payload)));
    let bun_pub = bun
        .as_ref()
        .map(|b| format!("https://127.0.0.1:{}/pub", b.addr.port()));
    post(&nginx.publish_url);
    if let Some(u) = &bun_pub {
        post(u);
    }
    if let Some(pp) = &pushpin {
        push_pushpin(&pp.publish_url);
    }
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "peers benchmark — {} cores, payload {} bytes; all over TLS (same certificate) on loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        payload.len()
    );
    let ca = ours.relay.certs.ca.clone();
    let (our_addr, our_pid) = (ours.relay.public, ours.relay.pid());
    let mut results: Vec<(usize, [Option<Row>; 4])> = Vec::new();
    let mut lines: [Vec<String>; 4] = Default::default();
    for n in relay_bench::sizes() {
        let mut rows = [None; 4];
        let (line, a) = fan_out(
            n,
            our_addr,
            &ca,
            "/ws?topic=status",
            &|| vec![our_pid],
            &mut || ours.publish(),
        );
        lines[0].push(line);
        rows[0] = Some(a);
        std::thread::sleep(Duration::from_secs(2));
        let (line, b) = fan_out(
            n,
            nginx.addr,
            &ca,
            "/ws/status",
            &|| nginx.pids(),
            &mut || post(&nginx.publish_url),
        );
        lines[1].push(line);
        rows[1] = Some(b);
        std::thread::sleep(Duration::from_secs(2));
        if let (Some(bp), Some(u)) = (&bun, &bun_pub) {
            let pid = bp.child.id();
            let (line, c) = fan_out(n, bp.addr, &ca, "/ws", &|| vec![pid], &mut || post(u));
            lines[2].push(line);
            rows[2] = Some(c);
            std::thread::sleep(Duration::from_secs(2));
        }
        if let Some(pp) = &pushpin {
            let pid = pp.child.id();
            let (line, d) = fan_out(n, pp.addr, &ca, "/ws", &|| process_tree(pid), &mut || {
                push_pushpin(&pp.publish_url)
            });
            lines[3].push(line);
            rows[3] = Some(d);
            std::thread::sleep(Duration::from_secs(2));
        }
        results.push((n, rows));
    }
    for (i, name) in NAMES.iter().enumerate() {
        if lines[i].is_empty() {
            continue;
        }
        println!("\n{name}:\n{HEADER}");
        for l in &lines[i] {
            println!("{l}");
        }
    }
    println!("\nratios, ours / peer (below 1 is better for us):\n");
    println!("| subscribers | peer | connect all | p50 | p99 | last subscriber (worst publish) | memory per subscriber | CPU per 1k messages |");
    println!("|---|---|---|---|---|---|---|---|");
    let r = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "—".into()
        }
    };
    for (n, rows) in &results {
        let Some(a) = rows[0] else { continue };
        for (i, peer) in rows.iter().enumerate().skip(1) {
            let Some(b) = peer else { continue };
            println!(
                "| {n} | {} | {} | {} | {} | {} | {} | {} |",
                NAMES[i],
                r(a.connect_s, b.connect_s),
                r(a.p50_ms, b.p50_ms),
                r(a.p99_ms, b.p99_ms),
                r(a.last_ms, b.last_ms),
                r(a.per_sub_kib, b.per_sub_kib),
                r(a.cpu_per_1k, b.cpu_per_1k)
            );
        }
    }
    // Only the fan-out rows, e.g. to compare two relay builds against
    // nchan in alternating runs (MADOGUCHI_RELAY_BIN; issue 21).
    if std::env::var("MADOGUCHI_BENCH_FANOUT_ONLY").as_deref() == Ok("1") {
        return;
    }
    let svg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results/latency.svg");
    match plot(&results, &svg) {
        Ok(()) => println!("\nplot: {}", svg.display()),
        Err(e) => println!("\nplot not written: {e}"),
    }
    if let Some((n, rows)) = results.last() {
        scale_out(&mut ours, *n, rows[0], rows[1]);
    }
    office_end_to_end(results.last().map_or(1000, |(n, _)| *n));
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("\nwrk is missing (apt-get install wrk): static requests/s not measured");
        return;
    }
    let header = "Accept-Encoding: identity";
    let mut urls = vec![
        (NAMES[0], ours.relay.public_url("/displays/status.json")),
        (
            "nginx",
            format!(
                "https://127.0.0.1:{}/displays/status.json",
                nginx.addr.port()
            ),
        ),
    ];
    if let Some(b) = &bun {
        urls.push((
            NAMES[2],
            format!("https://127.0.0.1:{}/displays/status.json", b.addr.port()),
        ));
    }
    println!("\nstatic JSON over TLS, wrk -t2 -c64 -d10s, identity:\n");
    println!("| server | requests/s | p99 | ours / it |");
    println!("|---|---|---|---|");
    let mut first = None;
    for (name, url) in urls {
        if let Some((rps, p99)) = fanout::wrk(&url, header) {
            let base = *first.get_or_insert(rps);
            println!("| {name} | {rps:.0} | {p99} | {:.2} |", base / rps);
        }
    }
}

/// Scale-out: a second relay on loopback fed the same bundles (each
/// publish posted to both at once, as the office does to N relays), the
/// `n` subscribers split between the two. Every figure as a ratio to the
/// single relay and to nchan at the same `n`. Both relays, the clients and
/// nginx share the same cores here, so this shows that splitting costs
/// nothing and that the relays stay in step; the capacity that a second
/// machine adds is not measurable on one.
fn scale_out(a: &mut relay_bench::Target, n: usize, single: Option<Row>, nchan: Option<Row>) {
    let b = relay_bench::Target::start_quiet();
    a.publish_to(&[&b]);
    std::thread::sleep(Duration::from_secs(1));
    let pids = vec![a.relay.pid(), b.relay.pid()];
    let base = fanout::pss_kib(&pids);
    let half = n / 2;
    let t0 = Instant::now();
    let (ca_a, ca_b) = (a.relay.certs.ca.clone(), b.relay.certs.ca.clone());
    let (addr_a, addr_b) = (a.relay.public, b.relay.public);
    let (sa, sb) = std::thread::scope(|s| {
        let ja = s.spawn(|| fanout::Subscribers::connect(addr_a, &ca_a, "/ws?topic=status", half));
        let jb =
            s.spawn(|| fanout::Subscribers::connect(addr_b, &ca_b, "/ws?topic=status", n - half));
        (ja.join().expect("a"), jb.join().expect("b"))
    });
    let connect_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let per_sub = (fanout::pss_kib(&pids).saturating_sub(base) as f64) / n as f64;
    let cpu0 = fanout::cpu_seconds(&pids);
    let gap = Duration::from_millis((250 + n as u64 / 15).min(1500));
    let publishes = 20;
    for _ in 0..publishes {
        a.publish_to(&[&b]);
        std::thread::sleep(gap);
    }
    let cpu = fanout::cpu_seconds(&pids) - cpu0;
    let (oa, ob) = (sa.finish(), sb.finish());
    let mut h = oa.latency_us.clone();
    let _ = h.add(&ob.latency_us);
    let delivered = oa.delivered + ob.delivered;
    let last = oa
        .lasts
        .last()
        .copied()
        .max(ob.lasts.last().copied())
        .unwrap_or(0) as f64
        / 1000.0;
    let row = Row {
        connect_s,
        last_ms: last,
        per_sub_kib: per_sub,
        p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: h.max() as f64 / 1000.0,
        cpu_per_1k: cpu / (delivered as f64 / 1000.0).max(1e-9),
    };
    println!(
        "\nscale-out: two relays fed the same bundles, {n} subscribers split {half} / {}, {publishes} publishes (delivered {delivered} of {}):\n",
        n - half,
        n * publishes
    );
    println!("| against | connect all | p50 | p99 | last subscriber | memory per subscriber | CPU per 1k messages |");
    println!("|---|---|---|---|---|---|---|");
    let r = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "—".into()
        }
    };
    println!(
        "| absolute | {:.1} s | {:.2} ms | {:.2} ms | {:.1} ms | {:.1} KiB | {:.3} s |",
        row.connect_s, row.p50_ms, row.p99_ms, row.last_ms, row.per_sub_kib, row.cpu_per_1k
    );
    for (name, other) in [("one relay", single), ("nginx + nchan", nchan)] {
        let Some(o) = other else { continue };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            r(row.connect_s, o.connect_s),
            r(row.p50_ms, o.p50_ms),
            r(row.p99_ms, o.p99_ms),
            r(row.last_ms, o.last_ms),
            r(row.per_sub_kib, o.per_sub_kib),
            r(row.cpu_per_1k, o.cpu_per_1k)
        );
    }
}

/// Latency percentiles against subscribers for every server, as SVG.
fn plot(results: &[(usize, [Option<Row>; 4])], out: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    if results.is_empty() {
        return Err("no results".into());
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let max_n = results.iter().map(|r| r.0).max().unwrap_or(1) as f64;
    let max_ms = results
        .iter()
        .flat_map(|(_, rows)| rows.iter().flatten().map(|r| r.p99_ms))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(out, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "publish → receive latency, TLS WebSocket subscribers, 2 cores",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_n * 1.05, 0.0..max_ms * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .y_desc("ms")
        .draw()
        .map_err(|e| e.to_string())?;
    let colours = [
        RGBColor(31, 85, 184),
        RGBColor(200, 80, 30),
        RGBColor(40, 140, 60),
        RGBColor(140, 60, 160),
    ];
    for (peer, colour) in colours.iter().enumerate() {
        for (p99, label) in [(false, "p50"), (true, "p99")] {
            let pts: Vec<(f64, f64)> = results
                .iter()
                .filter_map(|(n, rows)| {
                    rows[peer].map(|r| (*n as f64, if p99 { r.p99_ms } else { r.p50_ms }))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            // p50 solid and thick, p99 thin with open markers.
            let style = ShapeStyle {
                color: colour.to_rgba(),
                filled: !p99,
                stroke_width: if p99 { 1 } else { 2 },
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(|e| e.to_string())?
                .label(format!("{} {label}", NAMES[peer]))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, style)))
                .map_err(|e| e.to_string())?;
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// The whole path a visitor's phone sees: a staff call at the office →
/// render → signed bundle → relay → a public WebSocket subscriber of the
/// mobile ticket page's topic. 50 calls, one at a time.
/// The whole road from a staff call to `n` phones (issue 21): a staff
/// call over HTTP on the office server → commit → site build → signed
/// bundle over HTTPS → relay → `n` public WebSocket subscribers of the
/// ticket page; each subscriber notes when the number served changed.
fn office_end_to_end(n: usize) {
    use serde_json::{json, Value};
    const CALLS: usize = 20;
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let key = relay_util::office_key(&key_file);
    // The limits the fan-out step gives the relay (`relay.rs`): the test
    // relay's own allow few connections per address.
    let relay = relay_util::start(
        &key,
        &format!(
            "connections = {c}\nconnections_per_ip = {c}\nheartbeat_s = 60\nsubscriber_queue = 16",
            c = n + 4000
        ),
    );
    let served = common::serve_args(
        dir.path(),
        &relay.office_config(),
        &["--signing-key", key_file.to_str().expect("utf-8")],
    );
    let mut office = served.child;
    let base = served.base;
    let http = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let v: Value = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "admin", "password": served.admin_password}))
        .send()
        .and_then(|r| r.json())
        .expect("login");
    let csrf = v["csrf_token"].as_str().unwrap_or_default().to_string();
    let cmd = |body: Value| -> Value {
        http.post(format!("{base}/api/commands"))
            .header("X-CSRF-Token", &csrf)
            .json(&body)
            .send()
            .and_then(|r| r.json())
            .expect("command")
    };
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("jst"))
        .date_naive();
    cmd(json!({"command": "open_day", "date": today}));
    cmd(json!({"command": "open_counter", "counter": 10}));
    for _ in 0..CALLS + 5 {
        cmd(json!({"command": "issue_ticket", "category": "idou"}));
    }
    // The relay has the day once its ticket page lists someone waiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = relay
            .http()
            .get(relay.public_url("/displays/ticket.json"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        if page.contains("\"waiting\":[[") || page.contains("\"waiting\":[1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never showed the office's day: {}",
            page.chars().take(300).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let subs = fanout::Subscribers::connect_with(
        relay.public,
        &relay.certs.ca,
        "/ws?topic=ticket",
        n,
        true,
    );
    let connect_s = subs.connect_s;
    std::thread::sleep(Duration::from_secs(2));
    let gap = Duration::from_millis((300 + n as u64 / 15).min(1500));
    let mut called = std::collections::HashMap::new();
    for _ in 0..CALLS {
        let t = fanout::now_ns() / 1000;
        let v = cmd(json!({"command": "call_next", "counter": 10}));
        if let Some(number) = v["ticket"].as_u64() {
            called.insert(number, t);
        }
        std::thread::sleep(gap);
        cmd(json!({"command": "complete", "counter": 10}));
        std::thread::sleep(gap);
    }
    let raw = subs.finish_raw();
    let _ = office.kill();
    let _ = office.wait();
    let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("hist");
    let mut last: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut delivered = 0usize;
    for (number, got) in raw {
        let Some(t) = called.get(&number) else {
            continue;
        };
        let us = got.saturating_sub(*t).max(1);
        let _ = h.record(us);
        delivered += 1;
        let l = last.entry(number).or_insert(0);
        *l = (*l).max(us);
    }
    let worst_last = last.values().max().copied().unwrap_or(0);
    println!(
        "\noffice end to end (staff call over HTTP → commit → site build → signed bundle over HTTPS → relay → {n} public WebSocket subscribers of the ticket page), {CALLS} calls, connect all {connect_s:.1} s, delivered {delivered} of {}: p50 {:.2} ms, p99 {:.2} ms, last subscriber (worst call) {:.2} ms",
        n * called.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        worst_last as f64 / 1000.0
    );
}
