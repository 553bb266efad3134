//! `madoguchi serve`: the office server on the LAN — the one place where
//! kiosks and staff send commands (R1, R8, R11, R13, R15). axum routes; the
//! engine runs on its own thread behind a [`SharedEngine`] (group commit).

mod admin;
mod api;
mod audit;
mod auth;
mod connections;
mod demo;
mod displays;
mod error;
mod escpos;
mod extract;
mod faults;
mod fence;
mod forecast;
mod gate;
mod hash_gate;
mod health;
mod issued_log;
mod known;
mod limits;
mod link_key;
mod names;
mod pages;
mod publish;
mod rejoin;
mod replication;
mod resume;
mod settings;
mod settings_errors;
mod settings_form;
mod shutdown;
mod sign_in_audit;
mod slots;
mod statistics;
mod subscribers;
mod throttle;
mod tls;
mod views;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::{header, HeaderValue};
use axum::routing::{delete, get, post};
use axum::Router;
use madoguchi_core::engine::{EngineHandle, FeedHandle, SharedEngine};
use serde_json::Value;
use tower_http::set_header::SetResponseHeaderLayer;

use self::auth::Auth;
use self::error::ApiError;

/// Largest request body: commands and settings are small.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (the LAN address in production). Default:
    /// `[server] listen` of the host settings, else 127.0.0.1:8080.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Minutes without activity after which a staff session ends.
    #[arg(long, default_value_t = 30)]
    pub idle_minutes: u64,
    /// Base URL of the public mobile ticket page that ticket QR codes point
    /// to (the internet relay); default: this server.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Edit the display layouts live from this folder (designers): a saved
    /// change reaches every screen within a second.
    #[arg(long, value_name = "DIR")]
    pub layouts: Option<PathBuf>,
    /// Seconds without fresh data after which a display shows that its
    /// connection is lost.
    #[arg(long, default_value_t = 30)]
    pub stale_after: u32,
    /// Run as the standby of this primary (its URL): follow its log,
    /// render the same displays, refuse commands until promoted.
    #[arg(long, value_name = "URL")]
    pub standby_of: Option<String>,
    /// A standby enrolment link from the primary (first start only).
    #[arg(long, value_name = "URL")]
    pub enrol_link: Option<String>,
    /// With --standby-of: this is the old primary coming back after its
    /// standby was promoted. Its data folder is moved aside whole (the
    /// records the new primary lacks are never served; their tickets are
    /// listed), and it starts again as an empty standby.
    #[arg(long, requires = "standby_of")]
    pub rejoin: bool,
    /// For a new data folder: record four weeks of simulated history and
    /// open today with some counters and visitors (a demonstration office).
    #[arg(long)]
    pub demo: bool,
    /// Connections one address may hold at once (HTTP and WebSocket).
    #[arg(long, default_value_t = 128)]
    pub max_connections_per_address: usize,
    /// Connections in total; kept 128 under the open-file limit.
    #[arg(long, default_value_t = 768)]
    pub max_connections: usize,
    /// Seconds without a byte either way after which a connection closes.
    #[arg(long, default_value_t = 75)]
    pub idle_timeout_secs: u64,
    /// Seconds a client has to send a request's head and body.
    #[arg(long, default_value_t = 15)]
    pub head_timeout_secs: u64,
    /// Serve HTTPS only, with this certificate chain (PEM); cookies become
    /// `Secure`. With --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM). With --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The key that signs bundles for the internet relays; default
    /// `relay-signing.key` in the data folder (created when missing).
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

/// A status view with the record and the second it was made at.
type CachedStatus = ((u64, i64), views::StatusView);

