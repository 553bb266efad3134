//! The statistics page (R7, R15): admins and auditors pick a period and a
//! granularity and download CSV or Excel; the page shows that it is working
//! while the report is made, and previews the daily totals.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Days, NaiveDate};
use madoguchi_core::stats::{Dim, Granularity};
use madoguchi_renderer::context;
use madoguchi_renderer::export::{self, Encoding};
use serde::Deserialize;

use super::api::parse_body;
use super::auth::Role;
use super::error::ApiError;
use super::App;

use crate::cmd::stats::{gather, render, Format};

/// Set on a report of a period without records: `future` (wholly after
/// the office's today) or `none` (pages-rt9 F3).
const NO_RECORDS: &str = "x-madoguchi-no-records";

/// Set on a report of a period that runs past the office's today: the
/// first day without records yet (`2026-12-08`), so the page says that
/// those days are empty because they have not come (pages12 brief 2,
/// outside tester pages-rt10 N6).
const FUTURE_FROM: &str = "x-madoguchi-future-from";

/// The first day of `from..=to` after `today`, when the period runs past
/// today but does not lie wholly after it.
fn future_from(from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Option<NaiveDate> {
    (from <= today && to > today)
        .then(|| today.succ_opt())
        .flatten()
}

/// Reports being made (one at a time).
static REPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

const READERS: &[Role] = &[Role::Admin, Role::Auditor];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    /// Dates as typed (`2026-12-07`); read by [`date_field`] so a date the
    /// browser let through (a five-digit year) is told in words, not as a
    /// malformed request (outside tester pages-rt9 F3).
    from: String,
    to: String,
    /// "hour", "day", "month", or "all" (xlsx: one sheet each).
    by: String,
    format: String,
    #[serde(default)]
    encoding: Option<String>,
}

