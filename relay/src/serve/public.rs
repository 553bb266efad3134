//! The public side: the site from memory (GET/HEAD only, ETag, gzip or
//! brotli as asked, CDN-friendly caching), `/ws?topic=` (WebSocket, exact
//! Origin allowlist, small frames, a bounded queue that drops slow readers;
//! a subscriber may send control frames only) and `/events?topic=` (SSE).
//! Every response carries the security headers and nothing that names the
//! software.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast::error::RecvError;

use super::Relay;
use crate::conn::Slot;
use crate::fanout;
use crate::metrics::Metrics;
use crate::site::Entry;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

/// The policy of an answer that is not a document (JSON, a script, a
/// style sheet, an error text): load nothing, be framed by no one.
const CSP_NOT_A_DOCUMENT: &str = "default-src 'none'; frame-ancestors 'none'";

/// The security headers (R11), as much as each kind of answer needs: HSTS
/// and nosniff on every answer; the page's whole policy and its referrer
/// policy on pages only (they govern what a document loads and links to,
/// and say nothing on JSON or a script). No `X-Frame-Options`: CSP's
/// `frame-ancestors 'none'` says the same to every current browser.
fn secure(relay: &Relay, mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    let page = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if page { CSP } else { CSP_NOT_A_DOCUMENT }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "max-age={}; includeSubDomains",
        relay.cfg.public.hsts_max_age
    )) {
        h.insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if page {
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    res
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn handle(
    relay: Arc<Relay>,
    req: Request<Incoming>,
    peer: SocketAddr,
    slot: Arc<Slot>,
) -> Response<Body> {
    Metrics::add(&relay.metrics.requests);
    let res = match &relay.push {
        // Web Push (issue 20) has its own routes and checks.
        Some(push) if req.uri().path().starts_with("/push/") => push.handle(req, peer).await,
        _ => route(&relay, req, slot).await,
    };
    secure(&relay, res)
}

async fn route(relay: &Arc<Relay>, req: Request<Incoming>, slot: Arc<Slot>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "許可されていない操作です / Method not allowed\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // The public side takes no request bodies at all.
    if req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
    {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "要求が大きすぎます / Request too large\n",
        );
    }
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/ws" => websocket(relay, req, slot),
        "/events" => events(relay, &req, slot),
        _ => file(relay, &req, &path),
    }
}

/// The topic a push request names, if the site has it (topics that do not
/// exist are refused so that no one can make the hub grow).
fn topic(relay: &Relay, req: &Request<Incoming>) -> Option<String> {
    let q = req.uri().query()?;
    let t = q.split('&').find_map(|kv| kv.strip_prefix("topic="))?;
    let path = format!("displays/{t}.json");
    (crate::bundle::valid_path(&path) && relay.site().files.contains_key(&path))
        .then(|| t.to_string())
}

fn accepts(req: &Request<Incoming>, coding: &str) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q0 = parts.any(|p| {
                let p = p.trim();
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            name.eq_ignore_ascii_case(coding) && !q0
        })
}

fn file(relay: &Relay, req: &Request<Incoming>, path: &str) -> Response<Body> {
    let site = relay.site();
    let Some(entry) = site.lookup(path) else {
        return plain(
            StatusCode::NOT_FOUND,
            "ページが見つかりません / Not found\n",
        );
    };
    let (body, coding, tag) = choose(entry, req);
    let stale = relay.is_stale();
    let live =
        entry.content_type.starts_with("text/html") || entry.content_type == "application/json";
    // No `public`: these requests carry no credentials, so shared caches
    // may keep the answers anyway.
    let cache = match (stale, live) {
        (true, _) => "no-store",
        (false, true) => "max-age=2, must-revalidate",
        (false, false) => "max-age=300",
    };
    let mut res = Response::new(full(Bytes::new()));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(entry.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Only a file kept compressed has variants to tell caches about.
    if entry.gzip.is_some() || entry.brotli.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if stale {
        // The page script shows "not up to date" instead of live data.
        h.insert("x-madoguchi-stale", HeaderValue::from_static("1"));
    }
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*")
        });
    if matches {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return res;
    }
    if let Some(c) = coding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(c));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if req.method() != Method::HEAD {
        *res.body_mut() = full(body);
    }
    res
}

fn choose(e: &Entry, req: &Request<Incoming>) -> (Bytes, Option<&'static str>, String) {
    let base = e.etag.trim_end_matches('"');
    match (&e.brotli, &e.gzip) {
        (Some(b), _) if accepts(req, "br") => (b.clone(), Some("br"), format!("{base}-br\"")),
        (_, Some(g)) if accepts(req, "gzip") => (g.clone(), Some("gzip"), format!("{base}-gz\"")),
        _ => (e.identity.clone(), None, e.etag.clone()),
    }
}

