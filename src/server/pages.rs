//! HTML pages and fragments from the layouts in `layouts/` (rendered by
//! the renderer crate's one template environment, issue 16), and
//! the static assets in `site/`. Pages and their live updates come from the
//! same templates: the browser fetches a server-rendered fragment and swaps
//! it in; it never re-implements a layout.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use madoguchi_renderer::{context, Value};
use serde::Deserialize;

use super::auth::Role;
use super::error::ApiError;
use super::extract::UrlQuery;
use super::App;

macro_rules! asset {
    ($name:literal, css) => {
        (
            concat!($name, ".css"),
            "text/css; charset=utf-8",
            include_str!(concat!("../../site/", $name, ".css")),
        )
    };
    ($name:literal, js) => {
        (
            concat!($name, ".js"),
            "text/javascript; charset=utf-8",
            include_str!(concat!("../../site/", $name, ".js")),
        )
    };
}

/// The static assets, built into the binary: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("style", css),
    asset!("common", js),
    asset!("login", js),
    asset!("kiosk", js),
    asset!("staff", js),
    asset!("settings", js),
    asset!("statistics", js),
    asset!("display", js),
    asset!("display", css),
    asset!("admin", js),
];

#[derive(Debug)]
pub struct Pages {
    renderer: madoguchi_renderer::render::Renderer,
}

impl Pages {
    pub fn new() -> anyhow::Result<Pages> {
        let renderer = madoguchi_renderer::render::Renderer::new(None)
            .map_err(|e| anyhow::anyhow!("layouts: {e}"))?;
        Ok(Pages { renderer })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<Html<String>, ApiError> {
        self.renderer
            .page(name, ctx)
            .map(Html)
            .map_err(|e| ApiError::Internal(format!("layout {name}: {e}")))
    }
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login))
        .route("/kiosk", get(kiosk))
        .route("/fragments/kiosk", get(kiosk_fragment))
        .route("/staff", get(staff))
        .route("/fragments/staff", get(staff_fragment))
        .route("/queues.css", get(queues_css))
        .route("/site/{file}", get(asset))
}

async fn index(State(app): State<Arc<App>>) -> Result<Html<String>, ApiError> {
    let (office, counters) = app
        .engine
        .read_async(|e| {
            (
                e.config().office.name.ja.clone(),
                super::views::counters(e.config(), e.state()),
            )
        })
        .await?;
    app.pages
        .render("index.html", context! { office, counters })
}

#[derive(Debug, Deserialize)]
struct Next {
    next: Option<String>,
}

/// Where the login page may send the browser afterwards: a path on this
/// server only (issue 23). Browsers read `\` as `/` and drop tabs and
/// newlines, so `/\evil.example/` and `/\t/evil.example/` are other hosts;
/// anything but plain path characters is refused rather than repaired.
fn same_origin_path(next: &str) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "/-._~?=&%+,:;@!$'()*".contains(c);
    let lower = next.to_ascii_lowercase();
    let plain = next.starts_with('/')
        && !next.starts_with("//")
        && next.chars().all(ok_char)
        && !["%5c", "%09", "%0a", "%0d", "%00"]
            .iter()
            .any(|bad| lower.contains(bad))
        && !lower.starts_with("/%2f");
    plain.then(|| next.to_string())
}

async fn login(
    State(app): State<Arc<App>>,
    UrlQuery(q): UrlQuery<Next>,
) -> Result<Html<String>, ApiError> {
    let office = app.office_name().await?;
    let next = q
        .next
        .and_then(|n| same_origin_path(&n))
        // None named: the role's own first page, told by the sign-in's
        // answer (pages-rt8 F10: an auditor landed on the staff station).
        .unwrap_or_default();
    app.pages.render("login.html", context! { office, next })
}

const KIOSK_ROLES: &[Role] = &[Role::Kiosk, Role::Staff, Role::Admin];

async fn kiosk(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match app.auth.require(&method, &headers, KIOSK_ROLES) {
        Ok(c) => c,
        Err(_) => {
            let body = "<!doctype html><html lang=\"ja\"><meta charset=\"utf-8\"><title>番号発券機</title>\
                <link rel=\"stylesheet\" href=\"/site/style.css\"><main class=\"page\"><h1>この端末は番号発券機として登録されていません</h1>\
                <p>管理者から受け取った登録用リンクをこの端末で開いてください。</p>\
                <p lang=\"en\">This device is not enrolled as a kiosk. Open the enrolment link from an administrator on it.</p></main></html>";
            return Ok((StatusCode::FORBIDDEN, Html(body)).into_response());
        }
    };
    let s = app.status().await?;
    let offered = offered(&app, &caller)?;
    let blocked = super::health::issue_blocked(&app, &caller, &s).await;
    let page = app.pages.render(
        "kiosk.html",
        context! { office => s.office.ja, queues => s.queues, day_open => s.day_open, csrf => caller.csrf(), offered, blocked },
    )?;
    Ok(page.into_response())
}