/// Everything a request handler can reach.
#[derive(Debug)]
pub struct App {
    pub engine: EngineHandle,
    /// The last status view with the record and second it was made at:
    /// the kiosks, staff stations and devices asking within the same
    /// second and record get it again instead of every queue being
    /// estimated per request (one device's flood of `/api/status` must not
    /// keep the engine thread from commands, issue 23).
    status_cache: Arc<Mutex<Option<CachedStatus>>>,
    /// Every durable commit, for the subscribers (displays, reports, the
    /// standby link).
    pub feed: FeedHandle,
    pub auth: Auth,
    pub base_url: String,
    pub public_url: String,
    pub pages: pages::Pages,
    /// The data folder (automatic reports go inside it).
    pub data: PathBuf,
    pub displays: displays::Displays,
    pub faults: faults::Faults,
    /// Following a primary (until promoted).
    pub standby: std::sync::atomic::AtomicBool,
    /// Promotion under way: waiting out the old primary's lease.
    pub promoting: std::sync::atomic::AtomicBool,
    /// The standby link's loop runs (or stopped for good on an error): a
    /// promotion refused at its end follows again without a second loop.
    pub following: std::sync::atomic::AtomicBool,
    /// Issuing rate limits per issuer and category.
    pub issue_limits: limits::IssueLimits,
    /// Addresses a valid credential came from lately: their share of the
    /// connection slots is kept from strangers (`known.rs`).
    pub known: Arc<known::KnownAddrs>,
    /// The bound on failed sign-ins' audit records (`sign_in_audit.rs`).
    pub sign_in_audit: sign_in_audit::SignInAudit,
    /// Whether clients reach this server over TLS (cookies are `Secure`).
    pub tls: bool,
    /// Each device's last contact (the admin pages' device health).
    pub contacts: health::Contacts,
    /// This machine's own settings (printers, relays), never from the log.
    pub host: madoguchi_core::config::HostSettings,
    /// Epochs and the standby lease (issue 24).
    pub fence: fence::Fence,
    /// The primary this server follows or followed (`--standby-of`).
    pub primary_url: Option<String>,
    /// Primary: where the last replication answer ended.
    pub replication_cursor: replication::Cursor,
    /// The audit page's index of the log (`audit.rs`).
    pub audit_index: audit::Index,
}

