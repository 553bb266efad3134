//! Errors as the server's clients see them (R11): one type, [`ApiError`],
//! answered as JSON with a stable code and a Japanese and English message to
//! API clients, and as a Japanese page (English beside it) that says what
//! happened and what to do to a browser asking for a page. Never a stack
//! trace, a version, a path, or a parser's or framework's own words:
//! [`answer_in_kind`] replaces any error the framework wrote itself (a
//! method not allowed, a rejected extractor) with ours. Internal details go
//! to the server's own log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use madoguchi_core::engine::ExecError;
use madoguchi_core::refusal::Refusal;
use serde_json::json;

/// What a primary whose standby is out of reach says (issue 24): why, and
/// what to do, for staff and for the admin (`/admin` says the same).
pub const NO_LEASE_JA: &str = "予備機と連絡が取れないため、番号の二重発行を防ぐために受付を止めています。予備機の電源とケーブルを確かめてください（つながれば自動で再開します）。予備機が故障しているとき（主機に昇格させていないときに限ります）は、管理者が予備機の電源を切ってから、管理画面の「端末」で予備機の「取り消す」を押し、管理画面で「予備機の停止を確認」を押すと、予備機なしで再開します。";

#[derive(Debug)]
pub enum ApiError {
    /// The state machine refused the command (409).
    Refused(Refusal),
    /// The request is malformed; the text is ours, never a parser's.
    BadRequest(String),
    /// A refusal said plainly in both languages, with its own status and
    /// code (a bad or taken name, an account in use, stale settings).
    Plain {
        status: StatusCode,
        code: &'static str,
        ja: String,
        en: String,
    },
    /// A request value that is not valid, said as specifically in
    /// Japanese as in English (browser red team F8): which field, what is
    /// wrong, how to write it.
    Invalid {
        ja: String,
        en: String,
    },
    /// An address that names nothing there is (a counter the office does
    /// not have, a kind of day with no forecast): 404 with what there is,
    /// each a link, so a person who typed it knows where to go (issue 18,
    /// outside tester pages-rt7).
    Missing {
        code: &'static str,
        ja: String,
        en: String,
        /// (address, words) of the pages to go to instead.
        links: Vec<(String, String)>,
    },
    /// A JSON body without `Content-Type: application/json`.
    NotJson,
    MethodNotAllowed,
    TooLarge,
    /// Too many sign-ins (or reports) at once: try again in a moment.
    Busy,
    Unauthenticated,
    /// A sign-in with an unknown ID or a wrong password (told apart from
    /// "not signed in": browser red team F1). Which of the two is not said.
    WrongCredentials,
    Forbidden,
    CsrfMissing,
    NotFound,
    /// Sign-ins from this address for this account wait this many more
    /// minutes.
    TooManyAttempts {
        minutes: u64,
    },
    /// Wrong enrolment codes from this address: it waits this many more
    /// minutes before trying a code again.
    EnrolThrottled {
        minutes: u64,
    },
    /// Too many requests of this kind from this device or for this
    /// category; try again in this many seconds. Nothing was done.
    RateLimited {
        seconds: u64,
    },
    /// Too many live connections: from anyone not signed in, or held by
    /// this one device or account; try again in this many seconds (a
    /// display refused here was told about tickets before).
    TooManyConnections {
        seconds: u64,
    },
    /// This device took its share of the category's numbers today (at most
    /// what is left to everybody else): the category's numbers are nearly
    /// used up. Nothing was done.
    DeviceShareUsed,
    /// This staff account took its share of the category's numbers today,
    /// as a device does. Nothing was done.
    AccountShareUsed,
    /// This kiosk issued far more than people at a kiosk can and is held
    /// until an administrator releases it (limits.rs). Nothing was done.
    DeviceHeld,
    /// `open_day` for a date other than the office's business date.
    NotToday {
        date: chrono::NaiveDate,
        today: chrono::NaiveDate,
    },
    /// The kiosk's printer failed; the ticket was voided.
    PrintFailed,
    /// This server is a standby: commands go to the primary.
    Standby,
    /// The standby's log differs from ours at this record.
    Diverged(u64),
    /// The standby holds records up to `standby`, but this log ends at
    /// `ours`: records were lost here (issue 17).
    PrimaryBehind {
        standby: u64,
        ours: u64,
    },
    /// A standby was promoted (this epoch): this old primary takes no
    /// commands (issue 24).
    Replaced(u64),
    /// A primary with a standby has not heard from it within the lease:
    /// it takes no commands, so that a promoted standby and this machine
    /// never both give numbers.
    NoLease,
    /// A second standby (red team F2): one standby at a time.
    OneStandby,
    /// Revoking the standby of a primary that lost records the standby
    /// holds (red team F3): it would give acknowledged numbers again.
    KeepStandby {
        standby: u64,
        ours: u64,
    },
    /// The command could not be recorded: the disk is full. Nothing
    /// changed; the same request may be sent again once there is space.
    DiskFull,
    /// Something failed inside; details are logged, not shown.
    Internal(String),
}

