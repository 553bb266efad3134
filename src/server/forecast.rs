//! The congestion forecast page (混雑予想, R6): public numbers only — the
//! expected number of people waiting, arrivals and wait per hour — as an
//! SVG chart with a text table holding the same figures, and the
//! forecast's own past accuracy in one sentence (issue 19; the model in
//! `madoguchi_core::stats::forecast`). The internet relay serves the same
//! files.
//!
//! Only the hours the office is open on days of each kind are shown (the
//! model mixes days, and a Monday showed tickets issued at 19時台 with the
//! office closing at 18:00: outside tester pages-rt5 F5); figures are
//! rounded once, here, so the chart's titles and the table say the same;
//! and a kind of day with fewer than [`RELIABLE_DAYS`] days of history is
//! marked as not yet reliable (F6).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::{Days, NaiveDate};
use madoguchi_core::stats::forecast::{self, DayKind, Forecast, Series};
use madoguchi_renderer::context;
use serde::Deserialize;

use super::error::ApiError;
use super::App;

/// The office's date now (a simulated day ahead of the clock counts).
fn office_today(e: &madoguchi_core::engine::Engine) -> NaiveDate {
    e.office_date()
}

/// [`office_today`] for callers outside the engine.
pub async fn today(app: &App) -> Result<NaiveDate, ApiError> {
    Ok(app.engine.read_async(office_today).await?)
}

/// The forecast as last computed: its office date, the office's name and
/// the kind of day today is.
type Computed = (Forecast, NaiveDate, String, DayKind);

/// How long a computed forecast is served before it is made again (it
/// reads a year of statistics on the engine thread; red-team finding: an
/// anonymous flood of `/forecast.json` made every staff command wait).
const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// The last forecast; the lock is held while one is computed, so a flood
/// waits for that one instead of computing its own.
static LAST: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Computed>)>> =
    tokio::sync::Mutex::const_new(None);

async fn series(app: &App) -> Result<Computed, ApiError> {
    let today = today(app).await?;
    let mut last = LAST.lock().await;
    if let Some((at, c)) = last.as_ref() {
        if c.1 == today && at.elapsed() < FRESH_FOR {
            return Ok((**c).clone());
        }
    }
    let made = compute(app).await?;
    *last = Some((std::time::Instant::now(), Arc::new(made.clone())));
    Ok(made)
}

