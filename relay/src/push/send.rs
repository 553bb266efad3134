//! Outbound pushes (RFC 8030 §5): one encrypted POST per notice to the
//! subscription's endpoint with `TTL`, `Urgency`, `Content-Encoding:
//! aes128gcm` and VAPID authorization. A bounded queue, a cap on pushes in
//! flight and a smaller one per push service (so one slow service cannot
//! take every slot), a timeout on each, retries with doubling back-off (or the
//! service's `Retry-After`, capped) on timeouts, 429 and 5xx; a 404 or 410
//! drops the subscription (RFC 8030 §7.3); any other refusal is counted
//! and not retried. Only the push is sent: no redirects, no proxy, the
//! addresses [`super::guard`] allowed; a name that now resolves to a
//! refused address (DNS rebinding) gets nothing, is not retried and its
//! subscription is dropped.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use reqwest::StatusCode;
use tokio::sync::{mpsc, Semaphore};

use super::guard::{EndpointError, Guard, Resolver};
use super::store::Sub;
use super::{add, ece, now_s, Push, PushConfig, PushError};

/// The longest a `Retry-After` may make a push wait.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One notice for one subscription.
#[derive(Debug)]
pub struct Job {
    pub endpoint: String,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
    payload: String,
}

impl Job {
    /// `None` if the stored keys do not decode (they were checked on entry).
    pub fn new(s: &Sub, payload: String) -> Option<Job> {
        Some(Job {
            endpoint: s.endpoint.clone(),
            p256dh: B64.decode(&s.p256dh).ok()?,
            auth: B64.decode(&s.auth).ok()?,
            payload,
        })
    }
}

/// The outbound client.
pub fn client(cfg: &PushConfig, guard: Arc<Guard>) -> Result<reqwest::Client, PushError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(Resolver(guard)))
        .connect_timeout(Duration::from_secs(cfg.timeout_s.clamp(1, 5)))
        .timeout(Duration::from_secs(cfg.timeout_s.max(1)))
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(8);
    let pem = std::fs::read(&cfg.ca_file).map_err(|source| PushError::Io {
        path: cfg.ca_file.clone(),
        source,
    })?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| PushError::Damaged {
        path: cfg.ca_file.clone(),
        why: e.to_string(),
    })?;
    if roots.is_empty() {
        return Err(PushError::Damaged {
            path: cfg.ca_file.clone(),
            why: "no certificates".into(),
        });
    }
    for c in roots {
        b = b.add_root_certificate(c);
    }
    b.build().map_err(|e| PushError::Runtime(e.to_string()))
}

/// The push service a job goes to: its endpoint's origin (scheme, host,
/// port), the unit of [`PushConfig::per_service`].
fn service_of(endpoint: &str) -> String {
    reqwest::Url::parse(endpoint)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The lanes of the push services with pushes in flight or waiting: one
/// semaphore of `per_service` slots each. A lane no job holds is removed,
/// so the table stays as small as the jobs taken off the queue.
#[derive(Default)]
struct Lanes {
    by_service: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Lanes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Semaphore>>> {
        self.by_service.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, service: &str, slots: usize) -> Arc<Semaphore> {
        self.lock()
            .entry(service.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(slots)))
            .clone()
    }

    /// Drops `lane` and, if no other job holds it, its table entry (clones
    /// are only made under the lock, so the count read under it is sure).
    fn done(&self, service: &str, lane: Arc<Semaphore>) {
        let mut map = self.lock();
        drop(lane);
        if map.get(service).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(service);
        }
    }
}

