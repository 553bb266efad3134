//! An engine shared by many callers (kiosks, staff stations): one thread
//! owns the engine; callers send commands over a channel and wait for their
//! answer. Commands that arrive while a sync is under way are executed
//! together with one sync (group commit), and since one thread decides them
//! all, numbers stay unique however many kiosks issue at once.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Engine, EngineError, Outcome};
use crate::model::{Command, Millis};
use crate::refusal::Refusal;

/// Largest group commit.
const MAX_BATCH: usize = 512;

/// How long the engine thread waits for more work before it writes a
/// pending snapshot.
const SNAPSHOT_IDLE: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Engine(Arc<EngineError>),
    #[error("the engine has stopped")]
    Stopped,
}

/// Where a command's answer goes: a thread waiting on a channel, or a task
/// awaiting a oneshot (async handlers never block a runtime thread).
enum Reply {
    Blocking(mpsc::SyncSender<Result<Outcome, ExecError>>),
    Async(tokio::sync::oneshot::Sender<Result<Outcome, ExecError>>),
}

impl Reply {
    fn send(self, answer: Result<Outcome, ExecError>) {
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Async(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}
type ReadJob = Box<dyn FnOnce(&Engine) + Send>;
type WriteJob = Box<dyn FnOnce(&mut Engine) + Send>;

enum Job {
    Exec {
        now: Option<Millis>,
        command: Command,
        by: Option<String>,
        reply: Reply,
    },
    Read(ReadJob),
    Write(WriteJob),
}

/// A handle to an engine running on its own thread. Clone the sender side
/// with [`SharedEngine::handle`].
#[derive(Debug)]
pub struct SharedEngine {
    tx: mpsc::Sender<Job>,
    thread: Option<JoinHandle<Engine>>,
}

/// A cloneable handle for callers.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Exec { command, .. } => write!(f, "Exec({})", command.name()),
            Job::Read(_) => f.write_str("Read"),
            Job::Write(_) => f.write_str("Write"),
        }
    }
}

impl SharedEngine {
    /// Starts the engine thread. The engine's clock gives "now" for commands sent
    /// without a time; it is kept from going behind the last event.
    pub fn start(mut engine: Engine) -> SharedEngine {
        engine.defer_snapshots();
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("madoguchi-engine".into())
            .spawn(move || run(engine, rx))
            .ok();
        SharedEngine { tx, thread }
    }

    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            tx: self.tx.clone(),
        }
    }

    /// Stops the thread once every handle is dropped, and returns the engine.
    pub fn shutdown(mut self) -> Option<Engine> {
        let thread = self.thread.take();
        drop(self);
        thread.and_then(|t| t.join().ok())
    }
}

impl EngineHandle {
    /// Executes a command durably; `now: None` takes the engine's clock.
    pub fn execute(
        &self,
        now: Option<Millis>,
        command: Command,
        by: Option<String>,
    ) -> Result<Outcome, ExecError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Job::Exec {
                now,
                command,
                by,
                reply: Reply::Blocking(reply),
            })
            .map_err(|_| ExecError::Stopped)?;
        answer.recv().map_err(|_| ExecError::Stopped)?
    }

    /// [`EngineHandle::execute`] for async code: awaits the durable answer
    /// without holding a runtime thread.
    pub async fn execute_async(
        &self,
        now: Option<Millis>,
        command: Command,
        by: Option<String>,
    ) -> Result<Outcome, ExecError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Exec {
                now,
                command,
                by,
                reply: Reply::Async(reply),
            })
            .map_err(|_| ExecError::Stopped)?;
        answer.await.map_err(|_| ExecError::Stopped)?
    }

    /// [`EngineHandle::read`] for async code.
    pub async fn read_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Read(Box::new(move |e| {
                let _ = reply.send(f(e));
            })))
            .map_err(|_| ExecError::Stopped)?;
        answer.await.map_err(|_| ExecError::Stopped)
    }

    /// [`EngineHandle::write`] for async code.
    pub async fn write_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Write(Box::new(move |e| {
                let _ = reply.send(f(e));
            })))
            .map_err(|_| ExecError::Stopped)?;
        answer.await.map_err(|_| ExecError::Stopped)
    }

    /// Runs `f` on the engine between commands and returns its result.
    pub fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Job::Read(Box::new(move |e| {
                let _ = reply.send(f(e));
            })))
            .map_err(|_| ExecError::Stopped)?;
        answer.recv().map_err(|_| ExecError::Stopped)
    }

    /// Runs `f` with the engine to itself (e.g. to record a new
    /// configuration) between commands.
    pub fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Job::Write(Box::new(move |e| {
                let _ = reply.send(f(e));
            })))
            .map_err(|_| ExecError::Stopped)?;
        answer.recv().map_err(|_| ExecError::Stopped)
    }
}

fn run(mut engine: Engine, rx: mpsc::Receiver<Job>) -> Engine {
    let mut items = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    loop {
        // With records not yet in the snapshot, a short idle moment writes
        // it, after the answers went out (`Engine::defer_snapshots`).
        let first = if let Some(wait) = engine.snapshot_wait(SNAPSHOT_IDLE) {
            match rx.recv_timeout(wait) {
                Ok(j) => j,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    engine.save_snapshot();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            }
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        for job in jobs {
            match job {
                Job::Exec {
                    now,
                    command,
                    by,
                    reply,
                } => {
                    let at = now.unwrap_or_else(|| engine.now());
                    items.push((at, command, by));
                    replies.push(reply);
                }
                Job::Read(f) => {
                    flush(&mut engine, &mut items, &mut replies);
                    f(&engine);
                }
                Job::Write(f) => {
                    flush(&mut engine, &mut items, &mut replies);
                    f(&mut engine);
                }
            }
        }
        flush(&mut engine, &mut items, &mut replies);
    }
    engine.save_snapshot();
    engine
}

fn flush(
    engine: &mut Engine,
    items: &mut Vec<(Millis, Command, Option<String>)>,
    replies: &mut Vec<Reply>,
) {
    if items.is_empty() {
        return;
    }
    match engine.execute_batch(items) {
        Ok(results) => {
            for (r, reply) in results.into_iter().zip(replies.drain(..)) {
                reply.send(r.map_err(ExecError::Refused));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let e = Arc::new(e);
            for reply in replies.drain(..) {
                reply.send(Err(ExecError::Engine(e.clone())));
            }
        }
    }
    items.clear();
}
