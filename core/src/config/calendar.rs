//! The opening calendar: which days the office opens and for which hours
//! (REQUIREMENTS.md "The setting"). Rules are matched in order and the last
//! match wins, so "Wednesday 08:00–20:00" can follow "weekdays 08:00–18:00";
//! yearly closed ranges (12-29/01-03) beat rules; extra days beat everything.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::Serialize;

use super::holidays::is_holiday;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    fn from_chrono(w: chrono::Weekday) -> Weekday {
        match w {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }

    fn parse(s: &str) -> Option<Weekday> {
        Some(match s {
            "mon" => Weekday::Mon,
            "tue" => Weekday::Tue,
            "wed" => Weekday::Wed,
            "thu" => Weekday::Thu,
            "fri" => Weekday::Fri,
            "sat" => Weekday::Sat,
            "sun" => Weekday::Sun,
            _ => return None,
        })
    }
}

/// Which days a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaySelector {
    /// Monday to Friday.
    Weekdays,
    /// Every such weekday.
    Every(Weekday),
    /// The n-th (1–5) such weekday of the month, optionally of one month only.
    Nth {
        n: u8,
        weekday: Weekday,
        month: Option<u32>,
    },
    /// The last such weekday of the month, optionally of one month only.
    Last {
        weekday: Weekday,
        month: Option<u32>,
    },
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl FromStr for DaySelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("{s:?} is not a day rule: use \"weekdays\", a weekday such as \"wed\", \"2nd sun\", \"4th sat\", \"1st sun apr\" or \"last sun mar\"")
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        let month = |w: Option<&&str>| -> Result<Option<u32>, String> {
            match w {
                None => Ok(None),
                Some(m) => MONTHS
                    .iter()
                    .position(|x| x == m)
                    .map(|i| Some(i as u32 + 1))
                    .ok_or_else(bad),
            }
        };
        match words.as_slice() {
            ["weekdays"] => Ok(DaySelector::Weekdays),
            [w] => Weekday::parse(w).map(DaySelector::Every).ok_or_else(bad),
            [nth, w, rest @ ..] if rest.len() <= 1 => {
                let weekday = Weekday::parse(w).ok_or_else(bad)?;
                let month = month(rest.first())?;
                if *nth == "last" {
                    return Ok(DaySelector::Last { weekday, month });
                }
                let n = match *nth {
                    "1st" => 1,
                    "2nd" => 2,
                    "3rd" => 3,
                    "4th" => 4,
                    "5th" => 5,
                    _ => return Err(bad()),
                };
                Ok(DaySelector::Nth { n, weekday, month })
            }
            _ => Err(bad()),
        }
    }
}

impl DaySelector {
    fn matches(&self, d: NaiveDate) -> bool {
        let wd = Weekday::from_chrono(d.weekday());
        let month_ok = |m: &Option<u32>| m.is_none_or(|m| m == d.month());
        match self {
            DaySelector::Weekdays => !matches!(wd, Weekday::Sat | Weekday::Sun),
            DaySelector::Every(w) => *w == wd,
            DaySelector::Nth { n, weekday, month } => {
                *weekday == wd && month_ok(month) && (d.day() - 1) / 7 + 1 == u32::from(*n)
            }
            DaySelector::Last { weekday, month } => {
                *weekday == wd
                    && month_ok(month)
                    && d.checked_add_days(chrono::Days::new(7))
                        .is_some_and(|n| n.month() != d.month())
            }
        }
    }
}

/// Opening hours of one day, local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl FromStr for Hours {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("hours {s:?} must look like \"08:30-18:00\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let open = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
        let close = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
        if close <= open {
            return Err(format!(
                "hours {s:?}: closing time must be after opening time"
            ));
        }
        Ok(Hours { open, close })
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.open.format("%H:%M"),
            self.close.format("%H:%M")
        )
    }
}

/// A yearly closed range by month and day, e.g. 12-29/01-03 (wraps the year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthDayRange {
    from: (u32, u32),
    to: (u32, u32),
}

impl FromStr for MonthDayRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("closed range {s:?} must look like \"12-29/01-03\"");
        let md = |x: &str| -> Result<(u32, u32), String> {
            let (m, d) = x.trim().split_once('-').ok_or_else(bad)?;
            let m: u32 = m.parse().map_err(|_| bad())?;
            let d: u32 = d.parse().map_err(|_| bad())?;
            // 2024 is a leap year, so 02-29 is accepted.
            NaiveDate::from_ymd_opt(2024, m, d).ok_or_else(bad)?;
            Ok((m, d))
        };
        let (a, b) = s.split_once('/').ok_or_else(bad)?;
        Ok(MonthDayRange {
            from: md(a)?,
            to: md(b)?,
        })
    }
}

impl MonthDayRange {
    fn contains(&self, d: NaiveDate) -> bool {
        let x = (d.month(), d.day());
        if self.from <= self.to {
            self.from <= x && x <= self.to
        } else {
            x >= self.from || x <= self.to
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRule {
    pub name: String,
    pub on: DaySelector,
    pub hours: Hours,
    /// The rule does not apply on national holidays (祝日).
    pub except_holidays: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDay {
    pub name: String,
    pub date: NaiveDate,
    pub hours: Hours,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    pub closed: Vec<MonthDayRange>,
    pub rules: Vec<DayRule>,
    pub extra: Vec<ExtraDay>,
}

/// A day the office opens, with the rule that opened it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenDay {
    pub date: NaiveDate,
    pub hours: Hours,
    pub reason: String,
}

impl Calendar {
    /// The opening of `date`, or `None` if the office is closed that day.
    pub fn opening(&self, date: NaiveDate) -> Option<OpenDay> {
        if let Some(x) = self.extra.iter().rev().find(|x| x.date == date) {
            return Some(OpenDay {
                date,
                hours: x.hours,
                reason: x.name.clone(),
            });
        }
        if self.closed.iter().any(|c| c.contains(date)) {
            return None;
        }
        let holiday = is_holiday(date);
        self.rules
            .iter()
            .rev()
            .find(|r| r.on.matches(date) && !(r.except_holidays && holiday))
            .map(|r| OpenDay {
                date,
                hours: r.hours,
                reason: r.name.clone(),
            })
    }

    /// Every open day from `from` (inclusive), in order, without end.
    pub fn open_days_from(&self, from: NaiveDate) -> impl Iterator<Item = OpenDay> + '_ {
        from.iter_days().filter_map(|d| self.opening(d))
    }
}
