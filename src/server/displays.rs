//! Displays on the LAN (R3, R4, R5, R17): on every commit the renderer
//! builds the site in memory (`madoguchi_renderer::render::Site`: every
//! surface's page and JSON, diffed against the last build), the changed
//! topics are pushed through the relay crate's hub to the displays
//! subscribed over WebSocket, and `/displays/…` is served from that build —
//! an exact lookup, never a path on disk. Designers who run
//! the server with `--layouts DIR` see a saved layout on every screen within
//! a second; a layout with an error keeps the last good output and shows the
//! error on the preview page only.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use madoguchi_relay::hub::Hub;
use madoguchi_renderer::render::{LayoutError, Renderer, Site, SiteFile};
use madoguchi_renderer::surfaces::{display_surfaces, page_surfaces, surfaces, Surface, Waits};
use serde::Deserialize;
use tokio::sync::watch;

use super::auth::Role;
use super::error::ApiError;
use super::App;

const VIEWERS: &[Role] = &[Role::Display, Role::Staff, Role::Admin];
/// Live sockets on public topics held by no enrolled device or account. A
/// socket keeps its connection slot for its whole life: without this cap a
/// few LAN addresses could hold every slot of the server and leave staff
/// stations without one (issue 23). Enrolled displays are not counted.
pub const MAX_ANONYMOUS_SOCKETS: usize = 64;
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Waits grow with time even when nothing happens: re-render this often.
const REFRESH: Duration = Duration::from_secs(30);
/// The waits (the estimator's replays) are worked out again at most this
/// often under a stream of commits: they cost tens of ms on a long queue
/// and would otherwise take a core from the engine.
const WAITS_EVERY: Duration = Duration::from_millis(100);

/// Sockets one account or device may hold at once: a display needs one
/// or two, a person a few tabs.
pub const SOCKETS_PER_IDENTITY: usize = 8;

/// How many sockets each account or device holds.
#[derive(Debug, Default)]
pub struct Identities {
    held: Mutex<std::collections::HashMap<String, usize>>,
}

/// One socket's place under its identity; freed when dropped.
#[derive(Debug)]
pub struct Held {
    of: Arc<Identities>,
    who: String,
}

impl Identities {
    fn take(self: &Arc<Self>, who: &str) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(who.to_string()).or_insert(0);
        if *n >= SOCKETS_PER_IDENTITY {
            return None;
        }
        *n += 1;
        Some(Held {
            of: self.clone(),
            who: who.to_string(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.of.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.who);
            }
        }
    }
}

#[derive(Debug)]
pub struct Displays {
    pub hub: Hub,
    renderer: Mutex<Renderer>,
    /// Slots for sockets opened without a device or account.
    anonymous: Arc<tokio::sync::Semaphore>,
    /// Sockets held per account or device.
    identities: Arc<Identities>,
    /// The last build of the site.
    site: RwLock<Arc<Site>>,
    /// Errors of the last render, per surface.
    errors: Mutex<Vec<LayoutError>>,
    /// Why the edited layouts could not be loaded (the last good ones stay).
    load_error: Mutex<Option<LayoutError>>,
    changed: watch::Sender<u64>,
    /// Bumped after every render (the relay publisher waits on it).
    rendered: watch::Sender<u64>,
    /// The last waits worked out; every build takes its ranges from here.
    waits: Mutex<Option<Arc<Waits>>>,
    /// Bumped after a build of a new state: the waits task wakes.
    waits_wanted: watch::Sender<u64>,
    /// Bumped when new waits differ from the last: the site is built again.
    waits_ready: watch::Sender<u64>,
    /// Set when the server stops: every display socket is told at once
    /// (issue 17), so screens say 「接続が切れています」 instead of
    /// showing the last numbers until their stale timer runs out.
    stopping: watch::Sender<bool>,
    layouts: Option<PathBuf>,
}

