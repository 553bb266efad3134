//! 混雑予想 (congestion forecast, R6): from the hourly statistics of past
//! days, the expected arrivals, wait and number of people waiting for each
//! hour of the day — by weekday, and for the special kinds of day: the
//! Sunday openings, the month's last days and the moving season (March and
//! April). The number waiting follows Little's law: arrivals per minute ×
//! the mean wait in minutes.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

use super::{Cell, Dim, Granularity};

/// The kind of day a forecast is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    Weekday(u8),
    /// Weekdays from the 25th (month-end rush).
    MonthEnd,
    /// Weekdays in March and April (moving season).
    Season,
    /// Sunday and Saturday openings.
    Weekend,
}

impl DayKind {
    /// The kind of `date`, most specific first.
    pub fn of(date: NaiveDate) -> DayKind {
        match date.weekday() {
            Weekday::Sat | Weekday::Sun => DayKind::Weekend,
            _ if matches!(date.month(), 3 | 4) => DayKind::Season,
            _ if date.day() >= 25 => DayKind::MonthEnd,
            w => DayKind::Weekday(w.num_days_from_monday() as u8),
        }
    }

    pub fn label_ja(self) -> String {
        match self {
            DayKind::Weekday(d) => format!(
                "{}曜日",
                ["月", "火", "水", "木", "金"]
                    .get(usize::from(d))
                    .unwrap_or(&"?")
            ),
            DayKind::MonthEnd => "月末（25日以降の平日）".into(),
            DayKind::Season => "3〜4月の平日（転入・転出の多い時期）".into(),
            DayKind::Weekend => "土曜・日曜の開庁日".into(),
        }
    }

    pub fn label_en(self) -> String {
        match self {
            DayKind::Weekday(d) => ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
                .get(usize::from(d))
                .unwrap_or(&"?")
                .to_string(),
            DayKind::MonthEnd => "Month end (weekdays from the 25th)".into(),
            DayKind::Season => "Weekdays in March and April".into(),
            DayKind::Weekend => "Saturday and Sunday openings".into(),
        }
    }
}

/// One hour's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourForecast {
    pub hour: u32,
    /// Tickets issued in the hour, on average.
    pub arrivals: f64,
    /// Mean wait of those tickets, minutes.
    pub wait_min: f64,
    /// People waiting at a time in the hour, on average.
    pub waiting: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub kind: DayKind,
    pub label_ja: String,
    pub label_en: String,
    /// Past days the figures come from.
    pub days: usize,
    pub hours: Vec<HourForecast>,
}

/// Builds the forecast from hourly cells of the whole office
/// (`Engine::stats(.., Granularity::Hour)`).
pub fn forecast(hourly: &[(String, Dim, Cell)]) -> Vec<Series> {
    // (kind, hour) -> (issued, wait sum s, waits); kind -> distinct days
    let mut sums: BTreeMap<(DayKind, u32), (u64, u64, u64)> = BTreeMap::new();
    let mut days: BTreeMap<DayKind, std::collections::BTreeSet<NaiveDate>> = BTreeMap::new();
    for (bucket, dim, cell) in hourly {
        if *dim != Dim::All {
            continue;
        }
        let Some((date, hour)) = bucket.split_once(' ') else {
            continue;
        };
        let (Ok(date), Some(Ok(hour))) = (
            date.parse::<NaiveDate>(),
            hour.split(':').next().map(str::parse::<u32>),
        ) else {
            continue;
        };
        let kind = DayKind::of(date);
        days.entry(kind).or_default().insert(date);
        let e = sums.entry((kind, hour)).or_default();
        e.0 += cell.issued;
        e.1 += cell.wait_sum_s;
        e.2 += cell.waits;
    }
    days.into_iter()
        .map(|(kind, set)| {
            let n = set.len().max(1) as f64;
            let hours = sums
                .range((kind, 0)..=(kind, 23))
                .map(|(&(_, hour), &(issued, wait_sum, waits))| {
                    let arrivals = issued as f64 / n;
                    let wait_min = if waits > 0 {
                        wait_sum as f64 / waits as f64 / 60.0
                    } else {
                        0.0
                    };
                    HourForecast {
                        hour,
                        arrivals: round1(arrivals),
                        wait_min: round1(wait_min),
                        waiting: round1(arrivals / 60.0 * wait_min),
                    }
                })
                .collect();
            Series {
                kind,
                label_ja: kind.label_ja(),
                label_en: kind.label_en(),
                days: set.len(),
                hours,
            }
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The granularity the forecast reads.
pub const SOURCE: Granularity = Granularity::Hour;

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(issued: u64, waits: u64, wait_sum_s: u64) -> Cell {
        Cell {
            issued,
            waits,
            wait_sum_s,
            ..Cell::default()
        }
    }

    #[test]
    fn by_kind_of_day_and_hour_with_littles_law() {
        // Two Tuesdays and a month-end Wednesday.
        let rows = vec![
            (
                "2026-11-10 09:00".to_string(),
                Dim::All,
                cell(60, 60, 60 * 20 * 60),
            ),
            (
                "2026-11-17 09:00".to_string(),
                Dim::All,
                cell(120, 120, 120 * 40 * 60),
            ),
            (
                "2026-11-17 10:00".to_string(),
                Dim::All,
                cell(30, 30, 30 * 10 * 60),
            ),
            (
                "2026-11-25 09:00".to_string(),
                Dim::All,
                cell(90, 90, 90 * 30 * 60),
            ),
            (
                "2026-11-17 09:00".to_string(),
                Dim::Queue("idou".into()),
                cell(999, 0, 0),
            ),
        ];
        let f = forecast(&rows);
        let tue = f
            .iter()
            .find(|s| s.kind == DayKind::Weekday(1))
            .expect("Tuesday");
        assert_eq!(tue.days, 2);
        // 09:00: 180 arrivals over 2 days = 90/h; mean wait (60·20 + 120·40)/180 = 33.3 min;
        // waiting = 90/60 · 33.3 = 50.
        assert_eq!(
            tue.hours[0],
            HourForecast {
                hour: 9,
                arrivals: 90.0,
                wait_min: 33.3,
                waiting: 50.0
            }
        );
        assert_eq!(
            tue.hours[1],
            HourForecast {
                hour: 10,
                arrivals: 15.0,
                wait_min: 10.0,
                waiting: 2.5
            }
        );
        let end = f
            .iter()
            .find(|s| s.kind == DayKind::MonthEnd)
            .expect("month end");
        assert_eq!(end.hours[0].waiting, 45.0);
        assert_eq!(
            DayKind::of(NaiveDate::from_ymd_opt(2027, 3, 29).expect("d")),
            DayKind::Season
        );
        assert_eq!(
            DayKind::of(NaiveDate::from_ymd_opt(2026, 12, 13).expect("d")),
            DayKind::Weekend
        );
    }
}