/// The categories this caller's kiosk offers (all, for staff).
fn offered(app: &App, caller: &super::auth::Caller) -> Result<Vec<String>, ApiError> {
    let (name, role) = (caller.name.clone(), caller.role);
    app.engine
        .read(move |e| {
            e.config()
                .categories()
                .filter(|q| role != Role::Kiosk || e.config().kiosk_offers(&name, &q.id))
                .map(|q| q.id.clone())
                .collect()
        })
        .map_err(ApiError::from)
}

async fn kiosk_fragment(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Html<String>, ApiError> {
    let caller = app.auth.require(&method, &headers, KIOSK_ROLES)?;
    let s = app.status().await?;
    let offered = offered(&app, &caller)?;
    let blocked = super::health::issue_blocked(&app, &caller, &s).await;
    app.pages.render(
        "kiosk_buttons.html",
        context! { queues => s.queues, day_open => s.day_open, offered, blocked },
    )
}

#[derive(Debug, Deserialize)]
struct CounterQuery {
    counter: Option<u16>,
}

const STAFF_ROLES: &[Role] = &[Role::Staff, Role::Admin];

fn staff_context(
    s: &super::views::StatusView,
    number: u16,
    extra: Value,
) -> Result<Value, ApiError> {
    let counter = s
        .counters
        .iter()
        .find(|c| c.number == number)
        .ok_or_else(|| no_such_counter(s, number))?;
    let queue_names: BTreeMap<&str, &str> = s
        .queues
        .iter()
        .map(|q| (q.id.as_str(), q.name.ja.as_str()))
        .collect();
    let held: Vec<u32> = s
        .held
        .iter()
        .filter(|(_, c)| *c == number)
        .map(|(n, _)| *n)
        .collect();
    Ok(context! {
        office => s.office.ja,
        counter => counter,
        queues => s.queues,
        queue_names => queue_names,
        day_open => s.day_open,
        closed_today => s.closed_today,
        today => s.today.to_string(),
        now => s.now,
        absent => s.absent,
        held => held,
        tags => s.tags,
        ..extra
    })
}

/// `/staff?counter=99` for a counter the office does not have (outside
/// tester pages-rt7: a raw 409): 404, a page that names the counters there
/// are, each a link to its station (R11, issue 18).
fn no_such_counter(s: &super::views::StatusView, number: u16) -> ApiError {
    let numbers: Vec<u16> = s.counters.iter().map(|c| c.number).collect();
    // 「1〜25 番」 when they run without a gap, else each by name.
    let (ja_list, en_list) = match (numbers.first(), numbers.last()) {
        (Some(lo), Some(hi))
            if usize::from(hi.saturating_sub(*lo)) + 1 == numbers.len() && lo != hi =>
        {
            (format!("{lo}〜{hi}"), format!("{lo} to {hi}"))
        }
        _ => {
            let each: Vec<String> = numbers.iter().map(u16::to_string).collect();
            (each.join("・"), each.join(", "))
        }
    };
    ApiError::Missing {
        code: "unknown_counter",
        ja: format!(
            "{number} 番窓口はありません。この事務所の窓口は {ja_list} 番です。下の一覧から、自分の窓口を選んでください"
        ),
        en: format!(
            "there is no counter {number}; this office's counters are {en_list}. Choose yours below"
        ),
        links: s
            .counters
            .iter()
            .map(|c| {
                (
                    format!("/staff?counter={}", c.number),
                    format!("{} 番窓口 呼出端末（{}）", c.number, c.section_name),
                )
            })
            .collect(),
    }
}

async fn staff(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<CounterQuery>,
) -> Result<Response, ApiError> {
    let next = match q.counter {
        Some(number) => format!("/staff%3Fcounter%3D{number}"),
        None => "/staff".to_string(),
    };
    let caller = match super::gate::person(&app, &method, &headers, STAFF_ROLES, &next) {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let s = app.status().await?;
    // No counter in the address (the shared menu's 「職員用画面」 when this
    // browser has used no station yet): ask which counter, never silently
    // counter 1 (issue 18, R11; outside tester pages-rt10 N0).
    let Some(number) = q.counter else {
        let ctx = context! {
            office => s.office.ja,
            counters => s.counters,
            csrf => caller.csrf(),
            user => caller.name,
            menu => super::gate::menu(Some(&caller), "/staff"),
        };
        return Ok(app.pages.render("staff_choose.html", ctx)?.into_response());
    };
    let notes = staff_notes(&app, &s, number)?;
    let ctx = staff_context(
        &s,
        number,
        context! { notes, menu => super::gate::station_menu(Some(&caller), number), user => caller.name, role => caller.role.ja(), csrf => caller.csrf(), utc_offset_s => app.status_offset().local_minus_utc(), hold => command_hold(&app) },
    )?;
    Ok(app.pages.render("staff.html", ctx)?.into_response())
}

async fn staff_fragment(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<CounterQuery>,
) -> Result<Html<String>, ApiError> {
    let caller = app.auth.require(&method, &headers, STAFF_ROLES)?;
    let s = app.status().await?;
    let number = q.counter.unwrap_or(1);
    // The station's panel is fetched every 5 s: after a restart its
    // session's page is known again from the next fetch (pages-rt11 R3).
    app.auth.note_seen(
        &caller,
        None,
        None,
        Some(super::gate::page_words(&format!("/staff?counter={number}"))),
    );
    let notes = staff_notes(&app, &s, number)?;
    let ctx = staff_context(&s, number, context! { notes, hold => command_hold(&app) })?;
    app.pages.render("staff_panel.html", ctx)
}

/// One 内部メモ as the station shows it: what it came with and the note.
#[derive(Debug, serde::Serialize)]
struct NoteView {
    /// 「13 番窓口で回付したときのメモ」.
    from_ja: String,
    note: String,
}

/// The internal notes written on the ticket now called or served at
/// `counter` (on a transfer or a hold), oldest first (outside tester
/// pages-rt8 F9: the note was shown to nobody). Staff pages only: the
/// displays, kiosks, the public and the phone page never carry them.
fn staff_notes(
    app: &App,
    s: &super::views::StatusView,
    counter: u16,
) -> Result<Vec<NoteView>, ApiError> {
    let Some(number) = s
        .counters
        .iter()
        .find(|c| c.number == counter)
        .and_then(|c| c.ticket)
    else {
        return Ok(Vec::new());
    };
    let ticket = app
        .engine
        .read(move |e| e.ticket(None, number).ok().flatten())
        .map_err(ApiError::from)?;
    Ok(ticket.map_or_else(Vec::new, |t| notes_of(&t)))
}

fn notes_of(t: &madoguchi_core::model::Ticket) -> Vec<NoteView> {
    use madoguchi_core::model::StepKind;
    t.history
        .iter()
        .filter_map(|step| {
            let (counter, what, note) = match &step.what {
                StepKind::Transferred { counter, note, .. } => (*counter, "回付", note),
                StepKind::Held { counter, note } => (Some(*counter), "保留", note),
                _ => return None,
            };
            let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty())?;
            let from_ja = match counter {
                Some(c) => format!("{c} 番窓口で{what}したときのメモ"),
                None => format!("{what}したときのメモ"),
            };
            Some(NoteView {
                from_ja,
                note: note.to_string(),
            })
        })
        .collect()
}

/// Why this server takes no commands now, for the staff station's
/// standing banner (issue 24): none when it takes them.
fn command_hold(app: &App) -> Option<super::fence::StaffHold> {
    app.may_command()
        .err()
        .map(|e| super::fence::staff_hold(&app.fence, &e))
}

/// Each queue's colour as a class, so pages need no inline style (CSP).
async fn queues_css(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let css = queues_css_text(&app).await?;
    Ok(([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response())
}

/// The text of `/queues.css` (also sent to the internet relays).
/// Only the configuration is read: the relay publisher asks for this after
/// every render, and the full status view (waits, estimates) is not needed.
pub async fn queues_css_text(app: &App) -> Result<String, ApiError> {
    app.engine
        .read(|e| {
            e.config()
                .queues
                .iter()
                .map(|q| format!(".q-{} {{ --q: {}; }}\n", q.id, q.colour))
                .collect()
        })
        .map_err(ApiError::from)
}

/// A built-in asset's text by file name (`display.js`).
pub fn asset_text(name: &str) -> Option<&'static str> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|a| a.2)
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, kind, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == file)
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, *kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout and asset in the folders is built in (a forgotten one
    /// would be a page that fails only when opened).
    #[test]
    fn every_layout_and_asset_is_built_in() {
        let root = env!("CARGO_MANIFEST_DIR");
        for (dir, known) in [
            (
                "layouts",
                madoguchi_renderer::render::PAGES
                    .iter()
                    .map(|l| l.0)
                    .chain(madoguchi_renderer::render::EMBEDDED.iter().map(|l| l.0))
                    .collect::<Vec<_>>(),
            ),
            ("site", ASSETS.iter().map(|a| a.0).collect::<Vec<_>>()),
        ] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).expect("dir") {
                let name = entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if name.ends_with(".html") || name.ends_with(".js") || name.ends_with(".css") {
                    assert!(
                        known.contains(&name.as_str()),
                        "{dir}/{name} is not built in"
                    );
                }
            }
        }
        Pages::new().expect("every layout compiles");
    }
}