/// Whether an error (or anything it was caused by) is "no space left on
/// the device".
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        // sled hides its io::Error from `source()`: the engine digs it out.
        if let Some(e) = err.downcast_ref::<madoguchi_core::engine::EngineError>() {
            if e.is_disk_full() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl ApiError {
    pub(super) fn parts(&self) -> (StatusCode, &'static str, String, String) {
        // Grouped so each table stays readable; every variant is in
        // exactly one group (the last one is exhaustive by `_`).
        self.request_parts()
            .or_else(|| self.access_parts())
            .or_else(|| self.failover_parts())
            .unwrap_or_else(|| self.issuing_parts())
    }

    /// The request itself: its form, its address, a refused command.
    fn request_parts(&self) -> Option<(StatusCode, &'static str, String, String)> {
        match self {
            ApiError::Refused(r) => Some((
                StatusCode::CONFLICT,
                r.code(),
                r.message_ja(),
                r.to_string(),
            )),
            ApiError::BadRequest(why) => Some((
                StatusCode::BAD_REQUEST,
                "bad_request",
                "リクエストの形式が正しくありません".into(),
                format!("the request is not valid: {why}"),
            )),
            ApiError::Plain {
                status,
                code,
                ja,
                en,
            } => Some((*status, code, ja.clone(), en.clone())),
            ApiError::Invalid { ja, en } => Some((
                StatusCode::BAD_REQUEST,
                "bad_request",
                ja.clone(),
                en.clone(),
            )),
            ApiError::Missing { code, ja, en, .. } => Some((StatusCode::NOT_FOUND, code, ja.clone(), en.clone())),
            ApiError::NotJson => Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not_json",
                "リクエストは JSON（Content-Type: application/json）で送ってください".into(),
                "send the request as JSON (Content-Type: application/json)".into(),
            )),
            ApiError::MethodNotAllowed => Some((
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "この操作はこのアドレスでは受け付けていません".into(),
                "this method is not accepted at this address".into(),
            )),
            ApiError::NotToday { date, today } => Some((
                StatusCode::CONFLICT,
                "not_today",
                format!("開始できるのは本日 {today} の業務だけです（{date} は開始できません）"),
                format!("only today's business day, {today}, can be opened (not {date}); an administrator may override with ?override_date={date}"),
            )),
            ApiError::TooLarge => Some((
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "リクエストが大きすぎます".into(),
                "the request is too large".into(),
            )),
            ApiError::NotFound => Some((
                StatusCode::NOT_FOUND,
                "not_found",
                "見つかりません".into(),
                "not found".into(),
            )),
            _ => None,
        }
    }

    /// Who may do it: sign-in, roles, CSRF, throttled tries (R11).
    fn access_parts(&self) -> Option<(StatusCode, &'static str, String, String)> {
        match self {
            ApiError::Unauthenticated => Some((
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "ログインしてください".into(),
                "please log in".into(),
            )),
            ApiError::WrongCredentials => Some((
                StatusCode::UNAUTHORIZED,
                "wrong_credentials",
                "ID またはパスワードが違います。確かめてもう一度入力してください。分からないときは管理者に連絡してください".into(),
                "the ID or password is wrong; check them and try again, or ask an administrator".into(),
            )),
            ApiError::Forbidden => Some((
                StatusCode::FORBIDDEN,
                "forbidden",
                "この操作の権限がありません".into(),
                "you may not do this".into(),
            )),
            ApiError::CsrfMissing => Some((
                StatusCode::FORBIDDEN,
                "csrf",
                "画面を再読み込みしてからやり直してください".into(),
                "the request lacks a valid CSRF token; reload the page and try again".into(),
            )),
            ApiError::TooManyAttempts { minutes } => Some((
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("ログインの失敗が続いたため、この端末からは {minutes} 分後までログインできません。パスワードが分からないときは管理者に連絡してください"),
                format!("too many failed sign-ins from this address; try again in {minutes} min, or ask an administrator"),
            )),
            ApiError::EnrolThrottled { minutes } => Some((
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_enrolments",
                format!("正しくない登録コードが続いたため、この端末からは {minutes} 分後まで端末の登録ができません。管理者に新しい登録リンクを発行してもらってください"),
                format!("too many wrong enrolment codes from this address; try again in {minutes} min, or ask an administrator for a new enrolment link"),
            )),
            _ => None,
        }
    }

    /// Primary and standby (issue 24, R9): why commands stop and what to do.
    fn failover_parts(&self) -> Option<(StatusCode, &'static str, String, String)> {
        match self {
            ApiError::Diverged(seq) => Some((
                StatusCode::CONFLICT,
                "diverged",
                format!("記録 {seq} が一致しません"),
                format!("the logs differ at record {seq}"),
            )),
            ApiError::PrimaryBehind { standby, ours } => Some((
                StatusCode::CONFLICT,
                "primary_behind",
                format!("予備機は記録 {standby} まで持っていますが、この主機の記録は {ours} で終わっています。主機の記録が失われたため受付を止めました。予備機の管理画面で「主機に昇格」を押してください（予備機の登録は取り消さないでください。取り消すと、発行済みの番号がもう一度出ます）。職員に声をおかけください"),
                format!("the standby holds records up to {standby}, but this primary's log ends at {ours}: records were lost here; promote the standby (do not revoke it: that would give issued numbers again)"),
            )),
            ApiError::OneStandby => Some((
                StatusCode::CONFLICT,
                "one_standby",
                "予備機はすでに登録されています。予備機は一台だけです（二台あると両方が主機に昇格でき、同じ番号が二度出ます）。入れ替えるときは、管理画面の「端末」で今の予備機の「取り消す」を押してから、新しい予備機の登録用リンクを作ってください".into(),
                "a standby is already enrolled: one standby at a time (two could both be promoted and give the same numbers). To replace it, revoke the current standby under 管理 → 端末 first, then make a new link".into(),
            )),
            ApiError::KeepStandby { standby, ours } => Some((
                StatusCode::CONFLICT,
                "primary_behind",
                format!("予備機の登録は取り消せません。予備機は記録 {standby} まで持っていますが、この主機の記録は {ours} で終わっています（記録が失われました）。取り消すとこの主機が発行済みの番号をもう一度出します。予備機の管理画面で「主機に昇格」を押してください"),
                format!("the standby cannot be revoked: it holds records up to {standby}, this primary's log ends at {ours} (records were lost here); revoking it would give issued numbers again. Promote the standby"),
            )),
            ApiError::Replaced(epoch) => Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "replaced",
                format!("この機械は主機ではなくなりました（予備機が主機に昇格しました・第{epoch}期）。番号は新しい主機で発行してください。職員に声をおかけください"),
                format!("this server has been replaced (a standby was promoted, epoch {epoch}); use the new primary"),
            )),
            ApiError::NoLease => Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "no_standby_lease",
                NO_LEASE_JA.into(),
                "the standby cannot be reached: commands are stopped so that no number is given twice. Check the standby's power and cable (it resumes by itself once they talk again); if the standby is broken, an admin revokes its device under 管理 → 端末 (取り消す)".into(),
            )),
            ApiError::Standby => Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "standby",
                "この機械は予備機です。主機で操作するか、予備機を昇格してください".into(),
                "this is the standby server: use the primary, or promote the standby".into(),
            )),
            _ => None,
        }
    }

    /// Issuing limits and the server's own state (busy, printer, disk, internal).
    /// Also the fallback: an internal error, or a variant the groups
    /// above did not take (logged), is answered as internal.
    fn issuing_parts(&self) -> (StatusCode, &'static str, String, String) {
        match self {
            ApiError::RateLimited { seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("発券が続いたため受け付けませんでした。{seconds} 秒ほど待ってからやり直してください。番号は使われていません"),
                format!("too many tickets in a short time; nothing was issued and no number was used. Try again in about {seconds} s"),
            ),
            ApiError::TooManyConnections { seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                format!("接続が多すぎるため、つなげませんでした。{seconds} 秒ほど待ってから開き直してください。続くときは、同じ端末で開いている画面を閉じるか、管理者に連絡してください"),
                format!("too many connections at once, so this one was not opened; reopen the page in about {seconds} s. If it goes on, close the other pages open on this device, or ask an administrator"),
            ),
            ApiError::DeviceShareUsed => (
                StatusCode::TOO_MANY_REQUESTS,
                "device_share_used",
                "この受付区分の本日の番号は残りわずかのため、この発券機からはこれ以上発行できません。番号は使われていません。職員に声をおかけください（職員は窓口で発券できます。番号の範囲は管理者が設定で広げられます）".into(),
                "this category's numbers for today are nearly used up, so this kiosk issues no more of them; nothing was issued and no number was used. Please ask a member of staff: staff can still issue a number at the counter, and an administrator can widen the category's number range in the settings".into(),
            ),
            ApiError::AccountShareUsed => (
                StatusCode::TOO_MANY_REQUESTS,
                "account_share_used",
                "このアカウントは、この受付区分の本日の番号の残りの半分をすでに発行したため、これ以上発行できません。番号は使われていません。発券機か別の職員のアカウントで発券するか、管理者に連絡してください".into(),
                "this account has issued half of what is left of this category's numbers for today and issues no more of them; nothing was issued and no number was used. Issue from a kiosk or another staff account, or ask an administrator".into(),
            ),
            ApiError::DeviceHeld => (
                StatusCode::LOCKED,
                "device_held",
                "この発券機は短い時間に非常に多くの番号を発行したため、発券を止めています。番号は使われていません。職員に声をおかけください（職員は窓口で発券できます。管理者が端末の一覧で確かめて再開できます）".into(),
                "this kiosk issued far more numbers in a short time than people at a kiosk can, so its issuing is held; nothing was issued and no number was used. Please ask a member of staff: staff can issue a number at the counter, and an administrator can check and release the kiosk on the device list".into(),
            ),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "ただいま混み合っています。数秒待ってからもう一度お試しください".into(),
                "the server is busy with requests like this one; try again in a few seconds".into(),
            ),
            ApiError::PrintFailed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "print_failed",
                "番号札を印刷できませんでした。職員に声をおかけください".into(),
                "your ticket could not be printed; please ask a member of staff".into(),
            ),
            ApiError::DiskFull => (
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                "記録用のディスクに空きがないため、受け付けられませんでした。何も変更されていません。職員に声をおかけください".into(),
                "the command could not be recorded because the disk is full; nothing was changed. Please ask a member of staff".into(),
            ),
            ApiError::Internal(_) => internal(),
            other => {
                // A variant no group names: still answered, never silent.
                tracing::error!(error = ?other, "an error without its message in error.rs");
                internal()
            }
        }
    }
}

