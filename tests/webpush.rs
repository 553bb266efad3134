//! Web Push from the relay end to end (issue 20; R2, R6, R11): the real
//! relay binary, bundles signed as the office signs them, and a local
//! RFC 8030 push service over TLS on loopback (allow-listed in the relay's
//! configuration, with loopback in `push.private_ok`). The pushes are
//! decrypted with the subscription's keys by Python's `http_ece`, an
//! implementation independent of the relay's (`./scripts/test` installs it;
//! plain `cargo test` without it checks everything but the decryption and
//! says so). Also: the hardened `/push/subscribe` refuses what it must with
//! the right status while the status fan-out goes on, and a push service
//! that is slow, down or answers 410 costs the relay nothing.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use madoguchi_wire::bundle::{pack, Header, Kind};
use madoguchi_wire::UnixSeconds;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::relay_util::{self, Relay, ORIGIN};

const DATE: &str = "2026-12-06";

/// One request the push service received.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A local push service: `/ok/…` answers 201, `/gone/…` 410, `/fail/…`
/// 503, `/slow/…` nothing for 30 s.
struct PushService {
    port: u16,
    ca: std::path::PathBuf,
    got: Arc<Mutex<Vec<Got>>>,
    _dir: tempfile::TempDir,
}

impl PushService {
    fn start() -> PushService {
        let dir = tempfile::tempdir().expect("tmp");
        let certs = relay_util::certs(dir.path());
        use rustls::pki_types::pem::PemObject;
        let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&certs.cert)
            .expect("cert")
            .map(|c| c.expect("pem"))
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&certs.key).expect("key");
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let got_in = got.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let got = got_in.clone();
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = serve_one(tls, got).await;
                        }
                    });
                }
            });
        });
        PushService {
            port,
            ca: certs.ca,
            got,
            _dir: dir,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn received(&self, prefix: &str) -> Vec<Got> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|g| g.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Waits (20 s at most) for `n` requests on paths starting `prefix`.
    fn wait_for(&self, prefix: &str, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received(prefix);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} pushes to {prefix} expected, {} arrived",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One HTTP/1.1 request on a TLS connection, answered and closed.
async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    got: Arc<Mutex<Vec<Got>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 65536 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    got.lock().expect("lock").push(Got {
        path: path.clone(),
        headers,
        body,
    });
    let status = if path.starts_with("/ok/") {
        "201 Created"
    } else if path.starts_with("/gone/") {
        "410 Gone"
    } else if path.starts_with("/slow/") {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "201 Created"
    } else {
        "503 Service Unavailable"
    };
    s.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    s.shutdown().await
}

/// The `[push]` section for a relay that may send to these local ports.
fn push_section(svc: &PushService, down: u16, more: &str, private_ok: bool) -> String {
    format!(
        r#"[push]
contact = "mailto:relay-test@example.invalid"
services = ["localhost:{}", "localhost:{down}", "fcm.googleapis.com", "10.0.0.1"]
private_ok = [{}]
ca_file = "{}"
timeout_s = 1
retries = 1
{more}
"#,
        svc.port,
        if private_ok {
            "\"127.0.0.1\", \"::1\""
        } else {
            ""
        },
        svc.ca.display()
    )
}

/// The test's secret tag of a number (the office draws 64 random bits per
/// ticket; here a fixed one per number, so each test can claim it).
fn tag(n: u32) -> String {
    madoguchi_wire::ticket::tag_from(u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// What the mobile page sends for today's ticket `n`: date/number/tag, as
/// in the URL of its QR code.
fn claim(n: u32) -> String {
    format!("{DATE}/{n}/{}", tag(n))
}

/// The `ticket` topic as the office renders it: one queue, these numbers
/// waiting (4 minutes apart) and these being served; with the public
/// check of each live number's tag (never the tag).
fn ticket_json(date: &str, open: bool, waiting: &[u32], serving: &[(u32, &str)]) -> String {
    ticket_json_passed(date, open, waiting, serving, &[])
}

/// [`ticket_json`] with numbers called that did not come (不在).
fn ticket_json_passed(
    date: &str,
    open: bool,
    waiting: &[u32],
    serving: &[(u32, &str)],
    passed: &[u32],
) -> String {
    json!({
        "topic": "ticket",
        "data": {
            "date": date,
            "day_open": open,
            "queues": [{
                "queue": "idou",
                "name": {"ja": "住民異動"},
                "shape": "circle",
                "numbers": [100, 199],
                "serving": serving.iter().map(|(n, c)| json!([n, c])).collect::<Vec<_>>(),
                "waiting": waiting.iter().enumerate()
                    .map(|(i, n)| json!([n, (i as u32 + 1) * 4, format!("およそ{}分", (i + 1) * 4), null]))
                    .collect::<Vec<_>>(),
                "passed": passed,
            }],
            "checks": waiting.iter().copied()
                .chain(serving.iter().map(|(n, _)| *n))
                .chain(passed.iter().copied())
                .map(|n| (n.to_string(), json!(madoguchi_wire::ticket::check(date, n, &tag(n)))))
                .collect::<serde_json::Map<String, Value>>(),
        },
        "html": "<div class=\"ticket-page\"></div>",
    })
    .to_string()
}

/// Publishes a full bundle with the ticket topic, as the office does.
fn publish(r: &Relay, key: &SigningKey, seq: u64, ticket: String) {
    publish_for(r, key, seq, ticket, 600);
}

/// [`publish`] with data that expires after `life_s` seconds.
fn publish_for(r: &Relay, key: &SigningKey, seq: u64, ticket: String, life_s: i64) {
    let now = UnixSeconds::now().0;
    let header = Header {
        relay: crate::relay_util::RELAY_NAME.into(),
        seq,
        created: UnixSeconds(now),
        expires: UnixSeconds(now + life_s),
        kind: Kind::Full,
        base: 0,
        files: vec![],
        removed: vec![],
        reset: None,
    };
    let files = vec![
        ("m/index.html".to_string(), b"<p>m</p>".to_vec()),
        ("displays/ticket.json".to_string(), ticket.into_bytes()),
    ];
    let res = r
        .http()
        .post(r.ingest_url("/bundle"))
        .header(madoguchi_wire::auth::HEADER, r.office_head())
        .body(pack(&header, &files, key))
        .send()
        .expect("ingest");
    assert_eq!(res.status().as_u16(), 200, "bundle {seq} accepted");
}

/// One client per relay (its test CA): a new one per request would cost a
/// root store and a TLS handshake each.
fn client(r: &Relay) -> reqwest::blocking::Client {
    thread_local! {
        static CLIENTS: std::cell::RefCell<HashMap<u16, reqwest::blocking::Client>> =
            std::cell::RefCell::new(HashMap::new());
    }
    CLIENTS.with(|c| {
        c.borrow_mut()
            .entry(r.public.port())
            .or_insert_with(|| r.http())
            .clone()
    })
}

fn post(r: &Relay, path: &str, origin: Option<&str>, ctype: &str, body: Vec<u8>) -> u16 {
    let mut req = client(r)
        .post(r.public_url(path))
        .header("Content-Type", ctype)
        .body(body);
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    req.send().map(|res| res.status().as_u16()).unwrap_or(0)
}

fn subscribe(r: &Relay, body: &Value) -> u16 {
    post(
        r,
        "/push/subscribe",
        Some(ORIGIN),
        "application/json",
        body.to_string().into_bytes(),
    )
}

/// A subscription as `PushSubscription.toJSON()` gives it.
fn sub_body(ticket: &str, endpoint: &str, keys: &Keys, notify: Value) -> Value {
    json!({
        "ticket": ticket,
        "subscription": {
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": keys.public, "auth": keys.auth},
        },
        "notify": notify,
        "lang": "ja",
    })
}

/// A browser's subscription keys; `private` when Python made them (and can
/// decrypt with them).
struct Keys {
    public: String,
    auth: String,
    private: Option<String>,
}

const PYTHON: &str = r#"
import base64, os, sys, json
def d(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
def e(b): return base64.urlsafe_b64encode(b).decode().rstrip('=')
import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization
if sys.argv[1] == 'keys':
    k = ec.generate_private_key(ec.SECP256R1())
    pub = k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    print(json.dumps({'public': e(pub), 'private': e(k.private_numbers().private_value.to_bytes(32, 'big')), 'auth': e(os.urandom(16))}))
else:
    k = ec.derive_private_key(int.from_bytes(d(sys.argv[2]), 'big'), ec.SECP256R1())
    body = sys.stdin.buffer.read()
    sys.stdout.write(http_ece.decrypt(body, private_key=k, auth_secret=d(sys.argv[3]), version='aes128gcm').decode())
"#;

/// Whether Python's `http_ece` is here; without it only plain `cargo test`
/// may go on (the system tests must check the encryption).
fn python_ece() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import http_ece, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if cfg!(feature = "system-tests") {
            panic!(
                "Python's http_ece is needed to check the relay's Web Push encryption: \
                 `python3 -m pip install http_ece cryptography` (./scripts/test does)"
            );
        }
        eprintln!(
            "SKIPPED: decrypting with Python's http_ece (not installed; ./scripts/test \
             installs it): pushes are checked for delivery and form only"
        );
    }
    ok
}

fn keys(python: bool) -> Keys {
    if python {
        let out = Command::new("python3")
            .args(["-c", PYTHON, "keys"])
            .output()
            .expect("python");
        let v: Value = serde_json::from_slice(&out.stdout).expect("keys json");
        return Keys {
            public: v["public"].as_str().expect("public").into(),
            auth: v["auth"].as_str().expect("auth").into(),
            private: v["private"].as_str().map(String::from),
        };
    }
    // RFC 8291's example browser key (a valid point; nothing decrypts).
    Keys {
        public: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4".into(),
        auth: B64.encode(rand::random::<[u8; 16]>()),
        private: None,
    }
}

/// The push's plaintext (JSON), decrypted independently; `None` without
/// Python. Either way the body must have the aes128gcm form.
fn open_push(got: &Got, k: &Keys) -> Option<Value> {
    assert_eq!(
        got.headers.get("content-encoding").map(String::as_str),
        Some("aes128gcm")
    );
    let b = &got.body;
    assert!(b.len() > 86 + 17, "salt, rs, idlen, key id, record");
    assert_eq!(u32::from_be_bytes([b[16], b[17], b[18], b[19]]), 4096);
    assert_eq!(
        (b[20], b[21]),
        (65, 4),
        "the sender's key: an uncompressed point"
    );
    let private = k.private.as_ref()?;
    let mut child = Command::new("python3")
        .args(["-c", PYTHON, "decrypt", private, &k.auth])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b)
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "http_ece could not decrypt the push");
    Some(serde_json::from_slice(&out.stdout).expect("the plaintext is the notice JSON"))
}

