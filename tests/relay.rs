//! The internet relay end to end (R6, R11), real binaries, real TLS on
//! loopback: bundles are refused unless signed by the office key, newer
//! than the last and well formed, and a refusal changes nothing; the last
//! accepted bundle survives a restart; expiry shows as stale; the public
//! side withstands traversal, odd methods, huge headers, slow clients,
//! connection floods and data frames from subscribers; a call at the office
//! reaches WebSocket and SSE subscribers through the relay, and a relay
//! that cannot be reached is a fault on the office's admin page.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use madoguchi_wire::bundle::{pack, Header, Kind};
use madoguchi_wire::UnixSeconds;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::relay_util::{self, Relay, ORIGIN};
use crate::server::{cmd, Server};

/// Waits (30 s at most) for the office's admin page to show `needle`.
fn wait_for_fault(c: &reqwest::blocking::Client, s: &Server, needle: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = c
            .get(s.url("/admin"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        if page.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now() -> i64 {
    UnixSeconds::now().0
}

fn header(seq: u64, kind: Kind, base: u64, expires_in: i64) -> Header {
    Header {
        seq,
        created: UnixSeconds(now()),
        expires: UnixSeconds(now() + expires_in),
        kind,
        base,
        files: vec![],
        removed: vec![],
        reset: None,
    }
}

fn site(status: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("index.html".into(), format!("<p>{status}</p>").into_bytes()),
        (
            "displays/status.json".into(),
            format!(
                "{{\"data\":{{\"s\":\"{status}\"}},\"pad\":\"{}\"}}",
                "x".repeat(2000)
            )
            .into_bytes(),
        ),
        ("site/display.js".into(), b"\"use strict\";".to_vec()),
    ]
}

fn post(r: &Relay, bytes: Vec<u8>) -> (u16, Value) {
    let big = bytes.len() > 256 * 1024;
    match r.http().post(r.ingest_url("/bundle")).body(bytes).send() {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.json().unwrap_or(Value::Null))
        }
        // The relay answers 413 and closes without reading an oversized
        // body, so the sender may see its write cut off instead.
        Err(e) if big && e.is_request() => (413, json!({"code": "too_large"})),
        Err(e) => panic!("ingest: {e}"),
    }
}

fn index(r: &Relay) -> String {
    r.http()
        .get(r.public_url("/"))
        .send()
        .and_then(|x| x.text())
        .unwrap_or_default()
}

