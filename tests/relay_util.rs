//! Starting the real `madoguchi-relay` binary on loopback with test
//! certificates from rcgen (a CA and a leaf for localhost/127.0.0.1), and
//! TLS clients that trust that CA.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ed25519_dalek::SigningKey;

/// The relay binary, built beside the office binary (same profile) if the
/// workspace build has not made it yet; `MADOGUCHI_RELAY_BIN` names another
/// (the benchmarks compare two builds of the relay, issue 21).
pub fn relay_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MADOGUCHI_RELAY_BIN") {
            return PathBuf::from(bin);
        }
        let office = crate::util::bin();
        let bin = office.with_file_name("madoguchi-relay");
        let release = office
            .parent()
            .is_some_and(|d| d.file_name().is_some_and(|n| n == "release"));
        let mut c = Command::new(env!("CARGO"));
        c.args([
            "build",
            "-q",
            "-p",
            "madoguchi-relay",
            "--bin",
            "madoguchi-relay",
        ]);
        if release {
            c.arg("--release");
        }
        let ok = c.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok && bin.exists(), "could not build {}", bin.display());
        bin
    })
    .clone()
}

pub struct Certs {
    pub ca_pem: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn certs(dir: &Path) -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Madoguchi test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "127.0.0.2".to_string(),
    ])
    .expect("leaf params")
    .signed_by(&leaf_key, &ca)
    .expect("leaf");
    let c = Certs {
        ca_pem: ca.pem(),
        ca: dir.join("ca.pem"),
        cert: dir.join("relay.crt"),
        key: dir.join("relay.key"),
    };
    std::fs::write(&c.ca, &c.ca_pem).expect("ca file");
    std::fs::write(&c.cert, leaf.pem()).expect("cert file");
    std::fs::write(&c.key, leaf_key.serialize_pem()).expect("key file");
    c
}

pub const ORIGIN: &str = "https://jokyo.example.test";

/// A port free on loopback now (for servers whose address must be known
/// before they start).
#[cfg_attr(not(feature = "system-tests"), allow(dead_code))]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A new random office signing key, written where `serve` reads it.
pub fn office_key(path: &Path) -> SigningKey {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("key folder");
    }
    std::fs::write(path, madoguchi_wire::keys::to_hex(&key.to_bytes())).expect("key");
    key
}

pub struct Relay {
    child: Child,
    /// The office key the relay trusts (for [`Relay::office_head`]).
    office: SigningKey,
    pub public: SocketAddr,
    pub ingest: SocketAddr,
    pub certs: Certs,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

/// `extra_limits` is TOML lines for `[limits]`.
pub fn start(office_key: &SigningKey, extra_limits: &str) -> Relay {
    start_with(office_key, extra_limits, "", 0)
}

/// On a given public port (a browser's pages then have a known origin,
/// which the relay allows).
#[cfg_attr(not(feature = "system-tests"), allow(dead_code))]
pub fn start_on(office_key: &SigningKey, extra_limits: &str, port: u16) -> Relay {
    start_with(office_key, extra_limits, "", port)
}

/// The relay's name in its configuration (a signed reset names it).
pub const RELAY_NAME: &str = "test-relay";

/// `extra_ingest` is TOML lines for `[ingest]`. The ingest listener is on
/// 127.0.0.2 and allows only 127.0.0.1 (where the office and the tests
/// connect from; an `allow = […]` line in `extra_ingest` replaces that);
/// other loopback addresses are strangers.
pub fn start_with(
    office_key: &SigningKey,
    extra_limits: &str,
    extra_ingest: &str,
    port: u16,
) -> Relay {
    start_sections(office_key, extra_limits, extra_ingest, port, |_| {
        String::new()
    })
}

/// [`start_with`], plus whole sections at the end of the configuration,
/// made once the test CA exists (`sections(&certs)`, e.g. `[push]`).
pub fn start_sections(
    office_key: &SigningKey,
    extra_limits: &str,
    extra_ingest: &str,
    port: u16,
    sections: impl FnOnce(&Certs) -> String,
) -> Relay {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = certs(dir.path());
    let config = dir.path().join("relay.toml");
    let key_hex = madoguchi_wire::keys::to_hex(office_key.verifying_key().as_bytes());
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"
[public]
listen = "127.0.0.1:{port}"
origins = ["{ORIGIN}", "https://127.0.0.1:{port}"]
[public.tls]
cert = "relay.crt"
key = "relay.key"
[ingest]
listen = "127.0.0.2:0"
office_keys = ["{key_hex}"]
{max_bundle}
{allow}
name = "{RELAY_NAME}"
{extra_ingest}
[ingest.tls]
cert = "relay.crt"
key = "relay.key"
[limits]
{extra_limits}
{sections}
"#,
            sections = sections(&certs),
            // Only the office's address unless the test lists its own.
            allow = if extra_ingest.contains("allow =") {
                ""
            } else {
                "allow = [\"127.0.0.1\"]"
            },
            // 256 KiB unless the test sets its own.
            max_bundle = if extra_ingest.contains("max_bundle_bytes") {
                ""
            } else {
                "max_bundle_bytes = 262144"
            },
        ),
    )
    .expect("config");
    let (child, public, ingest) = spawn(&config);
    Relay {
        child,
        office: office_key.clone(),
        public,
        ingest,
        certs,
        _dir: dir,
        config,
    }
}

