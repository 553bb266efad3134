//! The push routes on the public listener — the relay's first public
//! write, hardened (R11):
//!
//! - `GET /push/key`: the VAPID public key (`applicationServerKey`).
//! - `GET /push/sw.js`: the service worker that shows the notices.
//! - `POST /push/subscribe`: `{"ticket", "subscription": {endpoint,
//!   expirationTime, keys: {p256dh, auth}}, "notify": {"ahead": N} |
//!   {"minutes": M}, "lang"}`; `ticket` is `date/number/tag`, the tag
//!   being the ticket's secret from its QR code.
//! - `POST /push/unsubscribe`: `{"ticket", "endpoint"}` (`date/number`,
//!   a tag allowed: the endpoint, known only to its browser, is the proof).
//!
//! A write needs an allowed `Origin` (403), `Content-Type:
//! application/json` (415), a declared length within `push.max_body_bytes`
//! (411, 413) and a body that arrives in time (408) and fits the schema
//! exactly (400: unknown fields, wrong types, keys that are not a P-256
//! point and a 16-byte secret). It is counted against its address's
//! minute (429), must name a live ticket with its own secret tag (404,
//! the same answer for a ticket that is not live and for a missing or
//! wrong tag, so it tells a guesser nothing; the relay knows only the
//! office's public check of each tag, `madoguchi_wire::ticket`) — only
//! then is it counted against the ticket's minute (429) and its slots, so
//! a guessed date and number can neither fill that table nor use up the
//! ticket's subscriptions — an endpoint the guard passes (422), and stay within the caps
//! per ticket (409) and in total (503). The same browser sending its
//! subscription again for the same ticket (a new threshold, or the
//! visitor switched the page's language) replaces it and keeps what was
//! told (200). "Subscribed" is answered only once the subscription is
//! written to the state folder (503 and taken back if that fails). Answers
//! are short bilingual text with no internals.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::notice::{Claim, Lang, Progress, Threshold};
use super::store::Sub;
use super::{add, ece, Push};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The service worker, served by the relay (not the office's site): it is
/// the relay's half of Web Push.
pub const SERVICE_WORKER: &str = include_str!("sw.js");

const BODY_DEADLINE: Duration = Duration::from_secs(5);
/// A subscribe check (DNS) that takes longer is refused.
const CHECK_DEADLINE: Duration = Duration::from_secs(5);
const MAX_ENDPOINT: usize = 2048;
/// A subscription not written within this is taken back (503).
const SAVE_DEADLINE: Duration = Duration::from_secs(5);

fn answer(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, t: &'static str) -> Response<Body> {
    answer(status, "text/plain; charset=utf-8", t)
}

/// A refusal, counted under its reason.
fn refuse(push: &Push, reason: &'static str) -> Response<Body> {
    push.metrics.refuse(reason);
    let (status, t) = match reason {
        "origin" => (
            StatusCode::FORBIDDEN,
            "接続元が許可されていません / Origin not allowed\n",
        ),
        "content_type" => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "JSON で送ってください / Send JSON\n",
        ),
        "length" => (
            StatusCode::LENGTH_REQUIRED,
            "長さが必要です / Length required\n",
        ),
        "too_large" => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "要求が大きすぎます / Request too large\n",
        ),
        "slow" => (
            StatusCode::REQUEST_TIMEOUT,
            "時間切れです / Request timeout\n",
        ),
        "malformed" => (
            StatusCode::BAD_REQUEST,
            "要求の形式が正しくありません / Malformed request\n",
        ),
        "rate" => (
            StatusCode::TOO_MANY_REQUESTS,
            "しばらくしてからお試しください / Too many requests\n",
        ),
        "ticket" => (
            StatusCode::NOT_FOUND,
            "この番号札はお知らせできません（本日の待ち中の番号のみ） / Not a waiting ticket of today\n",
        ),
        "endpoint" => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "このブラウザの通知サービスは使えません / Push service not allowed\n",
        ),
        "per_ticket" => (
            StatusCode::CONFLICT,
            "この番号札のお知らせ先が多すぎます / Too many subscriptions for this ticket\n",
        ),
        "stale" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "窓口の最新の情報が届いていないため、ただいまお知らせを設定できません。しばらくしてからお試しください / The office's data is out of date: try again later\n",
        ),
        "full" | "busy" | "not_saved" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ただいま受け付けられません / Try again later\n",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "ページが見つかりません / Not found\n",
        ),
    };
    let mut r = text(status, t);
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeReq {
    ticket: Claim,
    subscription: BrowserSub,
    notify: Threshold,
    #[serde(default)]
    lang: Lang,
}

