//! Statistics kept as events arrive (R7): per hour, day and month, for the
//! whole office, each section (係), each queue (the business type: a
//! reception category, or a stage such as 証明の交付) and each procedure tag
//! (業種). Reports read these cells; they never rescan the event log.
//!
//! Definitions (also in docs/statistics.md):
//! - A ticket's **leg** is its time in one queue: from issue (or transfer
//!   into the queue) to the end of the service that follows.
//! - **issued**: for the office and a queue, tickets issued in (or
//!   transferred into) the queue; for a section, legs its counters took on
//!   (first call); for a tag, services completed or transferred with it.
//! - **wait**: from the leg's start to its first call (recalls, and calls
//!   after an absence, do not count again); bucketed by the leg's start.
//! - **service**: from the start of service (or the call, when service was
//!   never started explicitly) to completion or transfer; bucketed by that
//!   start. Time before a hold is not counted.
//! - **absent**, **transferred** (out of the queue), **cancelled**,
//!   **unserved** (still in the office's hands at closing), **turned
//!   away** (a ticket request refused by 受付終了): counts at the time they
//!   happen.
//! - **estimate accuracy**: for a ticket's first leg, the wait shown at
//!   issue against the wait it got (at its first call): mean absolute
//!   error, bias (as a share of the mean actual wait) and the share inside
//!   the 80 % range shown; bucketed by the issue.

pub mod forecast;

use std::collections::BTreeMap;

use chrono::{Datelike, FixedOffset, NaiveDate, Timelike};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::{Event, Millis, Status, StepKind, Ticket};
use crate::state::State;

/// A mean wait shorter than this (seconds) is stated in minutes only:
/// the estimate's error as a share of it would be a share of almost
/// nothing (issue 19's goal also judges such waits in minutes).
pub const SHORT_WAIT_S: u64 = 60;

/// How finely a report is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
    Month,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Hour, Granularity::Day, Granularity::Month];

    fn tag(self) -> &'static str {
        match self {
            Granularity::Hour => "h",
            Granularity::Day => "d",
            Granularity::Month => "m",
        }
    }

    /// The bucket name of `t` in the office's time zone.
    pub fn bucket(self, t: Millis, offset: FixedOffset) -> String {
        let local = t.to_datetime(offset);
        let (y, m, d, h) = (local.year(), local.month(), local.day(), local.hour());
        if !(0..=9999).contains(&y) {
            // chrono's own spelling of far years ("+10000-01").
            return match self {
                Granularity::Hour => local.format("%Y-%m-%d %H:00").to_string(),
                Granularity::Day => local.format("%Y-%m-%d").to_string(),
                Granularity::Month => local.format("%Y-%m").to_string(),
            };
        }
        // The same names as chrono's `%Y-%m-%d %H:00`, written directly:
        // a replay names three buckets per statistics contribution, and
        // parsing the format string each time was an eighth of `audit
        // verify` (perf, 2026-12-07).
        match self {
            Granularity::Hour => format!("{y:04}-{m:02}-{d:02} {h:02}:00"),
            Granularity::Day => format!("{y:04}-{m:02}-{d:02}"),
            Granularity::Month => format!("{y:04}-{m:02}"),
        }
    }

    /// The first bucket name of `date` (a range's inclusive start).
    pub fn first_bucket(self, date: NaiveDate) -> String {
        match self {
            Granularity::Hour => format!("{date} 00:00"),
            Granularity::Day => date.to_string(),
            Granularity::Month => date.format("%Y-%m").to_string(),
        }
    }

    /// A name just after every bucket of `date` (a range's exclusive end).
    pub fn after_bucket(self, date: NaiveDate) -> String {
        match self {
            Granularity::Hour => format!("{date} ~"),
            Granularity::Day => format!("{date}~"),
            Granularity::Month => format!("{}~", date.format("%Y-%m")),
        }
    }
}

/// What a cell is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Dim {
    All,
    Section(String),
    Queue(String),
    Tag(String),
}

impl Dim {
    pub fn key(&self) -> String {
        let mut key = String::new();
        self.write_key(&mut key);
        key
    }

    /// [`Dim::key`] onto the end of a buffer.
    fn write_key(&self, key: &mut String) {
        let (kind, id) = match self {
            Dim::All => {
                key.push_str("all");
                return;
            }
            Dim::Section(s) => ("section:", s),
            Dim::Queue(q) => ("queue:", q),
            Dim::Tag(t) => ("tag:", t),
        };
        key.push_str(kind);
        key.push_str(id);
    }

