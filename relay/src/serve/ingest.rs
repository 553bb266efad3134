//! The ingest side (the office's dedicated line): `POST /bundle` takes one
//! signed bundle; `GET /metrics` is the Prometheus page. Only addresses in
//! `ingest.allow` get this far (checked at accept, before TLS).
//!
//! The request head must carry the office's signed head
//! ([`madoguchi_wire::auth`]: time within the clock skew, any office key,
//! this relay's name); without it the answer is 401 and the connection is
//! closed before a byte of the body is read, so a peer without the key —
//! even on an allowed address — never uploads a body or queues behind
//! the office (red-team findings 1 and 5). The bundle is then checked for
//! size (before its body is read), for room in the relay's byte budget for
//! bodies in flight (a connection in the office's slots also has a reserve
//! of one bundle's size that no other can take: relay-rt9 F4), and for a body that arrives within its deadline (its
//! declared length at a minimum rate, not an idle timer); then its
//! signature, outside the store lock (verification is pure, so bundles
//! never queue behind one another's signature checks); then, under the
//! lock, the addressee (this relay's name), form, the push limit, the sequence and time rules of
//! [`madoguchi_wire::rules`] (how far ahead, clock skew, lifetime, expiry,
//! a signed reset), the bound on the delta chain and, for a delta, that it
//! applies to what this relay holds. Its changed push topics then go to
//! subscribers at once; the site files (hashed and compressed) and the
//! stored copy are made off the async workers, and only once the bundle is
//! durable is the site swapped, the sequence advanced and the office
//! answered. (A relay that dies in between has pushed a verified, newer
//! bundle it did not keep; it serves the one before and accepts the
//! office's resend.)
//!
//! The answer is a [`Reply`]: accepted, or refused with a code — no text,
//! and the held sequence only for a bundle whose signature verified. A
//! refusal is logged and counted by code, and changes nothing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use madoguchi_wire::auth::HeadError;
use madoguchi_wire::rules::{self, Admit, Clocks};
use madoguchi_wire::{bundle, Bundle, Code, Kind, Reply, UnixMillis};

use super::public::Body;
use super::Relay;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::site::Site;

fn answer(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(http_body_util::Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

pub async fn handle(
    relay: Arc<Relay>,
    req: Request<Incoming>,
    peer: SocketAddr,
    ticket: &super::slots::Ticket,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/bundle") => {
            let ingest_cfg = &relay.cfg.ingest;
            let now = UnixMillis::now();
            let head = match req.headers().get(madoguchi_wire::auth::HEADER) {
                Some(v) => madoguchi_wire::auth::verify(
                    v.as_bytes(),
                    &ingest_cfg.name,
                    &relay.keys,
                    now,
                    Duration::from_secs(ingest_cfg.clock_skew_s),
                ),
                None => Err(HeadError::Invalid),
            };
            let office = match head {
                Ok(office) => office,
                Err(e) => return refuse_head(&relay, e, now, peer),
            };
            ticket.prove();
            let clocks = Clocks { relay: now, office };
            ingest(&relay, req, peer, clocks, ticket.is_office()).await
        }
        (&Method::GET, "/metrics") => {
            relay.note_impossible_sequence();
            answer(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                relay.metrics.render(relay.limiter.open())
                    + &relay
                        .push
                        .as_ref()
                        .map(|p| p.render_metrics())
                        .unwrap_or_default(),
            )
        }
        _ => answer(StatusCode::NOT_FOUND, "text/plain", String::new()),
    }
}

