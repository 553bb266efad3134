//! The ingest side (the office's dedicated line): `POST /bundle` takes one
//! signed bundle; `GET /metrics` is the Prometheus page. A bundle is
//! checked for size (before its body is read), signature, form, sequence
//! (above the last accepted) and, for a delta, that it applies to what this
//! relay holds. Its changed push topics then go to subscribers at once;
//! the site files (hashed and compressed) and the stored copy are made off
//! the async workers, and only once the bundle is durable is the site
//! swapped, the sequence advanced and the office answered. (A relay that
//! dies in between has pushed a verified, newer bundle it did not keep; it
//! serves the one before and accepts the office's resend.) A refusal is
//! logged, answered with the reason and the relay's last sequence number
//! (so the office knows to send a full bundle), and changes nothing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::public::Body;
use super::Relay;
use crate::bundle;
use crate::metrics::Metrics;

/// What became of a bundle (also the JSON answer's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Accepted,
    TooLarge,
    BadSignature,
    Malformed,
    OldSequence,
    WrongBase,
    NotStored,
}

impl IngestOutcome {
    fn status(self) -> StatusCode {
        match self {
            IngestOutcome::Accepted => StatusCode::OK,
            IngestOutcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngestOutcome::BadSignature => StatusCode::FORBIDDEN,
            IngestOutcome::Malformed => StatusCode::BAD_REQUEST,
            IngestOutcome::OldSequence | IngestOutcome::WrongBase => StatusCode::CONFLICT,
            IngestOutcome::NotStored => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn name(self) -> &'static str {
        match self {
            IngestOutcome::Accepted => "accepted",
            IngestOutcome::TooLarge => "too_large",
            IngestOutcome::BadSignature => "bad_signature",
            IngestOutcome::Malformed => "malformed",
            IngestOutcome::OldSequence => "old_sequence",
            IngestOutcome::WrongBase => "wrong_base",
            IngestOutcome::NotStored => "not_stored",
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(http_body_util::Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub async fn handle(relay: Arc<Relay>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/bundle") => ingest(&relay, req, peer).await,
        (&Method::GET, "/metrics") => {
            let mut r = json(StatusCode::OK, relay.metrics.render(relay.limiter.open()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => json(StatusCode::NOT_FOUND, "{\"outcome\":\"not_found\"}".into()),
    }
}

async fn ingest(relay: &Relay, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (outcome, detail) = accept(relay, req).await;
    let last = relay.metrics.last_seq.load(Ordering::Relaxed);
    if outcome == IngestOutcome::Accepted {
        Metrics::add(&relay.metrics.bundles_accepted);
        tracing::info!(seq = last, %peer, "bundle accepted");
    } else {
        Metrics::add(&relay.metrics.bundles_rejected);
        tracing::warn!(outcome = outcome.name(), detail = %detail, %peer, "bundle refused");
    }
    json(
        outcome.status(),
        serde_json::json!({ "outcome": outcome.name(), "detail": detail, "last_seq": last })
            .to_string(),
    )
}

async fn accept(relay: &Relay, req: Request<Incoming>) -> (IngestOutcome, String) {
    let max = relay.cfg.ingest.max_bundle_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return (IngestOutcome::TooLarge, format!("over {max} bytes"));
    }
    let raw = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return if e.is::<http_body_util::LengthLimitError>() {
                (IngestOutcome::TooLarge, format!("over {max} bytes"))
            } else {
                (IngestOutcome::Malformed, "body could not be read".into())
            };
        }
    };
    let b = match bundle::verify(&raw, &relay.keys) {
        Ok(b) => b,
        Err(e @ bundle::BundleError::BadSignature) => {
            return (IngestOutcome::BadSignature, e.to_string())
        }
        Err(e) => return (IngestOutcome::Malformed, e.to_string()),
    };
    let push_max = relay.cfg.limits.push_max_bytes;
    if let Some((p, _)) = b.files.iter().find(|(p, body)| {
        p.starts_with("displays/") && p.ends_with(".json") && body.len() > push_max
    }) {
        return (
            IngestOutcome::Malformed,
            format!("{p} is over the {push_max}-byte push limit"),
        );
    }
    // One bundle at a time from here: the sequence check, the write and
    // the swap must not interleave with another bundle's.
    let mut store = relay.store.clone().lock_owned().await;
    if b.header.seq <= store.last_seq() {
        return (
            IngestOutcome::OldSequence,
            format!(
                "sequence {} is not above {}",
                b.header.seq,
                store.last_seq()
            ),
        );
    }
    let current = relay.site();
    let pushes = match current.changes(&b) {
        Ok(p) => p,
        Err(e) => return (IngestOutcome::WrongBase, e.to_string()),
    };
    for (topic, body) in pushes {
        relay.hub.publish(&topic, body);
    }
    let seq = b.header.seq;
    let expires = b.header.expires;
    // fsyncs and compression would hold an async worker (and every
    // subscriber it serves) for milliseconds.
    let made = tokio::task::spawn_blocking(move || {
        store.accept(&raw, &b)?;
        Ok::<_, crate::store::StoreError>(current.apply(&b))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let site = match made {
        Ok(Ok((site, _))) => site,
        // Checked above against the same site under the same lock.
        Ok(Err(e)) => return (IngestOutcome::WrongBase, e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "accepted bundle could not be stored; not served");
            return (
                IngestOutcome::NotStored,
                "relay could not store the bundle".into(),
            );
        }
    };
    relay.metrics.last_seq.store(seq, Ordering::Relaxed);
    relay.metrics.site_expires.store(expires, Ordering::Relaxed);
    let stale = expires <= super::unix_now();
    relay.swap(site);
    relay
        .stale
        .send_if_modified(|s| std::mem::replace(s, stale) != stale);
    (IngestOutcome::Accepted, format!("sequence {seq}"))
}