/// The VAPID header: a JWT for the push service's origin, signed with the
/// key `/push/key` serves.
fn check_vapid(got: &Got, key_b64: &str, audience: &str) {
    let auth = got.headers.get("authorization").expect("authorization");
    let (t, k) = auth
        .strip_prefix("vapid t=")
        .and_then(|r| r.split_once(", k="))
        .expect("vapid t=…, k=…");
    assert_eq!(k, key_b64);
    let (input, sig) = t.rsplit_once('.').expect("jwt");
    let claims: Value = serde_json::from_slice(
        &B64.decode(input.split('.').nth(1).expect("claims"))
            .expect("b64"),
    )
    .expect("claims json");
    assert_eq!(claims["aud"], audience);
    assert_eq!(claims["sub"], "mailto:relay-test@example.invalid");
    let public = B64.decode(k).expect("key");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public)
        .verify(input.as_bytes(), &B64.decode(sig).expect("sig"))
        .expect("the VAPID signature verifies");
    assert!(got.headers.contains_key("ttl"));
}

fn wait_metric(r: &Relay, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = r.metric(name);
        if v == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{name}: {v:?}, expected {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_ticket_nearing_its_turn_is_pushed_encrypted_and_it_survives_a_restart_until_the_day_closes() {
    let python = python_ece();
    let office = SigningKey::from_bytes(&[21; 32]);
    let svc = PushService::start();
    let mut r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103, 104, 105, 106], &[]),
    );

    let key: Value = r
        .http()
        .get(r.public_url("/push/key"))
        .send()
        .and_then(|x| x.json())
        .expect("/push/key");
    let key_b64 = key["key"].as_str().expect("key").to_string();
    assert_eq!(B64.decode(&key_b64).map(|k| k.len()).ok(), Some(65));
    let sw = r
        .http()
        .get(r.public_url("/push/sw.js"))
        .send()
        .expect("sw");
    assert!(sw
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/javascript")));
    assert!(sw.text().unwrap_or_default().contains("showNotification"));

    let k = keys(python);
    let ticket = claim(106);
    assert_eq!(
        subscribe(
            &r,
            &sub_body(&ticket, &svc.endpoint("/ok/a"), &k, json!({"ahead": 2}))
        ),
        201
    );
    // Four ahead: nothing yet. Two ahead: told once, however often the
    // data repeats.
    publish(
        &r,
        &office,
        2,
        ticket_json(DATE, true, &[102, 103, 104, 105, 106], &[(101, "3")]),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(svc.received("/ok/a").is_empty(), "4 ahead > 2");
    publish(
        &r,
        &office,
        3,
        ticket_json(DATE, true, &[104, 105, 106], &[(103, "3")]),
    );
    publish(
        &r,
        &office,
        4,
        ticket_json(DATE, true, &[104, 105, 106], &[(103, "4")]),
    );
    let got = svc.wait_for("/ok/a", 1);
    check_vapid(
        &got[0],
        &key_b64,
        &format!("https://localhost:{}", svc.port),
    );
    if let Some(msg) = open_push(&got[0], &k) {
        let body = msg["body"].as_str().unwrap_or("");
        assert!(body.contains("106") && body.contains("あと 2 人"), "{msg}");
        // The page opens on the date and number; it remembers the tag.
        assert_eq!(msg["url"], format!("/m#{DATE}/106"));
    }
    wait_metric(&r, "madoguchi_relay_push_sent_total", 1);

    // The subscription and what it was told survive a restart.
    std::thread::sleep(Duration::from_millis(800));
    r.restart();
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 1);
    publish(
        &r,
        &office,
        5,
        ticket_json(DATE, true, &[105], &[(104, "3"), (106, "5")]),
    );
    let got = svc.wait_for("/ok/a", 2);
    if let Some(msg) = open_push(&got[1], &k) {
        let body = msg["body"].as_str().unwrap_or("");
        assert!(body.contains("106") && body.contains("5 番窓口"), "{msg}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        svc.received("/ok/a").len(),
        2,
        "no notice twice, restart or not"
    );

    // The day closes: every subscription ends, on disk too.
    publish(&r, &office, 6, ticket_json(DATE, false, &[], &[]));
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 0);
    std::thread::sleep(Duration::from_millis(800));
    let file = std::fs::read_to_string(r.state_dir().join("push/subscriptions.json"))
        .expect("subscriptions file");
    assert!(!file.contains("localhost"), "{file}");
}