/// Takes jobs off the queue: each waits for a slot of its push service
/// (`per_service`), then for one of all (`concurrency`), so a slow or
/// hanging service holds at most its own lane's slots and the other
/// services' pushes go past it (outside tester push-rt6 F3: 33 pushes to a
/// slow service held all 32 slots and a healthy service's "called" went
/// out 45 s late). Jobs taken off the queue and not yet sent are bounded
/// by `queue` too: when that many wait, the queue itself fills and new
/// notices are counted as `queue_full`.
pub async fn run(push: Arc<Push>, client: reqwest::Client, mut inbox: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(push.cfg.concurrency));
    let taken = Arc::new(Semaphore::new(push.cfg.queue));
    let lanes = Arc::new(Lanes::default());
    let per_service = push.cfg.per_service.min(push.cfg.concurrency);
    while let Some(job) = inbox.recv().await {
        let Ok(held) = taken.clone().acquire_owned().await else {
            return;
        };
        let service = service_of(&job.endpoint);
        let lane = lanes.get(&service, per_service);
        let (push, client, slots, lanes) =
            (push.clone(), client.clone(), slots.clone(), lanes.clone());
        tokio::spawn(async move {
            // FIFO within the lane (tokio's semaphores are fair), and a
            // job waiting for its lane holds none of the shared slots.
            if let Ok(mine) = lane.clone().acquire_owned().await {
                if let Ok(permit) = slots.acquire_owned().await {
                    push.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
                    deliver(&push, &client, job).await;
                    push.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                }
                drop(mine);
            }
            lanes.done(&service, lane);
            drop(held);
        });
    }
}

enum Outcome {
    Sent,
    Gone,
    Refused,
    /// The guard refused the address at connect time.
    Unsafe,
    Retry(Option<Duration>),
}

/// Whether a send failed because the resolver refused every address as
/// private (the name was public when the subscription was taken: DNS
/// rebinding, or a hostile push host). Not retried; the subscription goes.
fn refused_address(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<EndpointError>() == Some(&EndpointError::Private) {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn attempt(
    push: &Push,
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: &[u8],
) -> Outcome {
    let audience = url.origin().ascii_serialization();
    let Some(authorization) = push
        .vapid
        .authorization(&audience, &push.cfg.contact, now_s())
    else {
        return Outcome::Refused;
    };
    let res = client
        .post(url.clone())
        .header("TTL", push.cfg.ttl_s.to_string())
        .header("Urgency", "high")
        .header("Content-Encoding", "aes128gcm")
        .header("Content-Type", "application/octet-stream")
        .header("Authorization", authorization)
        .body(body.to_vec())
        .send()
        .await;
    let res = match res {
        Ok(r) => r,
        Err(e) if refused_address(&e) => return Outcome::Unsafe,
        // Timeout, connection refused, TLS, a name that does not resolve.
        Err(_) => return Outcome::Retry(None),
    };
    let status = res.status();
    if status.is_success() {
        Outcome::Sent
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        Outcome::Gone
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Outcome::Retry(after)
    } else {
        Outcome::Refused
    }
}

async fn deliver(push: &Push, client: &reqwest::Client, job: Job) {
    let body = match ece::encrypt(&job.p256dh, &job.auth, job.payload.as_bytes()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "push not encrypted; subscription dropped");
            add(&push.metrics.failed);
            push.forget(&job.endpoint);
            return;
        }
    };
    // Checked when the subscription was taken.
    let Ok(url) = reqwest::Url::parse(&job.endpoint) else {
        add(&push.metrics.failed);
        return;
    };
    let mut backoff = Duration::from_secs(1);
    for n in 0..=push.cfg.retries {
        match attempt(push, client, &url, &body).await {
            Outcome::Sent => {
                add(&push.metrics.sent);
                return;
            }
            Outcome::Gone => {
                add(&push.metrics.gone);
                push.forget(&job.endpoint);
                return;
            }
            Outcome::Refused => break,
            Outcome::Unsafe => {
                tracing::warn!(
                    "push endpoint now resolves to a refused address; subscription dropped"
                );
                add(&push.metrics.unsafe_address);
                add(&push.metrics.failed);
                push.forget(&job.endpoint);
                return;
            }
            Outcome::Retry(after) => {
                if n == push.cfg.retries {
                    break;
                }
                add(&push.metrics.retries);
                tokio::time::sleep(after.unwrap_or(backoff).min(MAX_BACKOFF)).await;
                backoff = backoff.saturating_mul(2);
            }
        }
    }
    add(&push.metrics.failed);
}