/// `POST /api/statistics/report`: the report file.
pub async fn make_report(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    app.auth.require(&method, &headers, READERS)?;
    // JSON only, as for sign-in: a cross-site form cannot make a report
    // run (red-team finding).
    super::extract::require_json(&headers)?;
    let r: ReportRequest = parse_body(body)?;
    let by = match r.by.as_str() {
        "hour" => Some(Granularity::Hour),
        "day" => Some(Granularity::Day),
        "month" => Some(Granularity::Month),
        "all" => None,
        other => return Err(ApiError::BadRequest(format!("by {other:?}"))),
    };
    let format = match r.format.as_str() {
        "csv" => Format::Csv,
        "xlsx" => Format::Xlsx,
        other => return Err(ApiError::BadRequest(format!("format {other:?}"))),
    };
    let encoding = match r.encoding.as_deref() {
        None | Some("utf8") => Encoding::Utf8Bom,
        Some("sjis") => Encoding::ShiftJis,
        Some(other) => return Err(ApiError::BadRequest(format!("encoding {other:?}"))),
    };
    let from = date_field("開始日", &r.from)?;
    let to = date_field("終了日", &r.to)?;
    period_check(from, to)?;
    // One report at a time: a report holds the engine thread while it
    // reads its cells, so parallel requests are answered
    // 「混み合っています」 instead of queueing staff commands behind them
    // (red-team finding: four report loops made commands wait 6 s).
    let _one = REPORTS.try_acquire().map_err(|_| ApiError::Busy)?;
    let handle = app.engine.clone();
    // Only the reading holds the engine thread; the file (an xlsx of three
    // years by the hour is most of the work) is written beside it.
    let (bytes, none, after) = tokio::task::spawn_blocking(move || {
        let (sheets, none, after) = handle
            .read(move |e| {
                // A period with no records is marked, so the page says so
                // instead of downloading an empty workbook (outside tester
                // pages-rt9 F3); an API client still gets the file.
                let any = e
                    .stats(from, to, Granularity::Day)
                    .map_err(|x| ApiError::Internal(format!("{x:#}")))?
                    .iter()
                    .any(|(_, d, _)| matches!(d, Dim::All));
                let none = (!any).then(|| {
                    if from > e.office_date() {
                        "future"
                    } else {
                        "none"
                    }
                });
                let after = future_from(from, to, e.office_date());
                gather(e, from, to, by, format, &mut |_| {})
                    .map(|s| (s, none, after))
                    .map_err(|x| ApiError::BadRequest(format!("{x:#}")))
            })
            .map_err(ApiError::from)??;
        render(&sheets, format, encoding)
            .map(|b| (b, none, after))
            .map_err(|x| ApiError::Internal(format!("{x:#}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let (kind, ext) = match format {
        Format::Csv if encoding == Encoding::ShiftJis => ("text/csv; charset=Shift_JIS", "csv"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
    };
    let name = format!("madoguchi-stats-{from}-{to}-{}.{ext}", r.by);
    let mut answer = (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response();
    if let Some(why) = none {
        answer
            .headers_mut()
            .insert(NO_RECORDS, header::HeaderValue::from_static(why));
    }
    if let Some(day) = after.and_then(|d| header::HeaderValue::from_str(&d.to_string()).ok()) {
        answer.headers_mut().insert(FUTURE_FROM, day);
    }
    Ok(answer)
}

/// A date of the report's period as typed, or a refusal that names the
/// field (as the page labels it) and the form to use (pages-rt9 F3).
fn date_field(which: &str, typed: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(typed.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (1900..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| {
            let shown: String = typed.chars().take(20).collect();
            ApiError::Invalid {
                ja: format!("{which}（{}）「{shown}」は日付として読めません。2026-12-07 のように 年-月-日（年は 4 桁）で入力してください", if which == "開始日" { "from" } else { "to" }),
                en: format!("the {} date {shown:?} is not a date; write it as 2026-12-07 (a four-digit year)", if which == "開始日" { "start" } else { "end" }),
            }
        })
}

/// A period runs forwards and covers at most three years; said in
/// Japanese with the dates given (the report and the page alike).
fn period_check(from: NaiveDate, to: NaiveDate) -> Result<(), ApiError> {
    if from > to {
        return Err(ApiError::Invalid {
            ja: format!("期間の始め（{from}）が終わり（{to}）より後になっています。始めの日付を終わりの日付以前にしてください"),
            en: format!("the period must run forwards: its start ({from}) is after its end ({to}); make the start no later than the end"),
        });
    }
    if (to - from).num_days() > 3 * 366 {
        return Err(ApiError::Invalid {
            ja: format!("期間が長すぎます（{from} 〜 {to}）。一度に選べるのは 3 年までです。期間を分けてください"),
            en: "the period must be at most three years; choose it in parts".into(),
        });
    }
    Ok(())
}

/// The page's period as typed into the address: strings, so a date that
/// is no date is named with its field (pages-rt9 F3: `?from=72026-11-24`
/// answered 「リクエストの形式が正しくありません」).
#[derive(Debug, Deserialize)]
pub struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /statistics`: the page.
pub async fn page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    super::extract::UrlQuery(p): super::extract::UrlQuery<Period>,
) -> Result<Response, ApiError> {
    let caller = match super::gate::person(&app, &method, &headers, READERS, "/statistics") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let s = app.status().await?;
    let office_date = app
        .engine
        .read_async(|e| e.office_date())
        .await
        .map_err(ApiError::from)?;
    let today = s.date.unwrap_or(office_date);
    let typed = |v: Option<String>| v.filter(|x| !x.trim().is_empty());
    let to = match typed(p.to) {
        Some(t) => date_field("終了日", &t)?,
        None => today,
    };
    let from = match typed(p.from) {
        Some(f) => date_field("開始日", &f)?,
        None => to.checked_sub_days(Days::new(13)).unwrap_or(to),
    };
    let future = from > office_date.max(today);
    // A backwards or too long period typed into the address is named, not
    // an internal error (issue 18).
    period_check(from, to)?;
    let handle = app.engine.clone();
    let preview = tokio::task::spawn_blocking(move || {
        handle.read(move |e| {
            e.stats(from, to, Granularity::Day).map(|cells| {
                let keep: Vec<_> = cells
                    .into_iter()
                    .filter(|(_, d, _)| matches!(d, Dim::All | Dim::Queue(_)))
                    .collect();
                export::rows(e.config(), &keep)
                    .into_iter()
                    .map(|r| r.fields().to_vec())
                    .collect::<Vec<_>>()
            })
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(ApiError::from)?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let html: Html<String> = app.pages.render(
        "statistics.html",
        context! {
            office => s.office.ja, user => caller.name, csrf => caller.csrf(),
            menu => super::gate::menu(Some(&caller), "/statistics"),
            from, to, headers => export::HEADERS, preview, future, today => office_date.max(today),
            future_from => future_from(from, to, office_date.max(today)),
        },
    )?;
    Ok(html.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_running_past_today_names_its_first_future_day() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap_or_default();
        let today = d(12, 7);
        assert_eq!(future_from(d(12, 1), d(12, 31), today), Some(d(12, 8)));
        assert_eq!(future_from(d(12, 7), d(12, 8), today), Some(d(12, 8)));
        assert_eq!(future_from(d(12, 1), d(12, 7), today), None);
        // Wholly after today: said apart (`future`), not here.
        assert_eq!(future_from(d(12, 8), d(12, 31), today), None);
    }

    /// A date the browser's date field lets through but no office has (a
    /// five-digit year) is told in Japanese with the form to use (outside
    /// tester pages-rt9 F3: the generic 「リクエストの形式が正しくありません」).
    #[test]
    fn a_date_that_is_no_date_is_told_in_words() {
        assert_eq!(
            date_field("開始日", "2026-12-07").ok(),
            NaiveDate::from_ymd_opt(2026, 12, 7)
        );
        for typed in ["20266-01-01", "2026-13-01", "", "yesterday"] {
            match date_field("開始日", typed) {
                Err(ApiError::Invalid { ja, .. }) => {
                    assert!(ja.contains("開始日"), "{ja}");
                    assert!(ja.contains("年-月-日"), "{ja}");
                }
                other => panic!("{typed:?}: {other:?}"),
            }
        }
    }
}