async fn compute(app: &App) -> Result<Computed, ApiError> {
    app.engine
        .read_async(|e| {
            let today = office_today(e);
            let from = today.checked_sub_days(Days::new(365)).unwrap_or(today);
            let office = e.config().office.name.ja.clone();
            let kind = DayKind::of(today, |d| e.config().calendar.opening(d).is_some());
            e.stats(from, today, forecast::SOURCE).map(|rows| {
                let mut f = forecast::forecast(e.config(), &e.state().meta.learned, &rows, today);
                within_hours(&mut f, e.config(), today);
                (f, today, office, kind)
            })
        })
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Days of one kind of day in the history from which its forecast is
/// offered as reliable: four — about a month of one weekday, so one odd
/// day (a system fault, a rush) is a quarter of it, not half or all. With
/// fewer (the outside tester met 1–2 days printed as 「予想待ち 238 人」) the
/// page says plainly that the figures are not yet reliable and from how
/// many days.
pub const RELIABLE_DAYS: usize = 4;

/// The hours (local, whole hours) the office is open on days of `kind`,
/// from the calendar over ten weeks either side of `today`: the earliest
/// opening to the latest closing. `None` when no such day opens then.
fn open_hours(
    config: &madoguchi_core::config::Config,
    kind: DayKind,
    today: NaiveDate,
) -> Option<(u32, u32)> {
    use chrono::Timelike;
    let is_open = |d: NaiveDate| config.calendar.opening(d).is_some();
    let mut span: Option<(u32, u32)> = None;
    for back in 0..140u64 {
        let Some(d) = today
            .checked_sub_days(Days::new(70))
            .and_then(|d| d.checked_add_days(Days::new(back)))
        else {
            continue;
        };
        let Some(o) = config.calendar.opening(d) else {
            continue;
        };
        if DayKind::of(d, is_open) != kind {
            continue;
        }
        let open = o.hours.open.hour() * 60 + o.hours.open.minute();
        let close = o.hours.close.hour() * 60 + o.hours.close.minute();
        span = Some(span.map_or((open, close), |(a, b)| (a.min(open), b.max(close))));
    }
    span
}

/// Drops from each series the hours outside the office's hours for its
/// kind of day: nobody is issued a ticket at 19時台 when the office
/// closes at 18:00.
fn within_hours(f: &mut Forecast, config: &madoguchi_core::config::Config, today: NaiveDate) {
    for s in &mut f.series {
        if let Some((open, close)) = open_hours(config, s.kind, today) {
            s.hours
                .retain(|h| h.hour * 60 < close && (h.hour + 1) * 60 > open);
        }
    }
}

/// One hour's figures as shown: whole numbers, rounded once, used by both
/// the chart and the table.
#[derive(Debug, serde::Serialize)]
struct Row {
    hour: u32,
    waiting: u64,
    wait_min: u64,
    arrivals: u64,
}

fn rows(s: &Series) -> Vec<Row> {
    let whole = |x: f64| x.round().max(0.0) as u64;
    s.hours
        .iter()
        .map(|h| Row {
            hour: h.hour,
            waiting: whole(h.waiting),
            wait_min: whole(h.wait_min),
            arrivals: whole(h.arrivals),
        })
        .collect()
}

/// An accessible bar chart of people waiting per hour.
fn svg(s: &Series) -> String {
    let shown = rows(s);
    let (w, h, left, bottom, top) = (720.0, 300.0, 48.0, 36.0, 16.0);
    let top_value = s.hours.iter().map(|x| x.waiting).fold(1.0_f64, f64::max);
    // Round the scale up to a figure people read at a glance.
    let step = if top_value > 40.0 {
        20.0
    } else if top_value > 10.0 {
        5.0
    } else {
        1.0
    };
    let max = (top_value / step).ceil() * step;
    let n = s.hours.len().max(1) as f64;
    let bw = (w - left - 8.0) / n;
    let scale = (h - bottom - top) / max;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-labelledby="chart-title chart-desc" class="chart"><title id="chart-title">{} の時間帯別の予想待ち人数</title><desc id="chart-desc">過去 {} 日の記録から。数値は下の表にあります。</desc>"#,
        s.label_ja, s.days
    );
    for t in 0..=4 {
        let v = max * f64::from(t) / 4.0;
        let y = h - bottom - v * scale;
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="axis" text-anchor="end">{v:.0}人</text>"##,
            w - 8.0,
            left - 6.0,
            y + 4.0
        );
    }
    for (i, x) in s.hours.iter().enumerate() {
        let bh = x.waiting * scale;
        let bx = left + i as f64 * bw + 4.0;
        let by = h - bottom - bh;
        let r = &shown[i];
        let _ = write!(
            out,
            r##"<g><title>{}時台: 予想待ち {} 人、待ち時間 約 {} 分、発券 {} 枚</title><rect x="{bx:.1}" y="{by:.1}" width="{:.1}" height="{bh:.1}" class="bar"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}時</text></g>"##,
            r.hour,
            r.waiting,
            r.wait_min,
            r.arrivals,
            bw - 8.0,
            bx + (bw - 8.0) / 2.0,
            h - bottom + 18.0,
            x.hour
        );
    }
    out.push_str("</svg>");
    out
}

#[derive(Debug, Deserialize)]
pub struct KindQuery {
    kind: Option<String>,
}