impl App {
    /// Following a primary: commands are refused.
    pub fn is_standby(&self) -> bool {
        self.standby.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this server may take a command now: not a standby, not
    /// replaced by a promoted standby, and holding its standby's lease if
    /// it has one (`fence.rs`). Each start and end of a hold is a fault
    /// record, so `/admin` says when commands stopped and why.
    pub fn may_command(&self) -> Result<(), ApiError> {
        let answer = self.command_hold();
        let code = match &answer {
            Ok(()) => None,
            Err(ApiError::NoLease) => Some("no_standby_lease"),
            Err(ApiError::Plain { code, .. }) => Some(*code),
            // A standby, a replaced or a behind primary: said on /admin
            // and in the fault records where it happened.
            Err(_) => return answer,
        };
        match (self.fence.hold_changed(code), &answer) {
            (Some(Some(code)), Err(e)) => {
                // The hold messages are written for staff and the admin;
                // the kiosk adds the visitors' sentence itself.
                let (_, _, ja, en) = e.parts();
                self.faults.record(
                    "failover",
                    format!("受付を止めました（{code}）: {ja} / commands held: {en}"),
                );
            }
            // Said once a command is answered (outside tester
            // insider-rt14 R3: said while every command was still refused
            // after it was written).
            (Some(None), _) => self.fence.resume_pending(),
            _ => {}
        }
        answer
    }

    fn command_hold(&self) -> Result<(), ApiError> {
        if self.is_standby() || self.promoting.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ApiError::Standby);
        }
        if let Some(epoch) = self.fence.replaced() {
            return Err(ApiError::Replaced(epoch));
        }
        // Before the lease: this primary lost records its standby holds, and
        // the way out is promoting the standby, never revoking it (red
        // team F3).
        if let Some((standby, ours)) = self.fence.behind() {
            return Err(ApiError::PrimaryBehind { standby, ours });
        }
        // A standby revoked while it may be promoting or cut off: its last
        // lease has run out and it may be taking commands itself (outside
        // tester N1-a, e4).
        let holding = self.fence.unconfirmed_holding();
        if !holding.is_empty() {
            return Err(fence::unconfirmed_error(&holding));
        }
        // Restored from a backup: a standby enrolled after it may have
        // been promoted (outside tester replay4 N1).
        if self.fence.restored_holding().is_some() {
            return Err(fence::restored_error());
        }
        // A device has seen a newer primary this one cannot verify.
        let claims = self.fence.claims_holding();
        if !claims.is_empty() {
            return Err(fence::claim_error(&claims));
        }
        if self.auth.has_standby() {
            // Refused before anything is written while the standby copies
            // a long log (outside tester insider-rt14 R3: numbers 1–5
            // were written, refused and never handed out).
            if let Some(left) = self.fence.catching_up() {
                return Err(fence::catching_up_error(left));
            }
            if !self.fence.leased() {
                return Err(self.fence.no_lease_error());
            }
        }
        Ok(())
    }

    /// The office's time zone (read once from the configuration in force).
    pub fn status_offset(&self) -> chrono::FixedOffset {
        self.engine
            .read(|e| e.config().office.utc_offset)
            .unwrap_or_else(|_| chrono::Offset::fix(&chrono::Utc))
    }

    /// Records a sign-in or an account change in the event log (on a
    /// standby only in the fault records: its log is the primary's copy).
    pub fn audit(&self, by: Option<String>, event: madoguchi_core::model::Event) {
        if self.is_standby() {
            // In words, as the audit page says it (outside tester
            // insider-rt9 F3: it showed `Some("admin"): Login { … }`).
            let said = audit::describe(&event, &audit::Names::default());
            let who = by.as_deref().unwrap_or("（不明）");
            self.faults
                .record("standby-audit", format!("{who}: {said}"));
            return;
        }
        let handle = self.engine.clone();
        let result = handle.write(move |e| e.record_audit(by, event));
        if !matches!(result, Ok(Ok(_))) {
            tracing::warn!("an audit record could not be written");
        }
    }

    /// With a standby: waits until it holds record `seq` (a number handed
    /// out is then on both machines); refused when the lease runs out first.
    pub async fn replicated(&self, seq: u64) -> Result<(), ApiError> {
        if !self.auth.has_standby() || self.fence.wait_acked(seq).await {
            if self.fence.resume_said() {
                self.faults.record(
                    "failover",
                    "受付を再開しました（番号の発行と操作を受け付けます） / commands are taken again",
                );
            }
            return Ok(());
        }
        // Written, but answered as refused: no ticket was handed out for
        // it. Noted, so a rejoin's listing says so instead of telling
        // staff a visitor may hold it (outside tester insider-rt9 F2).
        rejoin::note_refused(&self.data, seq);
        let e = self.fence.no_lease_error();
        if self.fence.held_again("no_standby_lease") {
            let (_, _, ja, en) = e.parts();
            self.faults.record(
                "failover",
                format!("受付を止めました（no_standby_lease）: {ja} / commands held: {en}"),
            );
        }
        Err(e)
    }

    /// The status view, made at most once per commit and second; the
    /// estimating runs beside the engine thread, not on it.
    pub async fn status(&self) -> Result<views::StatusView, ApiError> {
        let cache = self.status_cache.clone();
        let found = self
            .engine
            .read_async(move |e| {
                let key = (e.seq(), e.now().0.div_euclid(1000));
                let slot = cache.lock().unwrap_or_else(|p| p.into_inner());
                match &*slot {
                    Some((k, view)) if *k == key => Ok(view.clone()),
                    _ => Err((key, Box::new(views::Snapshot::of(e)))),
                }
            })
            .await?;
        let (key, snap) = match found {
            Ok(view) => return Ok(view),
            Err(miss) => miss,
        };
        let cache = self.status_cache.clone();
        tokio::task::spawn_blocking(move || {
            let view = views::status(&snap);
            let mut slot = cache.lock().unwrap_or_else(|p| p.into_inner());
            // A later moment's view already there stays.
            if slot.as_ref().is_none_or(|(k, _)| *k < key) {
                *slot = Some((key, view.clone()));
            }
            view
        })
        .await
        .map_err(|e| ApiError::Internal(format!("status view: {e}")))
    }

    /// The office's name in Japanese, without estimating any queue: for
    /// pages that only need the name in their heading.
    pub async fn office_name(&self) -> Result<String, ApiError> {
        Ok(self
            .engine
            .read_async(|e| e.config().office.name.ja.clone())
            .await?)
    }

    pub async fn printed_ticket(
        &self,
        number: u32,
        lang: Option<&'static str>,
    ) -> Result<Value, ApiError> {
        let base = self.public_url.clone();
        self.engine
            .read_async(move |e| api::printed(e, number, &base, lang))
            .await?
            .ok_or(ApiError::NotFound)
    }
}