#[test]
fn the_subscribe_route_refuses_abuse_with_the_right_status_and_the_fan_out_goes_on() {
    let office = SigningKey::from_bytes(&[22; 32]);
    let svc = PushService::start();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(
            &svc,
            relay_util::free_port(),
            "per_address_per_minute = 60\nper_ticket_per_minute = 30\nmax_body_bytes = 1024",
            false,
        )
    });
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103], &[(100, "1")]),
    );
    let k = keys(false);
    let ok_endpoint = "https://fcm.googleapis.com/fcm/send/abc";
    let good = |ticket: &str, endpoint: &str| sub_body(ticket, endpoint, &k, json!({"ahead": 3}));
    let t = claim(103);
    let mut bad_key = good(&t, ok_endpoint);
    bad_key["subscription"]["keys"]["p256dh"] = json!(B64.encode([4u8; 65]));
    let mut short_auth = good(&t, ok_endpoint);
    short_auth["subscription"]["keys"]["auth"] = json!(B64.encode([1u8; 15]));
    let mut extra = good(&t, ok_endpoint);
    extra["name"] = json!("山田太郎");
    let mut zero = good(&t, ok_endpoint);
    zero["notify"] = json!({"ahead": 0});
    let json_ct = "application/json";
    /// (what, Origin, Content-Type, body, the status it must get)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "no Origin",
            None,
            json_ct,
            good(&t, ok_endpoint).to_string().into(),
            403,
        ),
        (
            "another site",
            Some("https://evil.example"),
            json_ct,
            good(&t, ok_endpoint).to_string().into(),
            403,
        ),
        (
            "a form post",
            Some(ORIGIN),
            "text/plain",
            good(&t, ok_endpoint).to_string().into(),
            415,
        ),
        ("oversize", Some(ORIGIN), json_ct, vec![b' '; 4000], 413),
        (
            "not JSON",
            Some(ORIGIN),
            json_ct,
            b"{\"ticket\":".to_vec(),
            400,
        ),
        (
            "a field too many",
            Some(ORIGIN),
            json_ct,
            extra.to_string().into(),
            400,
        ),
        (
            "a key off the curve",
            Some(ORIGIN),
            json_ct,
            bad_key.to_string().into(),
            400,
        ),
        (
            "a short auth secret",
            Some(ORIGIN),
            json_ct,
            short_auth.to_string().into(),
            400,
        ),
        (
            "threshold 0",
            Some(ORIGIN),
            json_ct,
            zero.to_string().into(),
            400,
        ),
        (
            "a token that is not one",
            Some(ORIGIN),
            json_ct,
            good("../../etc/passwd", ok_endpoint).to_string().into(),
            400,
        ),
        (
            "an unknown number",
            Some(ORIGIN),
            json_ct,
            good(&claim(150), ok_endpoint).to_string().into(),
            404,
        ),
        (
            "yesterday's ticket",
            Some(ORIGIN),
            json_ct,
            good(&format!("2026-12-05/103/{}", tag(103)), ok_endpoint)
                .to_string()
                .into(),
            404,
        ),
        (
            "http",
            Some(ORIGIN),
            json_ct,
            good(&t, "http://fcm.googleapis.com/x").to_string().into(),
            422,
        ),
        (
            "a host not listed",
            Some(ORIGIN),
            json_ct,
            good(&t, "https://push.evil.example/x").to_string().into(),
            422,
        ),
        (
            "the cloud metadata address",
            Some(ORIGIN),
            json_ct,
            good(&t, "https://169.254.169.254/latest")
                .to_string()
                .into(),
            422,
        ),
        (
            "loopback by address",
            Some(ORIGIN),
            json_ct,
            good(&t, &format!("https://127.0.0.1:{}/ok/x", svc.port))
                .to_string()
                .into(),
            422,
        ),
        (
            "a listed private address",
            Some(ORIGIN),
            json_ct,
            good(&t, "https://10.0.0.1/x").to_string().into(),
            422,
        ),
        (
            "a listed name on loopback",
            Some(ORIGIN),
            json_ct,
            good(&t, &svc.endpoint("/ok/x")).to_string().into(),
            422,
        ),
    ];
    for (what, origin, ctype, body, want) in cases {
        assert_eq!(
            post(&r, "/push/subscribe", origin, ctype, body),
            want,
            "{what}"
        );
    }
    let get = r
        .http()
        .get(r.public_url("/push/subscribe"))
        .send()
        .expect("get");
    assert_eq!(get.status().as_u16(), 405);
    assert!(svc.received("/").is_empty(), "nothing was sent anywhere");

    // A flood from one address: refused with 429 once over the minute's
    // limit, memory flat, and the status fan-out unaffected.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut ws = rt
        .block_on(r.subscribe("ticket", ORIGIN))
        .expect("ticket subscriber");
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ws.next()).await });
    let rss_before = r.rss_kib();
    let statuses: Vec<u16> = (0..80)
        .map(|i| {
            subscribe(
                &r,
                &good(
                    &claim(101 + i % 3),
                    &format!("https://push.evil.example/{i}"),
                ),
            )
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 422 || *s == 429),
        "{statuses:?}"
    );
    publish(
        &r,
        &office,
        2,
        ticket_json(DATE, true, &[102, 103], &[(101, "1")]),
    );
    let started = Instant::now();
    let next = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ws.next()).await });
    assert!(
        matches!(next, Ok(Some(Ok(_)))),
        "the status subscriber gets the new data after the flood"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let grown = r.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 8 * 1024,
        "relay memory grew {grown} KiB in the flood"
    );
    let page = r.metrics();
    assert!(
        page.contains("madoguchi_relay_push_refused_total{reason=\"rate\"}"),
        "{page}"
    );
}

/// Push red team F1: requests refused before their body (a foreign
/// Origin, not JSON — what any web page can make a visitor's browser send
/// cross-site) do not spend the budget of the address they come from, so
/// the people behind one waiting-room Wi-Fi address still subscribe. F2:
/// while the office's data has expired, a subscription is refused (503)
/// instead of taken for a ticket the relay can no longer follow.
#[test]
fn junk_does_not_spend_an_address_budget_and_expired_data_takes_no_subscription() {
    let office = SigningKey::from_bytes(&[31; 32]);
    let svc = PushService::start();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(
            &svc,
            relay_util::free_port(),
            "per_address_per_minute = 5\nper_ticket_per_minute = 10",
            true,
        )
    });
    publish_for(&r, &office, 1, ticket_json(DATE, true, &[104, 105], &[]), 6);
    for _ in 0..20 {
        let st = post(
            &r,
            "/push/subscribe",
            Some("https://evil.example"),
            "text/plain",
            b"x".to_vec(),
        );
        assert_eq!(st, 403, "a foreign Origin is refused");
    }
    let k = keys(false);
    let body = sub_body(
        &claim(104),
        &svc.endpoint("/ok/real"),
        &k,
        json!({"ahead": 3}),
    );
    assert_eq!(
        subscribe(&r, &body),
        201,
        "the real holder on the same address still subscribes"
    );
    // The data expires (6 s after it was made): no new subscription.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = r
            .http()
            .get(r.public_url("/displays/ticket.json"))
            .send()
            .expect("ticket.json");
        if res.headers().contains_key("x-madoguchi-stale") {
            break;
        }
        assert!(Instant::now() < deadline, "the data never expired");
        std::thread::sleep(Duration::from_millis(300));
    }
    let body = sub_body(
        &claim(105),
        &svc.endpoint("/ok/late"),
        &k,
        json!({"ahead": 3}),
    );
    let (st, words) = subscribe_answer(&r, &body);
    assert_eq!(st, 503, "{words}");
    assert!(words.contains("最新の情報が届いていない"), "{words}");
    // Fresh data again: taken.
    publish(&r, &office, 2, ticket_json(DATE, true, &[104, 105], &[]));
    assert_eq!(subscribe_answer(&r, &body).0, 201);
}