/// `PushSubscription.toJSON()`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BrowserSub {
    endpoint: String,
    #[serde(default)]
    #[allow(dead_code)]
    expiration_time: Option<f64>,
    keys: Keys,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    p256dh: String,
    auth: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeReq {
    ticket: Claim,
    endpoint: String,
}

impl Push {
    /// Every request under `/push/`.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        match (req.method().clone(), req.uri().path()) {
            (Method::GET | Method::HEAD, "/push/key") => {
                let mut r = answer(
                    StatusCode::OK,
                    "application/json",
                    serde_json::json!({ "key": self.vapid.public_b64 }).to_string(),
                );
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                r
            }
            (Method::GET | Method::HEAD, "/push/sw.js") => {
                let mut r = answer(
                    StatusCode::OK,
                    "text/javascript; charset=utf-8",
                    SERVICE_WORKER,
                );
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                r
            }
            (Method::POST, "/push/subscribe") => self.subscribe(req, peer).await,
            (Method::POST, "/push/unsubscribe") => self.unsubscribe(req, peer).await,
            (_, "/push/subscribe" | "/push/unsubscribe") => {
                let mut r = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "許可されていない操作です / Method not allowed\n",
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                r
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "ページが見つかりません / Not found\n",
            ),
        }
    }

    /// The checks before the body: Origin, type, length. Run before the
    /// address's budget is counted: a request refused here costs nothing
    /// to refuse, and counting it let any web page (a cross-site
    /// `text/plain` POST needs no preflight) spend the budget of a whole
    /// waiting room behind one address (push red team F1).
    fn headers_ok(&self, h: &hyper::HeaderMap) -> Result<(), &'static str> {
        let origin_ok = h
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| self.origins.iter().any(|a| a == o));
        if !origin_ok {
            return Err("origin");
        }
        let json = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err("content_type");
        }
        let max = self.cfg.max_body_bytes;
        let declared = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or("length")?;
        if declared > max as u64 {
            return Err("too_large");
        }
        Ok(())
    }

    /// The body, once [`Self::headers_ok`] passed, within its cap and time.
    async fn body(&self, req: Request<Incoming>) -> Result<Bytes, &'static str> {
        let max = self.cfg.max_body_bytes;
        match tokio::time::timeout(BODY_DEADLINE, Limited::new(req.into_body(), max).collect())
            .await
        {
            Err(_) => Err("slow"),
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err("too_large"),
            Ok(Err(_)) => Err("malformed"),
        }
    }

    async fn subscribe(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        if let Err(reason) = self.headers_ok(req.headers()) {
            return refuse(self, reason);
        }
        if !self.admit_address(crate::conn::network_of(peer.ip())) {
            return refuse(self, "rate");
        }
        let raw = match self.body(req).await {
            Ok(b) => b,
            Err(reason) => return refuse(self, reason),
        };
        let Ok(r) = serde_json::from_slice::<SubscribeReq>(&raw) else {
            return refuse(self, "malformed");
        };
        let p256dh = B64.decode(r.subscription.keys.p256dh.trim_end_matches('='));
        let auth = B64.decode(r.subscription.keys.auth.trim_end_matches('='));
        let keys_ok =
            matches!((&p256dh, &auth), (Ok(p), Ok(a)) if a.len() == 16 && ece::valid_key(p));
        let endpoint = r.subscription.endpoint;
        if !keys_ok || !r.notify.valid() || endpoint.len() > MAX_ENDPOINT {
            return refuse(self, "malformed");
        }
        // While the office's data has expired the relay cannot know the
        // ticket is still live: say so, do not take a subscription that
        // may never fire (push red team F2).
        if self.is_stale() {
            return refuse(self, "stale");
        }
        // Live and its own tag first: only the holders of live tickets
        // (a few hundred) enter the per-ticket table and slots, so
        // made-up or guessed tokens can neither fill them nor shut the
        // ticket's visitor out for the rest of the minute.
        if !self.board().is_some_and(|b| b.admits(&r.ticket)) {
            return refuse(self, "ticket");
        }
        if !self.admit_ticket(&r.ticket.token.to_string()) {
            return refuse(self, "rate");
        }
        // The form check here; the lookup on the push runtime, a few at once.
        if self.guard.check_url(&endpoint).is_err() {
            return refuse(self, "endpoint");
        }
        let Ok(permit) = self.checks.clone().try_acquire_owned() else {
            return refuse(self, "busy");
        };
        let guard = self.guard.clone();
        let e = endpoint.clone();
        let check = self.rt.spawn(async move {
            let r = tokio::time::timeout(CHECK_DEADLINE, guard.check(&e)).await;
            drop(permit);
            r
        });
        match check.await {
            Ok(Ok(Ok(_))) => {}
            Ok(Err(_)) | Err(_) => return refuse(self, "busy"),
            Ok(Ok(Err(_))) => return refuse(self, "endpoint"),
        }
        let mut sub = Sub {
            ticket: r.ticket.token,
            endpoint,
            p256dh: B64.encode(p256dh.unwrap_or_default()),
            auth: B64.encode(auth.unwrap_or_default()),
            threshold: r.notify,
            lang: r.lang,
            progress: Progress::default(),
        };
        let endpoint = sub.endpoint.clone();
        let status = {
            let mut subs = self.subs();
            let replacing = subs
                .by_endpoint
                .get(&sub.endpoint)
                .map(|old| old.ticket == sub.ticket);
            match replacing {
                // The same browser changing its threshold or language.
                Some(true) => {}
                _ if subs.for_ticket(&sub.ticket) >= self.cfg.max_per_ticket => {
                    drop(subs);
                    return refuse(self, "per_ticket");
                }
                None if subs.by_endpoint.len() >= self.cfg.max_total => {
                    drop(subs);
                    return refuse(self, "full");
                }
                _ => {}
            }
            if let Some(old) = subs.by_endpoint.get(&sub.endpoint) {
                // What this browser was told stays told (the page sends
                // its subscription again on every visit).
                if old.ticket == sub.ticket {
                    sub.progress = old.progress.clone();
                }
            }
            let status = if replacing.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            subs.by_endpoint.insert(sub.endpoint.clone(), sub);
            status
        };
        let generation = self.mark_dirty();
        // Tell at once if the threshold is already crossed.
        if let Some(b) = self.board() {
            self.decide_now(&b, Some(&endpoint));
        }
        // Answered once it is on disk: "subscribed" must survive a stop
        // right after it (outside tester push-rt6 F4). A write that fails
        // or does not finish in time takes a new subscription back and
        // says so; a replaced one stays (its earlier form is on disk).
        if !self.written(generation, SAVE_DEADLINE).await {
            if status == StatusCode::CREATED {
                self.forget(&endpoint);
            }
            return refuse(self, "not_saved");
        }
        add(&self.metrics.accepted);
        text(status, "お知らせを設定しました / Subscribed\n")
    }

    async fn unsubscribe(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        if let Err(reason) = self.headers_ok(req.headers()) {
            return refuse(self, reason);
        }
        if !self.admit_address(crate::conn::network_of(peer.ip())) {
            return refuse(self, "rate");
        }
        let raw = match self.body(req).await {
            Ok(b) => b,
            Err(reason) => return refuse(self, reason),
        };
        let Ok(r) = serde_json::from_slice::<UnsubscribeReq>(&raw) else {
            return refuse(self, "malformed");
        };
        let removed = {
            let mut subs = self.subs();
            match subs.by_endpoint.get(&r.endpoint) {
                Some(s) if s.ticket == r.ticket.token => {
                    subs.by_endpoint.remove(&r.endpoint).is_some()
                }
                _ => false,
            }
        };
        if removed {
            self.mark_dirty();
            text(StatusCode::OK, "お知らせを止めました / Unsubscribed\n")
        } else {
            text(
                StatusCode::NOT_FOUND,
                "ページが見つかりません / Not found\n",
            )
        }
    }
}