fn router(app: Arc<App>) -> Router {
    let tls = app.tls;
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
    Router::new()
        .route("/api/commands", post(api::command))
        .route("/api/status", get(api::status))
        .route("/api/tickets/{number}", get(api::ticket))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/devices", post(api::new_device))
        .route("/api/users", post(api::new_user))
        .route("/api/users/{name}", delete(api::delete_user))
        .route("/api/devices/{name}", delete(api::delete_device))
        .route("/api/users/{name}/disabled", post(api::disable_user))
        .route("/api/devices/{name}/disabled", post(api::disable_device))
        .route("/api/devices/{name}/release", post(api::release_device))
        .route("/enrol/{code}", get(api::enrol_page).post(api::enrol))
        .route("/api/settings", get(settings::get).post(settings::apply))
        .route("/api/settings/validate", post(settings::validate))
        .route("/api/settings/form", post(settings::apply_form))
        .route("/settings", get(settings::page))
        .route("/statistics", get(statistics::page))
        .route("/displays/{*path}", get(displays::file))
        .route("/ws", get(displays::ws))
        .route("/m", get(displays::mobile))
        .route("/preview", get(displays::preview))
        .route("/admin", get(admin_page))
        .route("/api/replication", get(replication::serve))
        .route("/api/promote", post(replication::promote))
        .route("/api/fence", post(replication::fence))
        .route("/api/standby/confirm-off", post(api::confirm_standby_off))
        .route("/audit", get(audit::page))
        .route("/api/audit/export", get(audit::export))
        .route("/preview/sample/{*topic}", get(displays::sample))
        .route("/forecast", get(forecast::page))
        .route("/forecast.json", get(forecast::json))
        .route(
            "/favicon.ico",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "image/x-icon"),
                        (header::CACHE_CONTROL, "max-age=86400"),
                    ],
                    &include_bytes!("../../site/favicon.ico")[..],
                )
            }),
        )
        .route("/api/statistics/report", post(statistics::make_report))
        .merge(pages::routes())
        .merge(admin::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            health::note,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            gate::note_where,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            known::note,
        ))
        .layer(axum::middleware::from_fn(error::answer_in_kind))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            fence::carry_epoch,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // With TLS the browser is told to use nothing else for this host
        // (issue 23): a LAN insider cannot downgrade a later visit.
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &axum::response::Response| {
                tls.then(|| HeaderValue::from_static("max-age=31536000"))
            },
        ))
        .with_state(app)
}