/// Posts a subscription; the status and the answer's words.
fn subscribe_answer(r: &Relay, body: &Value) -> (u16, String) {
    let res = client(r)
        .post(r.public_url("/push/subscribe"))
        .header("Content-Type", "application/json")
        .header("Origin", ORIGIN)
        .body(body.to_string())
        .send()
        .expect("subscribe");
    (res.status().as_u16(), res.text().unwrap_or_default())
}

/// A ticket's date and number are on its paper and follow each other, so
/// anyone can guess the live ones (issue 20). Without the ticket's secret
/// tag — from its QR code, never published: the office sends only a check
/// of it — a guess is refused exactly as an unknown ticket is (same status,
/// same words: no oracle), and a flood of guesses neither takes the
/// ticket's subscription slots nor its per-minute budget: the visitor
/// holding the QR code still subscribes, up to the cap.
#[test]
fn a_guessed_date_and_number_without_the_tag_cannot_subscribe_nor_use_up_the_tickets_slots() {
    let office = SigningKey::from_bytes(&[29; 32]);
    let svc = PushService::start();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(
            &svc,
            relay_util::free_port(),
            "per_address_per_minute = 200\nper_ticket_per_minute = 10",
            true,
        )
    });
    publish(&r, &office, 1, ticket_json(DATE, true, &[104, 105], &[]));
    let k = keys(false);
    let body = |ticket: &str, i: usize| {
        sub_body(
            ticket,
            &svc.endpoint(&format!("/ok/guess-{i}")),
            &k,
            json!({"ahead": 3}),
        )
    };
    let (_, unknown) = subscribe_answer(&r, &body(&claim(150), 0));
    let guesses = [
        format!("{DATE}/105"),
        format!("{DATE}/105/"),
        format!("{DATE}/105/{}", tag(104)),
        format!("{DATE}/105/{}", tag(105).to_uppercase()),
        format!("{DATE}/105/{}0", tag(105)),
        format!("{DATE}/105/0000000000000000"),
        // The published check is no tag either.
        format!(
            "{DATE}/105/{}",
            madoguchi_wire::ticket::check(DATE, 105, &tag(105))
        ),
    ];
    for round in 0..3 {
        for (i, g) in guesses.iter().enumerate() {
            let (status, words) = subscribe_answer(&r, &body(g, round * 10 + i));
            assert_eq!(status, 404, "{g}");
            assert_eq!(words, unknown, "{g}: answered as an unknown ticket");
        }
    }
    assert!(
        r.metrics()
            .contains("madoguchi_relay_push_refused_total{reason=\"ticket\"} 22"),
        "{}",
        r.metrics()
    );
    assert_eq!(
        r.metric("madoguchi_relay_push_rate_tickets"),
        Some(0),
        "no guess was counted against the ticket's minute"
    );
    // 21 guesses later, the ticket's holder: all three slots are free.
    for i in 0..3 {
        let mine = sub_body(
            &claim(105),
            &svc.endpoint(&format!("/ok/mine-{i}")),
            &k,
            json!({"ahead": 3}),
        );
        assert_eq!(subscribe_answer(&r, &mine).0, 201, "slot {i}");
    }
    let fourth = sub_body(
        &claim(105),
        &svc.endpoint("/ok/mine-3"),
        &k,
        json!({"ahead": 3}),
    );
    assert_eq!(subscribe_answer(&r, &fourth).0, 409, "the cap holds");
    // Told at once (one ahead ≤ 3), each of the holder's browsers; no
    // guess was ever sent anything.
    let got = svc.wait_for("/ok/mine-", 3);
    assert_eq!(got.len(), 3);
    assert!(svc.received("/ok/guess-").is_empty());
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 3);
}

/// From the office to the relay (issue 20): the URL of a ticket's QR code
/// carries its own secret tag; the ticket data the office publishes — at
/// the relay and on its own LAN page — carries only the check of it; and
/// the relay then takes that ticket's subscription with the tag and
/// refuses it without, or with another ticket's, as it refuses an unknown
/// ticket.
#[test]
fn the_office_puts_the_tag_in_the_qr_url_publishes_only_its_check_and_the_relay_takes_it() {
    use crate::server::{cmd, Server};
    let svc = PushService::start();
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("office.key");
    let office = relay_util::office_key(&key_file);
    let relay = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
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
    let mut tickets = Vec::new();
    for _ in 0..2 {
        let (st, v) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
        assert_eq!(st, 200, "{v}");
        let number = v["ticket"].as_u64().and_then(|n| u32::try_from(n).ok());
        let url = v["issued"]["mobile_url"].as_str().unwrap_or_default();
        let fragment = url
            .strip_prefix(&format!("{public}/m#"))
            .unwrap_or_else(|| panic!("{url}: the relay's mobile page"));
        let parts: Vec<&str> = fragment.split('/').collect();
        let [date, n, tag] = parts[..] else {
            panic!("{fragment}: date/number/tag")
        };
        assert_eq!(date, crate::util::today());
        assert_eq!(n.parse().ok(), number);
        assert!(madoguchi_wire::ticket::valid_tag(tag), "{tag}");
        tickets.push((
            number.expect("number"),
            fragment.to_string(),
            tag.to_string(),
        ));
    }
    assert_ne!(tickets[0].2, tickets[1].2, "each ticket its own tag");
    let date = crate::util::today();

    // The relay's copy of the ticket data, once it has both tickets.
    let deadline = Instant::now() + Duration::from_secs(20);
    let published = loop {
        let text = relay
            .http()
            .get(relay.public_url("/displays/ticket.json"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if tickets
            .iter()
            .all(|(n, ..)| v["data"]["checks"].get(n.to_string()).is_some())
        {
            break (v, text);
        }
        assert!(Instant::now() < deadline, "checks not published: {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let lan = c
        .get(s.url("/displays/ticket.json"))
        .send()
        .and_then(|r| r.text())
        .expect("the office's own ticket data");
    for (n, _, tag) in &tickets {
        assert_eq!(
            published.0["data"]["checks"][n.to_string()],
            madoguchi_wire::ticket::check(&date, *n, tag)
        );
        assert!(
            !published.1.contains(tag.as_str()),
            "the tag is never published"
        );
        assert!(!lan.contains(tag.as_str()), "nor on the LAN page");
    }

    // The relay takes each ticket only with its own tag.
    let k = keys(false);
    let (mine, fragment, _) = &tickets[1];
    let try_with = |ticket: &str, i: usize| {
        subscribe_answer(
            &relay,
            &sub_body(
                ticket,
                &svc.endpoint(&format!("/ok/office-{i}")),
                &k,
                json!({"ahead": 5}),
            ),
        )
    };
    let (_, unknown) = try_with(&format!("{date}/{}/{}", mine + 50, tickets[0].2), 0);
    for (i, guess) in [
        format!("{date}/{mine}"),
        format!("{date}/{mine}/{}", tickets[0].2),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(try_with(guess, i + 1), (404, unknown.clone()), "{guess}");
    }
    assert_eq!(try_with(fragment, 3).0, 201, "{fragment}");
    // One ahead ≤ 5: told at once, through the subscription taken.
    svc.wait_for("/ok/office-3", 1);
    assert!(svc.received("/ok/office-1").is_empty() && svc.received("/ok/office-2").is_empty());
}

#[test]
fn a_slow_down_or_gone_push_service_costs_the_relay_nothing_and_gone_subscriptions_are_dropped() {
    let python = python_ece();
    let office = SigningKey::from_bytes(&[23; 32]);
    let svc = PushService::start();
    let down = relay_util::free_port();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, down, "max_per_ticket = 2", true)
    });
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103, 104], &[]),
    );
    let k = keys(python);
    for (n, endpoint) in [
        (101, svc.endpoint("/gone/1")),
        (102, svc.endpoint("/slow/2")),
        (103, format!("https://localhost:{down}/down/3")),
        (104, svc.endpoint("/ok/4")),
        (104, svc.endpoint("/ok/x")),
    ] {
        assert_eq!(
            subscribe(
                &r,
                &sub_body(&claim(n), &endpoint, &k, json!({"minutes": 60}))
            ),
            201,
            "{endpoint}"
        );
    }
    let per_ticket = |endpoint: String| {
        subscribe(
            &r,
            &sub_body(&claim(104), &endpoint, &k, json!({"minutes": 60})),
        )
    };
    assert_eq!(
        per_ticket(svc.endpoint("/ok/4")),
        200,
        "the same browser again"
    );
    assert_eq!(
        per_ticket(svc.endpoint("/ok/y")),
        409,
        "a third for one ticket"
    );
    // Everyone is within 60 minutes: a notice each at once.
    let got = svc.wait_for("/ok/", 2);
    let mine = got.iter().find(|g| g.path == "/ok/4").expect("/ok/4");
    if let Some(msg) = open_push(mine, &k) {
        assert!(msg["body"].as_str().unwrap_or("").contains("104"), "{msg}");
    }
    svc.wait_for("/gone/1", 1);
    wait_metric(&r, "madoguchi_relay_push_gone_total", 1);
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 4);
    // While the slow service holds its pushes, the relay answers at once.
    let started = Instant::now();
    let page = r
        .http()
        .get(r.public_url("/m"))
        .send()
        .expect("mobile page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The slow one times out (1 s) and is tried once more; the down one
    // likewise: both given up, neither dropped (the service may recover).
    wait_metric(&r, "madoguchi_relay_push_failed_total", 2);
    assert_eq!(svc.received("/slow/2").len(), 2, "one retry");
    assert_eq!(r.metric("madoguchi_relay_push_retries_total"), Some(2));
    assert_eq!(r.metric("madoguchi_relay_push_sent_total"), Some(2));
    assert_eq!(r.metric("madoguchi_relay_push_subscriptions"), Some(4));
}

