//! Reports written automatically when a business day closes (R7): the day's
//! report, and after the last business day of a month the month's, as Excel
//! (hourly, daily and monthly sheets as they apply) and CSV, into the
//! configured folder. Files are written whole (temp file, then rename).
//!
//! The writer is a subscriber of the commit feed, not a step of any one
//! command path: a day closed at a staff station, applied by
//! `madoguchi import` or followed by a standby gets the same reports. It
//! keeps its cursor in `<data>/reports.cursor`, so a day that closed while
//! the server was down is reported when it starts again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use madoguchi_core::engine::{Commit, Engine};
use madoguchi_core::model::Event;
use madoguchi_core::stats::Granularity;
use madoguchi_renderer::export::{self, Encoding};

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn sheets(
    engine: &Engine,
    from: NaiveDate,
    to: NaiveDate,
    grans: &[Granularity],
) -> Result<Vec<(Granularity, Vec<export::Row>)>> {
    grans
        .iter()
        .map(|&g| {
            Ok((
                g,
                export::rows(engine.config(), &engine.stats(from, to, g)?),
            ))
        })
        .collect()
}

/// The business days closed in `commits`, in order.
pub fn closed_days(commits: &[Arc<Commit>]) -> Vec<NaiveDate> {
    commits
        .iter()
        .filter_map(|c| c.body())
        .flat_map(|b| b.events.iter())
        .filter_map(|e| match e {
            Event::DayClosed { date } => Some(*date),
            _ => None,
        })
        .collect()
}

fn cursor_path(data: &Path) -> PathBuf {
    data.join("reports.cursor")
}

/// The last record whose closed days have been reported, if one was kept.
pub fn cursor(data: &Path) -> Option<u64> {
    std::fs::read_to_string(cursor_path(data))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Keeps the cursor (written whole: temp file, then rename).
pub fn save_cursor(data: &Path, seq: u64) -> Result<()> {
    write(&cursor_path(data), format!("{seq}\n").as_bytes())
}

/// Writes the reports due for every day closed in `commits` and moves the
/// cursor past them; returns the files written.
pub fn follow(engine: &Engine, data: &Path, commits: &[Arc<Commit>]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for date in closed_days(commits) {
        files.extend(after_close(engine, data, date)?);
    }
    if let Some(last) = commits.last() {
        save_cursor(data, last.seq)?;
    }
    Ok(files)
}

/// Writes the reports due after `date` closed; returns the files written.
pub fn after_close(engine: &Engine, data: &Path, date: NaiveDate) -> Result<Vec<PathBuf>> {
    let cfg = engine.config();
    let folder = if cfg.reports.folder.is_absolute() {
        cfg.reports.folder.clone()
    } else {
        data.join(&cfg.reports.folder)
    };
    // Statistics are bucketed by when things happened: the business day's
    // buckets run from the date it opened to the date it closed (which can
    // differ from its name, e.g. a day that ran past midnight).
    let offset = cfg.office.utc_offset;
    let (from, to) = match engine.state().meta.day.as_ref().filter(|d| d.date == date) {
        Some(d) => (
            d.opened_at.to_datetime(offset).date_naive(),
            d.closed_at
                .unwrap_or(d.opened_at)
                .to_datetime(offset)
                .date_naive(),
        ),
        None => (date, date),
    };
    let mut written = Vec::new();
    if cfg.reports.daily {
        let s = sheets(engine, from, to, &[Granularity::Hour, Granularity::Day])?;
        let xlsx = folder.join(format!("daily/{date}.xlsx"));
        write(&xlsx, &export::xlsx(&s)?)?;
        let csv = folder.join(format!("daily/{date}.csv"));
        write(&csv, &export::csv(&s[0].1, Encoding::Utf8Bom)?)?;
        written.extend([xlsx, csv]);
    }
    let next_open = cfg
        .calendar
        .open_days_from(date.succ_opt().unwrap_or(date))
        .take(1)
        .next();
    let month_ends =
        next_open.is_none_or(|d| d.date.month() != date.month() || d.date.year() != date.year());
    if cfg.reports.monthly && month_ends {
        let first = date.with_day(1).unwrap_or(date).min(from);
        let s = sheets(engine, first, to.max(date), &Granularity::ALL)?;
        let name = date.format("%Y-%m");
        let xlsx = folder.join(format!("monthly/{name}.xlsx"));
        write(&xlsx, &export::xlsx(&s)?)?;
        let csv = folder.join(format!("monthly/{name}.csv"));
        write(&csv, &export::csv(&s[1].1, Encoding::Utf8Bom)?)?;
        written.extend([xlsx, csv]);
    }
    Ok(written)
}