impl Displays {
    pub fn new(layouts: Option<PathBuf>, stale_after_s: u32) -> anyhow::Result<Displays> {
        let mut renderer =
            Renderer::new(layouts.as_deref()).map_err(|e| anyhow::anyhow!("layouts: {e}"))?;
        renderer.stale_after_s = stale_after_s;
        Ok(Displays {
            hub: Hub::new(),
            renderer: Mutex::new(renderer),
            site: RwLock::new(Arc::new(Site::default())),
            anonymous: Arc::new(tokio::sync::Semaphore::new(MAX_ANONYMOUS_SOCKETS)),
            identities: Arc::new(Identities::default()),
            errors: Mutex::new(Vec::new()),
            load_error: Mutex::new(None),
            changed: watch::channel(0).0,
            rendered: watch::channel(0).0,
            waits: Mutex::new(None),
            waits_wanted: watch::channel(0).0,
            waits_ready: watch::channel(0).0,
            stopping: watch::channel(false).0,
            layouts,
        })
    }

    /// The server is stopping: display sockets say so and close. Waits
    /// (at most `within`) until each has: every socket holds a receiver
    /// of `stopping` for its life, so the channel closes with the last.
    /// Without the wait the process could end before a socket's goodbye
    /// was written.
    pub async fn stop(&self, within: std::time::Duration) {
        self.stopping.send_replace(true);
        let _ = tokio::time::timeout(within, self.stopping.closed()).await;
    }

    pub fn stale_after_s(&self) -> u32 {
        self.renderer.lock().map(|r| r.stale_after_s).unwrap_or(30)
    }

    /// A wake-up after every render.
    pub fn rendered(&self) -> watch::Receiver<u64> {
        self.rendered.subscribe()
    }

