//! TLS for both listeners (R11): rustls with the ring provider, TLS 1.3
//! and 1.2 only, its AEAD/ECDHE suites only (rustls has no weak ones to
//! switch off), ALPN h2 and http/1.1, no early data. The certificate is
//! [`Reloadable`]: a renewed one on disk (Let's Encrypt renews every 60–90
//! days) serves new handshakes without a restart, while open connections —
//! every subscriber — keep theirs; a new one that does not load or does not
//! match its key is refused and the old one kept (issue 21).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::Tls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn pem_err(path: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |e| TlsError::Pem {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key in `tls`'s files, checked against each
/// other.
fn load(tls: &Tls, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(pem_err(&tls.cert))?
        .collect::<Result<_, _>>()
        .map_err(pem_err(&tls.cert))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: tls.cert.clone(),
            why: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(pem_err(&tls.key))?;
    let ck = CertifiedKey::from_der(certs, key, provider)?;
    // `from_der` lets a key it cannot compare pass; a renewal must match.
    ck.keys_match()?;
    Ok(ck)
}

/// What the files looked like when last loaded (or refused): a change of
/// either is a renewal to try.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(tls: &Tls) -> Stamp {
    [&tls.cert, &tls.key].map(|p| {
        // `metadata` follows symlinks (certbot's live/ folder swaps them).
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
}

/// The certificate a listener serves, replaceable while it serves.
#[derive(Debug)]
pub struct Reloadable {
    tls: Tls,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Stamp>,
}

/// What a reload did.
#[derive(Debug)]
pub enum Reload {
    /// The files did not change since the last attempt.
    Unchanged,
    /// The files load; `renewed`: they hold a new certificate, now served.
    Loaded { renewed: bool },
    /// The new files were refused; the old certificate is still served.
    Refused(TlsError),
}

impl Reloadable {
    pub fn cert_path(&self) -> &Path {
        &self.tls.cert
    }

    /// Loads the files again if they changed since the last attempt (or
    /// always, with `force`: SIGHUP). A refused pair is tried again only
    /// once the files change again (a renewal caught half-written, the new
    /// certificate beside the old key, is retried when the key arrives).
    pub fn reload(&self, force: bool) -> Reload {
        let now = stamp(&self.tls);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match load(&self.tls, &self.provider) {
            Ok(ck) => {
                let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
                if cur.cert == ck.cert {
                    return Reload::Loaded { renewed: false };
                }
                *cur = Arc::new(ck);
                Reload::Loaded { renewed: true }
            }
            Err(e) => Reload::Refused(e),
        }
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .map(|c| c.clone())
                .unwrap_or_else(|p| p.into_inner().clone()),
        )
    }
}

/// The server configuration for a listener and the handle that renews its
/// certificate.
pub fn reloadable_config(tls: &Tls) -> Result<(Arc<ServerConfig>, Arc<Reloadable>), TlsError> {
    let provider = provider();
    let seen = stamp(tls);
    let ck = load(tls, &provider)?;
    let cert = Arc::new(Reloadable {
        tls: tls.clone(),
        provider: provider.clone(),
        current: RwLock::new(Arc::new(ck)),
        seen: Mutex::new(seen),
    });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.max_early_data_size = 0;
    Ok((Arc::new(cfg), cert))
}

pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    reloadable_config(tls).map(|(cfg, _)| cfg)
}