/// The relay's VAPID public key (`/push/key`).
fn push_key(r: &Relay) -> String {
    let key: Value = client(r)
        .get(r.public_url("/push/key"))
        .send()
        .and_then(|x| x.json())
        .expect("/push/key");
    key["key"].as_str().expect("key").to_string()
}

/// The office sends every bundle to every relay.
fn publish_all(rs: &[&Relay], key: &SigningKey, seq: u64, ticket: String) {
    for r in rs {
        publish(r, key, seq, ticket.clone());
    }
}

/// Waits (20 s at most) until `path` on the push service has `n` requests
/// and checks that no more come for half a second.
fn exactly(svc: &PushService, path: &str, n: usize) -> Vec<Got> {
    svc.wait_for(path, n);
    std::thread::sleep(Duration::from_millis(500));
    let got = svc.received(path);
    assert_eq!(got.len(), n, "{path}: exactly {n} pushes");
    got
}

/// Waits (20 s at most) until the relay's subscriptions file no longer
/// names `endpoint` (it is written a moment after each change).
fn wait_file_without(r: &Relay, endpoint: &str) {
    let file = r.state_dir().join("push/subscriptions.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if !text.contains(endpoint) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} still on disk: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two relays behind a CDN (deploy/README.md, "Several relays behind a
/// CDN"): the office sends both the same bundles; a subscription is held
/// and fired by the relay that took it — each push signed with that
/// relay's own VAPID key — the other never sends it. While its relay is
/// down the subscription waits; after the restart it fires once, from the
/// same relay and key. The end of the ticket and the close of the day
/// delete the subscriptions on both relays, on disk too.
#[test]
fn with_two_relays_a_subscription_is_fired_once_by_the_relay_that_took_it_even_across_its_restart()
{
    let python = python_ece();
    let office = SigningKey::from_bytes(&[24; 32]);
    let svc = PushService::start();
    let start = || {
        relay_util::start_sections(&office, "", "", 0, |_| {
            push_section(&svc, relay_util::free_port(), "", true)
        })
    };
    let mut a = start();
    let b = start();
    let (key_a, key_b) = (push_key(&a), push_key(&b));
    assert_ne!(key_a, key_b, "each relay makes its own VAPID key");
    let audience = format!("https://localhost:{}", svc.port);
    let waiting: Vec<u32> = (101..=110).collect();
    publish_all(
        &[&a, &b],
        &office,
        1,
        ticket_json(DATE, true, &waiting, &[]),
    );

    // The CDN sent the visitor of 108 to relay A, the visitor of 105 to B.
    let (ka, kb) = (keys(python), keys(python));
    let at_a = sub_body(
        &claim(108),
        &svc.endpoint("/ok/via-a"),
        &ka,
        json!({"ahead": 2}),
    );
    let at_b = sub_body(
        &claim(105),
        &svc.endpoint("/ok/via-b"),
        &kb,
        json!({"ahead": 2}),
    );
    assert_eq!(subscribe(&a, &at_a), 201);
    assert_eq!(subscribe(&b, &at_b), 201);
    assert_eq!(a.metric("madoguchi_relay_push_subscriptions"), Some(1));
    assert_eq!(b.metric("madoguchi_relay_push_subscriptions"), Some(1));

    // 105 is two ahead on both relays: only B, which holds it, pushes.
    publish_all(
        &[&a, &b],
        &office,
        2,
        ticket_json(DATE, true, &waiting[2..], &[(102, "1")]),
    );
    let got = exactly(&svc, "/ok/via-b", 1);
    check_vapid(&got[0], &key_b, &audience);
    assert!(svc.received("/ok/via-a").is_empty());
    // 108 is two ahead and 105 called: A tells 108 once, B tells 105.
    publish_all(
        &[&a, &b],
        &office,
        3,
        ticket_json(DATE, true, &waiting[5..], &[(105, "2")]),
    );
    let got = exactly(&svc, "/ok/via-a", 1);
    check_vapid(&got[0], &key_a, &audience);
    if let Some(msg) = open_push(&got[0], &ka) {
        let body = msg["body"].as_str().unwrap_or("");
        assert!(body.contains("108") && body.contains("あと 2 人"), "{msg}");
    }
    exactly(&svc, "/ok/via-b", 2);
    assert_eq!(a.metric("madoguchi_relay_push_sent_total"), Some(1));
    assert_eq!(b.metric("madoguchi_relay_push_sent_total"), Some(2));

    // A goes down (what it was told is on disk). The office's bundles
    // reach only B: 108 is called, 105 is served and gone. B ends its
    // subscription quietly; A's waits.
    std::thread::sleep(Duration::from_millis(800));
    a.stop();
    let called = ticket_json(DATE, true, &waiting[8..], &[(108, "4")]);
    publish(&b, &office, 4, called.clone());
    wait_metric(&b, "madoguchi_relay_push_subscriptions", 0);
    wait_file_without(&b, "/ok/via-b");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(svc.received("/ok/via-a").len(), 1, "A is down: nothing yet");
    assert_eq!(b.metric("madoguchi_relay_push_sent_total"), Some(2));

    // A is back with its subscription; the office's next bundle reaches it
    // and A tells the call, once, with the same key.
    a.restart();
    wait_metric(&a, "madoguchi_relay_push_subscriptions", 1);
    assert_eq!(push_key(&a), key_a, "the VAPID key survives the restart");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        svc.received("/ok/via-a").len(),
        1,
        "the stored data told again nothing"
    );
    publish(&a, &office, 5, called.clone());
    let got = exactly(&svc, "/ok/via-a", 2);
    check_vapid(&got[1], &key_a, &audience);
    if let Some(msg) = open_push(&got[1], &ka) {
        let body = msg["body"].as_str().unwrap_or("");
        assert!(body.contains("108") && body.contains("4 番窓口"), "{msg}");
    }
    publish_all(&[&a, &b], &office, 6, called);
    exactly(&svc, "/ok/via-a", 2);
    assert_eq!(svc.received("/ok/via-b").len(), 2, "B never sends A's");

    // The day closes: no subscription left on either relay, on disk too.
    publish_all(&[&a, &b], &office, 7, ticket_json(DATE, false, &[], &[]));
    wait_metric(&a, "madoguchi_relay_push_subscriptions", 0);
    wait_metric(&b, "madoguchi_relay_push_subscriptions", 0);
    wait_file_without(&a, "/ok/via-a");
    wait_file_without(&b, "/ok/via-b");
    assert_eq!(a.metric("madoguchi_relay_push_ended_total"), Some(1));
}

/// The notice titles, by language, for a near notice and a call.
const NEAR_TITLE: [(&str, &str); 5] = [
    ("ja", "まもなく順番です"),
    ("easy", "もうすぐ じゅんばんです"),
    ("en", "Your turn is near"),
    ("zh", "即将轮到您"),
    ("ko", "곧 차례입니다"),
];

/// The push follows the language the visitor chose on the page, also a
/// later change: the page sends its subscription again with the new
/// language (site/display.js `pushLanguage`), and the relay's next push is
/// in it — checked after decryption by Python's http_ece — while what was
/// already told stays told.
#[test]
fn a_language_chosen_later_on_the_page_is_the_language_of_the_next_push() {
    let python = python_ece();
    let office = SigningKey::from_bytes(&[25; 32]);
    let svc = PushService::start();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
    let waiting: Vec<u32> = (101..=115).collect();
    publish(&r, &office, 1, ticket_json(DATE, true, &waiting, &[]));
    // Each visitor subscribed in one language and switched to the next.
    let changes = [
        ("ja", "easy"),
        ("easy", "en"),
        ("en", "zh"),
        ("zh", "ko"),
        ("ko", "ja"),
    ];
    let ks: Vec<Keys> = changes.iter().map(|_| keys(python)).collect();
    let mut bodies = Vec::new();
    for (i, (first, then)) in changes.iter().enumerate() {
        let mut body = sub_body(
            &claim(111 + i as u32),
            &svc.endpoint(&format!("/ok/lang{i}")),
            &ks[i],
            json!({"ahead": 5}),
        );
        body["lang"] = json!(first);
        assert_eq!(subscribe(&r, &body), 201);
        body["lang"] = json!(then);
        assert_eq!(subscribe(&r, &body), 200, "sent again: {then}");
        bodies.push(body);
    }
    assert_eq!(r.metric("madoguchi_relay_push_subscriptions"), Some(5));
    publish(
        &r,
        &office,
        2,
        ticket_json(DATE, true, &waiting[10..], &[(110, "1")]),
    );
    for (i, (first, then)) in changes.iter().enumerate() {
        let got = svc.wait_for(&format!("/ok/lang{i}"), 1);
        if let Some(msg) = open_push(&got[0], &ks[i]) {
            let want = NEAR_TITLE.iter().find(|(l, _)| l == then).map(|(_, t)| *t);
            assert_eq!(msg["title"].as_str(), want, "{first} → {then}: {msg}");
            assert!(
                msg["body"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&(111 + i).to_string()),
                "{msg}"
            );
        }
    }
    // A change after the first notice: the call comes in the newest
    // language, and the near notice is not told again.
    bodies[0]["lang"] = json!("ko");
    assert_eq!(subscribe(&r, &bodies[0]), 200);
    publish(
        &r,
        &office,
        3,
        ticket_json(DATE, true, &waiting[11..], &[(111, "7")]),
    );
    let got = exactly(&svc, "/ok/lang0", 2);
    if let Some(msg) = open_push(&got[1], &ks[0]) {
        assert_eq!(msg["title"], "호출 중입니다", "{msg}");
        assert_eq!(msg["body"], "111번, 7번 창구로 와 주세요.", "{msg}");
        assert_eq!(msg["kind"], "called");
    }
    for i in 1..changes.len() {
        assert_eq!(svc.received(&format!("/ok/lang{i}")).len(), 1);
    }
}

/// A number called that did not come (不在): the office lists it as
/// passed (numbers only), and the relay pushes 「職員に声をおかけください」
/// once — even after a call it told — and keeps the subscription: when
/// staff return the number to the queue and call it again, that call is
/// told too (renderer/src/surfaces.rs makes the list; its unit test
/// `an_absent_number_is_published_as_passed_until_it_returns`).
#[test]
fn a_number_called_that_did_not_come_is_pushed_please_speak_to_staff_once_and_followed_when_it_returns(
) {
    let python = python_ece();
    let office = SigningKey::from_bytes(&[26; 32]);
    let svc = PushService::start();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
    let k = keys(python);
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103], &[]),
    );
    assert_eq!(
        subscribe(
            &r,
            &sub_body(&claim(103), &svc.endpoint("/ok/p"), &k, json!({"ahead": 1}))
        ),
        201
    );
    /// (waiting, serving, passed, pushes received by then)
    type Step<'a> = (&'a [u32], &'a [(u32, &'a str)], &'a [u32], usize);
    let steps: [Step; 7] = [
        (&[103], &[(101, "1"), (102, "2")], &[], 1), // near
        (&[], &[(103, "3")], &[], 2),                // called
        (&[], &[], &[103], 3),                       // passed
        (&[104], &[], &[103], 3),                    // still passed: once
        (&[103, 104], &[], &[], 3),                  // returned, first in line
        (&[104], &[(103, "3")], &[], 4),             // called again, same counter
        (&[104], &[], &[], 4),                       // served: ends quietly
    ];
    for (seq, (waiting, serving, passed, pushes)) in steps.iter().enumerate() {
        publish(
            &r,
            &office,
            seq as u64 + 2,
            ticket_json_passed(DATE, true, waiting, serving, passed),
        );
        exactly(&svc, "/ok/p", *pushes);
    }
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 0);
    let got = svc.received("/ok/p");
    let opened: Vec<Value> = got.iter().filter_map(|g| open_push(g, &k)).collect();
    if !opened.is_empty() {
        let kinds: Vec<&str> = opened
            .iter()
            .map(|m| m["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["near", "called", "passed", "called"]);
        let passed = opened[2]["body"].as_str().unwrap_or("");
        assert!(
            passed.contains("103") && passed.contains("職員に声をおかけください"),
            "{passed}"
        );
    }
}

/// A client of `r`'s public side from another loopback address (each one a
/// stranger to the relay's per-address limits).
fn client_from(r: &Relay, ip: std::net::IpAddr) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(r.certs.ca_pem.as_bytes()).expect("ca"),
        )
        .local_address(ip)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn subscribe_from(c: &reqwest::blocking::Client, r: &Relay, body: &Value) -> u16 {
    c.post(r.public_url("/push/subscribe"))
        .header("Origin", ORIGIN)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .map(|res| res.status().as_u16())
        .unwrap_or(0)
}