    /// The last build of the site.
    pub fn site(&self) -> Arc<Site> {
        self.site
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Wakes the renderer for a change that is not in the log (reloaded
    /// layouts, a promotion); commits wake it through the feed.
    pub fn poke(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Builds the site from `list`, pushing each topic whose data changed
    /// as soon as it is drawn, and swaps it in.
    fn render(&self, list: impl IntoIterator<Item = Surface>) {
        let prev = self.site();
        let build = {
            let Ok(r) = self.renderer.lock() else { return };
            Site::build_with(&r, list, &prev, |topic, json| {
                self.hub.publish(topic, json.clone());
            })
        };
        match self.site.write() {
            Ok(mut s) => *s = Arc::new(build.site),
            Err(p) => *p.into_inner() = Arc::new(build.site),
        }
        if let Ok(mut e) = self.errors.lock() {
            *e = build.errors;
        }
    }

    /// The last waits, or (before the first) waits worked out now.
    fn waits_or_of(&self, snap: &super::views::Snapshot) -> Arc<Waits> {
        let mut slot = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| Arc::new(Waits::of(&snap.config, &snap.state, snap.now)))
            .clone()
    }

    /// Keeps `w` as the last waits; true if they differ from the ones before.
    fn set_waits(&self, w: Waits) -> bool {
        let mut slot = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() == Some(&w) {
            return false;
        }
        *slot = Some(Arc::new(w));
        true
    }

    /// Reloads the layouts (after a designer saved one).
    fn reload(&self) {
        let Some(dir) = &self.layouts else { return };
        match Renderer::new(Some(dir)) {
            Ok(mut r) => {
                if let Ok(mut cur) = self.renderer.lock() {
                    r.stale_after_s = cur.stale_after_s;
                    *cur = r;
                }
                if let Ok(mut e) = self.load_error.lock() {
                    *e = None;
                }
                tracing::info!("layouts reloaded");
            }
            Err(e) => {
                if let Ok(mut slot) = self.load_error.lock() {
                    // Warn once per distinct error, not on every save.
                    if slot.as_ref().map(ToString::to_string) != Some(e.to_string()) {
                        tracing::warn!(error = %e, "layout error; keeping the last good layouts");
                    }
                    *slot = Some(e);
                }
            }
        }
        self.poke();
    }
}

/// The render loop, a subscriber of the commit feed: wakes on every commit
/// (and on layout changes, new waits, and every half minute), reads the
/// surfaces from the engine thread, renders what changed. Commits that
/// arrive while it renders are taken together in the next round.
///
/// A build takes its wait ranges from the last waits worked out (see
/// [`spawn_waits`]): a call reaches the displays in the time of a copy and
/// a render, and the waits follow a few ms later (issue 16: the replays in
/// the build made a call take 25 ms to reach 40 displays instead of 5).
pub async fn spawn(app: Arc<App>) {
    let mut rx = app.displays.changed.subscribe();
    let mut ready = app.displays.waits_ready.subscribe();
    let mut commits = app.feed.subscribe();
    // The first build is made before the server answers anyone, so that
    // the site's topics exist from the first request on.
    let mut built = build_once(&app).await;
    spawn_waits(app.clone());
    tokio::spawn(async move {
        loop {
            if !built {
                break; // the engine stopped
            }
            // A build for new waits needs no new waits after it.
            let mut new_state = true;
            tokio::select! {
                r = commits.changed() => {
                    if r.is_err() { break }
                    // The surfaces come from the state, not the events.
                    commits.skip_to_latest();
                }
                r = rx.changed() => if r.is_err() { break },
                r = ready.changed() => {
                    if r.is_err() { break }
                    new_state = false;
                }
                () = tokio::time::sleep(REFRESH) => {}
            }
            built = build_once(&app).await;
            if built && new_state {
                app.displays.waits_wanted.send_modify(|v| *v += 1);
            }
        }
    });
}

/// Works out the waits apart from the builds: after a build of a new state
/// (at most every [`WAITS_EVERY`]), from the newest state; when they
/// changed, the render loop builds the site again with them.
fn spawn_waits(app: Arc<App>) {
    let mut wanted = app.displays.waits_wanted.subscribe();
    tokio::spawn(async move {
        while wanted.changed().await.is_ok() {
            let started = tokio::time::Instant::now();
            let Ok(snap) = app.engine.read_async(super::views::Snapshot::of).await else {
                break; // the engine stopped
            };
            let d = app.clone();
            let changed = tokio::task::spawn_blocking(move || {
                d.displays
                    .set_waits(Waits::of(&snap.config, &snap.state, snap.now))
            })
            .await;
            if changed.unwrap_or(false) {
                app.displays.waits_ready.send_modify(|v| *v += 1);
            }
            tokio::time::sleep_until(started + WAITS_EVERY).await;
        }
    });
}

/// Reads the surfaces, builds the site and pushes what changed; false once
/// the engine has stopped.
async fn build_once(app: &Arc<App>) -> bool {
    // Only the copy is taken on the engine thread: the surfaces' wait
    // estimates replay every waiting ticket's queue, and made there they
    // held up every command behind them (views.rs).
    let Ok(snap) = app.engine.read_async(super::views::Snapshot::of).await else {
        return false;
    };
    let d = app.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let waits = d.displays.waits_or_of(&snap);
        let (config, state, now) = (&snap.config, &snap.state, snap.now);
        // The screens are drawn and pushed before the pages' data is made.
        let pages = std::iter::once_with(|| page_surfaces(config, state, now, &waits)).flatten();
        d.displays.render(
            display_surfaces(config, state, now, &waits)
                .into_iter()
                .chain(pages),
        );
    })
    .await;
    app.displays.rendered.send_modify(|v| *v += 1);
    true
}

/// Watches the layouts folder for designers; returns the watcher, which
/// must be kept alive.
pub fn watch_layouts(app: &Arc<App>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let dir = app.displays.layouts.clone()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            // Editors write temp files; only our layouts matter. Opening and
            // reading a file is an event too (inotify's OPEN): reloading
            // reads every layout, so without this a reload woke the next
            // one, about seven a second, each logging the same warning.
            if !matches!(ev.kind, notify::EventKind::Access(_))
                && ev
                    .paths
                    .iter()
                    .any(|p| p.extension().is_some_and(|x| x == "html"))
            {
                let _ = tx.send(());
            }
        }
    })
    .ok()?;
    watcher.watch(&dir, RecursiveMode::NonRecursive).ok()?;
    let app = app.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: one reload for a burst of saves.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let d = app.clone();
            let _ = tokio::task::spawn_blocking(move || d.displays.reload()).await;
        }
    });
    Some(watcher)
}

/// Public surfaces: numbers and counts only (the status page and the
/// mobile ticket page).
fn public(topic: &str) -> bool {
    topic == "status" || topic == "ticket"
}

/// `GET /m`: the mobile ticket page the ticket's QR code opens (the number
/// follows in the URL fragment, which no server sees).
pub async fn mobile(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let site = app.displays.site();
    let f = site.get("ticket.html").ok_or(ApiError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, f.content_type)], f.bytes.to_vec()).into_response())
}

