//! The relay's response heads (issue 21; R11): every response keeps the
//! security headers that protect it — HSTS and nosniff everywhere, the
//! full Content-Security-Policy and Referrer-Policy on pages — and carries
//! nothing that repeats another header or says nothing for its kind of
//! response. The byte counts are printed for BENCHMARKS.md (they are not
//! timing-sensitive).

use std::time::Duration;

use ed25519_dalek::SigningKey;
use madoguchi_wire::bundle::{pack, Header, Kind};
use madoguchi_wire::UnixSeconds;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::relay_util::{self, Relay};

/// The head of the answer to a plain HTTP/1.1 GET (what a phone's first
/// request looks like, without compression).
async fn head(r: &Relay, path: &str) -> String {
    let mut s = r.connect().await.expect("tls");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let end = text.find("\r\n\r\n").expect("a whole head") + 4;
    text[..end].to_string()
}

fn has(head: &str, name: &str) -> bool {
    head.lines()
        .any(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
}

#[test]
fn heads_keep_the_security_headers_and_drop_what_repeats() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let r = relay_util::start(&key, "");
    let now = UnixSeconds::now().0;
    let h = Header {
        relay: crate::relay_util::RELAY_NAME.into(),
        seq: 1,
        created: UnixSeconds(now),
        expires: UnixSeconds(now + 300),
        kind: Kind::Full,
        base: 0,
        files: vec![],
        removed: vec![],
        reset: None,
    };
    let status = format!(
        "{{\"data\":{{\"s\":\"A\"}},\"pad\":\"{}\"}}",
        "x".repeat(2000)
    );
    let files = vec![
        ("index.html".to_string(), b"<p>A</p>".to_vec()),
        ("displays/status.json".to_string(), status.into_bytes()),
        ("site/display.js".to_string(), b"\"use strict\";".to_vec()),
    ];
    let res = r
        .http()
        .post(r.ingest_url("/bundle"))
        .header(madoguchi_wire::auth::HEADER, r.office_head())
        .body(pack(&h, &files, &key))
        .send()
        .expect("publish");
    assert!(res.status().is_success(), "{}", res.status());
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let (json, page, script, missing) = rt.block_on(async {
        (
            head(&r, "/displays/status.json").await,
            head(&r, "/").await,
            head(&r, "/site/display.js").await,
            head(&r, "/nothing-here").await,
        )
    });
    for (what, h) in [
        ("JSON", &json),
        ("page", &page),
        ("script", &script),
        ("404", &missing),
    ] {
        eprintln!("{what}: {} bytes of head\n{h}", h.len());
        assert!(has(h, "strict-transport-security"), "{what}: HSTS\n{h}");
        assert!(has(h, "x-content-type-options"), "{what}: nosniff\n{h}");
        assert!(has(h, "content-security-policy"), "{what}: CSP\n{h}");
        // CSP frame-ancestors says it for every browser that matters.
        assert!(!has(h, "x-frame-options"), "{what}: repeats CSP\n{h}");
        assert!(!has(h, "server"), "{what}: names the software\n{h}");
    }
    // The page's policy in full; a JSON answer or a script is no document
    // and needs only "nothing, and not in a frame".
    assert!(page.contains("script-src 'self'"), "{page}");
    assert!(has(&page, "referrer-policy"), "{page}");
    assert!(
        json.contains("content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n"),
        "{json}"
    );
    assert!(!has(&json, "referrer-policy"), "{json}");
    assert!(json.starts_with("HTTP/1.1 200"), "{json}");
    assert!(has(&json, "etag") && has(&json, "cache-control"), "{json}");
    assert!(
        json.len() < 400,
        "{} bytes of head for the status JSON",
        json.len()
    );
}
