//! Who may open a page, as a person meets it (browser red team F7): a
//! browser that is not signed in goes to the login page and comes back; a
//! person signed in with a role the page is not for is told so on a page
//! of its own (Japanese first) — which roles the page is for, who they are
//! signed in as, and a link back to their own work — never bounced to the
//! login page without a word. A device (kiosk, display) is sent to the
//! login page as before: someone must sign in on it to open a staff page.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::auth::{Caller, Role};
use super::error::{escape, ApiError};
use super::App;

/// The caller, if they may open the page at `next` (a path with its
/// query, already safe to put in a URL); otherwise the answer to give.
pub fn person(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    roles: &[Role],
    next: &str,
) -> Result<Caller, Box<Response>> {
    match app.auth.require(method, headers, roles) {
        Ok(c) => {
            // The page this session last opened, for ログイン中の人
            // (pages-rt10 N1).
            let agent = headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            app.auth.note_seen(&c, agent, None, Some(page_words(next)));
            Ok(c)
        }
        Err(ApiError::Forbidden) => match app.auth.identify(headers) {
            Some(c) if !c.is_device() => Err(Box::new(not_for_you(app, &c, roles))),
            _ => Err(Box::new(to_login(next))),
        },
        Err(_) => Err(Box::new(to_login(next))),
    }
}

/// Notes the address and browser of every request a person's session
/// makes (a middleware), so ログイン中の人 knows them again from the first
/// request after a restart or promotion, not only from a new sign-in
/// (issue 18, outside tester pages-rt11 R3: after a restart the address
/// stayed 「—」 for good). Only requests that carry the session cookie are
/// looked at; devices are left to `health::note`.
pub async fn note_where(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<App>>,
    super::extract::ClientAddr(addr): super::extract::ClientAddr,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let session = req
        .headers()
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(super::auth::SESSION_COOKIE));
    if session {
        if let Some(c) = app.auth.identify(req.headers()).filter(|c| !c.is_device()) {
            let agent = req
                .headers()
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            app.auth.note_seen(&c, agent, Some(addr.to_string()), None);
        }
    }
    next.run(req).await
}

/// A page's address (as `next`, %-encoded) in words: 「5 番窓口の職員用画面」
/// for a station, the menu's name for another page, else the address.
pub fn page_words(next: &str) -> String {
    let path = next.replace("%3F", "?").replace("%3D", "=");
    if let Some(n) = path.strip_prefix("/staff?counter=") {
        return format!("{n} 番窓口の職員用画面");
    }
    menu_links(Role::Admin)
        .iter()
        .find(|(href, _)| *href == path)
        .map(|(_, ja)| (*ja).to_string())
        .unwrap_or(path)
}

fn to_login(next: &str) -> Response {
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// A role's name as the pages say it.
pub fn role_ja(r: Role) -> (&'static str, &'static str) {
    r.words()
}

/// The page for a signed-in person whose role this page is not for (403).
/// It is a signed-in page like the others: the shared menu with ログアウト,
/// and 「別のアカウントでログイン」 ends this session before the login page
/// (outside tester pages-rt9 F6: on a shared PC the old session stayed).
fn not_for_you(app: &App, c: &Caller, roles: &[Role]) -> Response {
    // Always in the same order, whichever order the page lists them in.
    let mut roles = roles.to_vec();
    roles.sort_by_key(|r| match r {
        Role::Admin => 0,
        Role::Auditor => 1,
        Role::Staff => 2,
        _ => 3,
    });
    let for_ja: Vec<&str> = roles.iter().map(|r| role_ja(*r).0).collect();
    let (mine_ja, mine_en) = role_ja(c.role);
    // Back to where this account does its work.
    let (back, back_ja, back_en) = match c.role {
        Role::Staff => (
            "/staff",
            "窓口の操作画面へ戻る",
            "Back to the staff station",
        ),
        Role::Auditor => ("/audit", "監査記録の画面へ", "To the audit log"),
        _ => ("/", "トップページへ", "Top page"),
    };
    let ja = format!("このページは{}用です", for_ja.join("・"));
    // Only people sign in; a display or kiosk is an enrolled device, said
    // apart (outside tester pages-rt10 N4: 「管理者・職員・表示機のアカウント」).
    let people = |r: &&Role| matches!(r, Role::Admin | Role::Auditor | Role::Staff);
    let (accounts_ja, accounts_en): (Vec<&str>, Vec<&str>) =
        roles.iter().filter(people).map(|r| role_ja(*r)).unzip();
    let devices: Vec<&str> = roles
        .iter()
        .filter(|r| !people(r))
        .map(|r| role_ja(*r).0)
        .collect();
    let devices_ja = if devices.is_empty() {
        String::new()
    } else {
        format!("このページは{}の画面でも開けます。", devices.join("・"))
    };
    // The menu as every signed-in page draws it (layouts/menu.html); a
    // page that cannot be drawn leaves the menu out, never the answer.
    let menu = app
        .pages
        .render(
            "menu.html",
            madoguchi_renderer::context! { menu => menu(Some(c), "") },
        )
        .map(|h| h.0)
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"csrf-token\" content=\"{csrf}\">\
<title>{ja}</title><link rel=\"stylesheet\" href=\"/site/style.css\"></head>\
<body><main class=\"page narrow\">{menu}<h1 id=\"not-for-you\">{ja}</h1>\
<p>{name} さん（{mine_ja}）としてログインしています。このアカウントでは開けません。必要なときは管理者に連絡するか、{want_ja}のアカウントでログインし直してください。{devices_ja}</p>\
<p lang=\"en\" class=\"en\">This page is for {want_en} accounts. You are signed in as {name} ({mine_en}), which may not open it; ask an administrator, or sign in again with another account.</p>\
<p><a id=\"back\" href=\"{back}\">{back_ja} <span lang=\"en\">{back_en}</span></a></p>\
<p><button type=\"button\" id=\"switch-account\" class=\"menu-logout\">ログアウトして別のアカウントでログイン <span lang=\"en\">Sign out and sign in with another account</span></button></p>\
<p class=\"code\">403 <code>forbidden</code></p></main>\
<script src=\"/site/common.js\" defer></script></body></html>",
        csrf = escape(c.csrf().unwrap_or_default()),
        ja = escape(&ja),
        name = escape(&c.name),
        want_ja = accounts_ja.join("・"),
        want_en = accounts_en.join(" or "),
    );
    // No `Shown` on it: `answer_in_kind` keeps an HTML answer as it is.
    (StatusCode::FORBIDDEN, Html(body)).into_response()
}