/// What a browser not enrolled as a display is told when it opens one
/// (outside tester pages-rt5 F7: it was told to log in, which a display
/// cannot do): the screen is not registered, and how an administrator
/// registers it. Staff may still sign in to look.
const NOT_A_DISPLAY: &str = "<!doctype html><html lang=\"ja\"><meta charset=\"utf-8\"><title>表示機</title>\
    <link rel=\"stylesheet\" href=\"/site/style.css\"><main class=\"page\"><h1>この画面は表示機として登録されていません</h1>\
    <p>管理者が管理画面の「端末」（/admin/devices）で種類「表示機」の登録用リンクを作り、この画面のブラウザーでそのリンクを開く（または QR コードを読む）と、表示機として使えます。</p>\
    <p>職員・管理者の方は、<a href=\"/login\">ログイン</a>すると表示を確かめられます。</p>\
    <p lang=\"en\">This screen is not enrolled as a display. An administrator creates a display enrolment link on the Devices page (/admin/devices); open that link (or its QR code) in this screen's browser. Staff may sign in to view it.</p></main></html>";

/// `GET /displays/{topic}.html|.json`: files of the last site build, with
/// ETags. The path is looked up in the build (R11): nothing else — no file
/// of the data folder, whatever the path says — can be reached.
pub async fn file(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    UrlPath(path): UrlPath<String>,
) -> Result<Response, ApiError> {
    let topic = path
        .strip_suffix(".json")
        .or_else(|| path.strip_suffix(".html"))
        .ok_or(ApiError::NotFound)?;
    let site = app.displays.site();
    let file: &SiteFile = site.get(&path).ok_or(ApiError::NotFound)?;
    if !public(topic) {
        match app.auth.require(&method, &headers, VIEWERS) {
            Ok(_) => {}
            Err(ApiError::Unauthenticated | ApiError::Forbidden) if path.ends_with(".html") => {
                return Ok((StatusCode::FORBIDDEN, Html(NOT_A_DISPLAY)).into_response());
            }
            Err(e) => return Err(e),
        }
    }
    let cache = [
        (header::ETAG, file.etag.clone()),
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(file.etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, file.content_type.to_string()),
            cache[0].clone(),
            cache[1].clone(),
        ],
        file.bytes.to_vec(),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct TopicQuery {
    topic: String,
}

/// `GET /ws?topic=…`: the current payload at once, then every change, and
/// a heartbeat so a display can tell a quiet office from a dead link. A
/// display sends nothing: any data frame closes the connection.
pub async fn ws(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<TopicQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let caller = if public(&q.topic) {
        app.auth.identify(&headers)
    } else {
        Some(app.auth.require(&method, &headers, VIEWERS)?)
    };
    // Only the site's own topics: a made-up name creates nothing.
    if !app.displays.site().has_topic(&q.topic) {
        return Err(ApiError::NotFound);
    }
    let slot = match &caller {
        Some(_) => None,
        None => match app.displays.anonymous.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                // Refused, and the connection closed with the answer, so
                // that it does not keep a slot as an idle keep-alive.
                let mut r = ApiError::TooManyConnections { seconds: 30 }.into_response();
                r.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                return Ok(r);
            }
        },
    };
    // Each account or device holds a few sockets at most (red-team
    // finding: one stolen kiosk token held every connection slot).
    let held = match &caller {
        Some(c) => match app
            .displays
            .identities
            .take(&format!("{:?}/{}", c.role, c.name))
        {
            Some(h) => Some(h),
            None => {
                let mut r = ApiError::TooManyConnections { seconds: 30 }.into_response();
                r.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                return Ok(r);
            }
        },
        None => None,
    };
    // Whoever opened the socket is asked again at every heartbeat: a
    // device revoked or an account disabled, demoted or signed out loses
    // its open sockets within one heartbeat, not only its next request.
    // Asked again when a display's socket closes for good: a revoked
    // display is not a connection fault (browser red team F15).
    let still_enrolled = {
        let (app, headers) = (app.clone(), headers.clone());
        move || {
            app.auth
                .identify(&headers)
                .is_some_and(|c| c.role == Role::Display)
        }
    };
    let recheck = caller.is_some().then(|| {
        let (app, topic) = (app.clone(), q.topic.clone());
        Box::new(move || {
            if public(&topic) {
                app.auth.identify(&headers).is_some()
            } else {
                app.auth.require(&method, &headers, VIEWERS).is_ok()
            }
        }) as Recheck
    });
    let device = caller.filter(|c| c.role == Role::Display).map(|c| c.name);
    // A display sends only control frames; anything larger is refused as
    // it arrives instead of being buffered whole (red-team finding: 60 MiB
    // frames and fragments from anonymous sockets, about 77 MiB each).
    let upgrade = upgrade
        .max_frame_size(MAX_CLIENT_FRAME)
        .max_message_size(MAX_CLIENT_FRAME);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _slot = slot;
        let _held = held;
        if let Some(d) = &device {
            app.faults.display_connected(d);
            tracing::debug!(device = %d, topic = %q.topic, "display socket opened");
        }
        let opened = std::time::Instant::now();
        serve_socket(app.clone(), q.topic.clone(), socket, recheck).await;
        if let Some(d) = &device {
            tracing::debug!(device = %d, topic = %q.topic, ms = opened.elapsed().as_millis(), "display socket ended");
        }
        if let Some(d) = device {
            if app.faults.display_disconnected(&d) {
                // A display that does not come back is a fault (R18).
                let grace = Duration::from_secs(u64::from(app.displays.stale_after_s()).max(5) * 2);
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    if app.faults.display_online(&d) {
                        return;
                    }
                    if !still_enrolled() {
                        tracing::info!(device = %d, "a revoked display's connection ended");
                        return;
                    }
                    let queue_name = match q.topic.strip_prefix("guidance/") {
                        Some(id) => {
                            let id = id.to_string();
                            app.engine
                                .read_async(move |e| e.config().queue(&id).map(|x| x.name.ja.clone()))
                                .await
                                .ok()
                                .flatten()
                        }
                        None => None,
                    };
                    let (ja, en) = topic_words(&q.topic, queue_name.as_deref());
                    app.faults.record(
                        "display",
                        format!(
                            "表示機 {d}（{ja}）の接続が切れ、戻っていません。表示機の電源とネットワークを確かめてください。 / display {d} ({en}) lost its connection and has not come back"
                        ),
                    );
                });
            }
        }
    }))
}