fn kind_key(k: DayKind) -> String {
    serde_json::to_value(k)
        .ok()
        .map(|v| match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| format!("{k}-{v}")).collect(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// `GET /forecast`: the page (no sign-in: public figures only).
pub async fn page(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    super::extract::UrlQuery(q): super::extract::UrlQuery<KindQuery>,
) -> Result<Response, ApiError> {
    // Someone signed in sees the shared menu above it (pages-rt8 F10).
    let caller = app.auth.identify(&headers);
    if let Some(c) = caller.as_ref().filter(|c| !c.is_device()) {
        // The page this session last opened (ログイン中の人, pages-rt10 N1).
        let agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        app.auth
            .note_seen(c, agent, None, Some("混雑予想".to_string()));
    }
    let signed_in = super::gate::menu(caller.as_ref(), "/forecast").map(|menu| {
        (
            menu,
            caller.as_ref().and_then(|c| c.csrf()).map(str::to_string),
        )
    });
    let (all, _, office, today) = series(&app).await?;
    // A kind of day that has no forecast (`?kind=bogus`, typed or from an
    // old link) is said so, with the kinds there are (issue 18), not
    // answered with another kind's figures as if asked for.
    if let Some(k) = q.kind.as_deref() {
        if !all.series.iter().any(|s| kind_key(s.kind) == k) {
            return Err(ApiError::Missing {
                code: "unknown_day_kind",
                ja: "その種類の日の混雑予想はありません。下の一覧から日の種類を選んでください"
                    .into(),
                en: "there is no forecast for that kind of day; choose one below".into(),
                links: all
                    .series
                    .iter()
                    .map(|s| {
                        (
                            format!("/forecast?kind={}", kind_key(s.kind)),
                            format!("{}の混雑予想", s.label_ja),
                        )
                    })
                    .chain(std::iter::once((
                        "/forecast".to_string(),
                        "今日の混雑予想".to_string(),
                    )))
                    .collect(),
            });
        }
    }
    let html = render(
        &app,
        &all,
        today,
        &office,
        q.kind.as_deref(),
        signed_in,
        |k| format!("/forecast?kind={k}"),
    )?;
    Ok(Html(html).into_response())
}

/// The page for one kind of day (`wanted`, else today's), its links to the
/// other kinds made by `link`.
fn render(
    app: &App,
    forecast: &Forecast,
    today: DayKind,
    office: &str,
    wanted: Option<&str>,
    signed_in: Option<(madoguchi_renderer::Value, Option<String>)>,
    link: impl Fn(&str) -> String,
) -> Result<String, ApiError> {
    let (menu, csrf) = signed_in.unzip();
    let all = &forecast.series;
    let wanted = wanted.map_or_else(|| kind_key(today), str::to_string);
    let chosen = all
        .iter()
        .find(|s| kind_key(s.kind) == wanted)
        .or_else(|| all.first());
    let kinds: Vec<(String, String, bool, String)> = all
        .iter()
        .map(|s| {
            let k = kind_key(s.kind);
            (
                k.clone(),
                s.label_ja.clone(),
                chosen.is_some_and(|c| c.kind == s.kind),
                link(&k),
            )
        })
        .collect();
    let html: Html<String> = app.pages.render(
        "forecast.html",
        context! {
            office, kinds, series => chosen, chart => chosen.map(svg),
            rows => chosen.map(rows),
            reliable => chosen.is_some_and(|c| c.days >= RELIABLE_DAYS),
            reliable_days => RELIABLE_DAYS,
            accuracy => forecast.accuracy_words(),
            menu, csrf => csrf.flatten(),
        },
    )?;
    Ok(html.0)
}

/// The forecast as static files for the internet relay (R6):
/// `forecast/index.html` (today's kind of day), `forecast/<kind>.html` for
/// every kind, linking each other, and `forecast.json`.
pub async fn public_files(app: &App) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let (all, _, office, today) = series(app).await?;
    let file = |k: &str| {
        let safe: String = k
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
            .collect();
        format!("/forecast/{safe}.html")
    };
    let mut out = vec![(
        "forecast/index.html".to_string(),
        render(app, &all, today, &office, None, None, file)?.into_bytes(),
    )];
    for s in &all.series {
        let k = kind_key(s.kind);
        let html = render(app, &all, today, &office, Some(&k), None, file)?;
        out.push((file(&k)[1..].to_string(), html.into_bytes()));
    }
    out.push((
        "forecast.json".to_string(),
        serde_json::to_vec(&all.series).map_err(|e| ApiError::Internal(e.to_string()))?,
    ));
    Ok(out)
}

/// `GET /forecast.json`.
pub async fn json(State(app): State<Arc<App>>) -> Result<Json<Vec<Series>>, ApiError> {
    Ok(Json(series(&app).await?.0.series))
}