#[test]
fn only_signed_newer_well_formed_bundles_change_the_site_and_it_survives_restarts() {
    let office = SigningKey::from_bytes(&[7; 32]);
    let stranger = SigningKey::from_bytes(&[8; 32]);
    let mut r = relay_util::start(&office, "");
    let (s, v) = post(
        &r,
        pack(&header(10, Kind::Full, 0, 600), &site("A"), &office),
    );
    assert_eq!((s, v["outcome"].as_str()), (200, Some("accepted")), "{v}");
    assert_eq!(index(&r), "<p>A</p>");

    // (what, bundle, status, code, whether its signature verified: only
    // then does the answer carry the relay's sequence.)
    let refused = [
        (
            "wrong key",
            pack(&header(11, Kind::Full, 0, 600), &site("B"), &stranger),
            403,
            "bad_signature",
            false,
        ),
        (
            "same sequence",
            pack(&header(10, Kind::Full, 0, 600), &site("B"), &office),
            409,
            "old_sequence",
            true,
        ),
        (
            "older sequence",
            pack(&header(3, Kind::Full, 0, 600), &site("B"), &office),
            409,
            "old_sequence",
            true,
        ),
        (
            "delta on a base it does not hold",
            pack(&header(12, Kind::Delta, 9, 600), &site("B"), &office),
            409,
            "wrong_base",
            true,
        ),
        (
            "oversized",
            pack(
                &header(13, Kind::Full, 0, 600),
                &[("index.html".into(), vec![b'x'; 300 * 1024])],
                &office,
            ),
            413,
            "too_large",
            false,
        ),
        (
            "not a bundle",
            b"GET / HTTP/1.1".to_vec(),
            400,
            "malformed",
            false,
        ),
        (
            "a pushed file over the push limit",
            pack(
                &header(14, Kind::Full, 0, 600),
                &[("displays/status.json".into(), vec![b' '; 40 * 1024])],
                &office,
            ),
            400,
            "push_too_large",
            true,
        ),
    ];
    for (what, bytes, want, code, verified) in refused {
        let (s, v) = post(&r, bytes);
        assert_eq!(s, want, "{what}: {v}");
        assert_eq!(v["code"], code, "{what}: {v}");
        if verified {
            assert_eq!(v["last_seq"], 10, "{what}: {v}");
            assert_eq!(v["relay"], relay_util::RELAY_NAME, "{what}: {v}");
        } else {
            assert!(v.get("last_seq").is_none(), "{what} told a stranger: {v}");
        }
        assert!(v.get("detail").is_none(), "{what}: {v}");
        assert_eq!(index(&r), "<p>A</p>", "{what} changed the site");
    }
    let good = pack(&header(11, Kind::Full, 0, 600), &site("B"), &office);
    for cut in [good.len() - 1, good.len() / 2, 20] {
        let (s, _) = post(&r, good[..cut].to_vec());
        assert!(s == 400 || s == 403, "truncated to {cut}: {s}");
        assert_eq!(index(&r), "<p>A</p>");
    }
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    assert_eq!(post(&r, flipped).0, 403);

    // A delta on what it holds is served; so is a removal.
    let (s, v) = post(
        &r,
        pack(
            &header(20, Kind::Delta, 10, 600),
            &[("index.html".into(), b"<p>C</p>".to_vec())],
            &office,
        ),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(index(&r), "<p>C</p>");

    let metrics = r
        .http()
        .get(r.ingest_url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("madoguchi_relay_bundles_accepted_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("madoguchi_relay_bundles_rejected_total 11"),
        "{metrics}"
    );
    assert_eq!(
        r.http()
            .get(r.public_url("/metrics"))
            .send()
            .expect("m")
            .status(),
        404
    );

    // A restart serves the last accepted site and cannot be rolled back.
    r.restart();
    assert_eq!(index(&r), "<p>C</p>");
    let (s, v) = post(
        &r,
        pack(&header(15, Kind::Full, 0, 600), &site("old"), &office),
    );
    assert_eq!((s, v["last_seq"].as_u64()), (409, Some(20)), "{v}");
    assert_eq!(index(&r), "<p>C</p>");

    // Past its expiry the data is shown as stale, and subscribers are told.
    let (s, _) = post(&r, pack(&header(21, Kind::Full, 0, 3), &site("D"), &office));
    assert_eq!(s, 200);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let mut ws = r.subscribe("status", ORIGIN).await.expect("subscribe");
        let first = next_text(&mut ws, Duration::from_secs(5))
            .await
            .expect("current");
        assert!(first.contains("\"s\":\"D\""), "{first}");
        let stale = next_text(&mut ws, Duration::from_secs(8))
            .await
            .expect("stale");
        assert_eq!(stale, "{\"stale\":true}");
    });
    let res = r
        .http()
        .get(r.public_url("/displays/status.json"))
        .send()
        .expect("json");
    assert_eq!(
        res.headers().get("x-madoguchi-stale").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// The next text message that is not a heartbeat.
async fn next_text(ws: &mut Wss, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            if !t.contains("\"heartbeat\"") {
                return Some(t.to_string());
            }
        }
    }
}