pub fn run(
    data: &Path,
    config: Option<&Path>,
    host: madoguchi_core::config::HostSettings,
    mut args: Args,
) -> Result<()> {
    // A promoted machine (re)started: it hands out its epoch's proof and
    // tells the old primary again (red team F5).
    let promoted_before = replication::promoted_here(data).is_some();
    let (rejoin_grant, standby_token) = prepare_standby(data, config, &mut args)?;
    // A standby's log is a copy of its primary's: it records nothing of
    // its own, not even a configuration.
    let mut engine = if args.standby_of.is_some() {
        crate::cmd::open_engine_with(data, madoguchi_core::engine::ConfigChoice::Follow)?
    } else {
        crate::cmd::open_engine(data, config)?
    };
    if args.demo {
        demo::seed(&mut engine)?;
    }
    let (auth, first) = Auth::open(data, Duration::from_secs(args.idle_minutes * 60))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let feed = engine.feed();
    let shared = SharedEngine::start(engine);
    let handle = shared.handle();
    runtime.block_on(async move {
        let (listener, acceptor, app) = build_app(data, host, &args, feed, handle, auth).await?;
        let standby = args.standby_of.is_some();
        read_back(&app, rejoin_grant.as_deref(), promoted_before && !standby, standby).await?;
        if let Some(primary) = &args.standby_of {
            if let Some(token) = standby_token {
                replication::follow(app.clone(), primary.trim_end_matches('/').to_string(), token);
            }
            println!("standby of {primary}: following its log; commands are refused until promoted at {}/admin", app.base_url);
        }
        let _watcher = start_subscribers(&app, data, &args).await?;
        serve(app, listener, acceptor, &args, data, first).await
    })?;
    shutdown::finish(runtime, shared)
}

/// Before anything is opened: a promoted machine ignores its old service
/// line, a standby's folder is never started alone, a rejoin is prepared
/// and a standby enrols (returns the rejoin grant and the standby token).
fn prepare_standby(
    data: &Path,
    config: Option<&Path>,
    args: &mut Args,
) -> Result<(Option<String>, Option<String>)> {
    // A promoted standby restarted with the service line it followed with
    // (a reboot, a kill): it is the primary now, and following the replaced
    // machine again would stop all issuing (found following the manual).
    if args.standby_of.is_some() && !args.rejoin {
        if let Some(epoch) = replication::promoted_here(data) {
            println!("promoted earlier (epoch {epoch}): serving as the primary; --standby-of is ignored (remove it from the service line) / 昇格済みのため主機として起動します");
            args.standby_of = None;
            args.enrol_link = None;
        }
    }
    // A standby's folder started alone would give numbers beside its
    // primary (a service line changed wrongly after a rejoin).
    if args.standby_of.is_none() {
        crate::cmd::refuse_standby_folder(data)?;
    }
    // The service line's `--config` (its `[server]` part gave the address
    // and folder): a standby takes the office's settings from the
    // primary's log, so the office part is not used. Said, not refused:
    // the manual's rejoin line and the unit's ExecStart carry it, and the
    // refusal came after the rejoin had used the link and moved the folder
    // (outside tester insider-rt10 N5).
    if args.standby_of.is_some() && config.is_some() {
        println!("standby: the office settings in --config are not used; a standby takes them from the primary's log / 予備機は窓口の設定を主機の記録から受け取ります（--config の窓口の設定は使いません）");
    }
    let mut rejoin_grant = None;
    if let (true, Some(primary)) = (args.rejoin, &args.standby_of) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (lines, grant) = runtime.block_on(rejoin::prepare(
            data,
            primary.trim_end_matches('/'),
            args.enrol_link.as_deref(),
        ))?;
        for l in lines {
            println!("{l}");
        }
        rejoin_grant = grant;
    }
    // A standby enrols before anything is written: a refused link (a
    // kiosk's, a replaced one) leaves no data folder behind (N2).
    let standby_token = match &args.standby_of {
        Some(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(replication::standby_start(data, args.enrol_link.as_deref()))
            .map(Some)?,
        None => None,
    };
    Ok((rejoin_grant, standby_token))
}