    pub fn parse(key: &str) -> Option<Dim> {
        if key == "all" {
            return Some(Dim::All);
        }
        let (kind, id) = key.split_once(':')?;
        Some(match kind {
            "section" => Dim::Section(id.into()),
            "queue" => Dim::Queue(id.into()),
            "tag" => Dim::Tag(id.into()),
            _ => return None,
        })
    }
}

/// One statistics cell. Times are whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cell {
    pub issued: u64,
    pub waits: u64,
    pub wait_sum_s: u64,
    pub wait_min_s: u32,
    pub wait_max_s: u32,
    pub served: u64,
    pub service_sum_s: u64,
    pub absent: u64,
    pub transferred: u64,
    pub cancelled: u64,
    pub unserved: u64,
    /// Ticket requests refused because issuing had closed by itself
    /// (受付終了, issue 19): visitors turned away.
    #[serde(default)]
    pub turned_away: u64,
    /// The estimate's accuracy (issue 19), over tickets first called in
    /// their category: how many, the sum of their actual waits, of the
    /// absolute and signed errors of the point shown (shown − actual), and
    /// how many waits fell inside the range shown.
    #[serde(default)]
    pub est_n: u64,
    #[serde(default)]
    pub est_actual_sum_s: u64,
    #[serde(default)]
    pub est_abs_err_sum_s: u64,
    #[serde(default)]
    pub est_err_sum_s: i64,
    #[serde(default)]
    pub est_covered: u64,
}

impl Cell {
    pub fn merge(&mut self, d: &Cell) {
        if d.waits > 0 {
            self.wait_min_s = if self.waits == 0 {
                d.wait_min_s
            } else {
                self.wait_min_s.min(d.wait_min_s)
            };
            self.wait_max_s = self.wait_max_s.max(d.wait_max_s);
        }
        self.issued += d.issued;
        self.waits += d.waits;
        self.wait_sum_s += d.wait_sum_s;
        self.served += d.served;
        self.service_sum_s += d.service_sum_s;
        self.absent += d.absent;
        self.transferred += d.transferred;
        self.cancelled += d.cancelled;
        self.unserved += d.unserved;
        self.turned_away += d.turned_away;
        self.est_n += d.est_n;
        self.est_actual_sum_s += d.est_actual_sum_s;
        self.est_abs_err_sum_s += d.est_abs_err_sum_s;
        self.est_err_sum_s += d.est_err_sum_s;
        self.est_covered += d.est_covered;
    }

    /// Mean absolute error of the estimate shown, in seconds.
    pub fn est_mae_s(&self) -> Option<f64> {
        (self.est_n > 0).then(|| self.est_abs_err_sum_s as f64 / self.est_n as f64)
    }

    /// The estimate's lean as a share of the mean actual wait (+ = long);
    /// none where the mean actual wait is under [`SHORT_WAIT_S`]: a share
    /// of almost nothing says nothing (outside tester est-rt8 F3: 予想の偏り
    /// of 1,000–3,000 % in hours whose waits were 0 s). The mean error in
    /// minutes beside it still says how far off the estimate was.
    pub fn est_bias_share(&self) -> Option<f64> {
        (self.est_n > 0 && self.est_actual_sum_s >= SHORT_WAIT_S * self.est_n)
            .then(|| self.est_err_sum_s as f64 / self.est_actual_sum_s as f64)
    }

    /// Share of waits inside the 80 % range shown.
    pub fn est_coverage(&self) -> Option<f64> {
        (self.est_n > 0).then(|| self.est_covered as f64 / self.est_n as f64)
    }

    pub fn mean_wait_s(&self) -> Option<f64> {
        (self.waits > 0).then(|| self.wait_sum_s as f64 / self.waits as f64)
    }

    pub fn mean_service_s(&self) -> Option<f64> {
        (self.served > 0).then(|| self.service_sum_s as f64 / self.served as f64)
    }

    fn wait(secs: u32) -> Cell {
        Cell {
            waits: 1,
            wait_sum_s: u64::from(secs),
            wait_min_s: secs,
            wait_max_s: secs,
            ..Cell::default()
        }
    }
}

/// One change to the cells of `dims` in the buckets of `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub at: Millis,
    pub dims: Vec<Dim>,
    pub delta: Cell,
}

/// The key of a cell in the snapshot store.
pub fn cell_key(g: Granularity, bucket: &str, dim: &Dim) -> String {
    let mut key = String::new();
    write_cell_key(&mut key, g, bucket, dim);
    key
}

