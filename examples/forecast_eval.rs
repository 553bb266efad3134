//! Measures the congestion forecast (混雑予想) on a data folder:
//! `cargo run --release --example forecast_eval -- DATA_DIR [TODAY]`.
//! Prints the accuracy the forecast page states (each business day of the
//! last 30 days forecast from the days before it; the mean absolute error
//! of the hour's office-wide mean wait, weighted by its waits) and, for
//! comparison, the same measure for the forecast before issue 19: the
//! mean wait of past days of the same kind (weekday, month end from the
//! 25th, March–April, weekend) at that hour. TODAY defaults to the day
//! after the last recorded day.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use madoguchi_core::engine::{ConfigChoice, Engine, EngineOptions};
use madoguchi_core::stats::forecast::{self, ACCURACY_DAYS};
use madoguchi_core::stats::{Cell, Dim, Granularity};

/// The kind of day the forecast before issue 19 used.
fn old_kind(d: NaiveDate) -> u8 {
    match d.weekday() {
        Weekday::Sat | Weekday::Sun => 10,
        _ if matches!(d.month(), 3 | 4) => 11,
        _ if d.day() >= 25 => 12,
        w => w.num_days_from_monday() as u8,
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: forecast_eval DATA_DIR [TODAY]")?,
    );
    let (engine, _) = Engine::open(&dir, ConfigChoice::Stored, EngineOptions::default())?;
    let far = NaiveDate::from_ymd_opt(2000, 1, 1).context("date")?;
    let until = NaiveDate::from_ymd_opt(2100, 1, 1).context("date")?;
    let rows = engine.stats(far, until, Granularity::Hour)?;
    // The office's hourly cells by day.
    let mut days: BTreeMap<NaiveDate, [Cell; 24]> = BTreeMap::new();
    for (bucket, dim, cell) in &rows {
        if *dim != Dim::All {
            continue;
        }
        let Some((d, h)) = bucket.split_once(' ') else {
            continue;
        };
        let (Ok(d), Some(Ok(h))) = (
            d.parse::<NaiveDate>(),
            h.split(':').next().map(str::parse::<usize>),
        ) else {
            continue;
        };
        if let Some(slot) = days.entry(d).or_insert([Cell::default(); 24]).get_mut(h) {
            slot.merge(cell);
        }
    }
    let last = *days.keys().last().context("no recorded day")?;
    let today = match args.next() {
        Some(t) => t.parse().context("TODAY as YYYY-MM-DD")?,
        None => last.succ_opt().context("date")?,
    };
    let upto: Vec<_> = rows
        .iter()
        .filter(|(b, _, _)| b.get(..10).is_some_and(|d| d < today.to_string().as_str()))
        .cloned()
        .collect();
    let f = forecast::forecast(engine.config(), &engine.state().meta.learned, &upto, today);
    println!("as of {today}; {} recorded days", days.len());
    match &f.accuracy {
        Some(a) => println!(
            "forecast (issue 19): {} days, hourly mean wait off by {:.1} min on average (actual mean {:.1} min, {:.1} %)",
            a.days,
            a.mae_min,
            a.actual_min,
            100.0 * a.mae_min / a.actual_min.max(1e-9)
        ),
        None => println!("forecast (issue 19): too little history"),
    }
    println!("{}", f.accuracy_words().0);
    let since = today
        .checked_sub_days(Days::new(ACCURACY_DAYS))
        .context("date")?;
    let (mut bias, mut bias_n) = (0.0, 0.0);
    if std::env::var_os("FORECAST_DAYS").is_some() {
        // Per day: forecast and real mean wait (weighted by the hour's
        // waits), then each hour of the last day.
        for (d, hours) in &f.past {
            let Some(cells) = days.get(d) else { continue };
            let (mut fs, mut rs, mut n) = (0.0, 0.0, 0.0);
            for (h, c) in cells.iter().enumerate() {
                if c.waits == 0 {
                    continue;
                }
                let w = c.waits as f64;
                let shown = hours
                    .iter()
                    .find(|x| x.hour as usize == h)
                    .map_or(0.0, |x| x.wait_min);
                fs += w * shown;
                rs += w * c.wait_sum_s as f64 / 60.0 / w;
                n += w;
            }
            println!(
                "{d}: forecast {:.1} min, real {:.1} min",
                fs / n.max(1.0),
                rs / n.max(1.0)
            );
            if *d >= since {
                bias += fs - rs;
                bias_n += n;
            }
        }
        if let Some((d, hours)) = f.past.last() {
            for x in hours {
                let real = days
                    .get(d)
                    .and_then(|c| c.get(x.hour as usize))
                    .filter(|c| c.waits > 0)
                    .map_or(0.0, |c| c.wait_sum_s as f64 / 60.0 / c.waits as f64);
                println!(
                    "  {d} {:02}:00 arrivals {:.0} forecast {:.1} real {real:.1}",
                    x.hour, x.arrivals, x.wait_min
                );
            }
        }
    }

    if bias_n > 0.0 {
        println!(
            "bias (every recorded day of the window): {:+.1} min",
            bias / bias_n
        );
    }
    // The forecast before issue 19, scored the same way.
    let mut sums: BTreeMap<(u8, usize), (f64, f64)> = BTreeMap::new();
    let (mut err, mut real, mut weight, mut scored, mut seen) = (0.0, 0.0, 0.0, 0, 0);
    for (d, cells) in days.range(..today) {
        let k = old_kind(*d);
        if *d >= since && seen >= 5 {
            for (h, c) in cells.iter().enumerate() {
                if c.waits == 0 {
                    continue;
                }
                let n = c.waits as f64;
                let actual = c.wait_sum_s as f64 / 60.0 / n;
                let shown = sums
                    .get(&(k, h))
                    .filter(|s| s.1 > 0.0)
                    .map_or(0.0, |s| s.0 / s.1);
                err += n * (shown - actual).abs();
                real += n * actual;
                weight += n;
            }
            scored += 1;
        }
        for (h, c) in cells.iter().enumerate() {
            let s = sums.entry((k, h)).or_default();
            s.0 += c.wait_sum_s as f64 / 60.0;
            s.1 += c.waits as f64;
        }
        seen += 1;
    }
    if weight > 0.0 {
        println!(
            "forecast before issue 19 (mean of past days of the kind): {scored} days, off by {:.1} min on average (actual mean {:.1} min, {:.1} %)",
            err / weight,
            real / weight,
            100.0 * err / real
        );
    }
    Ok(())
}