/// Listens, loads TLS and builds the shared application state.
async fn build_app(
    data: &Path,
    host: madoguchi_core::config::HostSettings,
    args: &Args,
    feed: FeedHandle,
    handle: EngineHandle,
    auth: Auth,
) -> Result<(
    tokio::net::TcpListener,
    Option<tokio_rustls::TlsAcceptor>,
    Arc<App>,
)> {
    let listen = args
        .listen
        .or(host.server.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("no local address")?;
    let tls_files = tls::files(args.tls_cert.clone(), args.tls_key.clone())?;
    let acceptor = tls_files.as_ref().map(tls::acceptor).transpose()?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");
    let app = Arc::new(App {
        engine: handle,
        feed,
        auth,
        public_url: args.public_url.clone().unwrap_or_else(|| base_url.clone()),
        base_url: base_url.clone(),
        pages: pages::Pages::new()?,
        status_cache: Arc::default(),
        data: data.to_path_buf(),
        displays: displays::Displays::new(args.layouts.clone(), args.stale_after)?,
        faults: faults::Faults::new(data),
        standby: std::sync::atomic::AtomicBool::new(args.standby_of.is_some()),
        promoting: std::sync::atomic::AtomicBool::new(false),
        following: std::sync::atomic::AtomicBool::new(false),
        issue_limits: limits::IssueLimits::open(data)?,
        known: known::KnownAddrs::new(),
        sign_in_audit: sign_in_audit::SignInAudit::default(),
        tls: acceptor.is_some(),
        contacts: health::Contacts::open(data),
        host,
        fence: fence::Fence::open(data),
        // A promoted machine remembers the primary it replaced, so it
        // tells it again after a restart (red team F5).
        primary_url: args
            .standby_of
            .as_ref()
            .map(|p| p.trim_end_matches('/').to_string())
            .or_else(|| replication::old_primary(data)),
        replication_cursor: replication::Cursor::default(),
        audit_index: audit::Index::default(),
    });
    Ok((listener, acceptor, app))
}

/// What the server reads back before the first request: today's issuing
/// counts (insider-rt5 F4), the fence's epoch and numbers, a promoted
/// machine's duty to its old primary, and a hold to show at once.
async fn read_back(
    app: &Arc<App>,
    rejoin_grant: Option<&str>,
    restarted_as_promoted: bool,
    standby: bool,
) -> Result<()> {
    // The day's issuing counts from the log, before the first request
    // (insider-rt5 F4: a restart started them again), and the past
    // days' in the background (a kiosk's daily budget, F2).
    let reading = std::time::Instant::now();
    match issued_log::rebuild_today(app).await {
        Ok(n) => eprintln!(
            "madoguchi: issuing counts of today read back from the log: {n} tickets in {} ms",
            reading.elapsed().as_millis()
        ),
        Err(e) => {
            app.faults.record(
            "issuing-history",
            format!("今日の発券数を記録から読み直せませんでした（配分は再起動から数えています）/ today's issuing counts could not be read back from the log: {e:#}"),
        );
        }
    }
    issued_log::spawn_history(app.clone());
    app.fence.received(rejoin_grant);
    app.fence
        .set_epoch(app.engine.read_async(|e| e.state().meta.epoch).await?);
    app.fence
        .set_issued(app.engine.read_async(fence::issued_now).await?);
    if restarted_as_promoted {
        replication::after_restart_as_promoted(app);
    }
    if !standby {
        // Before anything can make a new answer key (insider-rt13 C4).
        replication::check_answer_key(app);
    }
    // A primary that starts held (restored from a backup, an
    // unverified epoch claim, a revoked standby) says so on /admin at
    // once, not at the first command.
    if !standby
        && (app.fence.restored_holding().is_some()
            || !app.fence.claims_holding().is_empty()
            || !app.fence.unconfirmed_holding().is_empty())
    {
        if let Some(b) = app.fence.restored_holding() {
            eprintln!("madoguchi: {} (backup {b})", fence::RESTORED_JA);
        }
        let _ = app.may_command();
    }
    Ok(())
}

/// The commit feed's subscribers and the background tasks: displays,
/// day-close reports, the audit index, device health, the relay
/// publisher, layout watching (its watcher is returned: it watches while
/// it lives) and the sign-in audit.
async fn start_subscribers(
    app: &Arc<App>,
    data: &Path,
    args: &Args,
) -> Result<Option<notify::RecommendedWatcher>> {
    displays::spawn(app.clone()).await;
    subscribers::reports(app.clone());
    audit::spawn(app.clone());
    health::spawn_writer(app.clone());
    let relays = app.host.relays.clone();
    if !relays.is_empty() {
        let key_file = args
            .signing_key
            .clone()
            .unwrap_or_else(|| crate::cmd::keys::key_path(data));
        let (key, new) = crate::cmd::keys::load_or_create_at(&key_file)?;
        if new {
            println!(
                "relay signing key created: public key {} (list it in each relay's ingest.office_keys)",
                crate::cmd::keys::public_hex(&key)
            );
        }
        publish::spawn(app.clone(), &relays, key)?;
        for r in &relays {
            println!("publishing the public site to relay {}", r.url);
        }
    }
    let watcher = displays::watch_layouts(app);
    {
        let a = app.clone();
        let _ = tokio::task::spawn_blocking(move || sign_in_audit::recover(&a)).await;
    }
    tokio::spawn(sign_in_audit::run(app.clone()));
    tokio::spawn(known::forget_revoked(app.clone()));
    Ok(watcher)
}

/// Prints the addresses and serves until a stop signal, then flushes.
async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    args: &Args,
    data: &Path,
    first: Option<auth::FirstStart>,
) -> Result<()> {
    // A standby takes the primary's accounts and devices within
    // seconds: its own first-start admin and links would only mislead.
    let first = first.filter(|_| args.standby_of.is_none());
    if args.standby_of.is_some() {
        println!("管理者 ID・パスワード、職員アカウント、端末の登録は主機と同じです（数秒で主機から届きます） / accounts and enrolled devices are the primary's (they arrive within seconds)");
    }
    print_urls(&app.base_url, data, first.as_ref());
    let limits = connections::Limits {
        per_address: args.max_connections_per_address.max(1),
        total: connections::total_cap(args.max_connections.max(1)),
        idle: Duration::from_secs(args.idle_timeout_secs.max(1)),
        head: Duration::from_secs(args.head_timeout_secs.max(1)),
    };
    let listener = connections::Guarded::new(listener, limits, acceptor, app.known.clone())
        .context("cannot start listening")?;
    let stop = shutdown::Stop::new();
    let signal = stop.signal();
    let told = app.clone();
    let signal = async move {
        signal.await;
        // Failed sign-ins counted but not yet written (F9).
        let flushing = told.clone();
        let _ = tokio::task::spawn_blocking(move || sign_in_audit::flush(&flushing)).await;
        told.displays.stop(Duration::from_secs(2)).await;
    };
    stop.run(connections::serve(listener, router(app), limits, signal))
        .await
}