fn header_has(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn websocket(relay: &Arc<Relay>, req: Request<Incoming>, slot: Arc<Slot>) -> Response<Body> {
    if !header_has(&req, header::UPGRADE, "websocket")
        || !header_has(&req, header::CONNECTION, "upgrade")
        || req
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            != Some(b"13")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "WebSocket で接続してください / WebSocket upgrade required\n",
        );
    }
    let origin_ok = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| relay.cfg.public.origins.iter().any(|a| a == o));
    if !origin_ok {
        return plain(
            StatusCode::FORBIDDEN,
            "接続元が許可されていません / Origin not allowed\n",
        );
    }
    let Some(topic) = topic(relay, &req) else {
        return plain(
            StatusCode::NOT_FOUND,
            "ページが見つかりません / Not found\n",
        );
    };
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "WebSocket で接続してください / WebSocket upgrade required\n",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let relay = relay.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        relay
            .metrics
            .ws_subscribers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        subscriber(&relay, &topic, Box::new(io)).await;
        relay
            .metrics
            .ws_subscribers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        drop(slot);
    });
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

fn heartbeat() -> String {
    madoguchi_wire::time::heartbeat(madoguchi_wire::UnixMillis::now())
}

/// One WebSocket subscriber: handed to a writer loop (`crate::fanout`),
/// which writes the current payload, then every new one, `{"stale":true}`
/// when the data expires and a heartbeat while it is live; this task only
/// reads what the client sends (control frames only; anything else
/// closes) and writes what a full socket held back.
async fn subscriber(relay: &Relay, topic: &str, io: Box<dyn fanout::Stream>) {
    let Some(writers) = relay.fanout() else {
        return;
    };
    let sub = fanout::Sub::new(topic, io, relay.cfg.limits.subscriber_queue);
    if !writers.join(&relay.hub, sub.clone()) {
        return;
    }
    if fanout::serve(&sub).await == fanout::End::Slow {
        Metrics::add(&relay.metrics.slow_subscribers_dropped);
    }
}

fn events(relay: &Arc<Relay>, req: &Request<Incoming>, slot: Arc<Slot>) -> Response<Body> {
    let Some(topic) = topic(relay, req) else {
        return plain(
            StatusCode::NOT_FOUND,
            "ページが見つかりません / Not found\n",
        );
    };
    let sub = relay.hub.subscribe(&topic);
    let mut beat = tokio::time::interval(relay.cfg.limits.heartbeat());
    beat.reset();
    struct St {
        relay: Arc<Relay>,
        sub: crate::hub::Subscription,
        beat: tokio::time::Interval,
        /// Expiry of the office's data: told at once, right after the
        /// current page to a new subscriber and whenever it changes, as
        /// the WebSocket does (relay red team F8: up to a heartbeat of
        /// stale data shown unmarked).
        stale: tokio::sync::watch::Receiver<bool>,
        told_first: bool,
        _slot: Arc<Slot>,
        done: bool,
    }
    relay
        .metrics
        .sse_subscribers
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let st = St {
        relay: relay.clone(),
        sub,
        beat,
        stale: relay.stale_watch(),
        told_first: false,
        _slot: slot,
        done: false,
    };
    impl Drop for St {
        fn drop(&mut self) {
            self.relay
                .metrics
                .sse_subscribers
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(p) = st.sub.current.take() {
            return Some((Ok(Frame::data(sse_data(&p.body))), st));
        }
        if !st.told_first {
            st.told_first = true;
            if *st.stale.borrow_and_update() {
                return Some((Ok(Frame::data(sse_data("{\"stale\":true}"))), st));
            }
        }
        let out = tokio::select! {
            Ok(()) = st.stale.changed() => if *st.stale.borrow_and_update() {
                sse_data("{\"stale\":true}")
            } else {
                sse_data(&heartbeat())
            },
            update = st.sub.updates.recv() => match update {
                Ok(p) => sse_data(&p.body),
                Err(RecvError::Lagged(_)) => {
                    Metrics::add(&st.relay.metrics.slow_subscribers_dropped);
                    // EventSource reconnects and gets the current state.
                    st.done = true;
                    Bytes::from_static(b"event: lagged\ndata: {}\n\n")
                }
                Err(RecvError::Closed) => return None,
            },
            _ = st.beat.tick() => if st.relay.is_stale() {
                sse_data("{\"stale\":true}")
            } else {
                sse_data(&heartbeat())
            },
        };
        Metrics::add(&st.relay.metrics.messages_sent);
        Some((Ok::<_, Infallible>(Frame::data(out)), st))
    });
    let mut res = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// One SSE event; a body with newlines becomes several `data:` lines.
fn sse_data(body: &str) -> Bytes {
    let mut out = String::with_capacity(body.len() + 16);
    for line in body.split('\n') {
        out.push_str("data: ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_keep_multiline_bodies_intact() {
        assert_eq!(sse_data("{\"a\":1}"), Bytes::from("data: {\"a\":1}\n\n"));
        assert_eq!(sse_data("a\nb"), Bytes::from("data: a\ndata: b\n\n"));
    }
}
