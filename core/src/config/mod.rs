//! Office configuration: sections (係), queues (reception categories and later
//! stages), counters, procedure tags (業種), the opening calendar and the wait
//! estimate's parameters (R1, R3, R4, R8, R17).
//!
//! Loading has two stages, as in zola's `components/config`: [`Config::parse`]
//! is pure (text in, validated model or [`ConfigError`] out, no I/O) and
//! [`Config::from_file`] reads a file and names it in errors. Every error names
//! the file, the line and what is wrong, so a clerk editing the TOML can fix it.

mod calendar;
mod holidays;
pub mod host;
mod raw;

pub use calendar::{Calendar, DayRule, ExtraDay, Hours, OpenDay, Weekday};
pub use holidays::{holiday_name, is_holiday};
pub use host::{HostSettings, Printer, RelayTarget, ServerSettings};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

/// The embedded default office: a Bunkyo-like 戸籍住民課 (see REQUIREMENTS.md).
pub const DEFAULT_OFFICE_TOML: &str = include_str!("default-office.toml");

/// Name shown for the embedded configuration in error messages.
pub const DEFAULT_OFFICE_NAME: &str = "<embedded default office>";

/// A configuration problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    /// The file the configuration came from.
    pub file: String,
    /// 1-based line of the offending value (0 when the file could not be read).
    pub line: usize,
    /// What is wrong, in plain words.
    pub message: String,
}

/// Text in Japanese first, with the visitor languages where they are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Names {
    pub ja: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ko: Option<String>,
}

/// Shapes that accompany each queue's colour, so colour is never the only cue
/// (R4, R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Star,
    Hexagon,
}

/// How a counter chooses the next ticket among the queues it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallPolicy {
    /// The first non-empty queue in the counter's order.
    #[default]
    Strict,
    /// Whoever has waited longest across all the counter's queues.
    LongestWait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    pub name: Names,
    pub utc_offset: FixedOffset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub id: String,
    pub name: Names,
}

/// A reception category's number range (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRange {
    pub from: u32,
    pub to: u32,
}

impl NumberRange {
    pub fn contains(&self, n: u32) -> bool {
        (self.from..=self.to).contains(&n)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub id: String,
    pub name: Names,
    /// `Some` for a reception category (a kiosk button); `None` for a stage.
    pub numbers: Option<NumberRange>,
    pub colour: String,
    pub shape: Shape,
    /// The prior for the wait estimate before any service has been timed.
    pub typical_service_secs: f64,
    /// 受付終了 (issue 19): when issuing in this category closes by itself
    /// (see [`crate::state::closing`]); categories only.
    pub closing: IssuingClose,
}

/// When a category stops issuing by itself before the business day closes
/// (受付終了, issue 19). Staff can reopen it for the rest of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IssuingClose {
    /// The last issuing time (office local time), e.g. 16:45.
    pub last_issue: Option<chrono::NaiveTime>,
    /// Also close when the estimate says a visitor issued now could not be
    /// served before the office closes.
    pub when_unservable: bool,
}

impl Queue {
    pub fn is_category(&self) -> bool {
        self.numbers.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub number: u16,
    pub section: String,
    pub serves: Vec<String>,
    pub policy: CallPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub id: String,
    pub name: Names,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EstimateParams {
    /// Weight of the newest observation in the service-time moving average.
    pub alpha: f64,
}

/// What the displays show besides the queues, and how they rotate (R17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Displays {
    /// A message shown on guidance displays and the staff board.
    pub message: Option<Names>,
    /// Seconds each page of a rotating display stays up.
    pub seconds_per_page: u32,
}

impl Default for Displays {
    fn default() -> Self {
        Displays {
            message: None,
            seconds_per_page: 10,
        }
    }
}

/// Which categories a kiosk device offers; kiosks without a rule offer
/// every category (R1: any kiosk covers for a broken one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskRule {
    pub name: String,
    pub categories: Vec<String>,
}