/// `GET /admin`: the administrator's page with the fault records (R18).
async fn admin_page(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let caller = match gate::person(&app, &method, &headers, &[auth::Role::Admin], "/admin") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let status = app.status().await?;
    let office = status.office.ja;
    // A day closed today may be reopened here (issue 23, `reopen_day`).
    let today = app.engine.read_async(|e| e.office_date()).await.ok();
    let closed_today = status
        .date
        .filter(|d| !status.day_open && Some(*d) == today)
        .map(|d| d.to_string());
    // A standby: how much of the primary's log it holds (promote only
    // when it holds it all).
    let held = app
        .engine
        .read_async(|e| e.log().tail().next_seq - 1)
        .await?;
    let primary_last = app.fence.primary_last();
    let resume = resume::page(&app).await;
    let (resume_boxes, resume_seen_by) = match resume {
        Some((b, w)) => (Some(b), w),
        None => (None, String::new()),
    };
    let html = app.pages.render(
        "admin.html",
        madoguchi_renderer::context! { office, user => caller.name, menu => gate::menu(Some(&caller), "/admin"), faults => app.faults.rows(), devices => health::devices(&app), standby => app.is_standby(), refused => app.is_standby().then(|| replication::refused_here(&app.data)).flatten().map(|r| r.message().0), held, primary_last, link_stalled => app.is_standby().then(|| app.fence.link_stalled()).flatten(), replaced => app.fence.replaced(), behind => app.fence.behind().filter(|_| app.fence.replaced().is_none()).map(|(standby, ours)| madoguchi_renderer::context! { standby, ours }), no_lease => (!app.is_standby() && app.fence.replaced().is_none() && app.fence.behind().is_none() && app.auth.has_standby() && !app.fence.leased()).then_some(error::NO_LEASE_JA), unconfirmed => (!app.is_standby() && app.fence.replaced().is_none()).then(|| app.fence.unconfirmed().join("、")).filter(|n| !n.is_empty()), unconfirmed_holding => !app.fence.unconfirmed_holding().is_empty(), restored => (!app.is_standby() && app.fence.replaced().is_none()).then(|| app.fence.restored_holding()).flatten(), claims => (!app.is_standby() && app.fence.replaced().is_none()).then(|| app.fence.claims_holding().iter().map(|(w, n)| format!("{w}：第{n}期")).collect::<Vec<_>>().join("、")).filter(|c| !c.is_empty()), csrf => caller.csrf(), closed_today, resume_boxes, resume_seen_by },
    )?;
    Ok(html.into_response())
}