/// Trying `/push/subscribe` as an attacker would, past what the first abuse
/// test covers: bodies that trickle (408 at the body deadline while others
/// are served at once), many addresses against one ticket (the per-ticket
/// cap, then its rate limit), many addresses filling the relay (the total
/// cap: 503), and made-up tokens from many addresses, which must not enter
/// the per-ticket rate table (a full table would refuse everyone for the
/// rest of the minute). Memory stays flat and nothing is pushed.
#[test]
fn many_addresses_and_trickled_bodies_are_held_by_the_caps_and_deadlines() {
    let office = SigningKey::from_bytes(&[27; 32]);
    let svc = PushService::start();
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "max_total = 6", true)
    });
    let waiting: Vec<u32> = (101..=120).collect();
    publish(&r, &office, 1, ticket_json(DATE, true, &waiting, &[]));
    let k = keys(false);
    let rss_before = r.rss_kib();

    // Trickled bodies: the head, a few bytes, then nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let head = format!(
        "POST /push/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ORIGIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 900\r\n\r\n{{\"ticket\":"
    );
    let mut slow = rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..4 {
            let mut s = r.connect().await.expect("tls");
            s.write_all(head.as_bytes()).await.expect("head");
            s.flush().await.expect("flush");
            conns.push(s);
        }
        conns
    });
    let started = Instant::now();
    assert_eq!(push_key(&r).len(), 87, "served while bodies trickle");
    assert!(started.elapsed() < Duration::from_secs(2));
    for s in &mut slow {
        let answer = rt.block_on(async {
            let mut buf = vec![0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
                .await
                .expect("answered within the body deadline")
                .expect("read");
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(15));

    let from = |i: u8| client_from(&r, std::net::IpAddr::from([127, 0, 1, i]));
    // One ticket from twenty addresses: three subscriptions, then 409,
    // then 429 once the ticket's minute is used up.
    let statuses: Vec<u16> = (0..20u8)
        .map(|i| {
            subscribe_from(
                &from(i + 1),
                &r,
                &sub_body(
                    &claim(120),
                    &svc.endpoint(&format!("/ok/t{i}")),
                    &k,
                    json!({"ahead": 1}),
                ),
            )
        })
        .collect();
    assert_eq!(statuses[..3], [201, 201, 201], "{statuses:?}");
    assert!(
        statuses[3..].iter().all(|s| *s == 409 || *s == 429) && statuses.contains(&429),
        "{statuses:?}"
    );
    // Many tickets from many addresses: the total cap (6) holds.
    let statuses: Vec<u16> = (0..8u8)
        .map(|i| {
            subscribe_from(
                &from(i + 100),
                &r,
                &sub_body(
                    &claim(110 + u32::from(i)),
                    &svc.endpoint(&format!("/ok/n{i}")),
                    &k,
                    json!({"ahead": 1}),
                ),
            )
        })
        .collect();
    assert_eq!(statuses, [201, 201, 201, 503, 503, 503, 503, 503]);
    assert_eq!(r.metric("madoguchi_relay_push_subscriptions"), Some(6));
    // Made-up tokens from many addresses: 404, and the ticket table does
    // not grow (a new minute may only empty it).
    let tracked = r
        .metric("madoguchi_relay_push_rate_tickets")
        .expect("gauge");
    assert!(tracked >= 1, "live tickets are counted");
    for i in 0..40u8 {
        let token = if i % 2 == 0 {
            format!("{DATE}/{}", 5000 + u32::from(i))
        } else {
            format!("2031-01-{:02}/120", 1 + i % 28)
        };
        let status = subscribe_from(
            &from(i + 150),
            &r,
            &sub_body(&token, &svc.endpoint("/ok/x"), &k, json!({"ahead": 1})),
        );
        assert_eq!(status, 404, "{token}");
    }
    let after = r
        .metric("madoguchi_relay_push_rate_tickets")
        .expect("gauge");
    assert!(
        after <= tracked,
        "made-up tokens tracked: {tracked} → {after}"
    );
    let grown = r.rss_kib().saturating_sub(rss_before);
    assert!(grown < 8 * 1024, "relay memory grew {grown} KiB");
    std::thread::sleep(Duration::from_millis(300));
    assert!(svc.received("/").is_empty(), "nothing was pushed");
}

/// DNS rebinding: a push service's name that was public when the
/// subscription was taken answers with an address the relay refuses by the
/// time it sends. The relay's resolver applies the rule at connect time, so
/// nothing is sent; the subscription is dropped (not retried) and counted.
/// On loopback the changed answer is played by taking loopback off
/// `private_ok` across a restart: the same name, now refused.
#[test]
fn an_endpoint_whose_name_turns_private_after_subscribing_is_sent_nothing_and_dropped() {
    let office = SigningKey::from_bytes(&[28; 32]);
    let svc = PushService::start();
    let mut r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103, 104], &[]),
    );
    let k = keys(false);
    assert_eq!(
        subscribe(
            &r,
            &sub_body(
                &claim(104),
                &svc.endpoint("/ok/rebind"),
                &k,
                json!({"ahead": 1})
            )
        ),
        201
    );
    std::thread::sleep(Duration::from_millis(800));
    let config = std::fs::read_to_string(r.config_file()).expect("config");
    let narrowed = config.replace("private_ok = [\"127.0.0.1\", \"::1\"]", "private_ok = []");
    assert_ne!(config, narrowed);
    std::fs::write(r.config_file(), narrowed).expect("config");
    r.restart();
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 1);
    publish(
        &r,
        &office,
        2,
        ticket_json(DATE, true, &[103, 104], &[(101, "1")]),
    );
    wait_metric(&r, "madoguchi_relay_push_unsafe_address_total", 1);
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 0);
    assert_eq!(r.metric("madoguchi_relay_push_retries_total"), Some(0));
    assert_eq!(r.metric("madoguchi_relay_push_sent_total"), Some(0));
    assert!(svc.received("/").is_empty(), "nothing reached the address");
}