/// Where a role starts after signing in (outside tester pages-rt8 F10: an
/// auditor was sent to the staff station and refused there). A staff
/// member goes to the counter they have open now (the office's state
/// keeps who opened it, across restarts); with none, or several, to
/// /staff, where `site/login.js` opens the counter last used in this
/// browser or, with none known, the page asks 「どの窓口の画面を開きますか」
/// (issue 18, R11, pages12 brief 1: every staff sign-in landed on counter
/// 1's station, where the keys then acted on a counter nobody had picked).
pub fn home(r: Role, name: &str, counters: &[super::views::CounterView]) -> String {
    match r {
        Role::Admin => "/admin".into(),
        Role::Auditor => "/audit".into(),
        _ => {
            let mut mine = counters
                .iter()
                .filter(|c| c.open && c.staff.as_deref() == Some(name));
            match (mine.next(), mine.next()) {
                (Some(c), None) => format!("/staff?counter={}", c.number),
                _ => "/staff".into(),
            }
        }
    }
}

/// The pages a signed-in person's role may open, as the shared menu lists
/// them (Japanese, address).
fn menu_links(r: Role) -> &'static [(&'static str, &'static str)] {
    match r {
        Role::Admin => &[
            ("/admin", "管理の概要"),
            ("/admin/accounts", "職員アカウント"),
            ("/admin/devices", "端末"),
            ("/admin/sessions", "ログイン中の人"),
            ("/settings", "設定"),
            ("/statistics", "統計"),
            ("/audit", "監査ログ"),
            ("/preview", "表示のプレビュー"),
            ("/forecast", "混雑予想"),
            ("/staff", "職員用画面"),
            ("/kiosk", "番号発券機"),
        ],
        Role::Auditor => &[
            ("/audit", "監査ログ"),
            ("/statistics", "統計"),
            ("/forecast", "混雑予想"),
        ],
        Role::Staff => &[
            ("/staff", "職員用画面"),
            ("/preview", "表示のプレビュー"),
            ("/forecast", "混雑予想"),
            ("/kiosk", "番号発券機"),
        ],
        _ => &[],
    }
}

/// The shared menu of every signed-in page (`layouts/menu.html`; pages-rt8
/// F10: settings, statistics, audit, forecast and preview had no way to
/// the other pages and no sign-out): the role's pages, `here` marked, who
/// is signed in and 「ログアウト」. None for a device or nobody.
pub fn menu(caller: Option<&Caller>, here: &str) -> Option<madoguchi_renderer::Value> {
    menu_with(caller, here, true, None)
}

/// The shared menu on the staff station (pages-rt9 F6: it had only its
/// own header, no way to 混雑予想 or 表示のプレビュー): the same links, with
/// 「職員用画面」 marked whatever the counter, and without the menu's
/// ログアウト — the station keeps its own (L key), which comes back to
/// the same counter.
pub fn station_menu(caller: Option<&Caller>, counter: u16) -> Option<madoguchi_renderer::Value> {
    menu_with(caller, "/staff", false, Some(counter))
}

fn menu_with(
    caller: Option<&Caller>,
    here: &str,
    logout: bool,
    counter: Option<u16>,
) -> Option<madoguchi_renderer::Value> {
    let c = caller.filter(|c| !c.is_device())?;
    // On a station, 「職員用画面」 is this counter's (not counter 1's).
    // Elsewhere it is plain /staff: site/common.js points it at the counter
    // last used in this browser, and /staff without a counter asks which
    // (issue 18, outside tester pages-rt10 N0: it always opened counter 1).
    let links: Vec<(String, &str, bool)> = menu_links(c.role)
        .iter()
        .map(|(href, ja)| {
            let to = match counter {
                Some(n) if *href == "/staff" => format!("/staff?counter={n}"),
                _ => (*href).to_string(),
            };
            (to, *ja, *href == here)
        })
        .collect();
    Some(madoguchi_renderer::context! {
        user => c.name, role => c.role.ja(), links, logout,
    })
}