fn print_urls(base: &str, data: &Path, first: Option<&auth::FirstStart>) {
    println!(
        "Madoguchi office server — data folder {}",
        PathBuf::from(data).display()
    );
    println!("listening on {base}");
    println!("  staff sign-in (職員ログイン):   {base}/login");
    println!("  staff call station (呼出端末): {base}/staff?counter=1");
    println!("  kiosk (番号発券機):            {base}/kiosk");
    println!("  administration (管理):         {base}/admin");
    println!("  settings (設定):              {base}/settings");
    println!("  statistics (統計):            {base}/statistics");
    println!("  audit log (監査ログ):         {base}/audit");
    println!("  forecast (混雑予想):          {base}/forecast");
    println!("  displays (表示機):             {base}/preview");
    println!("    guidance 案内表示機:          {base}/displays/guidance/idou.html");
    println!("    counter 個別表示機:           {base}/displays/counter/10.html");
    println!("    staff board 職員用周知機:     {base}/displays/board.html");
    println!("    public status:               {base}/displays/status.html");
    println!("  API:                          {base}/api/status");
    if let Some(f) = first {
        println!();
        println!(
            "First start: an administrator account was created. Its password is shown only now:"
        );
        println!("  admin password: {}", f.admin_password);
        println!(
            "Enrol the first kiosk and display by opening these links on them (valid 24 hours):"
        );
        // Which device each link makes (outside tester pages-rt9 F2: the
        // line did not say, and the kiosk link took over a kiosk-1 enrolled
        // since); the links are listed, with 取り消す, on 管理 → 端末.
        println!("  kiosk enrolment:   {base}/enrol/{}", f.kiosk_enrolment);
        let (k, d) = (auth::FIRST_KIOSK, auth::FIRST_DISPLAY);
        println!("    → 番号発券機「{k}」として登録 / enrols the kiosk named \"{k}\"");
        println!("  display enrolment: {base}/enrol/{}", f.display_enrolment);
        println!("    → 表示機「{d}」として登録 / enrols the display named \"{d}\"");
        println!(
            "  未使用のリンクは 管理 → 端末 に表示され、取り消せます / unused links are listed (and can be revoked) at {base}/admin/devices"
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