/// [`cell_key`] into a buffer.
fn write_cell_key(key: &mut String, g: Granularity, bucket: &str, dim: &Dim) {
    key.push_str("s/");
    key.push_str(g.tag());
    key.push('/');
    key.push_str(bucket);
    key.push('/');
    dim.write_key(key);
}

/// The key prefix range `[from, to)` of a granularity between two dates.
pub fn key_range(g: Granularity, from: NaiveDate, to: NaiveDate) -> (String, String) {
    (
        format!("s/{}/{}", g.tag(), g.first_bucket(from)),
        format!("s/{}/{}", g.tag(), g.after_bucket(to)),
    )
}

/// Splits a cell key back into bucket and dimension.
pub fn parse_key(key: &str) -> Option<(String, Dim)> {
    let rest = key.strip_prefix("s/")?.get(2..)?;
    let (bucket, dim) = rest.rsplit_once('/')?;
    Some((bucket.to_string(), Dim::parse(dim)?))
}

/// When the ticket's current leg began (issue or last transfer in), and
/// whether it has been called in this leg already.
fn leg(t: &Ticket) -> (Millis, bool) {
    let start = t
        .history
        .iter()
        .rposition(|s| {
            matches!(
                s.what,
                StepKind::Issued { .. } | StepKind::Transferred { .. }
            )
        })
        .unwrap_or(0);
    let at = t.history.get(start).map_or(t.issued_at, |s| s.at);
    let called = t.history[start..]
        .iter()
        .any(|s| matches!(s.what, StepKind::Called { .. }));
    (at, called)
}

fn section_of(config: &Config, counter: u16) -> Option<Dim> {
    config
        .counter(counter)
        .map(|c| Dim::Section(c.section.clone()))
}

/// The statistics an event contributes, read from the state *before* the
/// event is applied.
pub fn observe(config: &Config, state: &State, at: Millis, event: &Event) -> Vec<Contribution> {
    let ticket = event.ticket().and_then(|n| state.ticket(n));
    let mut out = Vec::new();
    let mut push =
        |at: Millis, dims: Vec<Dim>, delta: Cell| out.push(Contribution { at, dims, delta });
    match (event, ticket) {
        (Event::TicketIssued { category, .. }, _) => push(
            at,
            vec![Dim::All, Dim::Queue(category.clone())],
            Cell {
                issued: 1,
                ..Cell::default()
            },
        ),
        (Event::Called { counter, .. }, Some(t)) => {
            let (start, called) = leg(t);
            if !called {
                let wait = Cell::wait(at.secs_since(start));
                push(start, vec![Dim::All, Dim::Queue(t.queue.clone())], wait);
                // The estimate shown at issue against the wait it got (the
                // first leg only: a transfer's wait was never estimated).
                if t.queue == t.category && start == t.issued_at {
                    let actual = at.secs_since(start);
                    let shown = t.expected_wait_s_at_issue;
                    let err = i64::from(shown) - i64::from(actual);
                    let inside = (t.expected_wait_low_s_at_issue..=t.expected_wait_high_s_at_issue)
                        .contains(&actual);
                    push(
                        start,
                        vec![Dim::All, Dim::Queue(t.queue.clone())],
                        Cell {
                            est_n: 1,
                            est_actual_sum_s: u64::from(actual),
                            est_abs_err_sum_s: err.unsigned_abs(),
                            est_err_sum_s: err,
                            est_covered: u64::from(inside),
                            ..Cell::default()
                        },
                    );
                }
                if let Some(section) = section_of(config, *counter) {
                    let mut d = wait;
                    d.issued = 1;
                    push(start, vec![section], d);
                }
            }
        }
        (Event::Completed { counter, tags, .. }, Some(t)) => {
            service(config, t, *counter, tags, at, false, &mut push);
        }
        (
            Event::Transferred {
                counter, to, tags, ..
            },
            Some(t),
        ) => {
            if let Some(c) = counter {
                service(config, t, *c, tags, at, true, &mut push);
            } else {
                push(
                    at,
                    vec![Dim::All, Dim::Queue(t.queue.clone())],
                    Cell {
                        transferred: 1,
                        ..Cell::default()
                    },
                );
            }
            push(
                at,
                vec![Dim::Queue(to.clone())],
                Cell {
                    issued: 1,
                    ..Cell::default()
                },
            );
        }
        (Event::Absent { counter, .. }, Some(t)) => {
            let mut dims = vec![Dim::All, Dim::Queue(t.queue.clone())];
            dims.extend(section_of(config, *counter));
            push(
                at,
                dims,
                Cell {
                    absent: 1,
                    ..Cell::default()
                },
            );
        }
        (Event::Cancelled { .. }, Some(t)) => push(
            at,
            vec![Dim::All, Dim::Queue(t.queue.clone())],
            Cell {
                cancelled: 1,
                ..Cell::default()
            },
        ),
        (Event::TurnedAway { category, .. }, _) => push(
            at,
            vec![Dim::All, Dim::Queue(category.clone())],
            Cell {
                turned_away: 1,
                ..Cell::default()
            },
        ),
        (Event::Unserved { .. }, Some(t)) => push(
            at,
            vec![Dim::All, Dim::Queue(t.queue.clone())],
            Cell {
                unserved: 1,
                ..Cell::default()
            },
        ),
        _ => {}
    }
    out
}