/// The files in the relay's push folder whose names begin `prefix`.
fn push_files(r: &Relay, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(r.state_dir().join("push"))
        .expect("push folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

/// `/push/key` by a fresh client (the relay restarts in between), or the
/// status it answered.
fn push_key_now(r: &Relay) -> Result<String, u16> {
    let res = r
        .http()
        .get(r.public_url("/push/key"))
        .send()
        .expect("the public side answers");
    match res.status().as_u16() {
        200 => Ok(res.json::<Value>().expect("json")["key"]
            .as_str()
            .expect("key")
            .to_string()),
        st => Err(st),
    }
}

/// relay-rt2 F2(c): a damaged push file is set aside and replaced, a file
/// that cannot be read is left alone; either way the relay serves.
#[test]
fn damaged_push_files_are_set_aside_and_replaced_and_an_unreadable_one_stops_only_push() {
    let office = SigningKey::from_bytes(&[23; 32]);
    let svc = PushService::start();
    let mut r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103], &[]),
    );
    let key_a = push_key_now(&r).expect("push runs");
    let k = keys(false);
    let sub = |r: &Relay, ep: &str| {
        subscribe(
            r,
            &sub_body(&claim(103), &svc.endpoint(ep), &k, json!({"ahead": 1})),
        )
    };
    assert_eq!(sub(&r, "/ok/before"), 201);
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 1);
    let dir = r.state_dir().join("push");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(dir.join("subscriptions.json"))
        .unwrap_or_default()
        .contains("/ok/before")
    {
        assert!(Instant::now() < deadline, "subscription never written");
        std::thread::sleep(Duration::from_millis(100));
    }
    let public_ok = |r: &Relay| {
        r.http()
            .get(r.public_url("/m/"))
            .send()
            .map(|x| x.status().as_u16())
            .unwrap_or(0)
    };

    // (1) `truncate -s 10 vapid.pk8`: a new key, the old one and the
    // subscriptions made for it set aside (kept), push running.
    r.stop();
    let pk8 = dir.join("vapid.pk8");
    let original = std::fs::read(&pk8).expect("key file");
    std::fs::write(&pk8, &original[..10]).expect("truncate");
    r.restart();
    assert_eq!(public_ok(&r), 200, "the public site is up");
    let key_b = push_key_now(&r).expect("push runs with a new key");
    assert_ne!(key_a, key_b, "a new VAPID key");
    let aside = push_files(&r, "vapid.pk8.set-aside-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("kept").len(), 10);
    let subs_aside = push_files(&r, "subscriptions.json.set-aside-");
    assert_eq!(subs_aside.len(), 1, "{subs_aside:?}");
    assert!(std::fs::read_to_string(&subs_aside[0])
        .expect("kept")
        .contains("/ok/before"));
    assert_eq!(r.metric("madoguchi_relay_state_set_aside_total"), Some(2));
    assert_eq!(r.metric("madoguchi_relay_push_unavailable"), Some(0));
    assert_eq!(r.metric("madoguchi_relay_push_subscriptions"), Some(0));
    assert_eq!(sub(&r, "/ok/after-key"), 201, "push takes subscriptions");

    // (2) A truncated subscriptions file: set aside, none held, the key kept.
    r.stop();
    std::fs::write(
        dir.join("subscriptions.json"),
        b"{\"version\":1,\"subscriptions\":[{",
    )
    .expect("truncate");
    r.restart();
    assert_eq!(public_ok(&r), 200);
    assert_eq!(push_key_now(&r), Ok(key_b.clone()), "the key is kept");
    let subs_aside = push_files(&r, "subscriptions.json.set-aside-");
    assert_eq!(
        subs_aside.len(),
        2,
        "the earlier one kept too: {subs_aside:?}"
    );
    assert!(subs_aside
        .iter()
        .any(|p| std::fs::read(p).is_ok_and(|b| b == b"{\"version\":1,\"subscriptions\":[{")));
    assert_eq!(r.metric("madoguchi_relay_state_set_aside_total"), Some(1));
    assert_eq!(r.metric("madoguchi_relay_push_subscriptions"), Some(0));
    assert_eq!(sub(&r, "/ok/after-list"), 201);

    // (3) A key file that cannot be read (here a folder in its place; EIO
    // and permissions are the same kind of error): nothing renamed or
    // replaced, push off, the public site up, the fault on /metrics.
    r.stop();
    let good = std::fs::read(&pk8).expect("key");
    std::fs::remove_file(&pk8).expect("rm");
    std::fs::create_dir(&pk8).expect("a folder in its place");
    let before = std::fs::read_dir(&dir).expect("dir").count();
    r.restart();
    assert_eq!(public_ok(&r), 200, "the public site is up without push");
    assert_eq!(push_key_now(&r), Err(404), "no push");
    assert_eq!(r.metric("madoguchi_relay_push_unavailable"), Some(1));
    assert_eq!(r.metric("madoguchi_relay_state_set_aside_total"), Some(0));
    assert!(pk8.is_dir(), "left as it was");
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), before);
    assert!(
        push_files(&r, "vapid.pk8").len() == 2,
        "no new key beside it"
    );
    // Fixed, the same key serves again.
    r.stop();
    std::fs::remove_dir(&pk8).expect("rmdir");
    std::fs::write(&pk8, &good).expect("restore");
    r.restart();
    assert_eq!(push_key_now(&r), Ok(key_b));
    assert_eq!(r.metric("madoguchi_relay_push_unavailable"), Some(0));
}