/// The answer to a request without a valid office head: closed unread.
fn refuse_head(relay: &Relay, e: HeadError, now: UnixMillis, peer: SocketAddr) -> Response<Body> {
    let (status, reply) = match e {
        HeadError::Invalid => {
            relay.metrics.refused(Code::Unauthenticated);
            tracing::warn!(%peer, "ingest request without the office's head: closed unread");
            (
                StatusCode::UNAUTHORIZED,
                Reply::refused(Code::Unauthenticated, None),
            )
        }
        HeadError::ClockSkew { office } => {
            relay.metrics.refused(Code::ClockSkew);
            let clocks = madoguchi_wire::reply::Clocks {
                relay_ms: now.0,
                office_ms: office.0,
            };
            tracing::error!(
                %peer,
                relay_ahead_s = clocks.relay_ahead_s(),
                skew_s = relay.cfg.ingest.clock_skew_s,
                "この中継サーバーの時計が庁舎のサーバーと {} 秒ずれています (許容 {} 秒)。時刻同期 (NTP) を確認してください / the office's signed head is {} s off this relay's clock (allowed: clock_skew_s); check time sync (NTP) on both",
                clocks.relay_ahead_s(),
                relay.cfg.ingest.clock_skew_s,
                clocks.relay_ahead_s()
            );
            (
                StatusCode::from_u16(Code::ClockSkew.status())
                    .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                Reply::clock_skew(clocks),
            )
        }
    };
    let mut r = answer(status, "application/json", reply.to_json());
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// What became of a bundle: the code, and whether its signature verified
/// (then the reply may carry the held sequence).
pub type Refusal = (Code, bool);

async fn ingest(
    relay: &Relay,
    req: Request<Incoming>,
    peer: SocketAddr,
    clocks: Clocks,
    office: bool,
) -> Response<Body> {
    let reply = match accept(relay, req, clocks, office).await {
        Ok(seq) => {
            Metrics::add(&relay.metrics.bundles_accepted);
            tracing::info!(seq, %peer, "bundle accepted");
            Reply::Accepted { seq }
        }
        Err((code, verified)) => {
            relay.metrics.refused(code);
            let held = relay.metrics.last_seq.load(Ordering::Relaxed);
            tracing::warn!(code = code.name(), held, %peer, "bundle refused");
            Reply::refused(
                code,
                verified.then_some((held, relay.cfg.ingest.name.as_str())),
            )
        }
    };
    let status = match &reply {
        Reply::Accepted { .. } => StatusCode::OK,
        Reply::Refused { code, .. } => {
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    answer(status, "application/json", reply.to_json())
}

/// Reads the body within its size, the byte budget and its deadline; the
/// permit holds the body's share of the budget until it is dropped. A body
/// on a connection in the office's slots (`office`) takes its share of the
/// office's reserve or of the shared budget, whichever has room first.
async fn read_body(
    relay: &Relay,
    req: Request<Incoming>,
    office: bool,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), Code> {
    let ingest = &relay.cfg.ingest;
    let max = ingest.max_bundle_bytes;
    // The office always sends a length; without one there is no deadline
    // to hold the body to.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(Code::TooSlow)?;
    if declared > max as u64 {
        return Err(Code::TooLarge);
    }
    let share = u32::try_from(declared).map_err(|_| Code::TooLarge)?;
    let shared = relay.inflight.clone().acquire_many_owned(share);
    let permit = async {
        if !office {
            return shared.await;
        }
        let reserved = relay.office_inflight.clone().acquire_many_owned(share);
        tokio::select! {
            biased;
            p = reserved => p,
            p = shared => p,
        }
    };
    let permit = match tokio::time::timeout(Duration::from_secs(ingest.body_grace_s), permit).await
    {
        Ok(Ok(p)) => p,
        _ => return Err(Code::Busy),
    };
    let deadline = ingest.body_deadline(declared);
    match tokio::time::timeout(deadline, Limited::new(req.into_body(), max).collect()).await {
        Err(_) => Err(Code::TooSlow),
        Ok(Ok(b)) => Ok((b.to_bytes(), permit)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Code::TooLarge),
        Ok(Err(_)) => Err(Code::Malformed),
    }
}

/// What a relay holds that a bundle is judged against.
#[derive(Debug)]
pub struct Held<'a> {
    pub seq: u64,
    /// Deltas since the last full bundle, and their bytes.
    pub chain: (usize, u64),
    pub site: &'a Site,
}

/// A bundle that passed every check, and the push messages it makes.
pub type Passed = (Bundle, Admit, Vec<(String, Arc<str>)>);

/// The signature and form of a received body: pure, and run before the
/// store lock is taken.
pub fn verify(keys: &[VerifyingKey], raw: &[u8]) -> Result<Bundle, Refusal> {
    match bundle::verify(raw, keys) {
        Ok(b) => Ok(b),
        Err(bundle::BundleError::BadSignature) => Err((Code::BadSignature, false)),
        Err(bundle::BundleError::NotABundle) => Err((Code::Malformed, false)),
        Err(e) => {
            tracing::warn!(error = %e, "signed bundle is malformed");
            Err((Code::Malformed, true))
        }
    }
}

/// The checks on a verified bundle against what the relay holds, in order
/// (addressee and the sequence and time rules, push limit, delta chain,
/// base), without I/O: what the handler runs under the store lock.
pub fn judge(
    cfg: &Config,
    b: Bundle,
    raw_len: usize,
    held: &Held,
    clocks: Clocks,
) -> Result<Passed, Refusal> {
    let refuse = |c: Code| (c, true);
    let ingest = &cfg.ingest;
    let admit =
        rules::check(&b.header, held.seq, &ingest.name, clocks, &ingest.rules()).map_err(refuse)?;
    let push_max = cfg.limits.push_max_bytes;
    if b.files
        .iter()
        .any(|(p, body)| crate::site::topic_of(p).is_some() && body.len() > push_max)
    {
        return Err(refuse(Code::PushTooLarge));
    }
    if b.header.kind == Kind::Delta
        && (held.chain.0 >= ingest.max_deltas
            || held.chain.1.saturating_add(raw_len as u64) > ingest.max_delta_bytes)
    {
        return Err(refuse(Code::FullBundleNeeded));
    }
    let pushes = held.site.changes(&b).map_err(|_| refuse(Code::WrongBase))?;
    Ok((b, admit, pushes))
}

/// Every check on a received body, in order ([`verify`], then [`judge`]),
/// without I/O: what `fuzz/` runs on any bytes.
pub fn examine(
    cfg: &Config,
    keys: &[VerifyingKey],
    raw: &[u8],
    held: &Held,
    clocks: Clocks,
) -> Result<Passed, Refusal> {
    let b = verify(keys, raw)?;
    judge(cfg, b, raw.len(), held, clocks)
}

async fn accept(
    relay: &Relay,
    req: Request<Incoming>,
    clocks: Clocks,
    office: bool,
) -> Result<u64, Refusal> {
    let (raw, _budget) = read_body(relay, req, office)
        .await
        .map_err(|c| (c, false))?;
    let refuse = |c: Code| (c, true);
    // The signature before the lock, off the async workers (a 4 MiB body
    // is milliseconds of hashing): a flood of bad signatures never holds
    // the lock the office's bundle waits for.
    let keys = relay.keys.clone();
    let body = raw.clone();
    let b = tokio::task::spawn_blocking(move || verify(&keys, &body))
        .await
        .map_err(|_| (Code::NotStored, false))??;
    // One bundle at a time from here: the checks, the write and the swap
    // must not interleave with another bundle's.
    let mut store = relay.store.clone().lock_owned().await;
    let current = relay.site();
    let held = Held {
        seq: store.last_seq(),
        chain: store.chain(),
        site: &current,
    };
    // The relay's clock as the body ends; the office's advanced by as much.
    let now = UnixMillis::now();
    let clocks = Clocks {
        relay: now,
        office: clocks
            .office
            .plus(Duration::from_millis(now.0.saturating_sub(clocks.relay.0))),
    };
    let (b, admit, pushes) = judge(&relay.cfg, b, raw.len(), &held, clocks)?;
    for (topic, body) in pushes {
        relay.hub.publish(&topic, body);
    }
    let seq = b.header.seq;
    // Live for what was left of its lifetime by the office's clock,
    // counted on the relay's.
    let expires = rules::expiry_on_relay(&b.header, clocks);
    // fsyncs and compression would hold an async worker (and every
    // subscriber it serves) for milliseconds.
    // The store guard goes to the writing task and comes back, so the lock
    // is held until the new site is swapped in (relay-rt2 F7: released
    // earlier, a second bundle was judged against the old site, and the
    // two swaps could land in either order).
    let made = tokio::task::spawn_blocking(move || {
        let stored = store.accept(&raw, &b);
        let site = stored.as_ref().ok().map(|()| current.apply(&b));
        (store, stored, site)
    })
    .await;
    let (_store, site) = match made {
        Ok((store, Ok(()), Some(Ok((mut site, _))))) => {
            site.expires = expires;
            (store, site)
        }
        // Checked above against the same site under the same lock.
        Ok((_, Ok(()), _)) => return Err(refuse(Code::WrongBase)),
        Ok((_, Err(e), _)) => {
            tracing::error!(error = %e, "accepted bundle could not be stored; not served");
            return Err(refuse(Code::NotStored));
        }
        Err(e) => {
            tracing::error!(error = %e, "storing task failed; bundle not served");
            return Err(refuse(Code::NotStored));
        }
    };
    if admit == Admit::Reset {
        let held = relay.metrics.last_seq.load(Ordering::Relaxed);
        Metrics::add(&relay.metrics.resets);
        tracing::warn!(
            from = held,
            to = seq,
            "signed reset accepted: sequence set back"
        );
    }
    relay.metrics.last_seq.store(seq, Ordering::Relaxed);
    relay
        .metrics
        .site_expires
        .store(expires.0, Ordering::Relaxed);
    relay.note_impossible_sequence();
    let stale = expires <= madoguchi_wire::UnixSeconds::now();
    relay.swap(site);
    relay
        .stale
        .send_if_modified(|s| std::mem::replace(s, stale) != stale);
    Ok(seq)
}
