//! Certificates renewed on disk (issue 21; R11): Let's Encrypt renews
//! every 60–90 days, and a relay restart would drop every subscriber. The
//! relay checks its certificate files (every `cert_check_s`, and at once on
//! SIGHUP): a renewed pair serves new TLS handshakes while the subscribers
//! connected before keep their connections; a new certificate that does not
//! match its key is refused with a fault (`tls_cert_refused`) and the old
//! one kept. Real binary, real TLS handshakes on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use madoguchi_wire::bundle::{pack, Header, Kind};
use madoguchi_wire::UnixSeconds;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::Message;

use crate::relay_util::{self, Relay};

fn bundle(key: &SigningKey, seq: u64, text: &str) -> Vec<u8> {
    let now = UnixSeconds::now().0;
    let h = Header {
        relay: crate::relay_util::RELAY_NAME.into(),
        seq,
        created: UnixSeconds(now),
        expires: UnixSeconds(now + 300),
        kind: if seq == 1 { Kind::Full } else { Kind::Delta },
        base: seq - 1,
        files: vec![],
        removed: vec![],
        reset: None,
    };
    let files = vec![(
        "displays/status.json".to_string(),
        format!("{{\"s\":\"{text}\"}}").into_bytes(),
    )];
    pack(&h, &files, key)
}

/// A client of the ingest side that trusts `ca_pem` (the relay's
/// certificate changes during the test).
fn http(ca_pem: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn publish(r: &Relay, ca_pem: &str, body: Vec<u8>) {
    let res = http(ca_pem)
        .post(r.ingest_url("/bundle"))
        .header(madoguchi_wire::auth::HEADER, r.office_head())
        .body(body)
        .send()
        .expect("publish");
    assert!(res.status().is_success(), "{}", res.status());
}

/// The certificate the public side presents to a new handshake from a
/// client that trusts `ca_pem`, or the handshake's error.
async fn presented(r: &Relay, ca_pem: &str) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(r.public)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").expect("name").to_owned();
    let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let certs = s.get_ref().1.peer_certificates().unwrap_or_default();
    Ok(certs.first().map(|c| c.to_vec()).unwrap_or_default())
}

fn leaf_der(cert_file: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(cert_file)
        .expect("pem")
        .next()
        .expect("a certificate")
        .expect("pem")
        .to_vec()
}

/// Replaces the relay's files the way certbot does: write beside, rename.
fn install(cert_pem: &[u8], key_pem: &[u8], to: &relay_util::Certs) {
    for (bytes, path) in [(key_pem, &to.key), (cert_pem, &to.cert)] {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }
}

/// A metric, read over either certificate (the page is on the ingest
/// side, whose certificate is renewed too).
fn metric(r: &Relay, name: &str, cas: &[&str]) -> Option<u64> {
    cas.iter().find_map(|ca| {
        let page = http(ca)
            .get(r.ingest_url("/metrics"))
            .send()
            .and_then(|x| x.text())
            .ok()?;
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    })
}

fn wait_metric(r: &Relay, name: &str, want: u64, what: &str, cas: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(r, name, cas).unwrap_or(0) < want {
        assert!(
            Instant::now() < deadline,
            "{what}: {name} stayed below {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin),
) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if !t.contains("\"t\":") || t.contains("\"s\"") => {
                return t.to_string()
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the subscriber lost its connection: {other:?}"),
        }
    }
}

#[test]
fn a_renewed_certificate_is_taken_without_a_restart_and_a_bad_one_refused() {
    let key = SigningKey::from_bytes(&[11; 32]);
    let r = relay_util::start(&key, "cert_check_s = 1");
    let old_ca = r.certs.ca_pem.clone();
    publish(&r, &old_ca, bundle(&key, 1, "A"));
    let first = leaf_der(&r.certs.cert);

    // The renewal: a new key and certificate (from another CA, so that the
    // client below can tell which one it was given).
    let spare = tempfile::tempdir().expect("tmp");
    let renewed = relay_util::certs(spare.path());
    let renewed_cert = std::fs::read(&renewed.cert).expect("cert");
    let renewed_key = std::fs::read(&renewed.key).expect("key");
    let second = leaf_der(&renewed.cert);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let mut ws = rt.block_on(async {
        assert_eq!(presented(&r, &old_ca).await.expect("handshake"), first);
        let mut ws = r.subscribe("status", relay_util::ORIGIN).await.expect("ws");
        assert!(next_text(&mut ws).await.contains("\"A\""));
        ws
    });

    install(&renewed_cert, &renewed_key, &r.certs);
    // The files are checked every second (public and ingest share them).
    let cas = [old_ca.as_str(), renewed.ca_pem.as_str()];
    wait_metric(
        &r,
        "madoguchi_relay_tls_cert_renewals_total",
        2,
        "renewal",
        &cas,
    );
    rt.block_on(async {
        assert_eq!(
            presented(&r, &renewed.ca_pem).await.expect("handshake"),
            second,
            "new handshakes get the renewed certificate"
        );
        assert!(presented(&r, &old_ca).await.is_err(), "the old one is gone");
    });
    // The subscriber from before the renewal is still there.
    publish(&r, &renewed.ca_pem, bundle(&key, 2, "B"));
    rt.block_on(async { assert!(next_text(&mut ws).await.contains("\"B\"")) });
    assert_eq!(
        metric(&r, "madoguchi_relay_tls_cert_refused", &cas),
        Some(0)
    );

    // A bad renewal: a certificate that is not for the key beside it, then
    // one that is not a certificate at all. SIGHUP makes the relay look at
    // once; each is refused, the fault shows, the good one stays.
    let other = tempfile::tempdir().expect("tmp");
    let third = relay_util::certs(other.path());
    let wrong_cert = std::fs::read(&third.cert).expect("cert");
    for (i, bad) in [
        wrong_cert,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        install(&bad, &renewed_key, &r.certs);
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &r.pid().to_string()])
            .status()
            .expect("kill");
        assert!(hup.success());
        wait_metric(
            &r,
            "madoguchi_relay_tls_cert_refusals_total",
            2 * (i as u64 + 1),
            "refusal",
            &cas,
        );
        assert_eq!(
            metric(&r, "madoguchi_relay_tls_cert_refused", &cas),
            Some(1)
        );
        rt.block_on(async {
            assert_eq!(
                presented(&r, &renewed.ca_pem).await.expect("handshake"),
                second,
                "the good certificate is kept"
            );
        });
    }
    publish(&r, &renewed.ca_pem, bundle(&key, 3, "C"));
    rt.block_on(async { assert!(next_text(&mut ws).await.contains("\"C\"")) });

    // Fixed files clear the fault.
    install(&renewed_cert, &renewed_key, &r.certs);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&r, "madoguchi_relay_tls_cert_refused", &cas) != Some(0) {
        assert!(Instant::now() < deadline, "the fault stayed after the fix");
        std::thread::sleep(Duration::from_millis(200));
    }
}