/// Outside tester push-rt6 F3: pushes to a slow push service take at most
/// their own service's slots (`per_service`, 8 by default), so a healthy
/// service's notice goes past them at once. On the old code the 12 slow
/// pushes held all 10 slots and the healthy one waited for their timeout.
#[test]
fn a_slow_push_service_delays_only_its_own_subscribers() {
    let python = python_ece();
    let office = SigningKey::from_bytes(&[31; 32]);
    let slow = PushService::start();
    let healthy = PushService::start();
    let dir = tempfile::tempdir().expect("tmp");
    // Each local service has its own test CA: the relay trusts both.
    let cas = dir.path().join("cas.pem");
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).expect("ca");
    std::fs::write(&cas, pem(&slow.ca) + &pem(&healthy.ca)).expect("cas");
    let r = relay_util::start_sections(&office, "", "", 0, |_| {
        format!(
            r#"[push]
contact = "mailto:relay-test@example.invalid"
services = ["localhost:{}", "localhost:{}"]
private_ok = ["127.0.0.1", "::1"]
ca_file = "{}"
timeout_s = 8
retries = 0
concurrency = 10
"#,
            slow.port,
            healthy.port,
            cas.display()
        )
    });
    let waiting = [101, 102, 103, 104, 105, 106, 107, 108, 110];
    publish(&r, &office, 1, ticket_json(DATE, true, &waiting, &[]));
    let k = keys(python);
    // Twelve subscriptions on the slow service, all due at once (within
    // 60 minutes): every one is sent when it is taken.
    for n in [101, 102, 103, 104] {
        for i in 0..3 {
            let endpoint = slow.endpoint(&format!("/slow/{n}-{i}"));
            let body = sub_body(&claim(n), &endpoint, &k, json!({"minutes": 60}));
            assert_eq!(subscribe(&r, &body), 201, "{endpoint}");
        }
    }
    let mut mine = sub_body(
        &claim(110),
        &healthy.endpoint("/ok/110"),
        &k,
        json!({"ahead": 1}),
    );
    mine["lang"] = json!("en");
    assert_eq!(subscribe(&r, &mine), 201);
    slow.wait_for("/slow/", 8);
    std::thread::sleep(Duration::from_millis(300));
    assert!(healthy.received("/ok/").is_empty(), "8 ahead > 1");
    // The healthy service's visitor is next while the slow pushes hang.
    let called = Instant::now();
    publish(
        &r,
        &office,
        2,
        ticket_json(
            DATE,
            true,
            &[110, 105, 106, 107, 108],
            &[(101, "1"), (102, "2"), (103, "3"), (104, "4")],
        ),
    );
    let deadline = called + Duration::from_secs(3);
    while healthy.received("/ok/110").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the healthy service's push waited behind the slow one ({} slow pushes in flight)",
            slow.received("/slow/").len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "healthy push sent {} ms after its data; slow pushes in flight: {}",
        called.elapsed().as_millis(),
        slow.received("/slow/").len()
    );
    // The slow service had its lane's 8, not the 10 of all.
    assert_eq!(slow.received("/slow/").len(), 8);
    // F5: the push names its language, which the service worker gives
    // the notification.
    if let Some(msg) = open_push(&healthy.received("/ok/110")[0], &k) {
        assert_eq!(msg["lang"], "en", "{msg}");
        assert!(msg["body"].as_str().unwrap_or("").contains("110"), "{msg}");
    }
}

/// Outside tester push-rt6 F4: "subscribed" (201) is answered once the
/// subscription is in the state folder, so a stop right after it loses
/// nothing. On the old code the answer came before the write (batched
/// 200 ms later) and the file did not have it yet.
#[test]
fn a_subscription_is_on_disk_when_it_is_answered() {
    let office = SigningKey::from_bytes(&[32; 32]);
    let svc = PushService::start();
    let mut r = relay_util::start_sections(&office, "", "", 0, |_| {
        push_section(&svc, relay_util::free_port(), "", true)
    });
    publish(
        &r,
        &office,
        1,
        ticket_json(DATE, true, &[101, 102, 103], &[]),
    );
    let k = keys(false);
    let file = r.state_dir().join("push/subscriptions.json");
    for n in [101, 102, 103] {
        let endpoint = svc.endpoint(&format!("/ok/durable-{n}"));
        let body = sub_body(&claim(n), &endpoint, &k, json!({"ahead": 1}));
        assert_eq!(subscribe(&r, &body), 201);
        let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            on_disk.contains(&endpoint),
            "answered 201 before it was written: {on_disk}"
        );
    }
    // And a stop at once keeps all three.
    r.restart();
    wait_metric(&r, "madoguchi_relay_push_subscriptions", 3);
}
