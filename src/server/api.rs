//! The JSON API: every engine command (`POST /api/commands`) and every read
//! (`GET /api/status`, `GET /api/tickets/{number}`), login and devices.
//! Documented in docs/api.md; every error is [`ApiError`] JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use madoguchi_core::model::{Command, Event, Millis};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{Caller, Code, Role, SignInError, DEVICE_COOKIE, SESSION_COOKIE};
use super::error::ApiError;
use super::extract::{
    Admins, AnyCaller, Authed, Body, ClientAddr, Issuers, People, Readers, UrlPath, UrlQuery,
};
use super::limits::Held;
use super::App;

const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// Parses a JSON body ourselves, so that every failure is our JSON error.
pub fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest("the body could not be read".into())
        }
    })?;
    // The parser's own text names types and lists every command: a client
    // gets a fixed sentence instead (R11).
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(
            match e.classify() {
                serde_json::error::Category::Data => {
                    "a field is missing, unknown or of the wrong type"
                }
                _ => "the body is not valid JSON",
            }
            .into(),
        )
    })
}

fn roles_for(command: &Command) -> &'static [Role] {
    match command {
        Command::IssueTicket { .. } => &[Role::Kiosk, Role::Staff, Role::Admin],
        // Reopening a closed day is a decision for the office's
        // administrator (issue 23): staff who closed by mistake ask one.
        Command::ReopenDay => &[Role::Admin],
        _ => STAFF,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandQuery {
    /// An administrator opening a day other than today must name it here
    /// too (a confirmation; the record's `by` says it was an override).
    override_date: Option<NaiveDate>,
    /// The language a kiosk's visitor chose (`easy`, `en`, `zh`, `ko`):
    /// the ticket's QR code opens the phone page in it (outside tester
    /// pages-rt9 F4). Anything else is Japanese.
    #[serde(default)]
    lang: Option<String>,
}

impl CommandQuery {
    /// The chosen language, when it is one the phone page has.
    fn visitor_lang(&self) -> Option<&'static str> {
        match self.lang.as_deref()? {
            "easy" => Some("easy"),
            "en" => Some("en"),
            "zh" => Some("zh"),
            "ko" => Some("ko"),
            _ => None,
        }
    }
}

/// The office's business date now, by the engine's office clock (which
/// `MADOGUCHI_CLOCK` moves for tests and demonstrations).
fn office_today(app: &App) -> Result<NaiveDate, ApiError> {
    app.engine.read(|e| e.office_date()).map_err(ApiError::from)
}

/// A kiosk's `request_id` in the caller's own space: the same id from
/// another device or account is another request (issue 23).
fn scoped_request_id(caller: &Caller, id: &str) -> String {
    let digest = Sha256::digest(format!("{}\0{}\0{id}", caller.role.name(), caller.name));
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("r-{hex}")
}

/// The caller as a limited issuer of tickets (limits.rs): a device or a
/// staff account; `None` for an administrator.
fn limited_issuer(caller: &Caller) -> Option<super::limits::Issuer<'_>> {
    (caller.role != Role::Admin).then_some(super::limits::Issuer {
        name: &caller.name,
        person: !caller.is_device(),
    })
}

/// A device issuing far above what people at a kiosk can is held until
/// an administrator releases it (limits.rs, red-team finding F11). The
/// request that holds it records a fault for /admin and an audit record
/// under the device's name; every refusal burns no number.
fn hold_check(app: &App, device: &str, checked: Result<(), (Held, bool)>) -> Result<(), ApiError> {
    let Err((held, newly)) = checked else {
        return Ok(());
    };
    if newly {
        if let Err(e) = app.issue_limits.save() {
            app.faults.record(
                "issuing-held",
                format!("発券停止を記録できませんでした（再起動で解除されます）/ the hold could not be written: {e:#}"),
            );
        }
        app.faults.record(
            "issuing-held",
            format!(
                "発券機「{device}」の発券を止めました: {}（人が発券機で取れる数をはるかに超えています。盗まれた登録の悪用のおそれ）。端末の一覧で確かめて「発券を再開」で解除できます / kiosk {device} was held: {}",
                held.why_ja(),
                held.why_en()
            ),
        );
        let rule = match held.budget {
            Some(b) => format!("issuing-held:{}/day-budget-{b}", held.count),
            None => format!("issuing-held:{}/{}", held.count, held.window_secs),
        };
        app.audit(
            Some(device.to_string()),
            Event::AccountChanged {
                account: device.to_string(),
                role: rule,
            },
        );
    }
    Err(ApiError::DeviceHeld)
}

/// `POST /api/devices/{name}/release` (admin): a held kiosk issues again
/// (one action, audited). 404 when it is not held.
pub async fn release_device(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let held = app.issue_limits.release(&name).ok_or(ApiError::NotFound)?;
    if let Err(e) = app.issue_limits.save() {
        // Not released on disk: keep it held rather than say otherwise.
        app.issue_limits.hold_again(&name, held);
        return Err(ApiError::Internal(format!("{e:#}")));
    }
    audit_change(&app, caller, name.clone(), "issuing-released").await?;
    Ok(Json(json!({"ok": true, "released": name})))
}

/// How many days after the office's today an admin's `open_day` override
/// may go (F1): a mistyped year stopped the office for good. (A past day
/// cannot stop later ones: `day_not_after_last` only looks back.)
pub const OVERRIDE_DAYS: i64 = 3;