/// Sends raw bytes on a TLS connection and reads until the relay closes it
/// or `wait` passes; returns what was read and whether it closed.
async fn raw(r: &Relay, request: &[u8], wait: Duration) -> (String, bool) {
    let Ok(mut s) = r.connect().await else {
        return (String::new(), true);
    };
    if s.write_all(request).await.is_err() {
        return (String::new(), true);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[test]
fn the_public_side_withstands_what_the_internet_sends() {
    let office = SigningKey::from_bytes(&[7; 32]);
    let r = relay_util::start(
        &office,
        "connections_per_ip = 40\ntls_handshake_timeout_s = 2\nheader_read_timeout_s = 2\nidle_timeout_s = 30",
    );
    assert_eq!(
        post(
            &r,
            pack(&header(1, Kind::Full, 0, 600), &site("A"), &office)
        )
        .0,
        200
    );
    let http = r.http();

    // Headers, caching, compression, conditional GET.
    let res = http
        .get(r.public_url("/displays/status.json"))
        .header("Accept-Encoding", "br, gzip")
        .send()
        .expect("get");
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-encoding"], "br");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h["strict-transport-security"]
        .to_str()
        .expect("hsts")
        .starts_with("max-age="));
    assert!(h["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("default-src 'none'"));
    assert!(h.get("server").is_none(), "no banner");
    let etag = h["etag"].clone();
    let res = http
        .get(r.public_url("/displays/status.json"))
        .header("Accept-Encoding", "br")
        .header("If-None-Match", etag)
        .send()
        .expect("304");
    assert_eq!(res.status(), 304);
    let res = http
        .get(r.public_url("/displays/status.json"))
        .header("Accept-Encoding", "gzip")
        .send()
        .expect("gz");
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let res = http
        .get(r.public_url("/displays/status.json"))
        .send()
        .expect("identity");
    assert!(res.headers().get("content-encoding").is_none());
    assert!(res.text().expect("body").contains("\"s\":\"A\""));

    // Nothing outside the bundle, no listing, GET and HEAD only.
    for p in [
        "/site/",
        "/site",
        "/../relay.toml",
        "/%2e%2e/relay.toml",
        "/site/../relay.toml",
        "/state/last-seq",
        "/displays/board.json",
        "/relay.key",
    ] {
        let res = http.get(r.public_url(p)).send().expect("get");
        assert_eq!(res.status(), 404, "{p}");
        let body = res.text().expect("body");
        assert!(
            !body.contains("PRIVATE KEY") && !body.contains("state_dir"),
            "{p}: {body}"
        );
    }
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        let res = http
            .request(m.parse().expect("method"), r.public_url("/"))
            .send()
            .expect("req");
        assert_eq!(res.status(), 405, "{m}");
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }
    assert_eq!(
        http.post(r.ingest_url("/metrics"))
            .send()
            .expect("m")
            .status(),
        404
    );

    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        // A huge header is refused, not buffered without end.
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let (answer, closed) = raw(&r, big.as_bytes(), Duration::from_secs(5)).await;
        assert!(closed, "huge header kept open");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );

        // Slowloris: a request head that never ends is cut at the header
        // timeout; a client that never starts TLS at the handshake timeout.
        let t = Instant::now();
        let (_, closed) = raw(&r, b"GET / HTTP/1.1\r\nHost: x\r\n", Duration::from_secs(8)).await;
        assert!(
            closed && t.elapsed() < Duration::from_secs(6),
            "slow header: {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        let mut tcp = tokio::net::TcpStream::connect(r.public).await.expect("tcp");
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(8), tcp.read(&mut b)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "silent client not closed: {n:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(6));

        // WebSocket: exact Origin, known topics only, no data frames, no
        // permessage-deflate.
        assert!(r.subscribe("status", "https://evil.example").await.is_err());
        assert!(r
            .subscribe("status", "https://jokyo.example.test.evil.example")
            .await
            .is_err());
        assert!(r.subscribe("nonexistent", ORIGIN).await.is_err());
        let mut ws = r.subscribe("status", ORIGIN).await.expect("subscribe");
        assert!(next_text(&mut ws, Duration::from_secs(5))
            .await
            .expect("current")
            .contains("\"s\":\"A\""));
        ws.send(Message::text("hello")).await.expect("send");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert_eq!(closed, Ok(true), "a data frame must close the connection");

        // A flood from one address: beyond the per-address limit new
        // connections are dropped at once; the relay keeps serving and its
        // memory stays bounded.
        let rss_before = r.rss_kib();
        let mut held = Vec::new();
        for _ in 0..40 {
            if let Ok(s) = r.connect().await {
                held.push(s);
            }
        }
        assert!(
            held.len() >= 39,
            "only {} of the allowed connections",
            held.len()
        );
        let (answer, closed) = raw(
            &r,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(3),
        )
        .await;
        assert!(closed && answer.is_empty(), "over the limit: {answer}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_after = r.rss_kib();
        assert!(
            rss_after < rss_before + 32 * 1024,
            "RSS {rss_before} -> {rss_after} KiB"
        );
    });
    assert_eq!(index(&r), "<p>A</p>", "still serving after all that");
}

#[test]
fn a_call_at_the_office_reaches_public_subscribers_through_the_relay() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let mut relay = relay_util::start(&relay_util::office_key(&key_file), "");
    let s = Server::start_args(
        Some(&relay.office_config()),
        &["--signing-key", key_file.to_str().expect("utf-8")],
    );
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, 200, "{v}");

    // The public subset arrives, and only it.
    let http = relay.http();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http
        .get(relay.public_url("/m"))
        .send()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the office never published");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (path, want) in [
        ("/", 200),
        ("/m", 200),
        ("/site/display.js", 200),
        ("/queues.css", 200),
        ("/displays/ticket.json", 200),
        ("/forecast", 200),
        ("/forecast.json", 200),
        ("/site/style.css", 200),
        ("/displays/board.json", 404),
        ("/displays/counter/10.json", 404),
        ("/api/status", 404),
        ("/staff", 404),
    ] {
        assert_eq!(
            http.get(relay.public_url(path))
                .send()
                .expect("get")
                .status(),
            want,
            "{path}"
        );
    }

    // The congestion forecast (R6) as static pages that link each other.
    let page = http
        .get(relay.public_url("/forecast"))
        .send()
        .expect("get")
        .text()
        .expect("text");
    assert!(page.contains("混雑予想"), "{page}");
    // (minijinja writes "/" in attributes as "&#x2f;", as browsers read it.)
    let page = page.replace("&#x2f;", "/");
    assert!(
        !page.contains("?kind="),
        "links must be static files: {page}"
    );
    for link in page
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
        .filter(|h| h.starts_with("/forecast/"))
    {
        assert_eq!(
            http.get(relay.public_url(link))
                .send()
                .expect("get")
                .status(),
            200,
            "{link}"
        );
    }

    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let mut ws = relay.subscribe("ticket", ORIGIN).await.expect("ws");
        next_text(&mut ws, Duration::from_secs(5)).await.expect("current");
        let sse = relay.connect().await.expect("tls");
        let mut sse = sse;
        sse.write_all(b"GET /events?topic=status HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").await.expect("sse");
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), sse.read(&mut buf)).await.expect("sse head").expect("read");
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");

        let t = Instant::now();
        let (st, v) = tokio::task::block_in_place(|| {
            cmd(&c, &s, &csrf, json!({"command": "call_next", "counter": 10}))
        });
        assert_eq!(st, 200, "{v}");
        let number = v["events"].to_string();
        let mut got_ws = None;
        while got_ws.is_none() {
            let m = next_text(&mut ws, Duration::from_secs(5)).await.expect("ws update");
            let data: Value = serde_json::from_str(&m).expect("json");
            if data["data"]["queues"].as_array().is_some_and(|qs| qs.iter().any(|q| q["serving"].as_array().is_some_and(|s| !s.is_empty()))) {
                got_ws = Some(t.elapsed());
            }
        }
        // The SSE stream carries the same change.
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let serving = |t: &str| {
            t.match_indices("\"serving\":[")
                .any(|(i, m)| t[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
        };
        while !serving(&text) {
            let n = tokio::time::timeout_at(deadline, sse.read(&mut buf)).await.expect("sse update").expect("read");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(got_ws.expect("ws") < Duration::from_secs(3), "call took {got_ws:?} ({number})");
    });

    // A relay that cannot be reached is a fault on the admin page; its
    // return too, and it catches up with a full bundle.
    relay.stop();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    wait_for_fault(&c, &s, "unreachable", "no relay fault recorded");
    relay.restart();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    wait_for_fault(&c, &s, "reachable again", "recovery not recorded");
    let waiting: Value = http
        .get(relay.public_url("/displays/ticket.json"))
        .send()
        .expect("get")
        .json()
        .expect("json");
    let n: usize = waiting["data"]["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["waiting"].as_array().map_or(0, |w| w.len()))
        .sum();
    assert_eq!(n, 2, "the relay caught up: {waiting}");
}

/// testssl.sh (Debian's package, installed by scripts/test) against the
/// public listener: no protocol below TLS 1.2, no weak cipher category, and
/// no finding it rates medium or worse. Needs testssl.sh: a system test.
#[cfg(feature = "system-tests")]
#[test]
fn testssl_finds_no_weak_protocol_or_cipher() {
    let Some(testssl) = ["testssl", "testssl.sh"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok()
    }) else {
        panic!("testssl.sh is not installed (scripts/test installs it)");
    };
    let office = SigningKey::from_bytes(&[7; 32]);
    let r = relay_util::start(&office, "");
    assert_eq!(
        post(
            &r,
            pack(&header(1, Kind::Full, 0, 600), &site("A"), &office)
        )
        .0,
        200
    );
    let out = tempfile::tempdir().expect("tmp");
    let json = out.path().join("testssl.json");
    let run = std::process::Command::new(testssl)
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--sneaky",
            "-p",
            "-s",
            "-f",
            "-U",
            "--jsonfile",
        ])
        .arg(&json)
        .arg(r.public_url("/"))
        .output()
        .expect("testssl");
    let findings: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).expect("json output"))
        .unwrap_or_else(|e| {
            panic!(
                "testssl output: {e}\n{}",
                String::from_utf8_lossy(&run.stdout)
            )
        });
    let get = |id: &str| {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or("")
            .to_string()
    };
    for p in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(get(p).starts_with("not offered"), "{p}: {}", get(p));
    }
    assert!(
        get("TLS1_2").starts_with("offered"),
        "TLS1_2: {}",
        get("TLS1_2")
    );
    assert!(
        get("TLS1_3").starts_with("offered"),
        "TLS1_3: {}",
        get("TLS1_3")
    );
    for c in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert!(get(c).starts_with("not offered"), "{c}: {}", get(c));
    }
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("MEDIUM" | "HIGH" | "CRITICAL")))
        .map(|f| format!("{} {} {}", f["id"], f["severity"], f["finding"]))
        .collect();
    assert!(bad.is_empty(), "testssl.sh findings: {bad:#?}");
}

