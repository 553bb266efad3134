//! TLS on the office LAN (issue 23, R11): with `serve --tls-cert` and
//! `--tls-key` the server speaks only HTTPS, so passwords, session cookies
//! and device tokens do not cross the LAN in clear, and cookies are set
//! `Secure`. The rustls configuration is the relay's (TLS 1.3 and 1.2, AEAD
//! suites, ALPN h2 and http/1.1, no early data); handshakes run on their own
//! tasks under the head deadline, so a slow one holds up no other client.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::TlsAcceptor;

/// The certificate chain and key files (PEM) from the flags.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The acceptor for `files`, or a named error (a missing or unreadable
/// file stops the start, never falls back to plain HTTP).
pub fn acceptor(files: &Files) -> anyhow::Result<TlsAcceptor> {
    let config = madoguchi_relay::tls::server_config(&madoguchi_relay::config::Tls {
        cert: files.cert.clone(),
        key: files.key.clone(),
    })
    .with_context(|| {
        format!(
            "cannot use the TLS certificate {} and key {}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::clone(&config)))
}

/// Both flags or neither.
pub fn files(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<Files>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(Files { cert, key })),
        (None, None) => Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}