/// The answer to an internal error: nothing of it shown to the client.
fn internal() -> (StatusCode, &'static str, String, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "システムで問題が起きました。職員に声をおかけください".into(),
        "something went wrong in the system; please ask a member of staff".into(),
    )
}

/// What an error response said, kept on the response so that
/// [`answer_in_kind`] can show it as a page to a browser.
#[derive(Debug, Clone)]
pub struct Shown {
    pub code: &'static str,
    pub ja: String,
    pub en: String,
    /// Where to go instead: (address, words), listed on the page.
    pub links: Vec<(String, String)>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let (status, code, ja, en) = self.parts();
        let links = match &self {
            ApiError::Missing { links, .. } => links.clone(),
            _ => Vec::new(),
        };
        let shown = Shown {
            code,
            ja: ja.clone(),
            en: en.clone(),
            links,
        };
        let mut r = (
            status,
            Json(json!({"error": {"code": code, "message_ja": ja, "message_en": en}})),
        )
            .into_response();
        let retry = match self {
            ApiError::TooManyAttempts { minutes } | ApiError::EnrolThrottled { minutes } => {
                Some(minutes * 60)
            }
            ApiError::RateLimited { seconds } | ApiError::TooManyConnections { seconds } => {
                Some(seconds)
            }
            ApiError::Busy => Some(2),
            _ => None,
        };
        if let Some(secs) = retry {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        r.extensions_mut().insert(shown);
        r
    }
}

