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
        relay: crate::relay_util::RELAY_NAME.into(),
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
    match r
        .http()
        .post(r.ingest_url("/bundle"))
        .header(madoguchi_wire::auth::HEADER, r.office_head())
        .body(bytes)
        .send()
    {
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
        // A new SSE subscriber is told at once, right after the current
        // page, not at its first heartbeat (relay red team F8).
        let mut sse = r.connect().await.expect("tls");
        sse.write_all(b"GET /events?topic=status HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .expect("sse");
        let mut text = String::new();
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while !text.contains("data: {\"stale\":true}") {
            let n = tokio::time::timeout_at(deadline, sse.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no stale marker within 3 s: {text}"))
                .expect("read");
            assert!(n > 0, "the stream ended: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(text.contains("\"s\":\"D\""), "the current page first: {text}");
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
    // Pages only (relay_heads.rs): JSON links to nothing.
    assert!(h.get("referrer-policy").is_none());
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
        &[
            "--signing-key",
            key_file.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
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
/// follows calls live over the relay's WebSocket, and once the visitor has
/// been served shows 「受付は終わりました」. Needs Chromium: a system test.
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
            "--listen",
            "127.0.0.1:0",
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
    // A range in words, or — an office with no history yet, as here —
    // plainly that there is no estimate yet (issue 19).
    let wait = phone.text("#mine-wait");
    assert!(
        wait.contains("およそ") || wait.contains("目安はまだお出しできません"),
        "{wait}"
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
    // Served: the page says the visit is over (browser red team F4).
    cmd(&c, &s, &csrf, json!({"command": "complete", "counter": 10}));
    phone.wait_text("#mine-state", "受付は終わりました");
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

/// The office's sequence as it makes it: its clock in milliseconds.
fn now_ms() -> u64 {
    madoguchi_wire::UnixMillis::now().0
}

/// A header as the office makes one, with `created` moved by `created_in`
/// seconds and a lifetime of `life` seconds.
fn timed(seq: u64, created_in: i64, life: i64) -> Header {
    let created = now().saturating_add(created_in);
    Header {
        relay: crate::relay_util::RELAY_NAME.into(),
        seq,
        created: UnixSeconds(created),
        expires: UnixSeconds(created.saturating_add(life)),
        kind: Kind::Full,
        base: 0,
        files: vec![],
        removed: vec![],
        reset: None,
    }
}

#[test]
fn far_ahead_future_and_expired_bundles_are_refused_and_a_signed_reset_recovers_a_stuck_relay() {
    let office = SigningKey::from_bytes(&[7; 32]);
    let mut r = relay_util::start(&office, "");
    let first = now_ms();
    let (s, v) = post(&r, pack(&timed(first, 0, 60), &site("A"), &office));
    assert_eq!(s, 200, "{v}");

    // Each rule its own code; the site and the held sequence unchanged.
    for (what, h, code) in [
        ("2^64-1", timed(u64::MAX, 0, 60), "sequence_too_far_ahead"),
        (
            "an hour ahead",
            timed(now_ms() + 3_600_000, 0, 60),
            "sequence_too_far_ahead",
        ),
        (
            "made in an hour",
            timed(now_ms(), 3600, 60),
            "created_in_future",
        ),
        (
            "ten years' life",
            timed(now_ms(), 0, 10 * 365 * 86_400),
            "lifetime_too_long",
        ),
        (
            "expires at i64::MAX",
            timed(now_ms(), 0, i64::MAX),
            "lifetime_too_long",
        ),
        ("already expired", timed(now_ms(), -120, 60), "expired"),
    ] {
        let (s, v) = post(&r, pack(&h, &site("X"), &office));
        assert_eq!(v["code"], code, "{what}: {s} {v}");
        assert_eq!(v["last_seq"].as_u64(), Some(first), "{what}: {v}");
        assert_eq!(index(&r), "<p>A</p>", "{what} was applied");
    }
    assert_eq!(
        r.metric("madoguchi_relay_bundles_refused_total{code=\"expired\"}"),
        Some(1)
    );
    // ... and the office's next bundle is taken.
    let (s, v) = post(&r, pack(&timed(now_ms(), 0, 60), &site("B"), &office));
    assert_eq!((s, &v["outcome"]), (200, &json!("accepted")), "{v}");
    assert_eq!(index(&r), "<p>B</p>");
    assert_eq!(r.metric("madoguchi_relay_sequence_impossible"), Some(0));

    // A relay that accepted 2^64-1 before these rules (its old `last-seq`
    // file) says so, and refuses the office with a code that asks for a reset.
    r.stop();
    std::fs::write(r.state_dir().join("last-seq"), u64::MAX.to_string()).expect("w");
    r.restart();
    assert_eq!(r.metric("madoguchi_relay_sequence_impossible"), Some(1));
    let (s, v) = post(&r, pack(&timed(now_ms(), 0, 60), &site("C"), &office));
    assert_eq!(
        (s, &v["code"], v["last_seq"].as_u64()),
        (409, &json!("held_sequence_impossible"), Some(u64::MAX)),
        "{v}"
    );
    let reset = |relay: &str, held: u64, kind: Kind| {
        let mut h = timed(now_ms(), 0, 60);
        h.kind = kind;
        h.reset = Some(madoguchi_wire::Reset {
            relay: relay.into(),
            held,
        });
        pack(&h, &site("R"), &office)
    };
    for (what, bytes) in [
        ("another relay", reset("other-relay", u64::MAX, Kind::Full)),
        (
            "another held sequence",
            reset(relay_util::RELAY_NAME, 5, Kind::Full),
        ),
    ] {
        let (s, v) = post(&r, bytes);
        assert_eq!(
            (s, &v["code"]),
            (409, &json!("reset_mismatch")),
            "{what}: {v}"
        );
    }
    assert_eq!(
        post(&r, reset(relay_util::RELAY_NAME, u64::MAX, Kind::Delta)).0,
        400,
        "a reset must be a full bundle"
    );
    assert_eq!(index(&r), "<p>B</p>");
    let good_reset = reset(relay_util::RELAY_NAME, u64::MAX, Kind::Full);
    let (s, v) = post(&r, good_reset.clone());
    assert_eq!(s, 200, "{v}");
    assert_eq!(index(&r), "<p>R</p>");
    assert_eq!(r.metric("madoguchi_relay_resets_total"), Some(1));
    assert_eq!(r.metric("madoguchi_relay_sequence_impossible"), Some(0));
    let (s, v) = post(&r, good_reset.clone());
    assert_eq!(v["code"], "reset_mismatch", "a replayed reset: {s} {v}");
    // Nothing on disk names the old sequence: a restart keeps the reset.
    r.restart();
    assert_eq!(r.metric("madoguchi_relay_sequence_impossible"), Some(0));
    assert!(r
        .metric("madoguchi_relay_last_seq")
        .is_some_and(|s| s < now_ms()));
    let (s, v) = post(&r, good_reset);
    assert_eq!(
        v["code"], "reset_mismatch",
        "replayed after a restart: {s} {v}"
    );
    let (s, v) = post(&r, pack(&timed(now_ms(), 0, 60), &site("D"), &office));
    assert_eq!(s, 200, "{v}");
    assert_eq!(index(&r), "<p>D</p>");
}

#[test]
fn a_delta_flood_stays_within_the_configured_chain_and_a_full_bundle_prunes_it() {
    let office = SigningKey::from_bytes(&[7; 32]);
    let r = relay_util::start_with(&office, "", "max_deltas = 6\nmax_delta_bytes = 200000", 0);
    let mut held = now_ms();
    assert_eq!(
        post(&r, pack(&timed(held, 0, 60), &site("A"), &office)).0,
        200
    );
    let delta = |seq: u64, base: u64, n: usize| {
        let mut h = timed(seq, 0, 60);
        h.kind = Kind::Delta;
        h.base = base;
        let body = format!("<p>{n}</p>{}", "x".repeat(60_000));
        pack(&h, &[("index.html".into(), body.into_bytes())], &office)
    };
    let stored = |r: &Relay| -> (usize, u64) {
        std::fs::read_dir(r.state_dir())
            .expect("state")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("delta-"))
            .fold((0, 0), |(n, b), e| {
                (n + 1, b + e.metadata().map_or(0, |m| m.len()))
            })
    };
    // 60 kB deltas: the fourth would pass 200 000 bytes.
    let mut codes = Vec::new();
    for n in 0..40 {
        let seq = now_ms().max(held + 1);
        let (s, v) = post(&r, delta(seq, held, n));
        if s == 200 {
            held = seq;
        }
        codes.push(v["code"].as_str().unwrap_or("accepted").to_string());
    }
    assert_eq!(
        &codes[..4],
        ["accepted", "accepted", "accepted", "full_bundle_needed"]
    );
    assert!(
        codes[3..].iter().all(|c| c == "full_bundle_needed"),
        "{codes:?}"
    );
    let (n, bytes) = stored(&r);
    assert_eq!(n, 3);
    assert!(bytes <= 200_000, "{bytes} bytes of deltas kept");
    // A full bundle prunes them; then the count bound holds too.
    held = now_ms().max(held + 1);
    assert_eq!(
        post(&r, pack(&timed(held, 0, 60), &site("F"), &office)).0,
        200
    );
    assert_eq!(stored(&r), (0, 0));
    let mut accepted = 0;
    for _ in 0..10 {
        let seq = now_ms().max(held + 1);
        let mut h = timed(seq, 0, 60);
        h.kind = Kind::Delta;
        h.base = held;
        let (s, _) = post(&r, pack(&h, &[], &office));
        if s == 200 {
            held = seq;
            accepted += 1;
        }
    }
    assert_eq!(accepted, 6);
    assert_eq!(stored(&r).0, 6);
    assert_eq!(index(&r), "<p>F</p>");
}

/// Waiting tickets in the relay's public `displays/ticket.json`.
fn waiting_on(r: &Relay) -> usize {
    r.http()
        .get(r.public_url("/displays/ticket.json"))
        .send()
        .and_then(|x| x.json::<Value>())
        .ok()
        .and_then(|v| {
            v["data"]["queues"].as_array().map(|qs| {
                qs.iter()
                    .map(|q| q["waiting"].as_array().map_or(0, |w| w.len()))
                    .sum()
            })
        })
        .unwrap_or(0)
}

/// Issues a ticket at the office; how long until `relays` all show it.
fn publish_latency(
    c: &reqwest::blocking::Client,
    s: &Server,
    csrf: &str,
    relays: &[&Relay],
) -> Duration {
    let before: Vec<usize> = relays.iter().map(|r| waiting_on(r)).collect();
    let t = Instant::now();
    let (st, v) = cmd(
        c,
        s,
        csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, 200, "{v}");
    for (r, b) in relays.iter().zip(before) {
        while waiting_on(r) <= b {
            assert!(t.elapsed() < Duration::from_secs(20), "never published");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    t.elapsed()
}

/// An office with its signing key, publishing to `relays` (the first
/// relay's `office_config` plus the extra `[[relays]]` lines).
fn office_for(relay: &Relay, key_file: &std::path::Path, more: &str) -> Server {
    office_env(relay, key_file, more, &[])
}

/// [`office_for`] with environment variables for the office.
fn office_env(
    relay: &Relay,
    key_file: &std::path::Path,
    more: &str,
    env: &[(&str, &str)],
) -> Server {
    Server::start_env(
        Some(&format!("{}{more}", relay.office_config())),
        &[
            "--signing-key",
            key_file.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        |_| {},
        env,
    )
}

/// Until the relay holds the office's site.
fn wait_published(r: &Relay) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !r
        .http()
        .get(r.public_url("/m"))
        .send()
        .is_ok_and(|x| x.status() == 200)
    {
        assert!(Instant::now() < deadline, "the office never published");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP connection to `to` from the loopback address `from`.
async fn tcp_from(
    from: [u8; 4],
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind((std::net::Ipv4Addr::from(from), 0).into())?;
    sock.connect(to).await
}

/// Whether the peer closes `s` within `wait` (reads 0 bytes or fails).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[test]
fn strangers_and_slow_peers_on_the_ingest_port_do_not_hold_up_the_office() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start_with(
        &relay_util::office_key(&key_file),
        "",
        "head_timeout_s = 2\nbody_grace_s = 1\nmin_body_bytes_per_s = 131072",
        0,
    );
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let quiet = publish_latency(&c, &s, &csrf, &[&relay]);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let ingest = relay.ingest;
    // 72 connections from six other loopback addresses, kept open and
    // silent, and a stream of new ones while the office publishes.
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for i in 0..72u8 {
            if let Ok(s) = tcp_from([127, 0, 0, 3 + i % 6], ingest).await {
                held.push(s);
            }
        }
        held
    });
    assert_eq!(held.len(), 72);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
                if let Ok(mut s) = tcp_from([127, 0, 0, 10 + (n % 8) as u8], ingest).await {
                    // The start of a TLS ClientHello, then nothing.
                    let _ = s.write_all(&[0x16, 0x03, 0x01]).await;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        drop(s);
                    });
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        worst = worst.max(publish_latency(&c, &s, &csrf, &[&relay]));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flooded = rt.block_on(flood).expect("flood");
    assert!(
        worst < Duration::from_secs(2) + quiet * 2,
        "publishing took {worst:?} under the flood ({quiet:?} quiet)"
    );
    // Every stranger was dropped at accept, before TLS.
    let closed = rt.block_on(async move {
        let mut closed = 0;
        for mut s in held {
            if closed_within(&mut s, Duration::from_secs(2)).await {
                closed += 1;
            }
        }
        closed
    });
    assert_eq!(closed, 72);
    let dropped = relay
        .metric("madoguchi_relay_ingest_strangers_dropped_total")
        .expect("metric");
    assert!(
        dropped >= 72 + flooded / 2,
        "{dropped} dropped of {flooded}+72"
    );

    // From the office's own address: a TLS connection that never sends a
    // request, and one that trickles its head, are closed at the head
    // deadline; a body that trickles is refused at its deadline, however
    // steadily its bytes come.
    rt.block_on(async {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.2")
            .expect("name")
            .to_owned();
        let tls = relay.tls();
        let t = Instant::now();
        let mut silent = tls
            .connect(
                name.clone(),
                tokio::net::TcpStream::connect(ingest).await.expect("tcp"),
            )
            .await
            .expect("tls");
        let mut trickle = tls
            .connect(
                name.clone(),
                tokio::net::TcpStream::connect(ingest).await.expect("tcp"),
            )
            .await
            .expect("tls");
        let dribble = tokio::spawn(async move {
            for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
                .iter()
                .cycle()
                .take(200)
            {
                if trickle.write_all(&[*b]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        assert!(
            closed_within(&mut silent, Duration::from_secs(6)).await,
            "silent connection held"
        );
        let head_closed = t.elapsed();
        assert!(
            head_closed >= Duration::from_millis(1500),
            "{head_closed:?}"
        );
        assert!(dribble.await.expect("dribble"), "a trickled head was held");
        assert!(t.elapsed() < Duration::from_secs(8));

        let mut body = tls
            .connect(
                name,
                tokio::net::TcpStream::connect(ingest).await.expect("tcp"),
            )
            .await
            .expect("tls");
        let head = format!(
            "POST /bundle HTTP/1.1\r\nHost: x\r\n{}: {}\r\nContent-Length: 100000\r\n\r\n",
            madoguchi_wire::auth::HEADER,
            relay.office_head()
        );
        body.write_all(head.as_bytes()).await.expect("head");
        let t = Instant::now();
        let (mut rd, mut wr) = tokio::io::split(body);
        let writer = tokio::spawn(async move {
            for _ in 0..100 {
                if wr.write_all(&[b'x'; 1000]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut answer))
            .await
            .expect("an answer before the body's end")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains("too_slow"),
            "{answer}"
        );
        // 1 s grace plus 100 000 bytes at 128 KiB/s: under 2 s, where the
        // trickle would have taken 20.
        assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
        writer.abort();
    });
    assert!(publish_latency(&c, &s, &csrf, &[&relay]) < Duration::from_secs(3));
}

/// What the hostile relay answers each bundle with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// A refusal whose free text runs to 16 MiB, with control characters.
    HugeDetail,
    /// A 256 MiB body.
    HugeBody,
    /// Claims it holds 2^64−2, then that the held sequence is impossible.
    AbsurdSeq,
    /// Answers after 30 s.
    Slow,
    /// 200 with a body that is no reply.
    FakeSuccess,
    /// Calls a plausible held sequence (100 s ahead) impossible, to get a
    /// signed reset it could pass on.
    PlausibleImpossible,
    /// Holds a sequence 250 s ahead of the office's clock, within its
    /// bound, at every push (relay-rt9 F2: a fault record each time).
    AheadInBound,
    /// `clock_skew` naming an office time of u64::MAX (relay-rt9 F3).
    AbsurdClock,
    /// Refuses every bundle, with another code each time (relay-rt9 F2
    /// generalised: a fault record at every answer).
    Alternating,
}

const HOSTILE_MODES: [Hostile; 8] = [
    Hostile::HugeDetail,
    Hostile::HugeBody,
    Hostile::AbsurdSeq,
    Hostile::Slow,
    Hostile::FakeSuccess,
    Hostile::PlausibleImpossible,
    Hostile::AheadInBound,
    Hostile::AbsurdClock,
];

/// What the hostile relay received: each bundle's sequence and signed bytes.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(u64, Vec<u8>)>>>;

/// A small TLS server that reads each request whole and answers as the
/// current mode says; counts the bundles it got.
async fn hostile_relay(
    listener: tokio::net::TcpListener,
    certs: &relay_util::Certs,
    mode: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    seen: Seen,
) {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&certs.cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&certs.key).expect("key");
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let mode = mode.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(mut s) = acceptor.accept(tcp).await else {
                return;
            };
            loop {
                let mut req = Vec::new();
                let mut buf = vec![0u8; 65536];
                let head_end = loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&req[..head_end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while req.len() < head_end + len {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let signed = &req[head_end..head_end + len];
                if let Ok(b) =
                    madoguchi_wire::bundle::parse(&signed[..signed.len().saturating_sub(64)])
                {
                    seen.lock()
                        .expect("seen")
                        .push((b.header.seq, signed.to_vec()));
                }
                // Past the list: the mode of the coalescing test.
                let m = HOSTILE_MODES
                    .get(mode.load(std::sync::atomic::Ordering::Relaxed))
                    .copied()
                    .unwrap_or(Hostile::Alternating);
                let reply = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                let ok = match m {
                    Hostile::HugeDetail => {
                        let detail = "\u{1b}[31m\nFORGED fault line\n".repeat(16 << 20 >> 5);
                        let body =
                            json!({"outcome": "refused", "code": "malformed", "detail": detail})
                                .to_string();
                        s.write_all(reply("500 Internal Server Error", &body).as_bytes())
                            .await
                            .is_ok()
                    }
                    Hostile::HugeBody => {
                        let head = "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: 268435456\r\n\r\n";
                        let mut ok = s.write_all(head.as_bytes()).await.is_ok();
                        let chunk = vec![b'9'; 1 << 16];
                        let mut sent = 0usize;
                        while ok && sent < 1 << 28 {
                            ok = s.write_all(&chunk).await.is_ok();
                            sent += chunk.len();
                        }
                        false
                    }
                    Hostile::AbsurdSeq => {
                        let body = if seen.lock().expect("seen").len().is_multiple_of(2) {
                            json!({"outcome": "refused", "code": "old_sequence", "last_seq": u64::MAX - 1, "relay": "test-relay"})
                        } else {
                            json!({"outcome": "refused", "code": "held_sequence_impossible", "last_seq": u64::MAX - 1, "relay": "test-relay"})
                        };
                        s.write_all(reply("409 Conflict", &body.to_string()).as_bytes())
                            .await
                            .is_ok()
                    }
                    Hostile::Slow => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        s.write_all(
                            reply("200 OK", "{\"outcome\":\"accepted\",\"seq\":1}").as_bytes(),
                        )
                        .await
                        .is_ok()
                    }
                    Hostile::FakeSuccess => {
                        s.write_all(reply("200 OK", "OK").as_bytes()).await.is_ok()
                    }
                    Hostile::PlausibleImpossible => {
                        let body = json!({"outcome": "refused", "code": "held_sequence_impossible", "last_seq": now_ms() + 100_000, "relay": "test-relay"});
                        s.write_all(reply("409 Conflict", &body.to_string()).as_bytes())
                            .await
                            .is_ok()
                    }
                    Hostile::AheadInBound => {
                        let body = json!({"outcome": "refused", "code": "old_sequence", "last_seq": now_ms() + 250_000, "relay": "test-relay"});
                        s.write_all(reply("409 Conflict", &body.to_string()).as_bytes())
                            .await
                            .is_ok()
                    }
                    Hostile::Alternating => {
                        let n = seen.lock().expect("seen").len();
                        let (status, code) = [
                            ("503 Service Unavailable", "busy"),
                            ("408 Request Timeout", "too_slow"),
                            ("500 Internal Server Error", "not_stored"),
                        ][n % 3];
                        let body = json!({"outcome": "refused", "code": code});
                        s.write_all(reply(status, &body.to_string()).as_bytes())
                            .await
                            .is_ok()
                    }
                    Hostile::AbsurdClock => {
                        let body = json!({"outcome": "refused", "code": "clock_skew", "clocks": {"relay_ms": now_ms(), "office_ms": u64::MAX}});
                        s.write_all(reply("422 Unprocessable Entity", &body.to_string()).as_bytes())
                            .await
                            .is_ok()
                    }
                };
                if !ok {
                    return;
                }
            }
        });
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hostile_relay_cannot_swell_the_office_flood_its_fault_log_or_touch_another_relay() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start(&relay_util::office_key(&key_file), "");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let hostile_port = listener.local_addr().expect("addr").port();
    {
        let (mode, seen) = (mode.clone(), seen.clone());
        let certs = relay_util::Certs {
            ca_pem: relay.certs.ca_pem.clone(),
            ca: relay.certs.ca.clone(),
            cert: relay.certs.cert.clone(),
            key: relay.certs.key.clone(),
        };
        rt.spawn(async move { hostile_relay(listener, &certs, mode, seen).await });
    }
    // Every change of failure a record (no coalescing), so that each
    // mode's record can be read (coalescing: the next test).
    let s = office_env(
        &relay,
        &key_file,
        &format!(
            "\n[[relays]]\nurl = \"https://127.0.0.1:{hostile_port}\"\nca = \"{}\"\n",
            relay.certs.ca.display()
        ),
        &[("MADOGUCHI_RELAY_FAULT_EVERY_SECS", "0")],
    );
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let baseline = rss_kib(s.pid());
    let mut peak = baseline;
    let mut worst = Duration::ZERO;
    for (i, m) in HOSTILE_MODES.iter().enumerate() {
        mode.store(i, Ordering::Relaxed);
        let before = seen.lock().expect("seen").len();
        for _ in 0..3 {
            worst = worst.max(publish_latency(&c, &s, &csrf, &[&relay]));
            peak = peak.max(rss_kib(s.pid()));
        }
        // The hostile relay did get bundles in this mode (so the office
        // did read its answers), one at a time when slow.
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().expect("seen").len() == before {
            assert!(
                Instant::now() < deadline,
                "{m:?}: no bundle reached the hostile relay"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        peak = peak.max(rss_kib(s.pid()));
        // The real relay holds the office's own clock sequence.
        let held = relay.metric("madoguchi_relay_last_seq").expect("last_seq");
        assert!(
            held <= now_ms() + 1000 && held + 120_000 > now_ms(),
            "{m:?}: {held}"
        );
    }
    // Memory: reading a 256 MiB answer whole would show here.
    assert!(
        peak.saturating_sub(baseline) < 48 * 1024,
        "office grew from {baseline} to {peak} KiB"
    );
    // Publishing to the real relay was never held up by the hostile one.
    assert!(worst < Duration::from_secs(3), "{worst:?}");
    // Every sequence the office sent the hostile relay is within its own
    // clock's bound: 2^64-2 was not believed. Only 2^64-2, which the office
    // itself judges impossible, got a reset — not the plausible sequence
    // the relay called impossible — and nothing the office signed for the
    // hostile relay is taken by the real one (red-team finding 3).
    let seen = seen.lock().expect("seen").clone();
    for (seq, signed) in &seen {
        assert!(*seq <= now_ms() + 301_000, "sent {seq}");
        let b = madoguchi_wire::bundle::parse(&signed[..signed.len() - 64]).expect("bundle");
        assert_eq!(
            b.header.relay, "127.0.0.1",
            "addressed to the hostile relay"
        );
        if let Some(r) = &b.header.reset {
            assert_eq!(r.held, u64::MAX - 1, "a reset for a plausible sequence");
            assert_eq!(r.relay, "127.0.0.1");
        }
        let (s, v) = post(&relay, signed.clone());
        assert_eq!((s, &v["code"]), (421, &json!("wrong_relay")), "{v}");
    }
    assert!(seen.iter().any(|(_, b)| {
        madoguchi_wire::bundle::parse(&b[..b.len() - 64]).is_ok_and(|b| b.header.reset.is_some())
    }));
    // The fault log: short, escaped records, none forged.
    let faults = std::fs::read_to_string(s.data_dir().join("data/faults.jsonl")).expect("faults");
    assert!(
        faults.contains(&format!("127.0.0.1:{hostile_port}")),
        "{faults}"
    );
    for line in faults.lines() {
        assert!(line.len() < 2048, "a fault record of {} bytes", line.len());
        let v: Value = serde_json::from_str(line).expect("a JSON record");
        let msg = v["message"].as_str().unwrap_or("");
        assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg:?}");
    }
    assert!(!faults.lines().any(|l| l.starts_with("FORGED")));
    // A 2xx that is no typed acceptance is no success (finding 7), and each
    // change in the kind of failure is its own record.
    let hostile = format!("relay https://127.0.0.1:{hostile_port}");
    assert!(
        !faults.contains(&format!("{hostile} is reachable again")),
        "{faults}"
    );
    assert!(
        faults.contains(&format!(
            "{hostile} answered without a valid reply (200 OK)"
        )),
        "{faults}"
    );
    let records = faults.lines().filter(|l| l.contains(&hostile)).count();
    assert!(records >= 4, "{records} records: {faults}");
    // A relay ahead at every push is one record, not one a push; a clock
    // difference is the office's own signed time against the relay's.
    let ahead = faults
        .lines()
        .filter(|l| l.contains(&hostile) && l.contains("ahead of the office's"))
        .count();
    assert_eq!(ahead, 1, "{faults}");
    let skew: Vec<u64> = faults
        .lines()
        .filter_map(|l| l.split("clock differs from this office's by ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        !skew.is_empty() && skew.iter().all(|s| *s < 10),
        "{skew:?} {faults}"
    );
    let mem = rss_kib(s.pid());
    eprintln!("office RSS: baseline {baseline} KiB, peak {peak} KiB, after {mem} KiB; worst publish {worst:?}");
}

#[test]
fn an_office_resets_a_relay_that_holds_an_impossible_sequence() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let office = relay_util::office_key(&key_file);
    let mut relay = relay_util::start(&office, "");
    assert_eq!(
        post(&relay, pack(&timed(now_ms(), 0, 60), &site("A"), &office)).0,
        200
    );
    // As a relay from before the sequence rules left it after a bundle
    // with 2^64-1.
    relay.stop();
    std::fs::write(relay.state_dir().join("last-seq"), u64::MAX.to_string()).expect("w");
    relay.restart();
    assert_eq!(relay.metric("madoguchi_relay_sequence_impossible"), Some(1));
    let s = office_for(&relay, &key_file, "");
    let (c, _) = s.admin();
    wait_published(&relay);
    wait_for_fault(
        &c,
        &s,
        &format!("reset from sequence {}", u64::MAX),
        "the reset was not recorded",
    );
    assert_eq!(relay.metric("madoguchi_relay_resets_total"), Some(1));
    assert_eq!(relay.metric("madoguchi_relay_sequence_impossible"), Some(0));
    let held = relay.metric("madoguchi_relay_last_seq").expect("last_seq");
    assert!(held <= now_ms(), "{held}");
}

/// A TLS connection to the ingest side from the office's own address,
/// offering the ALPN protocols of `tls`.
async fn ingest_conn(
    ingest: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.2")
        .map_err(std::io::Error::other)?
        .to_owned();
    tls.connect(name, tokio::net::TcpStream::connect(ingest).await?)
        .await
}

/// Sends a bundle request head declaring `len` body bytes, with `office`
/// as its office head if any, and no body; the answer's status line and
/// whether the relay then closed the connection (within 2 s).
async fn head_only(
    ingest: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    office: Option<&str>,
    len: usize,
) -> (String, bool) {
    // Dropped at accept (the address's slots are taken): closed unread.
    let Ok(mut s) = ingest_conn(ingest, tls).await else {
        return (String::new(), true);
    };
    let office = office
        .map(|v| format!("{}: {v}\r\n", madoguchi_wire::auth::HEADER))
        .unwrap_or_default();
    let head = format!("POST /bundle HTTP/1.1\r\nHost: x\r\n{office}Content-Length: {len}\r\n\r\n");
    if s.write_all(head.as_bytes()).await.is_err() {
        return (String::new(), false);
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let closed = loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    };
    let line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (line, closed)
}

/// Uploads a whole body of `len` bytes (not a bundle: its signature fails)
/// with the office's head; the answer's status line.
async fn upload(
    ingest: std::net::SocketAddr,
    tls: tokio_rustls::TlsConnector,
    office: String,
    len: usize,
) -> String {
    let Ok(s) = ingest_conn(ingest, &tls).await else {
        return String::new();
    };
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /bundle HTTP/1.1\r\nHost: x\r\n{}: {office}\r\nContent-Length: {len}\r\n\r\n",
            madoguchi_wire::auth::HEADER
        );
        let _ = wr.write_all(head.as_bytes()).await;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            if wr.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            sent += n;
        }
        // Kept open until the answer is read.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(wr);
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    writer.abort();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_peer_without_the_office_head_is_answered_unread_and_cannot_hold_up_or_swell_the_relay() {
    // Red-team findings 1, 2 and 5 (issue 22): a peer on an allowed
    // address (the office's own) with no key, and HTTP/2 multiplying the
    // body limit.
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let office = relay_util::office_key(&key_file);
    let relay = relay_util::start_with(
        &office,
        "",
        "max_bundle_bytes = 4194304\nmax_bytes_in_flight = 8388608\nbody_grace_s = 2",
        0,
    );
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let quiet = publish_latency(&c, &s, &csrf, &[&relay]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let ingest = relay.ingest;

    // The ingest side speaks HTTP/1.1 only, whatever the client offers.
    let alpn = rt.block_on(async {
        let tls = relay.tls_alpn(&[b"h2", b"http/1.1"]);
        let s = ingest_conn(ingest, &tls).await.expect("tls");
        s.get_ref().1.alpn_protocol().map(|p| p.to_vec())
    });
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    // 16 peers on the office's address declaring 4 MiB bodies, without
    // the office's head or with a stale one, one for another relay or a
    // forged one, over and over while the office publishes: each is
    // answered 401 on its head, without a byte of body, and closed.
    let now = madoguchi_wire::UnixMillis::now();
    let heads: Vec<Option<String>> = vec![
        None,
        Some(madoguchi_wire::auth::head(
            &office,
            relay_util::RELAY_NAME,
            madoguchi_wire::UnixMillis(now.0 - 600_000),
        )),
        Some(madoguchi_wire::auth::head(&office, "other-relay", now)),
        Some(format!("{} {}", now.0, "ab".repeat(64))),
    ];
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..16)
        .map(|i| {
            let stop = stop.clone();
            let tls = relay.tls();
            let head = heads[i % heads.len()].clone();
            rt.spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) && answers.len() < 200 {
                    answers.push(head_only(ingest, &tls, head.as_deref(), 4 << 20).await);
                }
                answers
            })
        })
        .collect();
    let before = relay.rss_kib();
    let mut worst = Duration::ZERO;
    for _ in 0..4 {
        worst = worst.max(publish_latency(&c, &s, &csrf, &[&relay]));
    }
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<(String, bool)> = rt.block_on(async {
        let mut all = Vec::new();
        for f in flood {
            all.extend(f.await.expect("flood"));
        }
        all
    });
    // Each is answered 401 (422 `clock_skew` for the office's signed head
    // ten minutes old, relay-rt2 F4) and closed, or (when the address's
    // slots are taken) dropped: never read further.
    for (line, closed) in &answers {
        assert!(
            line.starts_with("HTTP/1.1 401") || line.starts_with("HTTP/1.1 422") || line.is_empty(),
            "{line:?}"
        );
        assert!(closed, "a connection without the head was kept open");
    }
    let refused = answers
        .iter()
        .filter(|(l, _)| l.starts_with("HTTP/1.1 401"))
        .count();
    assert!(
        refused >= 32,
        "only {refused} of {} answered",
        answers.len()
    );
    assert!(
        worst < Duration::from_secs(2) + quiet * 2,
        "publishing took {worst:?} under the flood ({quiet:?} quiet)"
    );
    assert!(
        relay
            .metric("madoguchi_relay_bundles_refused_total{code=\"unauthenticated\"}")
            .is_some_and(|n| n as usize >= refused),
        "unauthenticated refusals not counted"
    );
    let skewed = answers
        .iter()
        .filter(|(l, _)| l.starts_with("HTTP/1.1 422"))
        .count();
    assert!(
        skewed > 0
            && relay
                .metric("madoguchi_relay_bundles_refused_total{code=\"clock_skew\"}")
                .is_some_and(|n| n as usize >= skewed),
        "a signed head at the wrong time is named clock_skew ({skewed})"
    );
    assert_eq!(
        relay.metric("madoguchi_relay_bundles_refused_total{code=\"bad_signature\"}"),
        Some(0),
        "a body without the head was read"
    );

    // With the head (a thief of the key, or a runaway office): 15 uploads
    // of 4 MiB at once (the address's 16 slots less the office's), 60 MiB
    // in all, are held to the 8 MiB budget for bodies in flight; each is
    // refused (not a bundle, or busy) or dropped at accept.
    let head = relay.office_head();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = std::sync::Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), relay.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let statuses: Vec<String> = rt.block_on(async {
        let tasks: Vec<_> = (0..15)
            .map(|_| tokio::spawn(upload(ingest, relay.tls(), head.clone(), 4 << 20)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("upload"));
        }
        out
    });
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    for st in &statuses {
        // 400: read whole, not a bundle; 503: busy (the budget was full).
        assert!(
            st.starts_with("HTTP/1.1 400") || st.starts_with("HTTP/1.1 503") || st.is_empty(),
            "{st:?}"
        );
    }
    assert!(
        statuses.iter().any(|s| s.starts_with("HTTP/1.1 400")),
        "no body was read at all: {statuses:?}"
    );
    eprintln!(
        "relay RSS {before} KiB before, peak {peak} KiB during 15 × 4 MiB uploads, {} KiB after",
        relay.rss_kib()
    );
    assert!(
        peak.saturating_sub(before) < 48 * 1024,
        "relay grew from {before} to {peak} KiB"
    );
    // And the office publishes as before.
    assert!(publish_latency(&c, &s, &csrf, &[&relay]) < Duration::from_secs(3));
}

#[test]
fn a_bundle_for_another_relay_is_refused_and_a_bundle_lives_from_when_it_arrived() {
    // Red-team findings 3, 6 and 8 (issue 22).
    let office = SigningKey::from_bytes(&[8; 32]);
    let mut r = relay_util::start(&office, "");
    let mut other = timed(now_ms(), 0, 60);
    other.relay = "other-relay".into();
    let (s, v) = post(&r, pack(&other, &site("X"), &office));
    assert_eq!((s, &v["code"]), (421, &json!("wrong_relay")), "{v}");
    let mut empty = timed(now_ms(), 0, 60);
    empty.relay = String::new();
    let (s, v) = post(&r, pack(&empty, &site("X"), &office));
    assert_eq!((s, &v["code"]), (421, &json!("wrong_relay")), "{v}");
    assert_eq!(
        r.metric("madoguchi_relay_bundles_refused_total{code=\"wrong_relay\"}"),
        Some(2)
    );

    // Made "299 s from now" with 600 s to live: live for 600 s from its
    // arrival, not until created + 600 = now + 899 s; after a restart too.
    let (s, v) = post(&r, pack(&timed(now_ms(), 299, 600), &site("A"), &office));
    assert_eq!(s, 200, "{v}");
    let bound = now() + 600 + 2;
    let expires = r
        .metric("madoguchi_relay_site_expires_seconds")
        .expect("expires");
    assert!(expires as i64 <= bound, "{expires} > {bound}");
    r.restart();
    let expires = r
        .metric("madoguchi_relay_site_expires_seconds")
        .expect("expires");
    assert!(
        expires as i64 <= bound,
        "after a restart: {expires} > {bound}"
    );
    assert_eq!(index(&r), "<p>A</p>");

    // A file is not a folder.
    for (path, status) in [
        ("/index.html/", 404),
        ("/site/display.js/", 404),
        ("/", 200),
    ] {
        let got = r
            .http()
            .get(r.public_url(path))
            .send()
            .map(|x| x.status().as_u16())
            .unwrap_or(0);
        assert_eq!(got, status, "{path}");
    }
}

#[test]
fn an_office_recovers_a_relay_that_took_a_leaked_key_bundle_ahead_of_its_clock() {
    // Red-team finding 4 (issue 22): a relay allowing 600 s of skew took a
    // bundle from a leaked key far ahead of the office's sequence.
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let office = relay_util::office_key(&key_file);
    let relay = relay_util::start_with(&office, "", "clock_skew_s = 600", 0);
    // Within the office's own bound (300 s): the office continues above it.
    let near = now_ms() + 100_000;
    assert_eq!(
        post(&relay, pack(&timed(near, 0, 60), &site("L"), &office)).0,
        200
    );
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    wait_for_fault(
        &c,
        &s,
        &format!("holds sequence {near}"),
        "the floor was not recorded",
    );
    publish_latency(&c, &s, &csrf, &[&relay]);
    let held = relay.metric("madoguchi_relay_last_seq").expect("last_seq");
    assert!(held > near, "the office's bundles were not taken: {held}");
    // Beyond the office's bound (but within the relay's 600 s): a signed
    // reset brings it back to the office's clock.
    let far = now_ms() + 550_000;
    assert_eq!(
        post(&relay, pack(&timed(far, 0, 60), &site("M"), &office)).0,
        200
    );
    wait_for_fault(
        &c,
        &s,
        &format!("reset from sequence {far}"),
        "the reset was not recorded",
    );
    assert_eq!(relay.metric("madoguchi_relay_resets_total"), Some(1));
    publish_latency(&c, &s, &csrf, &[&relay]);
    let held = relay.metric("madoguchi_relay_last_seq").expect("last_seq");
    assert!(held <= now_ms() + 1000, "{held}");
    assert_eq!(relay.metric("madoguchi_relay_sequence_impossible"), Some(0));
}

/// Keeps `n` plain TCP connections from the office's own address to the
/// ingest port, never starting TLS, and reopens each as soon as the relay
/// closes it, until `stop` (red-team relay-rt2 F1: a second process on the
/// office's host or behind its NAT address). Returns the connections opened.
async fn squat(
    ingest: std::net::SocketAddr,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (stop, opened) = (stop.clone(), opened.clone());
            tokio::spawn(async move {
                // Bounded: at most 20,000 reconnects per holder.
                for _ in 0..20_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    match tcp_from([127, 0, 0, 1], ingest).await {
                        Ok(mut s) => {
                            opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let mut buf = [0u8; 64];
                            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                                match tokio::time::timeout(
                                    Duration::from_millis(200),
                                    s.read(&mut buf),
                                )
                                .await
                                {
                                    Ok(Ok(0)) | Ok(Err(_)) => break,
                                    _ => {}
                                }
                            }
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    opened.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn silent_connections_from_the_office_address_cannot_hold_the_office_slots() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start_with(&relay_util::office_key(&key_file), "", "", 0);
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let quiet = publish_latency(&c, &s, &csrf, &[&relay]);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Twice the address's 16 slots, each reopened at once when closed.
    let squatter = rt.spawn(squat(relay.ingest, 32, stop.clone()));
    std::thread::sleep(Duration::from_secs(3));
    let mut worst = Duration::ZERO;
    for _ in 0..4 {
        // Longer than the office's pool keeps a connection: each publish
        // needs a new connection, which the squatter is holding the slots for.
        std::thread::sleep(Duration::from_secs(6));
        let before: usize = waiting_on(&relay);
        let t = Instant::now();
        let (st, v) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
        assert_eq!(st, 200, "{v}");
        while waiting_on(&relay) <= before && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        worst = worst.max(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = rt.block_on(squatter).expect("squatter");
    eprintln!("squatter opened {opened} connections; worst publish {worst:?} ({quiet:?} quiet)");
    assert!(
        worst < Duration::from_secs(5),
        "publishing took {worst:?} while the office's address was squatted ({quiet:?} quiet)"
    );
    // The squatter's connections were closed at the short deadlines and
    // reopened, over and over.
    assert!(opened > 32 * 4, "{opened} connections");
}

/// Keeps `n` connections from the office's own address to the ingest port
/// that complete TLS (anyone can) and then send nothing, and reopens each
/// 20 ms after the relay closes or refuses it, until `stop` (relay-rt2 F1
/// with completed handshakes). `alpn`: what they offer. Returns the
/// handshakes completed.
async fn squat_tls(
    ingest: std::net::SocketAddr,
    tls: tokio_rustls::TlsConnector,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (stop, done, tls) = (stop.clone(), done.clone(), tls.clone());
            tokio::spawn(async move {
                // Bounded: at most 5,000 reconnects per holder.
                for _ in 0..5_000 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    if let Ok(Ok(mut s)) =
                        tokio::time::timeout(Duration::from_secs(5), ingest_conn(ingest, &tls))
                            .await
                    {
                        done.fetch_add(1, Relaxed);
                        let mut buf = [0u8; 64];
                        while !stop.load(Relaxed) {
                            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf))
                                .await
                            {
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                _ => {}
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Relaxed)
}

#[test]
fn squatters_completing_tls_from_the_office_address_cannot_keep_bundles_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let key = relay_util::office_key(&key_file);
    let relay = relay_util::start_with(&key, "", "", 0);
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let quiet = publish_latency(&c, &s, &csrf, &[&relay]);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Half again the address's 16 shared slots, offering plain http/1.1 …
    let squatter = rt.spawn(squat_tls(
        relay.ingest,
        relay.tls_alpn(&[b"http/1.1"]),
        24,
        stop.clone(),
    ));
    // … and a few offering a made-up token and a copied one: both are
    // squatters too (shared slots), however they look.
    let junk = [b"mdg1.".to_vec(), vec![b'0'; 176]].concat();
    let copied = madoguchi_wire::hello::token(
        &key,
        relay_util::RELAY_NAME,
        madoguchi_wire::UnixMillis::now(),
        [9; 16],
    );
    let forgers = rt.spawn(squat_tls(
        relay.ingest,
        relay.tls_alpn(&[&junk, b"http/1.1"]),
        4,
        stop.clone(),
    ));
    let copier = rt.spawn(squat_tls(
        relay.ingest,
        relay.tls_alpn(&[&copied, b"http/1.1"]),
        4,
        stop.clone(),
    ));
    std::thread::sleep(Duration::from_secs(3));
    let mut worst = Duration::ZERO;
    for _ in 0..4 {
        // Longer than an office of the old kind keeps a pooled connection:
        // each publish needs a new connection, for which the squatters
        // hold the slots.
        std::thread::sleep(Duration::from_secs(6));
        let before: usize = waiting_on(&relay);
        let t = Instant::now();
        let (st, v) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
        assert_eq!(st, 200, "{v}");
        while waiting_on(&relay) <= before && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        worst = worst.max(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let held = rt.block_on(squatter).expect("squatter");
    let forged = rt.block_on(forgers).expect("forgers");
    let replayed = rt.block_on(copier).expect("copier");
    eprintln!(
        "squatters completed {held} + {forged} + {replayed} handshakes; worst publish {worst:?} ({quiet:?} quiet)"
    );
    assert!(
        worst < Duration::from_secs(5),
        "publishing took {worst:?} while the office's address was squatted with TLS ({quiet:?} quiet)"
    );
    assert!(held > 16, "the squatters held the shared slots: {held}");
    let m = |name: &str| relay.metric(name).unwrap_or(0);
    assert!(m("madoguchi_relay_ingest_office_hellos_total") >= 4);
    assert!(m("madoguchi_relay_ingest_hello_invalid_total") >= 4);
    // The copied token was taken once; every later use is a replay.
    assert!(m("madoguchi_relay_ingest_hello_replayed_total") >= 3);
}

/// The office's fault records about the relay at `url` written after line
/// `from` of its fault file.
fn relay_faults(s: &Server, url: &str, from: usize) -> Vec<String> {
    std::fs::read_to_string(s.data_dir().join("data/faults.jsonl"))
        .unwrap_or_default()
        .lines()
        .skip(from)
        .filter(|l| l.contains(url))
        .map(str::to_string)
        .collect()
}

/// Lines in the office's fault file.
fn fault_lines(s: &Server) -> usize {
    std::fs::read_to_string(s.data_dir().join("data/faults.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// A whole TLS ClientHello (no token, `http/1.1`), as the first bytes a
/// client sends.
fn client_hello() -> Vec<u8> {
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let mut cfg = cfg;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("127.0.0.2").expect("name");
    let mut c = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).expect("client");
    let mut hello = Vec::new();
    c.write_tls(&mut hello).expect("hello");
    hello
}

/// Keeps `n` connections from `from` to the ingest port, each sending
/// `first` (nothing: silent) and then nothing more, reopened as soon as the
/// relay closes it, until `stop`. Returns the connections opened.
async fn flood_from(
    from: [u8; 4],
    ingest: std::net::SocketAddr,
    n: usize,
    first: Vec<u8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first = std::sync::Arc::new(first);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (stop, opened, first) = (stop.clone(), opened.clone(), first.clone());
            tokio::spawn(async move {
                // Bounded: at most 20,000 reconnects per holder.
                for _ in 0..20_000 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let Ok(mut s) = tcp_from(from, ingest).await else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    opened.fetch_add(1, Relaxed);
                    if !first.is_empty() && s.write_all(&first).await.is_err() {
                        continue;
                    }
                    let mut buf = [0u8; 4096];
                    while !stop.load(Relaxed) {
                        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf))
                            .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            _ => {}
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    opened.load(Relaxed)
}

/// relay-rt9 F1 (medium): floods from inside the allow-list — silent
/// connections and whole token-less hellos from the office's own address,
/// whole hellos from another allowed host — closed the office's push
/// connections in the relay's lobby ("tls handshake eof", about one push
/// in five) and put an "unreachable" fault on the admin page. Now every
/// publish arrives at its normal latency and no fault is written.
#[test]
fn floods_from_allowed_addresses_cost_the_office_no_push_and_no_fault() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    // 127.0.0.3: another allowed host (the monitoring host).
    let relay = relay_util::start_with(
        &relay_util::office_key(&key_file),
        "",
        "allow = [\"127.0.0.1\", \"127.0.0.3\"]",
        0,
    );
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let quiet = publish_latency(&c, &s, &csrf, &[&relay]);
    let url = relay.office_config();
    let url = url
        .lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .and_then(|u| u.strip_suffix('"'))
        .expect("the relay's url")
        .to_string();
    let from = fault_lines(&s);
    let m = |name: &str| relay.metric(name).unwrap_or(0);
    let hellos = m("madoguchi_relay_ingest_office_hellos_total");
    let accepted = m("madoguchi_relay_bundles_accepted_total");

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hello = client_hello();
    let floods = [
        rt.spawn(flood_from(
            [127, 0, 0, 1],
            relay.ingest,
            200,
            vec![],
            stop.clone(),
        )),
        rt.spawn(flood_from(
            [127, 0, 0, 1],
            relay.ingest,
            60,
            hello.clone(),
            stop.clone(),
        )),
        rt.spawn(flood_from(
            [127, 0, 0, 3],
            relay.ingest,
            300,
            hello,
            stop.clone(),
        )),
    ];
    std::thread::sleep(Duration::from_secs(2));
    let mut times = Vec::new();
    for _ in 0..10 {
        times.push(publish_latency(&c, &s, &csrf, &[&relay]));
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened: Vec<u64> = floods
        .into_iter()
        .map(|f| rt.block_on(f).expect("flood"))
        .collect();
    let evicted = relay
        .metric("madoguchi_relay_ingest_unproven_evicted_total")
        .unwrap_or(0);
    let faults = relay_faults(&s, &url, from);
    // The office's connections whose hello the relay read, against the
    // bundles it took: more of the former are pushes tried again.
    let hellos = m("madoguchi_relay_ingest_office_hellos_total") - hellos;
    let accepted = m("madoguchi_relay_bundles_accepted_total") - accepted;
    eprintln!(
        "flood opened {opened:?} connections ({evicted} evicted); {hellos} office hellos for {accepted} bundles; publishes {times:?} ({quiet:?} quiet); faults {faults:?}"
    );
    assert!(faults.is_empty(), "{faults:?}");
    let worst = times.iter().max().copied().unwrap_or_default();
    // Only a stall: the old code is caught by the fault above; publish
    // times under the floods are figures (BENCHMARKS.md), not a test's
    // (a 3 s bound here failed once on the 2-core machine at load 29).
    assert!(
        worst < Duration::from_secs(10) + quiet * 3,
        "publishing took {worst:?} under the floods ({quiet:?} quiet)"
    );
    assert!(opened.iter().all(|n| *n > 0), "{opened:?}");
}

/// relay-rt9 F4 (low): a holder of a stolen key filled the relay's
/// `max_bytes_in_flight` with slow uploads (declared lengths), and every
/// bundle of the office's was answered `busy` for as long as they lasted.
/// The office's connections (its hello token) have their own reserve.
#[test]
fn a_stolen_keys_slow_uploads_do_not_keep_the_offices_bundles_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start_with(
        &relay_util::office_key(&key_file),
        "",
        "max_bundle_bytes = 1048576\nmax_bytes_in_flight = 4194304",
        0,
    );
    let s = office_for(&relay, &key_file, "");
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let quiet = publish_latency(&c, &s, &csrf, &[&relay]);
    let from = fault_lines(&s);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Five bodies declared at 1 MiB with the office's signed head, on
    // connections without its hello token, 1 KB every half second: four
    // fill the 4 MiB budget.
    let hogs: Vec<_> = (0..5)
        .map(|_| {
            let (ingest, tls, head, stop) = (
                relay.ingest,
                relay.tls_alpn(&[b"http/1.1"]),
                relay.office_head(),
                stop.clone(),
            );
            rt.spawn(async move {
                let Ok(mut s) = ingest_conn(ingest, &tls).await else {
                    return 0;
                };
                let head = format!(
                    "POST /bundle HTTP/1.1\r\nHost: x\r\n{}: {head}\r\nContent-Length: 1048576\r\n\r\n",
                    madoguchi_wire::auth::HEADER
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return 0;
                }
                let mut sent = 0;
                // Bounded: at most 120 writes (60 s).
                for _ in 0..120 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed)
                        || s.write_all(&[b'M'; 1000]).await.is_err()
                    {
                        break;
                    }
                    sent += 1000;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(publish_latency(&c, &s, &csrf, &[&relay]));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: Vec<usize> = hogs
        .into_iter()
        .map(|h| rt.block_on(h).expect("hog"))
        .collect();
    let busy = relay
        .metrics()
        .lines()
        .find(|l| l.contains("code=\"busy\"") && !l.starts_with('#'))
        .unwrap_or("")
        .to_string();
    let faults: Vec<String> = std::fs::read_to_string(s.data_dir().join("data/faults.jsonl"))
        .unwrap_or_default()
        .lines()
        .skip(from)
        .filter(|l| l.contains("relay"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "hogs sent {sent:?}; publishes {times:?} ({quiet:?} quiet); {busy}; faults {faults:?}"
    );
    assert!(sent.iter().filter(|n| **n > 0).count() >= 4, "{sent:?}");
    assert!(faults.is_empty(), "{faults:?}");
    let worst = times.iter().max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_secs(2) + quiet * 2,
        "publishing took {worst:?} beside the slow uploads ({quiet:?} quiet)"
    );
}

/// relay-rt9 F2 generalised (low): a hostile relay that refuses every
/// bundle with another code each time (`busy`, `too_slow`, `not_stored`)
/// wrote a fault record at every answer (one every 1–4 s as the office
/// retried), flushing the admin page's list of 200. Now one relay's
/// records are coalesced: the first at once, then one a window with the
/// count (a 5 s window here; 60 s by default), the window doubling while
/// the changes go on. The office's other relay is not held up.
#[test]
fn a_relay_alternating_its_refusals_writes_few_fault_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let relay = relay_util::start(&relay_util::office_key(&key_file), "");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(HOSTILE_MODES.len()));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let hostile_port = listener.local_addr().expect("addr").port();
    {
        let (mode, seen) = (mode.clone(), seen.clone());
        let certs = relay_util::Certs {
            ca_pem: relay.certs.ca_pem.clone(),
            ca: relay.certs.ca.clone(),
            cert: relay.certs.cert.clone(),
            key: relay.certs.key.clone(),
        };
        rt.spawn(async move { hostile_relay(listener, &certs, mode, seen).await });
    }
    let s = office_env(
        &relay,
        &key_file,
        &format!(
            "\n[[relays]]\nurl = \"https://127.0.0.1:{hostile_port}\"\nca = \"{}\"\n",
            relay.certs.ca.display()
        ),
        &[("MADOGUCHI_RELAY_FAULT_EVERY_SECS", "5")],
    );
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    wait_published(&relay);
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(24) {
        worst = worst.max(publish_latency(&c, &s, &csrf, &[&relay]));
        std::thread::sleep(Duration::from_secs(2));
    }
    let answers = seen.lock().expect("seen").len();
    let hostile = format!("relay https://127.0.0.1:{hostile_port}");
    let records = relay_faults(&s, &hostile, 0);
    eprintln!(
        "{answers} refusals in 24 s; {} records: {records:#?}",
        records.len()
    );
    // Every answer a change of kind: a record each before.
    assert!(answers >= 8, "{answers} answers");
    assert!(
        (2..=4).contains(&records.len()),
        "{} records for {answers} answers: {records:#?}",
        records.len()
    );
    assert!(
        records.iter().any(|r| r.contains("the latest of")),
        "{records:#?}"
    );
    assert!(worst < Duration::from_secs(3), "{worst:?}");
}
