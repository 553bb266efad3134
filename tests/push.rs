//! Push to displays over WebSocket: one subscriber per surface of the
//! default office and a few more (40 in all) on the real server; a call
//! through the HTTP API reaches every subscriber of the surfaces it changes
//! and no other; after a restart they reconnect and catch up.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{cmd, Server};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn device_cookie(s: &Server) -> String {
    let r = Server::client()
        .post(&s.display_enrol)
        .send()
        .expect("enrol");
    let c = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    c.split(';').next().expect("pair").to_string()
}

/// Device cookies of `n` more displays enrolled through the admin's API
/// (one device holds eight sockets at most, issue 23).
fn more_display_cookies(
    s: &Server,
    admin: &reqwest::blocking::Client,
    csrf: &str,
    n: usize,
) -> Vec<String> {
    (0..n)
        .map(|i| {
            let v: Value = admin
                .post(s.url("/api/devices"))
                .header("X-CSRF-Token", csrf)
                .json(&json!({"name": format!("wall-{i}"), "role": "display"}))
                .send()
                .expect("link")
                .json()
                .expect("json");
            let link = v["enrol_url"].as_str().expect("enrol_url");
            let r = Server::client().post(link).send().expect("enrol");
            let c = r.headers()["set-cookie"]
                .to_str()
                .expect("cookie")
                .to_string();
            c.split(';').next().expect("pair").to_string()
        })
        .collect()
}

async fn connect(base: &str, topic: &str, cookie: &str) -> Option<Ws> {
    let url = format!("{}/ws?topic={topic}", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().ok()?;
    req.headers_mut().insert("Cookie", cookie.parse().ok()?);
    tokio_tungstenite::connect_async(req)
        .await
        .ok()
        .map(|(ws, _)| ws)
}

/// The next data message (heartbeats skipped), within `wait`.
async fn next_data(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).ok()?;
            if v.get("heartbeat").is_none() {
                return Some(v);
            }
        }
    }
}

#[test]
fn a_call_reaches_every_subscriber_of_the_surfaces_it_changes() {
    let mut s = Server::start();
    let (c, csrf) = s.admin();
    crate::server::open_today(&c, &s, &csrf, &[10]);
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    // Five screens' worth of sockets, eight per display device.
    let mut cookies = vec![device_cookie(&s)];
    cookies.extend(more_display_cookies(&s, &c, &csrf, 4));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut topics: Vec<String> = (1..=25).map(|n| format!("counter/{n}")).collect();
    for q in ["koseki", "idou", "koufu"] {
        for _ in 0..3 {
            topics.push(format!("guidance/{q}"));
        }
    }
    topics.extend(["board", "board", "status", "status", "status", "status"].map(String::from));
    assert_eq!(topics.len(), 40);
    let base = s.base.clone();
    let mut subs: Vec<(String, Ws)> = rt.block_on(async {
        let mut v = Vec::new();
        for (i, t) in topics.iter().enumerate() {
            let mut ws = connect(&base, t, &cookies[i / 8]).await.expect("connect");
            // The current state comes at once.
            let first = next_data(&mut ws, Duration::from_secs(5))
                .await
                .expect("current payload");
            assert_eq!(first["topic"], t.as_str());
            v.push((t.clone(), ws));
        }
        v
    });
    let started = Instant::now();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "call_next", "counter": 10}),
    );
    let affected = |t: &str| matches!(t, "counter/10" | "guidance/idou" | "board" | "status");
    rt.block_on(async {
        for (t, ws) in subs.iter_mut() {
            let wait = if affected(t) {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(300)
            };
            let got = next_data(ws, wait).await;
            if affected(t) {
                let got = got.unwrap_or_else(|| panic!("{t} got no update"));
                if t != "board" {
                    assert!(
                        got["html"].as_str().is_some_and(|h| h.contains("1001")),
                        "{t}: {got}"
                    );
                }
            } else {
                assert!(
                    got.is_none(),
                    "{t} changed although the call did not touch it: {got:?}"
                );
            }
        }
    });
    eprintln!(
        "40 subscribers checked {:?} after the call",
        started.elapsed()
    );
    // Restart: every subscriber reconnects and gets the current state.
    s.restart();
    drop(subs);
    rt.block_on(async {
        for (i, t) in topics.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut ws = loop {
                if let Some(ws) = connect(&base, t, &cookies[i / 8]).await {
                    break ws;
                }
                assert!(Instant::now() < deadline, "{t} could not reconnect");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let first = next_data(&mut ws, Duration::from_secs(5))
                .await
                .expect("caught up");
            if t == "counter/10" || t == "guidance/idou" {
                assert!(
                    first["html"].as_str().is_some_and(|h| h.contains("1001")),
                    "{t} caught up: {first}"
                );
            }
        }
    });
}

#[test]
fn a_display_may_not_send_and_strangers_may_not_listen() {
    let s = Server::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // No device cookie: refused (the public status page excepted).
        assert!(connect(&s.base, "guidance/idou", "x=y").await.is_none());
        assert!(connect(&s.base, "status", "x=y").await.is_some());
        // A data frame from a display closes the connection.
        let mut ws = connect(&s.base, "status", "x=y").await.expect("status");
        let _ = next_data(&mut ws, Duration::from_secs(5)).await;
        use futures_util::SinkExt;
        ws.send(Message::text("hello")).await.expect("send");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .unwrap_or(false);
        assert!(closed, "the server closed the connection");
    });
}