/// What the office's rules say about a command before the engine sees it
/// (issue 23): attribution from who is asking, a day only for today, the
/// issuing limits. Returns the command to run and the record's `by`.
fn checked(
    app: &App,
    caller: &Caller,
    command: Command,
    q: &CommandQuery,
) -> Result<(Command, String), ApiError> {
    let mut by = caller.name.clone();
    let command = match command {
        Command::OpenDay { date } => {
            let today = office_today(app)?;
            if date != today {
                let confirmed = q.override_date == Some(date) && caller.role == Role::Admin;
                if !confirmed {
                    return Err(ApiError::NotToday { date, today });
                }
                // Bounded (outside tester insider-rt9 F1, issue 23): a far
                // day opened by a typo, once it issued a number, refused
                // every real day after it for good.
                // A past day cannot stop later ones: only the future is bounded.
                if (date - today).num_days() > OVERRIDE_DAYS {
                    return Err(ApiError::Plain {
                        status: StatusCode::CONFLICT,
                        code: "override_too_far",
                        ja: format!("本日 {today} の{OVERRIDE_DAYS}日後より先の日（{date}）は開始できません。日付の打ち間違いがないか確かめてください。サーバーの時計がずれているときは、時計を直してください"),
                        en: format!("a day more than {OVERRIDE_DAYS} days after today ({today}) cannot be opened by override, not {date}: check the date, or set the server's clock right"),
                    });
                }
                by = format!("{} (override: open_day {date}, today {today})", caller.name);
            }
            Command::OpenDay { date }
        }
        Command::OpenCounter { counter, .. } => Command::OpenCounter {
            counter,
            staff: Some(caller.name.clone()),
        },
        Command::IssueTicket {
            category,
            request_id,
            ..
        } => {
            if let Some(id) = &request_id {
                if id.chars().count() > madoguchi_core::model::MAX_ID_CHARS {
                    return Err(ApiError::Refused(
                        madoguchi_core::refusal::Refusal::TooLong {
                            field: "request_id",
                            max: madoguchi_core::model::MAX_ID_CHARS,
                        },
                    ));
                }
            }
            let request_id = request_id.map(|id| scoped_request_id(caller, &id));
            // A retry of a request already answered gets its ticket again
            // and takes no rate token (red-team finding: retries used up
            // the kiosk's budget).
            let retry = match &request_id {
                Some(id) => {
                    let id = id.clone();
                    app.engine
                        .read(move |e| e.state().requests.contains_key(&id))
                        .map_err(ApiError::from)?
                }
                None => false,
            };
            // Devices and staff are limited (findings F11, F3); an
            // administrator is not (limits.rs says why).
            if let (Some(issuer), false) = (limited_issuer(caller), retry) {
                let now = chrono::Utc::now().timestamp_millis();
                if !issuer.person {
                    hold_check(
                        app,
                        issuer.name,
                        app.issue_limits.check_hold(issuer.name, now),
                    )?;
                }
                // The issuer's share of what is left (finding F11).
                let c = category.clone();
                let share = app
                    .engine
                    .read(move |e| {
                        let s = e.state();
                        let date = s.meta.day.as_ref().map(|d| d.date)?;
                        let range = e.config().queue(&c).and_then(|q| q.numbers)?;
                        let next = s.meta.next_number.get(&c).copied().unwrap_or(range.from);
                        let left = (range.to + 1).saturating_sub(next.max(range.from));
                        Some((date, left))
                    })
                    .map_err(ApiError::from)?;
                if let Some((date, left)) = share {
                    if !issuer.person {
                        // A device far above its own busiest days
                        // (insider-rt5 F2).
                        let budget =
                            app.issue_limits
                                .check_budget(date, issuer.name, &category, now);
                        hold_check(app, issuer.name, budget)?;
                    }
                    // Whether no other enabled kiosk offers the category:
                    // then a kiosk alone may go to the last number
                    // (insider-rt5 F3). It reads the device list, so it is
                    // asked only when the answer turns on it.
                    let only_issuer = || {
                        let others: Vec<String> = app
                            .auth
                            .devices()
                            .into_iter()
                            .filter(|d| {
                                d.role == Role::Kiosk && !d.disabled && d.name != caller.name
                            })
                            .map(|d| d.name)
                            .collect();
                        let c = category.clone();
                        app.engine
                            .read(move |e| !others.iter().any(|k| e.config().kiosk_offers(k, &c)))
                            .unwrap_or(false)
                    };
                    if !app
                        .issue_limits
                        .share_left(date, issuer, &category, left, only_issuer)
                    {
                        return Err(if issuer.person {
                            ApiError::AccountShareUsed
                        } else {
                            ApiError::DeviceShareUsed
                        });
                    }
                }
                app.issue_limits
                    .take(issuer, &category)
                    .map_err(|seconds| ApiError::RateLimited { seconds })?;
            }
            Command::IssueTicket {
                kiosk: caller.is_device().then(|| caller.name.clone()),
                request_id,
                category,
            }
        }
        other => other,
    };
    Ok((command, by))
}

/// `POST /api/commands`: one engine command, answered once it is durable.
pub async fn command(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Issuers>,
    UrlQuery(q): UrlQuery<CommandQuery>,
    Body(command): Body<Command>,
) -> Result<Json<Value>, ApiError> {
    app.may_command()?;
    caller.allow(roles_for(&command))?;
    if let (Role::Kiosk, Command::IssueTicket { category, .. }) = (caller.role, &command) {
        let (kiosk, category) = (caller.name.clone(), category.clone());
        let offered = app
            .engine
            .read(move |e| e.config().kiosk_offers(&kiosk, &category))
            .map_err(ApiError::from)?;
        if !offered {
            return Err(ApiError::Forbidden);
        }
    }
    let lang = q.visitor_lang();
    let (command, by) = checked(&app, &caller, command, &q)?;
    let handle = app.engine.clone();
    let is_issue = matches!(command, Command::IssueTicket { .. });
    let outcome = tokio::task::spawn_blocking(move || handle.execute(None, command, Some(by)))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .inspect(|_| app.contacts.storage_status(None))
        .inspect_err(|e| {
            if let madoguchi_core::engine::ExecError::Engine(inner) = e {
                // Kiosks say so on their screens until a command is recorded.
                app.contacts
                    .storage_status(Some(super::health::Blocked::storage()));
                if super::error::is_disk_full(inner.as_ref()) {
                    app.faults.record(
                        "disk",
                        format!("disk full: a command could not be recorded and was refused; nothing was lost ({inner})"),
                    );
                } else {
                    app.faults.record(
                        "record",
                        format!("a command could not be recorded (disk damaged?): {inner}"),
                    );
                }
            }
        })?;
    if let Some(seq) = outcome.seq {
        // With a standby, answered only once it holds the record (fence.rs).
        app.replicated(seq).await?;
    }
    if let (Some(issuer), Some(_), Some(Event::TicketIssued { category, .. })) =
        (limited_issuer(&caller), outcome.seq, outcome.events.first())
    {
        let date = app
            .engine
            .read(|e| e.state().meta.day.as_ref().map(|d| d.date))
            .map_err(ApiError::from)?;
        if let Some(date) = date {
            let now = chrono::Utc::now().timestamp_millis();
            app.issue_limits.took(date, issuer, category, now);
        }
    }
    let mut answer = json!({
        "ok": true,
        "seq": outcome.seq,
        "ticket": outcome.ticket,
        "events": outcome.events,
    });
    if is_issue {
        if let Some(n) = outcome.ticket {
            let issued = app.printed_ticket(n, lang).await?;
            let mut network = false;
            if caller.role == Role::Kiosk && outcome.seq.is_some() {
                network = print_on_network_printer(&app, &caller.name, n, &issued).await?;
            }
            answer["issued"] = issued;
            answer["printed"] = if network {
                "network".into()
            } else {
                "browser".into()
            };
        }
    }
    Ok(Json(answer))
}

