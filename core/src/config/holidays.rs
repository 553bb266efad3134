//! Japanese national holidays (国民の祝日), computed, so the calendar needs no
//! yearly table: fixed days, Happy-Monday days, the equinoxes (by the usual
//! approximation, exact for 1980–2099), substitute holidays (振替休日) and
//! citizens' holidays (国民の休日). Correct for the law as in force from 2020;
//! the one-off moves of the 2020 and 2021 Olympics are not modelled.

use chrono::{Datelike, NaiveDate, Weekday};

fn nth_monday(year: i32, month: u32, n: u8) -> u32 {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Mon, n)
        .map(|d| d.day())
        .unwrap_or(0)
}

fn equinox_day(year: i32, base: f64) -> u32 {
    let y = f64::from(year - 1980);
    (base + 0.242194 * y - (y / 4.0).floor()).floor() as u32
}

/// The name of the holiday on `date` without substitute or citizens' days.
fn base_holiday(date: NaiveDate) -> Option<&'static str> {
    let (y, m, d) = (date.year(), date.month(), date.day());
    Some(match (m, d) {
        (1, 1) => "元日",
        (2, 11) => "建国記念の日",
        (2, 23) if y >= 2020 => "天皇誕生日",
        (4, 29) => "昭和の日",
        (5, 3) => "憲法記念日",
        (5, 4) => "みどりの日",
        (5, 5) => "こどもの日",
        (8, 11) if y >= 2016 => "山の日",
        (11, 3) => "文化の日",
        (11, 23) => "勤労感謝の日",
        (1, _) if d == nth_monday(y, 1, 2) => "成人の日",
        (7, _) if d == nth_monday(y, 7, 3) => "海の日",
        (9, _) if d == nth_monday(y, 9, 3) => "敬老の日",
        (10, _) if d == nth_monday(y, 10, 2) => "スポーツの日",
        (3, _) if d == equinox_day(y, 20.8431) => "春分の日",
        (9, _) if d == equinox_day(y, 23.2488) => "秋分の日",
        _ => return None,
    })
}

/// The name of the national holiday on `date`, if it is one.
pub fn holiday_name(date: NaiveDate) -> Option<&'static str> {
    if let Some(name) = base_holiday(date) {
        return Some(name);
    }
    // 振替休日: the first non-holiday after a holiday that fell on a Sunday.
    let mut prev = date.pred_opt()?;
    while base_holiday(prev).is_some() {
        if prev.weekday() == Weekday::Sun {
            return Some("振替休日");
        }
        prev = prev.pred_opt()?;
    }
    // 国民の休日: a weekday between two holidays.
    if date.weekday() != Weekday::Sun
        && base_holiday(date.pred_opt()?).is_some()
        && base_holiday(date.succ_opt()?).is_some()
    {
        return Some("国民の休日");
    }
    None
}

pub fn is_holiday(date: NaiveDate) -> bool {
    holiday_name(date).is_some()
}