/// What a display shows, in words: 「10 番窓口の表示」.
fn topic_words(topic: &str, queue_name: Option<&str>) -> (String, String) {
    match topic.split_once('/') {
        Some(("counter", n)) => (format!("{n} 番窓口の表示"), format!("counter {n}")),
        Some(("guidance", q)) => (
            format!("「{}」の案内表示", queue_name.unwrap_or(q)),
            format!("guidance for {q}"),
        ),
        _ => match topic {
            "board" => ("職員用の一覧表示".into(), "staff board".into()),
            "status" => ("混雑状況の表示".into(), "public status".into()),
            other => (other.to_string(), other.to_string()),
        },
    }
}

/// The largest frame or message a display may send (a close frame with
/// its reason is at most 125 bytes; room to spare, nothing to buffer).
const MAX_CLIENT_FRAME: usize = 1024;

/// Resolves once the server is stopping.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether the caller who opened a socket may still have it.
type Recheck = Box<dyn Fn() -> bool + Send>;

async fn serve_socket(
    app: Arc<App>,
    topic: String,
    mut socket: WebSocket,
    recheck: Option<Recheck>,
) {
    // Held from the start, so a stop waits for this socket's goodbye.
    let mut stopping = app.displays.stopping.subscribe();
    let mut sub = app.displays.hub.subscribe(&topic);
    if let Some(p) = sub.current.take() {
        if socket
            .send(Message::text(p.body.to_string()))
            .await
            .is_err()
        {
            return;
        }
    }
    // The first beat goes at once, after the current page: it is the
    // socket's hello and names the office's epoch (issue 24), so a display
    // that has seen a newer one knows it reached a replaced primary.
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut revoked = app.auth.revocations();
    revoked.mark_unchanged();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => {
                // The page shows its lost-connection banner at once
                // (`stale`), then reconnects when the server is back.
                let _ = socket.send(Message::text(r#"{"stale":true,"stopping":true}"#)).await;
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: axum::extract::ws::close_code::AWAY,
                        reason: "server stopping".into(),
                    })))
                    .await;
                break;
            }
            update = sub.updates.recv() => {
                let payload = match update {
                    Ok(p) => p,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => match app.displays.hub.latest(&topic) {
                        Some(p) => p,
                        None => continue,
                    },
                    Err(_) => break,
                };
                if socket.send(Message::text(payload.body.to_string())).await.is_err() {
                    break;
                }
            }
            Ok(()) = revoked.changed(), if recheck.is_some() => {
                if recheck.as_ref().is_some_and(|still| !still()) {
                    refuse_on(&mut socket).await;
                    break;
                }
            }
            _ = beat.tick() => {
                if recheck.as_ref().is_some_and(|still| !still()) {
                    refuse_on(&mut socket).await;
                    break;
                }
                let msg = format!(
                    "{{\"heartbeat\":{},\"epoch\":{}}}",
                    super::api::wall_now().0,
                    app.fence.epoch()
                );
                if socket.send(Message::text(msg)).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => break,
            },
        }
    }
}