#[test]
fn a_saved_layout_reaches_the_screens_and_a_broken_one_never_does() {
    let layouts = tempfile::tempdir().expect("layouts");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts");
    for entry in std::fs::read_dir(repo).expect("layouts") {
        let p = entry.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().to_string();
        if name.starts_with("display_") {
            std::fs::copy(&p, layouts.path().join(&name)).expect("copy");
        }
    }
    let dir = layouts.path().display().to_string();
    let s = Server::start_args(None, &["--listen", "127.0.0.1:0", "--layouts", &dir]);
    let (c, csrf) = s.admin();
    let cookie = device_cookie(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let board = layouts.path().join("display_board.html");
    let original = std::fs::read_to_string(&board).expect("board");
    rt.block_on(async {
        let mut ws = connect(&s.base, "board", &cookie).await.expect("connect");
        next_data(&mut ws, Duration::from_secs(5))
            .await
            .expect("current");
        // A designer saves a change: every board shows it within a second.
        let saved = Instant::now();
        std::fs::write(&board, original.replace("待ち人数", "お待ちの人数")).expect("save");
        let got = next_data(&mut ws, Duration::from_secs(5))
            .await
            .expect("re-rendered");
        assert!(
            got["html"]
                .as_str()
                .is_some_and(|h| h.contains("お待ちの人数")),
            "{got}"
        );
        let took = saved.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "reached the screen after {took:?}"
        );
        // A broken layout: the screens keep the last good output...
        std::fs::write(&board, "{% for %}\n").expect("break");
        assert!(
            next_data(&mut ws, Duration::from_millis(1500))
                .await
                .is_none(),
            "nothing broken is pushed"
        );
    });
    let served = c
        .get(s.url("/displays/board.html"))
        .send()
        .expect("board")
        .text()
        .expect("html");
    assert!(
        served.contains("お待ちの人数"),
        "the last good output stays"
    );
    // ...and the preview page names the file and line.
    let preview = c
        .get(s.url("/preview"))
        .send()
        .expect("preview")
        .text()
        .expect("html");
    assert!(preview.contains("display_board.html:1"), "{preview}");
    assert!(
        preview.contains("/preview/sample/"),
        "every surface has a sample link"
    );
    let sample = c
        .get(s.url("/preview/sample/guidance/idou"))
        .send()
        .expect("sample");
    assert_eq!(sample.status(), reqwest::StatusCode::OK);
    let html = sample.text().expect("html");
    assert!(
        html.contains("住民異動の受付") && html.contains("data-call="),
        "sample data drawn: {html}"
    );
    let _ = csrf;
}

#[test]
fn a_display_that_does_not_come_back_is_a_fault_on_the_admin_page() {
    let s = Server::start_args(None, &["--listen", "127.0.0.1:0", "--stale-after", "2"]);
    let (c, _) = s.admin();
    let cookie = device_cookie(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ws = connect(&s.base, "guidance/idou", &cookie)
            .await
            .expect("connect");
        next_data(&mut ws, Duration::from_secs(5))
            .await
            .expect("current");
        drop(ws);
    });
    // Twice the stale time (at least 5 s each) without the display coming back.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = c
            .get(s.url("/admin"))
            .send()
            .expect("admin")
            .text()
            .expect("html");
        if page.contains("display-1") && page.contains("has not come back") {
            break;
        }
        assert!(Instant::now() < deadline, "no fault recorded: {page}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let faults =
        std::fs::read_to_string(s.data_dir().join("data/faults.jsonl")).expect("fault file");
    // Named as staff know it, Japanese first (issue 18).
    assert!(
        faults.contains("「住民異動の受付」の案内表示") && faults.contains("接続が切れ"),
        "{faults}"
    );
}

/// Opens `/ws?topic=status` (public, no credential) over a raw socket and
/// returns it after the 101 answer.
fn raw_socket(s: &Server) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let addr = s.base.trim_start_matches("http://");
    let mut t = std::net::TcpStream::connect(addr).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        t,
        "GET /ws?topic=status HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(t.read(&mut b).expect("read head"), 1, "closed in the head");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    t
}

/// Sends `bytes` in pieces; true when the server closed the connection
/// before all of it was taken.
fn closed_while_sending(t: &mut std::net::TcpStream, bytes: usize) -> bool {
    use std::io::Write;
    t.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let piece = vec![0x41u8; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        if t.write_all(&piece).is_err() {
            return true;
        }
        sent += piece.len();
    }
    false
}

/// A client's big frame or long fragmented message is refused as it comes
/// (insider red team: anonymous sockets made the server buffer 60 MiB
/// frames, about 77 MiB of memory each).
#[test]
fn a_client_cannot_make_the_server_buffer_a_big_frame_or_message() {
    let s = Server::start();
    // One binary frame announcing 60 MiB, then its body.
    let mut t = raw_socket(&s);
    let mut frame = vec![0x82u8, 0x80 | 127];
    frame.extend_from_slice(&(60u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    use std::io::Write;
    t.write_all(&frame).expect("frame head");
    assert!(
        closed_while_sending(&mut t, 32 << 20),
        "the server took 32 MiB of a 60 MiB frame"
    );
    // Small non-final fragments adding up to a long message.
    let mut t = raw_socket(&s);
    let mut refused = false;
    for i in 0..64 * 1024 {
        let op = if i == 0 { 0x02u8 } else { 0x00 };
        let mut f = vec![op, 0x80 | 126];
        f.extend_from_slice(&512u16.to_be_bytes());
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend_from_slice(&[0x41; 512]);
        if t.write_all(&f).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the server took a 32 MiB fragmented message");
    // The server is still there for everyone else.
    let r = Server::client()
        .get(s.url("/api/status"))
        .send()
        .expect("status");
    assert!(r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED);
}
