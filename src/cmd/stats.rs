//! `madoguchi stats`: statistics reports as CSV or Excel (R7), read from the
//! statistics kept as events arrive — never from a rescan of the log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use madoguchi_core::engine::Engine;
use madoguchi_core::stats::Granularity;
use madoguchi_renderer::export::{self, Encoding};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Hour,
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Xlsx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CsvEncoding {
    /// UTF-8 with BOM (opens correctly in Japanese Excel).
    Utf8,
    /// Shift_JIS, for older tools.
    Sjis,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// First day (YYYY-MM-DD); default: the first of the current month.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD), included; default: today.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Granularity. For xlsx without it: one sheet each for hour, day and month.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// CSV text encoding.
    #[arg(long, value_enum, default_value = "utf8")]
    pub encoding: CsvEncoding,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

fn granularity(b: By) -> Granularity {
    match b {
        By::Hour => Granularity::Hour,
        By::Day => Granularity::Day,
        By::Month => Granularity::Month,
    }
}

/// The report's bytes (shared with the web page).
pub fn report(
    engine: &Engine,
    from: NaiveDate,
    to: NaiveDate,
    by: Option<Granularity>,
    format: Format,
    encoding: Encoding,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<u8>> {
    let sheets = gather(engine, from, to, by, format, progress)?;
    progress("書き出し中");
    render(&sheets, format, encoding)
}

/// The report's rows, read from the engine (the part that needs it).
pub fn gather(
    engine: &Engine,
    from: NaiveDate,
    to: NaiveDate,
    by: Option<Granularity>,
    format: Format,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<(Granularity, Vec<export::Row>)>> {
    anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    let grans: Vec<Granularity> = match (by, format) {
        (Some(g), _) => vec![g],
        (None, Format::Xlsx) => Granularity::ALL.to_vec(),
        (None, Format::Csv) => vec![Granularity::Day],
    };
    let mut sheets = Vec::new();
    for g in grans {
        progress(&format!("{}の集計を読み込み中", export::sheet_name(g)));
        let cells = engine
            .stats(from, to, g)
            .context("cannot read the statistics")?;
        sheets.push((g, export::rows(engine.config(), &cells)));
    }
    Ok(sheets)
}

/// The report file from its rows: needs no engine, so the office server
/// writes it off the engine thread (staff commands do not wait for it).
pub fn render(
    sheets: &[(Granularity, Vec<export::Row>)],
    format: Format,
    encoding: Encoding,
) -> Result<Vec<u8>> {
    Ok(match format {
        Format::Csv => export::csv(
            &sheets.first().map(|s| s.1.clone()).unwrap_or_default(),
            encoding,
        )?,
        Format::Xlsx => export::xlsx(sheets)?,
    })
}

/// Without `--from`/`--to`: the current month so far, by the office's
/// calendar (`today`), or the month of `--to`, or from `--from` to today.
fn period(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> (NaiveDate, NaiveDate) {
    let to = to.unwrap_or(today);
    let from = from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
    (from, to)
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    let engine = super::open_engine(data, config)?;
    let today = chrono::Utc::now()
        .with_timezone(&engine.config().office.utc_offset)
        .date_naive();
    let (from, to) = period(args.from, args.to, today);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let encoding = match args.encoding {
        CsvEncoding::Utf8 => Encoding::Utf8Bom,
        CsvEncoding::Sjis => Encoding::ShiftJis,
    };
    let bytes = report(
        &engine,
        from,
        to,
        args.by.map(granularity),
        args.format,
        encoding,
        &mut |m| {
            bar.set_message(m.to_string());
            bar.tick();
        },
    )?;
    bar.finish_and_clear();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("wrote {} ({} bytes)", args.out.display(), bytes.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn without_dates_the_current_month_so_far() {
        let today = d("2026-12-06");
        assert_eq!(period(None, None, today), (d("2026-12-01"), today));
        assert_eq!(
            period(None, Some(d("2026-11-20")), today),
            (d("2026-11-01"), d("2026-11-20"))
        );
        assert_eq!(
            period(Some(d("2026-10-03")), None, today),
            (d("2026-10-03"), today)
        );
    }
}
