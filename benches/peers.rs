//! Benchmarks against real peers, side by side in one run (issue 8):
//! our relay and nginx with the nchan module (Debian packages `nginx` and
//! `libnginx-mod-nchan`, config in `bench/peers/nginx-nchan.conf`), both on
//! TLS with the same certificate, the same subscribers (`fanout.rs`: TLS
//! WebSocket clients in several processes), the same payload and publishes;
//! and both serving the same static JSON to `wrk`. Prints each side's rows
//! and the ratios ours / nchan.
//!
//! `cargo bench --bench peers` (MADOGUCHI_BENCH_SUBSCRIBERS as for the
//! relay bench). Loopback only; bounded in count and time. Pushpin and Bun,
//! the plot and the profile are not built yet (see BENCHMARKS.md).

#![allow(missing_debug_implementations)]

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

impl Nginx {
    fn start(certs: &relay_util::Certs, payload: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tmp");
        for d in ["site/displays", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        std::fs::write(dir.path().join("site/displays/status.json"), payload).expect("site");
        let (port, pub_port) = (free_port(), free_port());
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
        let master = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        std::iter::once(master)
            .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    if fanout::client_main() {
        return;
    }
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("nginx is missing: apt-get install nginx libnginx-mod-nchan wrk");
        std::process::exit(1);
    }
    let mut ours = relay_bench::Target::start();
    let payload = fanout::status_payload();
    let nginx = Nginx::start(&ours.relay.certs, &payload);
    let http = reqwest::blocking::Client::new();
    let mut nchan_publish = || {
        let r = http
            .post(&nginx.publish_url)
            .body(stamped(&payload))
            .send()
            .expect("nchan publish");
        assert!(r.status().is_success(), "nchan publish: {}", r.status());
    };
    nchan_publish();
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "peers benchmark — {} cores, payload {} bytes; both over TLS (same certificate) on loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        payload.len()
    );
    let ca = ours.relay.certs.ca.clone();
    let (our_addr, our_pid) = (ours.relay.public, ours.relay.pid());
    let mut results: Vec<(usize, Row, Row)> = Vec::new();
    let mut our_lines = Vec::new();
    let mut nchan_lines = Vec::new();
    for n in relay_bench::sizes() {
        let (line, a) = fan_out(
            n,
            our_addr,
            &ca,
            "/ws?topic=status",
            &|| vec![our_pid],
            &mut || ours.publish(),
        );
        our_lines.push(line);
        std::thread::sleep(Duration::from_secs(2));
        let (line, b) = fan_out(
            n,
            nginx.addr,
            &ca,
            "/ws/status",
            &|| nginx.pids(),
            &mut nchan_publish,
        );
        nchan_lines.push(line);
        std::thread::sleep(Duration::from_secs(2));
        results.push((n, a, b));
    }
    println!("\nmadoguchi-relay:\n{HEADER}");
    for l in &our_lines {
        println!("{l}");
    }
    println!(
        "\nnginx + nchan ({} processes):\n{HEADER}",
        nginx.pids().len()
    );
    for l in &nchan_lines {
        println!("{l}");
    }
    println!("\nratios, ours / nchan (below 1 is better for us):\n");
    println!("| subscribers | p50 | p99 | memory per subscriber | CPU per 1k messages |");
    println!("|---|---|---|---|---|");
    for (n, a, b) in &results {
        let r = |x: f64, y: f64| {
            if y > 0.0 {
                format!("{:.2}", x / y)
            } else {
                "—".into()
            }
        };
        println!(
            "| {n} | {} | {} | {} | {} |",
            r(a.p50_ms, b.p50_ms),
            r(a.p99_ms, b.p99_ms),
            r(a.per_sub_kib, b.per_sub_kib),
            r(a.cpu_per_1k, b.cpu_per_1k)
        );
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("\nwrk is missing (apt-get install wrk): static requests/s not measured");
        return;
    }
    let header = "Accept-Encoding: identity";
    let a = fanout::wrk(&ours.relay.public_url("/displays/status.json"), header);
    let b = fanout::wrk(
        &format!(
            "https://127.0.0.1:{}/displays/status.json",
            nginx.addr.port()
        ),
        header,
    );
    println!("\nstatic JSON over TLS, wrk -t2 -c64 -d10s, identity:\n");
    println!("| server | requests/s | p99 |");
    println!("|---|---|---|");
    if let (Some((ra, pa)), Some((rb, pb))) = (a, b) {
        println!("| madoguchi-relay | {ra:.0} | {pa} |");
        println!("| nginx | {rb:.0} | {pb} |");
        println!("| ratio ours / nginx | {:.2} | |", ra / rb);
    }
}