fn spawn(config: &Path) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(relay_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn relay");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut public, mut ingest) = (None, None);
    while public.is_none() || ingest.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the relay did not print its listening lines");
        };
        if let Some(a) = line.strip_prefix("public listening on ") {
            public = a.trim().parse().ok();
        } else if let Some(a) = line.strip_prefix("ingest listening on ") {
            ingest = a.trim().parse().ok();
        }
    }
    std::thread::spawn(move || for _ in rx {});
    (child, public.expect("public"), ingest.expect("ingest"))
}

impl Relay {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The office's signed request head for this relay, now
    /// (`madoguchi_wire::auth`): without it the relay reads no bundle.
    pub fn office_head(&self) -> String {
        madoguchi_wire::auth::head(&self.office, RELAY_NAME, madoguchi_wire::UnixMillis::now())
    }

    /// The default office configuration, publishing to this relay.
    pub fn office_config(&self) -> String {
        format!(
            "{}\n[[relays]]\nurl = \"https://127.0.0.2:{}\"\nname = \"{RELAY_NAME}\"\nca = \"{}\"\n",
            madoguchi_core::config::DEFAULT_OFFICE_TOML,
            self.ingest.port(),
            self.certs.ca.display()
        )
    }

    /// The relay's configuration file (a test may edit it before
    /// [`Self::restart`]).
    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// The relay's state folder (what it has accepted).
    pub fn state_dir(&self) -> PathBuf {
        self._dir.path().join("state")
    }

    /// The ingest side's `/metrics` page.
    pub fn metrics(&self) -> String {
        self.http()
            .get(self.ingest_url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// A metric's value (`name` with its labels, as on the page).
    pub fn metric(&self, name: &str) -> Option<u64> {
        let page = self.metrics();
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn public_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.public.port())
    }

    pub fn ingest_url(&self, path: &str) -> String {
        format!("https://127.0.0.2:{}{path}", self.ingest.port())
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Restarts on the same ports with the same state folder.
    pub fn restart(&mut self) {
        self.stop();
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"{}\"", self.public),
            )
            .replace(
                "listen = \"127.0.0.2:0\"",
                &format!("listen = \"{}\"", self.ingest),
            );
        std::fs::write(&self.config, text).expect("config");
        let (child, public, ingest) = spawn(&self.config);
        self.child = child;
        self.public = public;
        self.ingest = ingest;
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.certs.ca_pem.as_bytes()).expect("ca"),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    pub fn tls(&self) -> tokio_rustls::TlsConnector {
        self.tls_alpn(&[])
    }

    /// A TLS connector that offers the ALPN protocols `alpn`.
    pub fn tls_alpn(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(self.certs.ca_pem.as_bytes()) {
            roots.add(c.expect("pem")).expect("root");
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    }

    /// A TLS connection to the public side.
    pub async fn connect(
        &self,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(self.public).await?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
            .map_err(std::io::Error::other)?
            .to_owned();
        self.tls().connect(name, tcp).await
    }

    /// A WebSocket subscriber on the public side.
    pub async fn subscribe(
        &self,
        topic: &str,
        origin: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        String,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let stream = self.connect().await.map_err(|e| e.to_string())?;
        let mut req = format!("wss://127.0.0.1:{}/ws?topic={topic}", self.public.port())
            .into_client_request()
            .map_err(|e| e.to_string())?;
        req.headers_mut()
            .insert("Origin", origin.parse().map_err(|_| "origin")?);
        tokio_tungstenite::client_async(req, stream)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| e.to_string())
    }

    /// Resident memory of the relay process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}