/// Ends a socket whose caller lost the right to it. The display page
/// clears its numbers at once on this code and says why (F11): old numbers
/// on a revoked screen would send visitors to the wrong counter.
async fn refuse_on(socket: &mut WebSocket) {
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::POLICY,
            reason: "signed out or revoked".into(),
        })))
        .await;
}

/// `GET /preview/sample/{topic}`: a surface drawn from sample data, with
/// the current layouts (staff only).
pub async fn sample(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    UrlPath(topic): UrlPath<String>,
) -> Result<Response, ApiError> {
    app.auth
        .require(&method, &headers, &[Role::Staff, Role::Admin])?;
    let list = app
        .engine
        .read_async(|e| {
            let (st, now) = madoguchi_renderer::sample::sample(e.config());
            surfaces(e.config(), &st, now)
        })
        .await?;
    let s = list
        .into_iter()
        .find(|s| s.topic == topic)
        .ok_or(ApiError::NotFound)?;
    let rendered = app
        .displays
        .renderer
        .lock()
        .map_err(|_| ApiError::Internal("renderer lock".into()))?
        .render(&s);
    match rendered {
        Ok(r) => Ok(Html(r.page).into_response()),
        Err(e) => Ok((
            StatusCode::OK,
            Html(format!(
                "<!doctype html><meta charset=\"utf-8\"><title>layout error</title><pre>{}</pre>",
                madoguchi_renderer::HtmlEscape(&e.to_string())
            )),
        )
            .into_response()),
    }
}

/// `GET /preview`: every surface, with layout errors (staff only).
pub async fn preview(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // An enrolled display picks its page here (pages-rt8 F2). A signed-in
    // person of another role gets the page that names their account and
    // their way back (pages-rt9 F5: an auditor got the bare refusal).
    let caller = match super::gate::person(
        &app,
        &method,
        &headers,
        &[Role::Staff, Role::Admin, Role::Display],
        "/preview",
    ) {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    // From the last site build, not a fresh render: an enrolled display may
    // open this page, and a render per request would let one device keep
    // the engine thread estimating every queue.
    let topics: Vec<(String, String)> = app
        .displays
        .site()
        .titles()
        .map(|(t, n)| (t.to_string(), n.to_string()))
        .collect();
    let mut errors: Vec<String> = app
        .displays
        .load_error
        .lock()
        .map(|e| e.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if let Ok(e) = app.displays.errors.lock() {
        errors.extend(e.iter().map(ToString::to_string));
    }
    let office = app.office_name().await?;
    // An enrolled display (it lands here after its enrolment link) is told
    // what it is and how to pick what it shows, not the designer's notes
    // (issue 18, R11, pages12 brief 3; outside tester pages-rt10 N6).
    let device = (caller.role == Role::Display).then(|| caller.name.clone());
    Ok(app
        .pages
        .render(
            "preview.html",
            madoguchi_renderer::context! { office, topics, errors, device, live => app.displays.layouts.is_some(), menu => super::gate::menu(Some(&caller), "/preview"), csrf => caller.csrf() },
        )?
        .into_response())
}