/// What to do, for the page a browser sees with an error.
fn advice(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::UNAUTHORIZED => (
            "ログインしてからもう一度開いてください。",
            "Sign in, then open the page again.",
        ),
        StatusCode::FORBIDDEN => (
            "この端末やアカウントでは開けません。必要なら管理者に連絡してください。",
            "This device or account may not open it; ask an administrator if you need it.",
        ),
        StatusCode::NOT_FOUND => (
            "アドレスを確かめるか、トップページから開き直してください。",
            "Check the address, or start again from the top page.",
        ),
        s if s.is_server_error() => (
            "しばらく待ってから再読み込みしてください。続くときは職員・管理者に連絡してください。",
            "Wait a moment and reload; if it goes on, tell staff or an administrator.",
        ),
        _ => (
            "前の画面に戻って、もう一度やり直してください。",
            "Go back and try again.",
        ),
    }
}

pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page a browser sees for an error: Japanese first, English beside.
pub fn page(status: StatusCode, shown: &Shown) -> Response {
    let (todo_ja, todo_en) = if shown.links.is_empty() {
        advice(status)
    } else if status == StatusCode::BAD_REQUEST {
        (
            "アドレスの値を直して開き直すか、下のリンクから開いてください。",
            "Correct the value in the address, or open the page below.",
        )
    } else {
        ("次のどれかを開いてください。", "Open one of these instead.")
    };
    let links = if shown.links.is_empty() {
        String::new()
    } else {
        let items: String = shown
            .links
            .iter()
            .map(|(href, words)| {
                format!(
                    "<li><a href=\"{}\">{}</a></li>",
                    escape(href),
                    escape(words)
                )
            })
            .collect();
        format!("<nav aria-label=\"開けるページ\"><ul class=\"go-to\">{items}</ul></nav>")
    };
    // The first sentence is the heading (and the title: the tab and a
    // screen reader say what happened first, not a code); the rest is
    // said under it.
    let (title, rest) = match shown.ja.split_once('。') {
        Some((first, rest)) => (first, rest.trim()),
        None => (shown.ja.as_str(), ""),
    };
    let body = format!(
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"/site/style.css\"></head>\
<body><main class=\"page narrow\"><h1>{title}</h1>{rest}<p>{todo_ja}</p>\
<p lang=\"en\" class=\"en\">{en} — {todo_en}</p>{links}\
<p class=\"code\">{status} <code>{code}</code></p><p><a href=\"/\">トップページへ <span lang=\"en\">Top page</span></a></p>\
</main></body></html>",
        code = escape(shown.code),
        title = escape(title),
        rest = if rest.is_empty() {
            String::new()
        } else {
            format!("<p class=\"what\">{}</p>", escape(rest))
        },
        en = escape(&shown.en),
        status = status.as_u16(),
    );
    let mut r = (status, axum::response::Html(body)).into_response();
    r.extensions_mut().insert(shown.clone());
    r
}

