//! Who is asking and what they sent, in one place (R11): axum extractors for
//! the caller (a session or a device, checked against a set of roles and,
//! for a state-changing method, the CSRF token), the client's address, and
//! the JSON body, path and query — each failing with our [`ApiError`], never
//! with a parser's or the framework's own text.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::auth::{Caller, Role};
use super::error::ApiError;
use super::App;

/// A set of roles a route admits.
pub trait Roles: Send + Sync + 'static {
    const ROLES: &'static [Role];
}

macro_rules! roles {
    ($(#[$doc:meta] $name:ident = [$($role:ident),+];)+) => {$(
        #[$doc]
        #[derive(Debug)]
        pub struct $name;
        impl Roles for $name {
            const ROLES: &'static [Role] = &[$(Role::$role),+];
        }
    )+};
}

roles! {
    /// Administrators only.
    Admins = [Admin];
    /// Who may issue a ticket.
    Issuers = [Kiosk, Staff, Admin];
    /// Who may read the queues (every signed-in person and device but a standby).
    Readers = [Staff, Admin, Auditor, Kiosk, Display];
    /// Who may read a ticket's history.
    People = [Staff, Admin, Auditor];
}

/// The caller, admitted by one of `R`'s roles (and the CSRF token for a
/// state-changing method).
#[derive(Debug)]
pub struct Authed<R: Roles>(pub Caller, pub PhantomData<R>);

impl<R: Roles> FromRequestParts<Arc<App>> for Authed<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let caller = app.auth.require(&parts.method, &parts.headers, R::ROLES)?;
        Ok(Authed(caller, PhantomData))
    }
}

/// Any signed-in caller, without a role check (`/api/me`, logout).
#[derive(Debug)]
pub struct AnyCaller(pub Caller);

impl FromRequestParts<Arc<App>> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let all = &[
            Role::Admin,
            Role::Staff,
            Role::Auditor,
            Role::Kiosk,
            Role::Display,
            Role::Standby,
        ];
        app.auth
            .require(&parts.method, &parts.headers, all)
            .map(AnyCaller)
    }
}

/// The client's address (the TCP peer; the server is not behind a proxy on
/// the LAN). Unknown only in tests that call the router directly.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        ))
    }
}

/// A JSON body: `Content-Type: application/json` required (a cross-site
/// form cannot send it), at most the router's body limit, and parse
/// failures answered in our words.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let bytes = axum::body::Bytes::from_request(req, state).await;
        super::api::parse_body(bytes).map(Body)
    }
}

/// `Content-Type: application/json`, or [`ApiError::NotJson`] (415): a
/// cross-site form cannot send it.
pub fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::NotJson)
    }
}

/// A path parameter; a malformed one is "not found", never the parser's
/// text ("Cannot parse `abc` to a `u32`").
#[derive(Debug)]
pub struct UrlPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for UrlPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| UrlPath(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// A query string; a malformed one is a bad request in our words.
#[derive(Debug)]
pub struct UrlQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for UrlQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| UrlQuery(q.0))
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge
                } else {
                    // axum's text names the field ("…query string: counter:
                    // invalid digit…"); only the name is taken from it.
                    let text = r.body_text();
                    let field = text
                        .split_once("query string: ")
                        .and_then(|(_, rest)| rest.split_once(':'))
                        .map(|(f, _)| f.trim())
                        .filter(|f| f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                        .unwrap_or("");
                    bad_field(field)
                }
            })
    }
}

/// A value in the address (`?counter=abc`) that is not valid, said as
/// specifically in Japanese as in English (browser red team F8): which
/// field and how to write it.
pub fn bad_field(field: &str) -> ApiError {
    let (name_ja, how_ja, name_en, how_en) = match field {
        "counter" => (
            "窓口番号",
            "半角数字で書いてください（例: counter=10）",
            "counter number",
            "write it in digits, e.g. counter=10",
        ),
        "date" | "from" | "to" => (
            match field {
                "from" => "期間の始め",
                "to" => "期間の終わり",
                _ => "日付",
            },
            "「2026-12-07」のように、実在する日付を 年-月-日 で書いてください",
            match field {
                "from" => "start of the period",
                "to" => "end of the period",
                _ => "date",
            },
            "write a real date as YYYY-MM-DD, e.g. 2026-12-07",
        ),
        "ticket" => (
            "番号",
            "番号札の番号を半角数字で書いてください（例: ticket=1001）",
            "ticket number",
            "write the ticket's number in digits, e.g. ticket=1001",
        ),
        "page" => (
            "ページ番号",
            "1 以上の半角数字で書いてください",
            "page number",
            "write a whole number from 1",
        ),
        "" => (
            "アドレスの値",
            "アドレスを確かめてください",
            "a value in the address",
            "check the address",
        ),
        _ => (
            "アドレスの値",
            "値の書き方を確かめてください",
            "a value in the address",
            "check how it is written",
        ),
    };
    let shown = if field.is_empty() {
        String::new()
    } else {
        format!("（{field}）")
    };
    ApiError::Invalid {
        ja: format!("{name_ja}{shown}が正しくありません。{how_ja}"),
        en: format!("the {name_en} is not valid: {how_en}"),
    }
}
