//! TLS for both listeners (R11): rustls with the ring provider, TLS 1.3
//! and 1.2 only, its AEAD/ECDHE suites only (rustls has no weak ones to
//! switch off), ALPN h2 and http/1.1, no early data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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

pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.max_early_data_size = 0;
    Ok(Arc::new(cfg))
}
