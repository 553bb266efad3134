//! The office clock (issue 16): the one place that says what time it is for
//! the office, so nothing else computes `now = max(wall, last event)` or a
//! business date of its own.
//!
//! Time stays an input to every command (DESIGN.md principles): the engine
//! asks its clock only for commands sent without a time, and a replay uses
//! the recorded times. The clock never goes behind the last recorded event,
//! so a simulated or imported day that lies ahead of the wall clock keeps
//! its order.
//!
//! Tests and demonstrations can start the clock at a chosen instant with
//! `MADOGUCHI_CLOCK=2026-11-30T08:30:00+09:00`: from there it runs at the
//! wall clock's pace.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

use crate::model::Millis;

/// The environment variable that starts the clock at a chosen instant.
pub const CLOCK_VAR: &str = "MADOGUCHI_CLOCK";

/// Where the office's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The machine's clock.
    #[default]
    Wall,
    /// The machine's clock moved by this many milliseconds (a test or
    /// demonstration clock started at a chosen instant).
    Shifted(i64),
    /// Always this instant (unit tests).
    Fixed(Millis),
}

/// `MADOGUCHI_CLOCK` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{CLOCK_VAR}={value:?} is not an RFC 3339 time with offset (like 2026-11-30T08:30:00+09:00)"
)]
pub struct ClockError {
    value: String,
}

impl Clock {
    /// The wall clock, or the one `MADOGUCHI_CLOCK` starts.
    pub fn from_env() -> Result<Clock, ClockError> {
        match std::env::var(CLOCK_VAR) {
            Ok(v) if !v.trim().is_empty() => Clock::starting_at(&v),
            _ => Ok(Clock::Wall),
        }
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: &str) -> Result<Clock, ClockError> {
        let t = DateTime::parse_from_rfc3339(start.trim()).map_err(|_| ClockError {
            value: start.to_string(),
        })?;
        Ok(Clock::Shifted(
            t.timestamp_millis() - Utc::now().timestamp_millis(),
        ))
    }

    /// The clock's reading, on its own.
    pub fn read(&self) -> Millis {
        match *self {
            Clock::Wall => Millis(Utc::now().timestamp_millis()),
            Clock::Shifted(by) => Millis(Utc::now().timestamp_millis().saturating_add(by)),
            Clock::Fixed(at) => at,
        }
    }

    /// The time for a command or a view: the reading, but never before
    /// `last_event` (the time of the last recorded event).
    pub fn now(&self, last_event: Millis) -> Millis {
        self.read().max(last_event)
    }
}

/// The office's calendar date at `at`, in its time zone (the business date
/// a day opened now would carry).
pub fn office_date(at: Millis, offset: FixedOffset) -> NaiveDate {
    at.to_datetime(offset).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_behind_the_last_event() {
        let c = Clock::Fixed(Millis(1_000));
        assert_eq!(c.now(Millis(500)), Millis(1_000));
        assert_eq!(c.now(Millis(5_000)), Millis(5_000));
    }

    #[test]
    fn a_started_clock_reads_its_start_and_runs_on() {
        let c = Clock::starting_at("2026-11-30T08:30:00+09:00").expect("clock");
        let jst = FixedOffset::east_opt(9 * 3600).expect("jst");
        let now = c.read().to_datetime(jst);
        assert_eq!(now.date_naive().to_string(), "2026-11-30");
        assert_eq!(office_date(c.read(), jst).to_string(), "2026-11-30");
        assert!(Clock::starting_at("tomorrow").is_err());
    }

    #[test]
    fn the_office_date_is_the_tokyo_date_not_the_utc_one() {
        // 2026-11-30 23:30 UTC is already 1 December in Tokyo.
        let at = Millis(
            DateTime::parse_from_rfc3339("2026-11-30T23:30:00Z")
                .expect("time")
                .timestamp_millis(),
        );
        let jst = FixedOffset::east_opt(9 * 3600).expect("jst");
        assert_eq!(office_date(at, jst).to_string(), "2026-12-01");
        let utc = FixedOffset::east_opt(0).expect("utc");
        assert_eq!(office_date(at, utc).to_string(), "2026-11-30");
    }
}