/// Prints a kiosk's new ticket on its network printer, if it has one. A
/// failed print voids the ticket (cancelled, by the printer) and the
/// visitor is told to ask staff: no phantom number waits in the queue.
async fn print_on_network_printer(
    app: &App,
    kiosk: &str,
    number: u32,
    issued: &Value,
) -> Result<bool, ApiError> {
    let printer = app
        .host
        .printers
        .iter()
        .find(|p| p.kiosk == kiosk)
        .map(|p| p.address);
    let Some(address) = printer else {
        return Ok(false);
    };
    let text = super::escpos::TicketText {
        office: app.office_name().await?,
        category: issued["category_name"]["ja"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        number,
        meta: format!(
            "{} {} 発券 ・ 前に {} 人",
            issued["date"].as_str().unwrap_or_default(),
            issued["time"].as_str().unwrap_or_default(),
            issued["people_ahead"],
        ),
        wait: super::escpos::wait_line(
            issued["wait_words"]["kind"].as_str().unwrap_or_default(),
            issued["wait_words"]["ja"].as_str().unwrap_or_default(),
        ),
        url: issued["mobile_url"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let printed = tokio::task::spawn_blocking(move || super::escpos::print(address, &text))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    super::health::note_printer(app, kiosk, printed.as_ref().err());
    if let Err(e) = printed {
        tracing::warn!(kiosk, number, error = %e, "ticket not printed; voiding it");
        app.faults.record(
            "printer",
            format!("{kiosk}: ticket {number} not printed and voided: {e}"),
        );
        let handle = app.engine.clone();
        let by = format!("printer:{kiosk}");
        tokio::task::spawn_blocking(move || {
            handle.execute(None, Command::Cancel { number }, Some(by))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        return Err(ApiError::PrintFailed);
    }
    Ok(true)
}

/// `GET /api/status`: the day, every queue with its waits, every counter.
/// A device (kiosk, display) gets what it shows: no staff names (R11).
pub async fn status(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Readers>,
) -> Result<Json<Value>, ApiError> {
    let mut view = app.status().await?;
    if matches!(caller.role, Role::Kiosk | Role::Display) {
        view.for_devices();
    }
    let mut v = serde_json::to_value(view).map_err(|e| ApiError::Internal(e.to_string()))?;
    // The epoch in force (issue 24, `fence.rs`).
    v["epoch"] = app.fence.epoch().into();
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
pub struct DateQuery {
    date: Option<NaiveDate>,
}

/// `GET /api/tickets/{number}?date=…`: a ticket's whole path (R8).
pub async fn ticket(
    State(app): State<Arc<App>>,
    _: Authed<People>,
    UrlPath(number): UrlPath<u32>,
    UrlQuery(q): UrlQuery<DateQuery>,
) -> Result<Json<Value>, ApiError> {
    let ticket = app
        .engine
        .read(move |e| e.ticket(q.date, number).map_err(|x| x.to_string()))
        .map_err(ApiError::from)?
        .map_err(ApiError::Internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(
        serde_json::to_value(ticket).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// A cookie as the server sets it: HttpOnly, SameSite=Strict, `Secure`
/// when the server speaks TLS; `max_age` of zero removes it.
pub fn set_cookie(app: &App, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = cookie::Cookie::build((name.to_string(), value.to_string()))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(app.tls)
        .path("/");
    if let Some(secs) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// An account name as it may appear in the audit log.
/// A typed sign-in name as the audit log shows it: cut to the ID length,
/// and control or invisible characters written as `\u{…}` so that a name
/// with a direction override cannot reverse the address after it on the
/// audit page (insider red team).
pub(super) fn audited_name(name: &str) -> String {
    name.chars()
        .take(madoguchi_core::model::MAX_ID_CHARS)
        .map(|c| {
            if c.is_control() || super::names::invisible(c) {
                format!("\\u{{{:04X}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `POST /api/login`: opens a session (cookie) and returns its CSRF token.
/// JSON only (a cross-site form cannot send it); throttled per address
/// and account (see [`super::throttle`]); every checked failure audited.
pub async fn login(
    State(app): State<Arc<App>>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Body(l): Body<Login>,
) -> Result<Response, ApiError> {
    let delay = match app.auth.throttle.before(&l.username, addr) {
        Ok(delay) => delay,
        Err(locked) => {
            // Every refusal during a wait is audited: the first few of a
            // window one by one, the rest in the window's summary with
            // their count (sign_in_audit.rs keeps a flood bounded). Only
            // the first of each wait was, so an auditor saw one row for a
            // guessing run that went on (outside tester pages-rt9 F7).
            if app
                .sign_in_audit
                .failed(&l.username, addr, true, app.auth.is_account(&l.username))
            {
                let account = audited_name(&l.username);
                let by = format!(
                    "{account} from {addr} (refused: waiting {} min)",
                    super::throttle::minutes(locked.wait)
                );
                app.audit(Some(by), Event::Login { account, ok: false });
            }
            return Err(ApiError::TooManyAttempts {
                minutes: super::throttle::minutes(locked.wait),
            });
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // A place to check the password, or "busy" at once (hash_gate); a
    // busy answer is a strike against the address.
    let throttle = &app.auth.throttle;
    let busy = |_| {
        throttle.busy(addr);
        ApiError::Busy
    };
    let place = throttle
        .gate
        .enter(addr, throttle.known(addr))
        .map_err(busy)?;
    let place = place.run().await.map_err(busy)?;
    let a = app.clone();
    let (token, caller) = tokio::task::spawn_blocking(move || {
        let result = a.auth.login(&l.username, &l.password);
        drop(place);
        let ok = result.is_ok();
        match &result {
            Ok(_) => a.auth.throttle.succeeded(&l.username, addr),
            Err(SignInError::Wrong) => a.auth.throttle.failed(&l.username, addr),
            Err(_) => {}
        }
        let account = audited_name(&l.username);
        let by = if ok {
            account.clone()
        } else {
            format!("{account} from {addr}")
        };
        // A failure beyond the first few of its window goes into the
        // window's summary record (sign_in_audit.rs, finding F9).
        if ok
            || a.sign_in_audit
                .failed(&account, addr, false, a.auth.is_account(&l.username))
        {
            a.audit(Some(by), Event::Login { account, ok });
        }
        result.map_err(|e| match e {
            SignInError::Wrong => ApiError::WrongCredentials,
            SignInError::Internal(x) => ApiError::Internal(x),
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    // The browser and address it signed in from, for ログイン中の人
    // (pages-rt10 N1).
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    app.auth
        .note_seen(&caller, Some(agent), Some(addr.to_string()), None);
    // Where the role starts when the sign-in named no page (pages-rt8
    // F10); a staff member's own open counter (pages12 brief 1).
    let counters = app
        .engine
        .read_async(|e| super::views::counters(e.config(), e.state()))
        .await
        .unwrap_or_default();
    let home = super::gate::home(caller.role, &caller.name, &counters);
    let body = Json(
        json!({"username": caller.name, "role": caller.role, "csrf_token": caller.csrf(),
            "home": home}),
    );
    let cookie = set_cookie(&app, SESSION_COOKIE, &token, None);
    Ok(([(header::SET_COOKIE, cookie)], body).into_response())
}

/// `POST /api/logout`: ends the session (CSRF token required).
pub async fn logout(
    State(app): State<Arc<App>>,
    AnyCaller(caller): AnyCaller,
) -> Result<Response, ApiError> {
    app.auth.logout(&caller)?;
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(&app, SESSION_COOKIE, "", Some(0)),
        )],
        Json(json!({"ok": true})),
    )
        .into_response())
}

/// `GET /api/me`: who the caller is, and the CSRF token to send back.
pub async fn me(AnyCaller(c): AnyCaller) -> Json<Value> {
    Json(json!({"name": c.name, "role": c.role, "csrf_token": c.csrf()}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    name: String,
    role: Role,
}

/// `POST /api/devices` (admin): an enrolment link for a kiosk or display.
pub async fn new_device(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    Body(d): Body<NewDevice>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(d.role, Role::Kiosk | Role::Display | Role::Standby) {
        return Err(ApiError::BadRequest(
            "a device is a kiosk, a display or a standby".into(),
        ));
    }
    app.auth.check_device_name(&d.name)?;
    // A kiosk or display link under the standby's name would replace the
    // standby's record when used, without the hold a revocation puts on
    // this primary (outside tester replay3 F1: numbers given twice).
    if d.role != Role::Standby && app.auth.standby_hash(&d.name).is_some() {
        return Err(ApiError::Plain {
            status: StatusCode::CONFLICT,
            code: "standby_name",
            ja: format!("「{}」は予備機の名前です。発券機や表示機には別の名前を付けてください（取り消した予備機の名前も、「端末」の画面でその予備機を削除するまでは使えません）", d.name),
            en: format!("\"{}\" is a standby's name: give the kiosk or display another name (a revoked standby's name is free once it is deleted on the devices page)", d.name),
        });
    }
    // One standby at a time (red team F2); a new link withdraws an unused
    // one, and says so (N2: the old link then answers that it was
    // replaced, not "used or expired").
    let mut withdrawn = Vec::new();
    if d.role == Role::Standby {
        if app.auth.has_standby() {
            return Err(ApiError::OneStandby);
        }
        withdrawn = app
            .auth
            .withdraw_standby_links(&d.name)
            .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
    }
    let code = app
        .auth
        .new_enrolment_by(
            &d.name,
            d.role,
            std::time::Duration::from_secs(24 * 3600),
            Some(&caller.name),
        )
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
    if d.role == Role::Standby {
        // What checks the standby's proof of its key (insider-rt11 H1):
        // the code itself is not kept.
        super::link_key::remember_link(&app.data, &code, &app.auth.enrolment_hashes())
            .map_err(|e| ApiError::Internal(format!("cannot keep the standby link: {e}")))?;
    }
    for old in &withdrawn {
        audit_change(
            &app,
            caller.clone(),
            old.clone(),
            "enrolment-link-withdrawn",
        )
        .await?;
    }
    let role = format!("enrolment-link:{}", d.role.name());
    audit_change(&app, caller, d.name.clone(), &role).await?;
    let url = format!("{}/enrol/{code}", app.base_url);
    // The link as a QR code, so the admin page can show it for the
    // device's camera or a printout (the same renderer as the ticket's).
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    let mut answer =
        json!({"enrol_url": url, "valid_hours": 24, "qr_svg": qr, "withdrawn": withdrawn});
    if !withdrawn.is_empty() {
        let names = withdrawn.join("、");
        answer["notice_ja"] = json!(format!("まだ使われていなかった予備機の登録用リンク（{names}）は取り消しました（予備機は一台だけです）。そのリンクを開くと「新しいリンクに置き換えられました」と表示されます。"));
        answer["notice_en"] = json!(format!("the unused standby link for {} was withdrawn (one standby at a time); it now answers that it was replaced", withdrawn.join(", ")));
    }
    Ok(Json(answer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    role: Role,
    password: String,
    /// Changing an existing account (its row's form), not creating one.
    #[serde(default)]
    replace: bool,
}

/// `POST /api/users` (admin): adds a staff account, or with `replace`
/// changes one; a changed role or password ends the account's other
/// sessions at once.
pub async fn new_user(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    Body(u): Body<NewUser>,
) -> Result<Json<Value>, ApiError> {
    let a = app.clone();
    tokio::task::spawn_blocking(move || {
        let before = a
            .auth
            .set_user(&u.username, u.role, &u.password, u.replace, &caller)?;
        // A new account and a password set again read differently in the
        // audit log (outside tester pages-rt9 F7: both were 「…を職員として
        // 設定しました」): `created:<role>`, or `password-reset:<role>:<was>`.
        let role = match before {
            None => format!("created:{}", u.role.name()),
            Some(was) => format!("password-reset:{}:{}", u.role.name(), was.name()),
        };
        let event = Event::AccountChanged {
            account: u.username,
            role,
        };
        a.audit(Some(caller.name), event);
        Ok::<(), ApiError>(())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(json!({"ok": true})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disabled {
    disabled: bool,
}

/// `POST /api/users/{name}/disabled` (admin): disables or enables an
/// account, at once (its sessions end) and in the audit log.
pub async fn disable_user(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(name): UrlPath<String>,
    Body(d): Body<Disabled>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(app, caller, name, false, d.disabled).await
}

/// `POST /api/devices/{name}/disabled` (admin): the same for a device.
pub async fn disable_device(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(name): UrlPath<String>,
    Body(d): Body<Disabled>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(app, caller, name, true, d.disabled).await
}

async fn set_disabled(
    app: Arc<App>,
    caller: Caller,
    name: String,
    device: bool,
    disabled: bool,
) -> Result<Json<Value>, ApiError> {
    if device && disabled {
        keep_standby_if_behind(&app, &name)?;
    }
    let unheard = device && disabled && standby_out_of_touch(&app, &name);
    let waited = if device && disabled {
        hold_for_revoked(&app, &name)?
    } else {
        None
    };
    let changed = app.auth.set_disabled(&name, device, disabled);
    if !matches!(changed, Ok(true)) {
        if let Some(hash) = &waited {
            let _ = app.fence.revoked_gone(hash);
        }
        return Err(changed.err().unwrap_or(ApiError::NotFound));
    }
    if device && !disabled {
        // Enabled again: the standby of record, under the lease again.
        if let Some(hash) = app.auth.standby_hash(&name) {
            app.fence
                .revoked_gone(&hash)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
    }
    let role = if disabled { "disabled" } else { "enabled" };
    audit_change(&app, caller, name.clone(), role).await?;
    let mut answer = json!({"ok": true, "disabled": disabled});
    let unknowing = revoked_learns(&app, waited.as_deref()).await;
    if unheard || unknowing {
        out_of_touch_notice(&mut answer, &name, unknowing);
    }
    Ok(Json(answer))
}

/// Before the standby of record `name` is revoked or deleted: this
/// primary keeps holding commands for it (once its last lease runs out)
/// until it is known to have learned it (`fence.rs`; outside tester
/// N1-a, e4). Its token hash, if it is the standby of record.
fn hold_for_revoked(app: &App, name: &str) -> Result<Option<String>, ApiError> {
    let Some(hash) = app.auth.standby_of_record_hash(name) else {
        return Ok(None);
    };
    app.fence.note_revoked(&hash, name).map_err(|e| {
        ApiError::Internal(format!(
            "cannot note the revoked standby in the data folder: {e}"
        ))
    })?;
    Ok(Some(hash))
}

/// How long the answer to a revocation waits for a following standby to
/// learn it (it does within a round trip).
const LEARN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the revoked standby (`hash`) still does not know after
/// [`LEARN_WAIT`].
async fn revoked_learns(app: &App, hash: Option<&str>) -> bool {
    let Some(hash) = hash else { return false };
    let until = std::time::Instant::now() + LEARN_WAIT;
    while app.fence.is_unconfirmed(hash) {
        if std::time::Instant::now() >= until {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// What an admin confirms at `POST /api/standby/confirm-off`.
#[derive(Debug, Default, Deserialize)]
pub struct ConfirmBody {
    /// `revoked` (the default): the revoked standbys are switched off;
    /// `restored`: no standby enrolled after the backup this primary was
    /// restored from runs; `epoch_claim`: no other machine serves as the
    /// primary, whatever the devices named said.
    #[serde(default)]
    hold: Option<String>,
    /// `restored` and `epoch_claim`: the highest number of each queue the
    /// admin saw on a visitor's ticket today (`resume.rs`).
    #[serde(default)]
    highest: Option<std::collections::BTreeMap<String, u32>>,
}

/// `POST /api/standby/confirm-off` (admin): the revoked standbys this
/// primary holds commands for are switched off (an admin checked): it
/// takes commands again. Audited, one record per standby. With
/// `{"hold": "restored"}` or `{"hold": "epoch_claim"}`, the other holds
/// of `fence.rs` instead, each confirmed on its own (one check each).
pub async fn confirm_standby_off(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let asked: ConfirmBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConfirmBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    let internal = |e: std::io::Error| ApiError::Internal(e.to_string());
    match asked.hold.as_deref().unwrap_or("revoked") {
        "revoked" => {}
        "restored" => {
            if app.fence.restored_holding().is_none() {
                return Ok(Json(json!({"ok": true, "confirmed": []})));
            }
            // The numbers given after the backup are raised above first
            // (outside tester failover-rt5 F4).
            let resumed =
                super::resume::raise_before_resuming(&app, asked.highest.as_ref()).await?;
            let Some(backup) = app.fence.confirm_restored().map_err(internal)? else {
                return Ok(Json(json!({"ok": true, "confirmed": []})));
            };
            forget_seen(&app);
            audit_change(
                &app,
                caller.clone(),
                "restored-backup".into(),
                "restore_confirmed",
            )
            .await?;
            app.faults.record(
                "failover",
                format!("{} confirmed that no standby enrolled after the backup ({backup}) runs: commands are taken again / バックアップの後に登録された予備機が動いていないことを管理者が確認しました", caller.name),
            );
            return Ok(Json(
                json!({"ok": true, "confirmed": [backup], "resume_from": resumed.resume_from, "message_ja": resumed.message_ja, "message_en": resumed.message_en}),
            ));
        }
        "epoch_claim" => {
            if app.fence.claims_holding().is_empty() {
                return Ok(Json(json!({"ok": true, "confirmed": []})));
            }
            let resumed =
                super::resume::raise_before_resuming(&app, asked.highest.as_ref()).await?;
            let cleared = app.fence.confirm_claims().map_err(internal)?;
            forget_seen(&app);
            let mut names = Vec::new();
            for (who, n) in &cleared {
                audit_change(&app, caller.clone(), who.clone(), "epoch_claim_cleared").await?;
                app.faults.record(
                    "failover",
                    format!("{} confirmed that no other machine serves as the primary: {who}'s claim of epoch {n} is cleared / {who} の第{n}期の主張について、ほかに主機がないことを管理者が確認しました", caller.name),
                );
                names.push(who.clone());
            }
            return Ok(Json(
                json!({"ok": true, "confirmed": names, "resume_from": resumed.resume_from, "message_ja": resumed.message_ja, "message_en": resumed.message_en}),
            ));
        }
        "behind" => {
            // Outside tester insider-rt9 F10: a behind hold set wrongly
            // (before, one admin GET with a made-up position set it, with
            // no standby at all) is cleared by an admin who checked that no
            // standby holds records this primary lost; the numbers are
            // raised above what the admin entered first, as for the other
            // holds. A real standby that is ahead sets it again.
            let Some((standby, ours)) = app.fence.behind() else {
                return Ok(Json(json!({"ok": true, "confirmed": []})));
            };
            let resumed =
                super::resume::raise_before_resuming(&app, asked.highest.as_ref()).await?;
            app.fence.clear_behind().map_err(internal)?;
            audit_change(
                &app,
                caller.clone(),
                format!("primary-behind {standby}>{ours}"),
                "behind_cleared",
            )
            .await?;
            app.faults.record(
                "failover",
                format!("{} cleared the hold 'a standby holds records up to {standby}, this log ends at {ours}': commands are taken again / 管理者 {} が「予備機の方が記録が多い」による停止を解除しました", caller.name, caller.name),
            );
            return Ok(Json(
                json!({"ok": true, "confirmed": [format!("{standby}>{ours}")], "resume_from": resumed.resume_from, "message_ja": resumed.message_ja, "message_en": resumed.message_en}),
            ));
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown hold {other:?}: revoked, restored, epoch_claim or behind"
            )))
        }
    }
    let names = app.fence.confirm_revoked_off().map_err(internal)?;
    for name in &names {
        audit_change(&app, caller.clone(), name.clone(), "standby_confirmed_off").await?;
        app.faults.record(
            "failover",
            format!("{} confirmed that the revoked standby {name} is switched off: commands are taken again / 取り消した予備機 {name} の停止を管理者が確認しました", caller.name),
        );
    }
    Ok(Json(json!({"ok": true, "confirmed": names})))
}

/// The numbers devices saw are forgotten once no restored or claim hold
/// they were kept for stands (the numbers are raised above them by then).
fn forget_seen(app: &App) {
    if app.fence.restored_holding().is_none() && app.fence.claims_holding().is_empty() {
        if let Err(e) = app.fence.clear_seen() {
            app.faults.record(
                super::fence::HOLD_NOT_WRITTEN,
                format!("the numbers devices saw cannot be forgotten on disk ({e}): a restart keeps them / 端末が見た番号の記録を消せません"),
            );
        }
    }
}

/// How long a following standby goes at most between two requests (the
/// long poll and a round trip): quieter than this, it is out of touch.
const IN_TOUCH: i64 = 5_000;

/// Whether `name` is a standby device this primary holds no lease from,
/// or that has not asked for records lately: it is not following now, so
/// it cannot learn that it was revoked until it reaches this primary
/// again (N1: promoted meanwhile, it would give this primary's numbers
/// again; outside tester e4: stopped a moment ago, its lease still ran).
fn standby_out_of_touch(app: &App, name: &str) -> bool {
    let quiet = app
        .contacts
        .last(name)
        .is_none_or(|t| chrono::Utc::now().timestamp_millis() - t > IN_TOUCH);
    app.auth.is_standby_device(name) && (!app.fence.leased() || quiet)
}

/// Tells the admin who revoked a standby out of touch what that standby
/// does not know yet, and what to do with it.
/// `held`: this primary holds its commands until that standby is known
/// to have learned it, or an admin confirms it is off.
fn out_of_touch_notice(answer: &mut Value, name: &str, held: bool) {
    let (hold_ja, hold_en) = if held {
        ("この主機は、その予備機が止まったことを確かめられるまで、予備機が最後に連絡してきてから数秒後に受付を止めます。電源を切ったら、管理画面の「予備機の停止を確認」を押してください。", " This primary stops taking commands a few seconds after that standby's last contact, until it is known to be off: once it is switched off, press 予備機の停止を確認 on /admin.")
    } else {
        ("", "")
    };
    answer["notice_ja"] = json!(format!("予備機「{name}」はいまこの主機とつながっていないため、登録を取り消されたことをまだ知りません。その予備機を主機に昇格しないでください。電源を切ってください（再びつながると、取り消されたことを表示して昇格を断ります）。{hold_ja}"));
    answer["notice_en"] = json!(format!("standby \"{name}\" is not in touch with this primary, so it does not know it was revoked yet: do not promote it; switch it off (once it reaches this primary again it shows the revocation and refuses promotion).{hold_en}"));
    answer["held"] = json!(held);
}

/// `DELETE /api/users/{name}` (admin): deletes an account; its sessions
/// end at once; the audit log keeps the deletion.
pub async fn delete_user(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    delete(app, caller, name, false).await
}

/// `DELETE /api/devices/{name}` (admin): deletes a device.
pub async fn delete_device(
    State(app): State<Arc<App>>,
    Authed(caller, ..): Authed<Admins>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    delete(app, caller, name, true).await
}

async fn delete(
    app: Arc<App>,
    caller: Caller,
    name: String,
    device: bool,
) -> Result<Json<Value>, ApiError> {
    if device {
        keep_standby_if_behind(&app, &name)?;
    }
    let unheard = device && standby_out_of_touch(&app, &name);
    let waited = if device {
        hold_for_revoked(&app, &name)?
    } else {
        None
    };
    let changed = app.auth.delete(&name, device);
    if !matches!(changed, Ok(true)) {
        if let Some(hash) = &waited {
            let _ = app.fence.revoked_gone(hash);
        }
        return Err(changed.err().unwrap_or(ApiError::NotFound));
    }
    audit_change(&app, caller, name.clone(), "deleted").await?;
    // A deleted device's issuing hold goes with it: a kiosk enrolled again
    // under the name (kiosk rules are by name) starts free (outside tester
    // insider-rt5 F8: the replacement was refused as the stolen one's).
    if device && app.issue_limits.release(&name).is_some() {
        if let Err(e) = app.issue_limits.save() {
            app.faults.record(
                "storage",
                format!("the issuing hold of the deleted device {name} was released, but that could not be written ({e:#}); a restart would hold it again"),
            );
        }
    }
    let mut answer = json!({"ok": true, "deleted": true});
    let unknowing = revoked_learns(&app, waited.as_deref()).await;
    if unheard || unknowing {
        out_of_touch_notice(&mut answer, &name, unknowing);
    }
    Ok(Json(answer))
}

/// A primary that lost records its standby holds keeps the standby: without
/// it, this primary would issue acknowledged numbers again (red team F3).
fn keep_standby_if_behind(app: &App, name: &str) -> Result<(), ApiError> {
    match app.fence.behind() {
        Some((standby, ours)) if app.auth.is_standby_device(name) => {
            Err(ApiError::KeepStandby { standby, ours })
        }
        _ => Ok(()),
    }
}

async fn audit_change(
    app: &Arc<App>,
    caller: Caller,
    account: String,
    role: &str,
) -> Result<(), ApiError> {
    let a = app.clone();
    let event = Event::AccountChanged {
        account,
        role: role.to_string(),
    };
    tokio::task::spawn_blocking(move || a.audit(Some(caller.name), event))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn event_account(e: &Event) -> Option<String> {
    match e {
        Event::AccountChanged { account, .. } => Some(account.clone()),
        _ => None,
    }
}

/// An enrolment link that is used, expired or never was: what to do.
fn unknown_enrolment() -> ApiError {
    ApiError::Plain {
        status: StatusCode::NOT_FOUND,
        code: "enrolment_link_unknown",
        ja: "この登録リンクは使用済みか、期限切れ（発行から 24 時間）か、正しくありません。管理者に「端末」の画面で新しい登録リンクを作ってもらってください".into(),
        en: "this enrolment link has been used, has expired (24 hours) or is not valid; ask an administrator for a new one (管理 → 端末)".into(),
    }
}

/// Checks the enrolment throttle for `addr`; a wrong code is a strike
/// against the address, as a wrong password is (the sign-in throttle), so
/// one machine cannot hammer or probe the route.
fn enrol_throttle(app: &App, addr: std::net::IpAddr) -> Result<(), ApiError> {
    app.auth
        .throttle
        .before("(enrolment)", addr)
        .map(|_| ())
        .map_err(|locked| ApiError::EnrolThrottled {
            minutes: super::throttle::minutes(locked.wait),
        })
}

/// `GET /enrol/{code}`: what the link is for, with a button that enrols
/// (outside tester: an ordinary link turned the admin's own browser into a
/// kiosk when clicked, and any prefetch used it up). Changes nothing.
pub async fn enrol_page(
    State(app): State<Arc<App>>,
    ClientAddr(addr): ClientAddr,
    UrlPath(code): UrlPath<String>,
) -> Result<Response, ApiError> {
    enrol_throttle(&app, addr)?;
    let (name, role) = match app.auth.enrolment_for(&code) {
        Some(Code::Open(name, role)) => (name, role),
        Some(Code::Replaced { name, by }) => return Err(super::auth::link_replaced(&name, &by)),
        Some(Code::Superseded(name)) => return Err(super::auth::link_superseded(&name)),
        None => {
            app.auth.throttle.busy(addr);
            return Err(unknown_enrolment());
        }
    };
    let (role_ja, role_en) = match role {
        Role::Kiosk => ("番号発券機", "kiosk"),
        Role::Display => ("表示機", "display"),
        _ => ("予備機", "standby server"),
    };
    // A device of this name enrolled now stops working when the link is
    // used: said before the button (outside tester pages-rt9 F2: the
    // start-up link silently took over the office's kiosk-1).
    let replaces = app.auth.device_enrolled(&name);
    let html = app.pages.render(
        "enrol.html",
        madoguchi_renderer::context! { code, name, role => role.name(), role_ja, role_en, replaces },
    )?;
    Ok(html.into_response())
}

/// `?as=standby`: what the enrolling machine is (`serve --standby-of`
/// sends it); a link for another kind of device is then refused, unused.
#[derive(Debug, Deserialize)]
pub struct EnrolAs {
    #[serde(default, rename = "as")]
    role: Option<Role>,
    /// A standby's link key (hex of its Ed25519 public key), bound to the
    /// token it is given (`link_key.rs`, outside tester insider-rt10 N2).
    #[serde(default)]
    key: Option<String>,
    /// A standby's proof that it holds the link's code, bound to `key`
    /// (`link_key::link_proof`); with it the path names the link by its id,
    /// never by its code (outside tester insider-rt11 H1).
    #[serde(default)]
    proof: Option<String>,
}

/// A standby link opened as a plain link (a browser, or a standby from
/// before proofs): refused unused (outside tester insider-rt11 L2).
fn standby_link_needs_enrol_link() -> ApiError {
    ApiError::Plain {
        status: StatusCode::CONFLICT,
        code: "standby_link_needs_enrol_link",
        ja: "予備機の登録用リンクは、ブラウザーではなく予備機のサーバーが使います。予備機で「madoguchi serve --standby-of 主機のアドレス --enrol-link このリンク」を実行してください（リンクはまだ使われていません）".into(),
        en: "a standby link is used by the standby's server, not a browser: start the standby with `madoguchi serve --standby-of PRIMARY --enrol-link THIS_LINK` (the link is not used up)".into(),
    }
}

/// A standby link made before proofs: nothing here can check its proof.
fn standby_link_old() -> ApiError {
    ApiError::Plain {
        status: StatusCode::CONFLICT,
        code: "standby_link_old",
        ja: "この予備機の登録用リンクは以前の版で作られたため、使えません。管理画面の「端末」で予備機の登録用リンクを作り直し、そのリンクで予備機を起動してください".into(),
        en: "this standby link was made by an older version and cannot be used: make a new standby link on /admin (端末) and start the standby with it".into(),
    }
}

/// A standby's key whose proof does not hold: changed on the way.
fn standby_proof_refused() -> ApiError {
    ApiError::Plain {
        status: StatusCode::FORBIDDEN,
        code: "standby_link_proof_refused",
        ja: "予備機の鍵が登録用リンクの証明と合いません。途中で要求が書き換えられた恐れがあります（リンクは使っていません）。管理者に連絡してください".into(),
        en: "the standby's key does not match the link's proof: the request may have been changed on the way (the link was not used); tell an administrator".into(),
    }
}

/// Which enrolment a `POST /enrol/{code}` uses, by the code's hash. A
/// standby names its link by [`super::link_key::link_id`] and proves its
/// key with the code (insider-rt11 H1); a standby link's code sent as it
/// is enrols nothing (L2), and a standby link from before proofs is
/// refused with the way to make a new one.
fn enrolment_asked(
    app: &App,
    addr: std::net::IpAddr,
    code: &str,
    want: &EnrolAs,
) -> Result<(String, Option<super::link_key::StandbyLink>), ApiError> {
    use super::auth::Code;
    use super::link_key as lk;
    let Some(proof) = want.proof.as_deref() else {
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(code.as_bytes()));
        if let Some(Code::Open(_, Role::Standby)) = app.auth.enrolment_for_hashed(&hash) {
            return Err(if lk::is_new_link(&app.data, &hash) {
                standby_link_needs_enrol_link()
            } else {
                standby_link_old()
            });
        }
        return Ok((hash, None));
    };
    let Some(key) = want.key.as_deref() else {
        return Err(ApiError::BadRequest(
            "a proof goes with the standby's key".into(),
        ));
    };
    match lk::standby_link(&app.data, code).map_err(|e| ApiError::Internal(e.to_string()))? {
        // A link made before answers were signed carries no answer key
        // to hand the standby (outside tester insider-rt12 A1): refused
        // unused, with the way to make a new one.
        Some(link) if lk::proof_holds(&link, code, key, proof) && link.answer_tag.is_none() => {
            Err(standby_link_old())
        }
        Some(link) if lk::proof_holds(&link, code, key, proof) => {
            Ok((link.code_sha256.clone(), Some(link)))
        }
        Some(_) => {
            app.auth.throttle.busy(addr);
            app.faults.record(
                "failover",
                "a standby enrolment came with a key its link's proof does not bind: refused, the link was not used (the request may have been changed on the way) / 予備機の登録で、鍵が登録用リンクの証明と合いませんでした。リンクは使っていません（途中で書き換えられた恐れがあります）",
            );
            Err(standby_proof_refused())
        }
        None => {
            // A kiosk's or display's link given to a standby: refused as
            // such, unused (outside tester N2).
            if let Some(role) = app
                .auth
                .role_of_link_id(code)
                .filter(|r| *r != Role::Standby)
            {
                return Err(super::auth::wrong_link(role, Role::Standby));
            }
            app.auth.throttle.busy(addr);
            let old = app.auth.enrolment_hashes().iter().any(|h| {
                matches!(
                    app.auth.enrolment_for_hashed(h),
                    Some(Code::Open(_, Role::Standby))
                ) && !lk::is_new_link(&app.data, h)
            });
            Err(if old {
                standby_link_old()
            } else {
                unknown_enrolment()
            })
        }
    }
}

/// `POST /enrol/{code}` (the button of [`enrol_page`]): makes this
/// browser the device the code was for.
pub async fn enrol(
    State(app): State<Arc<App>>,
    ClientAddr(addr): ClientAddr,
    UrlPath(code): UrlPath<String>,
    UrlQuery(want): UrlQuery<EnrolAs>,
) -> Result<Response, ApiError> {
    enrol_throttle(&app, addr)?;
    // Checked before the link is used.
    if want
        .key
        .as_deref()
        .is_some_and(|k| !super::link_key::is_public_key(k))
    {
        return Err(ApiError::BadRequest(
            "key is not an Ed25519 public key in hex".into(),
        ));
    }
    let throttle = &app.auth.throttle;
    let (code_hash, link) = enrolment_asked(&app, addr, &code, &want)?;
    // A link that would replace the standby of record's token is a
    // revocation of that standby: hold as a revocation does, before the
    // record changes (replay3 F1), and undo the hold if nothing changed.
    let replaced = match app.auth.enrolment_for_hashed(&code_hash) {
        Some(super::auth::Code::Open(name, _)) => hold_for_revoked(&app, &name)?,
        _ => None,
    };
    let enrolled = app.auth.enrol_hashed(&code_hash, want.role);
    if let (Err(_), Some(hash)) = (&enrolled, &replaced) {
        let _ = app.fence.revoked_gone(hash);
    }
    let (token, role, name) = enrolled
        .inspect_err(|e| {
            if matches!(e, ApiError::NotFound) {
                throttle.busy(addr);
            }
        })
        .map_err(|e| match e {
            ApiError::NotFound => unknown_enrolment(),
            e => e,
        })?;
    // The primary's answer key for the standby, vouched for by the tag
    // made with the link's code and signing this enrolment (outside
    // tester insider-rt12 A1): the standby checks every later answer
    // with it.
    let mut answer_headers = Vec::new();
    if let (Role::Standby, Some(key), Some(link)) = (role, want.key.as_deref(), &link) {
        match super::link_key::answer_signer(&app.data) {
            Ok(signer) => {
                let enrolled = super::link_key::sign_enrolled(&signer, &code, key, &token);
                answer_headers = vec![
                    (
                        super::link_key::ANSWER_KEY_HEADER,
                        link.answer_key.clone().unwrap_or_default(),
                    ),
                    (
                        super::link_key::ANSWER_TAG_HEADER,
                        link.answer_tag.clone().unwrap_or_default(),
                    ),
                    (super::link_key::ENROLLED_SIG_HEADER, enrolled),
                ];
            }
            Err(e) => app.faults.record(
                "failover",
                format!("the primary's answer key cannot be read ({e}): the standby {name} refuses its enrolment; revoke it and enrol it again with a new link once the key is readable / 主機の応答用の鍵を読めないため、予備機 {name} は登録を受け付けません"),
            ),
        }
    }
    if let (Role::Standby, Some(key)) = (role, want.key.as_deref()) {
        let hash = super::auth::Auth::token_hash(&token);
        if let Err(e) = super::link_key::bind(&app.data, &hash, key) {
            // The standby then gets no records (its key is not kept): it
            // says so, and an admin enrols it again.
            app.faults.record(
                "failover",
                format!("the standby {name}'s link key cannot be kept ({e}): enrol it again with a new link / 予備機 {name} の鍵を保存できません。新しい登録用リンクで登録し直してください"),
            );
        }
    }
    let a = app.clone();
    let event = Event::AccountChanged {
        account: name,
        role: role.name().to_string(),
    };
    // The device enrolled itself with its link: the record names it.
    let by = event_account(&event);
    tokio::task::spawn_blocking(move || a.audit(by, event))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // `#enrolled`: the page forgets any epoch it remembers (a device set up
    // for a new office must not take it for a replaced one; `common.js`).
    // A display goes to the list of display pages its enrolment page
    // promises (「表示機の一覧に移ります」; outside tester pages-rt8 F2: it
    // landed on the start page, which lists none).
    let to = match role {
        Role::Kiosk => "/kiosk#enrolled",
        Role::Display => "/preview#enrolled",
        _ => "/#enrolled",
    };
    let max_age = super::auth::DEVICE_DAYS * 24 * 3600;
    let cookie = set_cookie(&app, DEVICE_COOKIE, &token, Some(max_age));
    let mut answer = (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, to.to_string()),
        ],
    )
        .into_response();
    for (name, value) in answer_headers {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, v);
        }
    }
    Ok(answer)
}

/// The command's time for views: the engine's clock.
pub fn wall_now() -> Millis {
    Millis(chrono::Utc::now().timestamp_millis())
}

/// What the kiosk shows and prints for an issued ticket.
pub fn printed(
    engine: &madoguchi_core::engine::Engine,
    number: u32,
    base: &str,
    lang: Option<&str>,
) -> Option<Value> {
    let t = engine.state().ticket(number)?;
    let config = engine.config();
    let q = config.queue(&t.category)?;
    let offset = config.office.utc_offset;
    let date = t.date;
    // The ticket's secret tag rides in the fragment (issue 20): it never
    // reaches a server in a request line, and only this QR code and the
    // screen or paper it is on carry it; with it the visitor may take
    // push notices for this ticket. Tickets from before tags have none.
    let mut url = match &t.tag {
        Some(tag) => format!("{base}/m#{date}/{number}/{tag}"),
        None => format!("{base}/m#{date}/{number}"),
    };
    // The visitor's language last (pages-rt9 F4): the phone page opens in
    // the words they chose at the kiosk.
    if let Some(l) = lang {
        url.push('/');
        url.push_str(l);
    }
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(140, 140)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    let issued = t.history.first().map(|s| s.at).unwrap_or(t.issued_at);
    // The range recorded at issue, in words (issue 19); whether it may be
    // shown is the queue's basis now, a moment after the issue.
    let words = madoguchi_renderer::surfaces::wait_words(
        madoguchi_core::state::WaitRange {
            point_s: t.expected_wait_s_at_issue,
            low_s: t.expected_wait_low_s_at_issue,
            high_s: t.expected_wait_high_s_at_issue,
        },
        engine.state().estimate_basis(config, &t.category),
    );
    Some(json!({
        "number": number,
        "category": q.id,
        "category_name": q.name,
        "colour": q.colour,
        "date": date,
        "time": issued.to_datetime(offset).format("%H:%M").to_string(),
        "people_ahead": t.people_ahead_at_issue,
        "expected_wait_min": t.expected_wait_s_at_issue.div_ceil(60),
        "expected_wait_low_min": t.expected_wait_low_s_at_issue / 60,
        "expected_wait_high_min": t.expected_wait_high_s_at_issue.div_ceil(60),
        "wait_words": words,
        "mobile_url": url,
        "qr_svg": qr,
    }))
}

#[cfg(test)]
mod audited_name_tests {
    #[test]
    fn invisible_and_control_characters_are_written_out() {
        assert_eq!(super::audited_name("sato"), "sato");
        assert_eq!(super::audited_name("ad\u{202E}min"), "ad\\u{202E}min");
        assert_eq!(super::audited_name("a\tb"), "a\\u{0009}b");
        assert_eq!(super::audited_name("佐藤 花子"), "佐藤 花子");
    }
}