/// A service that ends at `at` (completion, or transfer when `moved`).
fn service(
    config: &Config,
    t: &Ticket,
    counter: u16,
    tags: &[String],
    at: Millis,
    moved: bool,
    push: &mut impl FnMut(Millis, Vec<Dim>, Cell),
) {
    let start = match t.status {
        Status::Serving { since, .. } => since,
        Status::Called { at, .. } => at,
        _ => return,
    };
    let secs = at.secs_since(start);
    let mut dims = vec![Dim::All, Dim::Queue(t.queue.clone())];
    dims.extend(section_of(config, counter));
    if moved {
        // The service belongs to when it began, the transfer (回付) to
        // when it happened (docs/statistics.md).
        push(
            at,
            dims.clone(),
            Cell {
                transferred: 1,
                ..Cell::default()
            },
        );
    }
    push(
        start,
        dims,
        Cell {
            served: 1,
            service_sum_s: u64::from(secs),
            ..Cell::default()
        },
    );
    if !tags.is_empty() {
        push(
            start,
            tags.iter().map(|g| Dim::Tag(g.clone())).collect(),
            Cell {
                issued: 1,
                served: 1,
                service_sum_s: u64::from(secs),
                ..Cell::default()
            },
        );
    }
}

/// Cells of a report, in the order shown: bucket, then office, sections,
/// queues and tags in configuration order.
pub fn sort_rows(config: &Config, rows: &mut [(String, Dim, Cell)]) {
    let rank = |d: &Dim| -> (u8, usize) {
        match d {
            Dim::All => (0, 0),
            Dim::Section(s) => (
                1,
                config
                    .sections
                    .iter()
                    .position(|x| &x.id == s)
                    .unwrap_or(usize::MAX),
            ),
            Dim::Queue(q) => (
                2,
                config
                    .queues
                    .iter()
                    .position(|x| &x.id == q)
                    .unwrap_or(usize::MAX),
            ),
            Dim::Tag(g) => (
                3,
                config
                    .tags
                    .iter()
                    .position(|x| &x.id == g)
                    .unwrap_or(usize::MAX),
            ),
        }
    };
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| rank(&a.1).cmp(&rank(&b.1))));
}

/// Adds contributions to a map of cells (the engine's pending writes).
pub fn accumulate(
    config: &Config,
    contributions: &[Contribution],
    into: &mut BTreeMap<String, Cell>,
    load: &mut impl FnMut(&str) -> Cell,
) {
    let offset = config.office.utc_offset;
    // The contributions of one record mostly fall in one hour: its bucket
    // names are made once. A key is built in one buffer and copied only
    // when its cell is new (an allocation per cell touched was a fifth of
    // `audit verify`).
    let mut hour: Option<(i64, [String; 3])> = None;
    let mut key = String::new();
    for c in contributions {
        let h = c.at.0.div_euclid(3_600_000);
        let buckets = match &hour {
            Some((at, b)) if *at == h => b,
            _ => {
                &hour
                    .insert((h, Granularity::ALL.map(|g| g.bucket(c.at, offset))))
                    .1
            }
        };
        for (g, bucket) in Granularity::ALL.into_iter().zip(buckets) {
            for d in &c.dims {
                key.clear();
                write_cell_key(&mut key, g, bucket, d);
                match into.get_mut(key.as_str()) {
                    Some(cell) => cell.merge(&c.delta),
                    None => {
                        let mut cell = load(&key);
                        cell.merge(&c.delta);
                        into.insert(key.clone(), cell);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