/// Pages that open without values in their address (the link offered
/// when a value there is not valid).
const PLAIN_PAGES: &[&str] = &[
    "/staff",
    "/statistics",
    "/audit",
    "/forecast",
    "/login",
    "/kiosk",
];

/// Whether the request is a browser asking for a page (not the API).
fn wants_page(req: &axum::extract::Request) -> bool {
    !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The framework's own error answers (an empty 405, a plain-text
/// rejection) as ours; ours as a page for a browser asking for a page.
pub async fn answer_in_kind(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let page_wanted = wants_page(&req);
    // A page opened with a value in its address that is not valid
    // (`/statistics?from=2026-13-01`): the page offers the same page
    // without the values (issue 18: say where to go).
    let plain = (req.uri().query().is_some() && req.method() == axum::http::Method::GET)
        .then(|| req.uri().path().to_string());
    let mut r = next.run(req).await;
    let status = r.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return r;
    }
    if r.extensions().get::<Shown>().is_none() {
        let typed = r
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Our other answers (a settings line error, a kiosk page) keep
        // their JSON or HTML; a framework's text or empty body does not.
        if typed.starts_with("application/json") || typed.starts_with("text/html") {
            return r;
        }
        let ours = match status {
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::NotJson,
            StatusCode::UNAUTHORIZED => ApiError::Unauthenticated,
            StatusCode::FORBIDDEN => ApiError::Forbidden,
            s if s.is_client_error() => {
                ApiError::BadRequest("the request could not be read".into())
            }
            _ => ApiError::Internal(format!("framework answered {status}")),
        };
        r = ours.into_response();
    }
    if page_wanted {
        if let Some(mut shown) = r.extensions().get::<Shown>().cloned() {
            if r.status() == StatusCode::BAD_REQUEST && shown.links.is_empty() {
                if let Some(path) = plain.filter(|p| PLAIN_PAGES.contains(&p.as_str())) {
                    shown
                        .links
                        .push((path.clone(), format!("値を付けずに開き直す（{path}）")));
                }
            }
            let headers = r.headers().clone();
            let mut p = page(r.status(), &shown);
            for name in [
                axum::http::header::RETRY_AFTER,
                axum::http::header::SET_COOKIE,
            ] {
                if let Some(v) = headers.get(&name) {
                    p.headers_mut().insert(name, v.clone());
                }
            }
            return p;
        }
    }
    r
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Refused(r) => ApiError::Refused(r),
            ExecError::Engine(inner) if is_disk_full(inner.as_ref()) => ApiError::DiskFull,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<super::names::BadName> for ApiError {
    fn from(b: super::names::BadName) -> ApiError {
        let status = if b.code == "name_taken" {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::Plain {
            status,
            code: b.code,
            ja: b.ja,
            en: b.en,
        }
    }
}
