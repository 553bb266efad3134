//! Reports written automatically when a business day closes (R7): the day's
//! report, and after the last business day of a month the month's, as Excel
//! (hourly, daily and monthly sheets as they apply) and CSV, into the
//! configured folder. Files are written whole (temp file, then rename).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use madoguchi_core::engine::Engine;
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
