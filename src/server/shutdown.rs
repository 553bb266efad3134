//! A clean stop (R10, R19): on SIGTERM (what systemd sends on stop and
//! restart) or SIGINT (Ctrl-C) the server stops accepting connections,
//! lets the requests in flight finish — each command answered is already
//! synced in the log — for up to [`GRACE`], then writes the last snapshot
//! to sled and flushes it, and exits 0.
//!
//! The engine thread is not joined: background tasks (displays, relays,
//! replication) hold handles to it for as long as they live, which is why
//! waiting for it never returned. Its last job is the flush; the process
//! then ends with it.

use std::time::Duration;

use anyhow::{Context, Result};
use madoguchi_core::engine::SharedEngine;

/// How long requests in flight (and long-lived connections such as display
/// WebSockets) get after the signal.
pub const GRACE: Duration = Duration::from_secs(5);
/// How long the engine gets for its last snapshot.
const FLUSH_WAIT: Duration = Duration::from_secs(20);

/// Waits for SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM: stopping"),
                _ = i.recv() => tracing::info!("SIGINT: stopping"),
            }
        }
        _ => {
            // Without signal handlers only Ctrl-C can be waited for.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The stop of one server: [`Stop::signal`] goes to axum's graceful
/// shutdown; [`Stop::run`] gives the requests in flight [`GRACE`] after it.
pub struct Stop {
    tx: tokio::sync::watch::Sender<bool>,
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Stop {
    pub fn new() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Stop { tx, rx }
    }

    /// Resolves on SIGTERM or SIGINT (for `with_graceful_shutdown`).
    pub fn signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = self.tx.clone();
        async move {
            signal().await;
            let _ = tx.send(true);
        }
    }

    /// Runs the server until it ends, or until [`GRACE`] after the signal.
    pub async fn run<F>(self, server: F) -> Result<()>
    where
        F: std::future::IntoFuture<Output = std::io::Result<()>>,
    {
        let mut rx = self.rx;
        let deadline = async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::sleep(GRACE).await;
        };
        tokio::select! {
            r = server.into_future() => r.context("the server stopped"),
            () = deadline => {
                tracing::warn!("connections still open after the grace period; stopping anyway");
                Ok(())
            }
        }
    }
}

/// After serving: stops the async runtime (tasks still running are
/// dropped after a short wait), writes the engine's last snapshot and
/// flushes sled. The log needs nothing: every record was synced before it
/// was answered.
pub fn finish(runtime: tokio::runtime::Runtime, shared: SharedEngine) -> Result<()> {
    runtime.shutdown_timeout(Duration::from_secs(2));
    let handle = shared.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.write(|e| e.flush()));
    });
    match rx.recv_timeout(FLUSH_WAIT) {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            // The log holds everything; the next start replays it.
            tracing::warn!(error = %e, "the last snapshot was not written");
        }
        Ok(Err(e)) => anyhow::bail!("the engine stopped before its last snapshot: {e}"),
        Err(_) => anyhow::bail!("the engine did not write its last snapshot in time"),
    }
    println!("stopped cleanly / 正常に停止しました");
    drop(shared);
    Ok(())
}