/// R2 through the relay in real Chromium: the mobile ticket page opened
/// from the QR code's address shows people ahead and the expected wait,
/// follows calls live over the relay's WebSocket, and once the number has
/// passed shows 「職員に声をおかけください」. Needs Chromium: a system test.
#[cfg(feature = "system-tests")]
#[test]
fn the_mobile_ticket_page_through_the_relay_follows_the_queue_in_a_real_browser() {
    use crate::util::today;
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start_on(
        &relay_util::office_key(&key_file),
        "",
        relay_util::free_port(),
    );
    let public = relay.public_url("");
    let s = Server::start_args(
        Some(&relay.office_config()),
        &[
            "--signing-key",
            key_file.to_str().expect("utf-8"),
            "--public-url",
            &public,
        ],
    );
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    let mut numbers = Vec::new();
    for _ in 0..3 {
        let (st, v) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
        assert_eq!(st, 200, "{v}");
        numbers.push(
            v["ticket"]
                .as_u64()
                .unwrap_or_else(|| panic!("number in {v}")),
        );
    }
    // The QR code on the ticket points at the relay.
    let (_, printed) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "koseki"}),
    );
    assert!(
        printed.to_string().contains(&format!("{public}/m#")),
        "{printed}"
    );

    let driver = crate::webdriver::Driver::start();
    let phone = driver.session_with(&["--ignore-certificate-errors"]);
    let mine = numbers[2];
    phone.goto(&relay.public_url(&format!("/m#{}/{mine}", today())));
    phone.click("button[data-set-lang=ja]");
    phone.wait_text("#mine-state", "お待ちください");
    phone.wait_text("#mine-ahead", "2 人");
    assert!(
        phone.text("#mine-wait").contains("約"),
        "{}",
        phone.text("#mine-wait")
    );
    let metrics = relay
        .http()
        .get(relay.ingest_url("/metrics"))
        .send()
        .expect("m")
        .text()
        .expect("t");
    assert!(
        metrics.contains("madoguchi_relay_websocket_subscribers 1"),
        "{metrics}"
    );

    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    phone.wait_text("#mine-ahead", "1 人");
    for _ in 0..2 {
        cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
        cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "call_next", "counter": 10}),
        );
    }
    phone.wait_text("#mine-state", "10 番窓口へお越しください");
    cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
    phone.wait_text("#mine-state", "職員に声をおかけください");
    let png = phone.screenshot();
    assert!(png.starts_with(b"\x89PNG"));
    if std::env::var_os("MADOGUCHI_SCREENSHOTS").is_some() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/docs/screenshots/mobile-ticket-relay.png"
            ),
            png,
        )
        .expect("png");
    }
}