/// Reports written automatically after the day closes (R7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reports {
    /// Where; relative paths are inside the data folder.
    pub folder: std::path::PathBuf,
    /// Each day's report (hourly and daily sheets) when the day closes.
    pub daily: bool,
    /// The month's report (all three sheets) when its last business day closes.
    pub monthly: bool,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            folder: std::path::PathBuf::from("reports"),
            daily: true,
            monthly: true,
        }
    }
}

/// A validated office configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub office: Office,
    pub sections: Vec<Section>,
    pub queues: Vec<Queue>,
    pub counters: Vec<Counter>,
    pub tags: Vec<Tag>,
    pub calendar: Calendar,
    pub estimate: EstimateParams,
    pub displays: Displays,
    pub kiosks: Vec<KioskRule>,
    pub reports: Reports,
    /// The text this was parsed from: recorded in the event log so that a
    /// replay applies exactly the configuration that was in force (R14).
    pub source: String,
    queue_index: BTreeMap<String, usize>,
    counter_index: BTreeMap<u16, usize>,
}

impl Config {
    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        raw::parse(text, file, raw::Strictness::New)
    }

    /// Parses a configuration already in the log (a replay, an archive, a
    /// salvage). The checks added since it was recorded are left out (a
    /// blank name, refused since pages-rt8 F1), so an office that once
    /// saved such a setting still opens; new settings pass [`Config::parse`].
    pub fn parse_recorded(text: &str, file: &str) -> Result<Config, ConfigError> {
        raw::parse(text, file, raw::Strictness::Recorded)
    }

    /// The embedded default office.
    pub fn embedded_default() -> Config {
        // The embedded file is checked by a unit test; failing here would be a
        // build defect, not bad input.
        #[allow(clippy::expect_used)]
        Config::parse(DEFAULT_OFFICE_TOML, DEFAULT_OFFICE_NAME)
            .expect("the embedded default configuration is valid")
    }

    /// Reads and validates a configuration file. Host sections in it
    /// (`[server]`, `[[printers]]`, `[[relays]]`) are left out of the
    /// office configuration: [`HostSettings::from_file`] reads them.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let (text, file) = host::read(path)?;
        let (office, _) = host::split(&text, &file)?;
        // Parsed whole so that an error names the file's own line; the
        // host sections are ignored by the parse and left out of the text
        // that is recorded.
        let mut config = Config::parse(&text, &file)?;
        config.source = office;
        Ok(config)
    }

    pub fn queue(&self, id: &str) -> Option<&Queue> {
        self.queue_index.get(id).map(|&i| &self.queues[i])
    }

    pub fn counter(&self, number: u16) -> Option<&Counter> {
        self.counter_index.get(&number).map(|&i| &self.counters[i])
    }

    pub fn tag(&self, id: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.id == id)
    }

    /// The reception categories (kiosk buttons), in configuration order.
    pub fn categories(&self) -> impl Iterator<Item = &Queue> {
        self.queues.iter().filter(|q| q.is_category())
    }

    /// Counters that call from `queue`.
    pub fn counters_serving<'a>(&'a self, queue: &'a str) -> impl Iterator<Item = &'a Counter> {
        self.counters
            .iter()
            .filter(move |c| c.serves.iter().any(|q| q == queue))
    }

    /// Whether kiosk device `kiosk` may issue in `category`.
    pub fn kiosk_offers(&self, kiosk: &str, category: &str) -> bool {
        self.kiosks
            .iter()
            .find(|k| k.name == kiosk)
            .is_none_or(|k| k.categories.iter().any(|c| c == category))
    }

    /// The category whose range holds `number`, if any.
    pub fn category_of_number(&self, number: u32) -> Option<&Queue> {
        self.categories()
            .find(|q| q.numbers.is_some_and(|r| r.contains(number)))
    }
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ja)
    }
}

#[cfg(test)]
mod tests;
