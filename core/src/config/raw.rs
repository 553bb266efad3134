//! The TOML shape of the configuration and its validation into [`Config`].
//! Values that other values refer to are kept `Spanned`, so that a semantic
//! error (an unknown queue, an overlapping range) can name its line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use chrono::{FixedOffset, NaiveDate};
use serde::Deserialize;
use toml::Spanned;

use super::calendar::{Calendar, DayRule, ExtraDay, Hours, MonthDayRange};
use super::{
    CallPolicy, Config, ConfigError, Counter, Displays, EstimateParams, KioskRule, Names,
    NumberRange, Office, Queue, Reports, Section, Shape, Tag,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    office: RawOffice,
    #[serde(default)]
    sections: Vec<RawSection>,
    #[serde(default)]
    queues: Vec<RawQueue>,
    #[serde(default)]
    counters: Vec<RawCounter>,
    #[serde(default)]
    tags: Vec<RawTag>,
    calendar: RawCalendar,
    #[serde(default)]
    estimate: Option<RawEstimate>,
    #[serde(default)]
    displays: Option<RawDisplays>,
    #[serde(default)]
    kiosks: Vec<RawKiosk>,
    #[serde(default)]
    reports: Option<RawReports>,
    // Host settings (`super::host`): read and ignored here, so that a log
    // recorded before they moved out still replays; new office text with
    // them is refused by `Engine::apply_config`.
    #[serde(default, rename = "printers")]
    _printers: Option<toml::Value>,
    #[serde(default, rename = "server")]
    _server: Option<toml::Value>,
    #[serde(default, rename = "relays")]
    _relays: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    folder: Option<String>,
    #[serde(default = "yes")]
    daily: bool,
    #[serde(default = "yes")]
    monthly: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKiosk {
    name: String,
    categories: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisplays {
    #[serde(default)]
    message: Option<Names>,
    seconds_per_page: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffice {
    name: Spanned<Names>,
    utc_offset: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    id: Spanned<String>,
    name: Spanned<Names>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    id: Spanned<String>,
    name: Spanned<Names>,
    numbers: Option<Spanned<NumberRange>>,
    #[serde(default)]
    stage: Option<Spanned<bool>>,
    colour: Spanned<String>,
    shape: Shape,
    typical_service_minutes: Spanned<f64>,
    /// 受付終了: the last issuing time, "HH:MM" (categories only).
    #[serde(default)]
    last_issue: Option<Spanned<String>>,
    /// 受付終了 when a visitor issued now could not be served before closing.
    #[serde(default)]
    close_when_unservable: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounter {
    number: Spanned<u16>,
    section: Spanned<String>,
    serves: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    policy: CallPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTag {
    id: Spanned<String>,
    name: Spanned<Names>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    #[serde(default)]
    closed: Vec<Spanned<String>>,
    #[serde(default)]
    open: Vec<RawRule>,
    #[serde(default)]
    extra: Vec<RawExtra>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    on: Spanned<String>,
    hours: Spanned<String>,
    #[serde(default)]
    except_holidays: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtra {
    name: String,
    date: Spanned<String>,
    hours: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEstimate {
    alpha: Spanned<f64>,
}

pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a str,
    pub(super) strict: Strictness,
}

/// Whether the text is new settings or settings already in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strictness {
    /// Every check.
    New,
    /// Without the checks added after settings could be recorded.
    Recorded,
}

impl Ctx<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn err(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line_of(span),
            message: message.into(),
        }
    }
}

/// A name shown to people is never blank: no empty or all-space name in
/// any language given (outside tester pages-rt8 F1: a queue named 「　」 was
/// saved, and the kiosk's button was left with no name at all).
fn checked_names(cx: &Ctx, name: Spanned<Names>, what: &str) -> Result<Names, ConfigError> {
    let span = name.span();
    let n = name.into_inner();
    if cx.strict == Strictness::Recorded {
        return Ok(n);
    }
    let blank = |s: &str| s.chars().all(char::is_whitespace);
    if blank(&n.ja) {
        return Err(cx.err(&span, format!("{what}: a name must not be blank (name.ja)")));
    }
    for (lang, v) in [("en", &n.en), ("zh", &n.zh), ("ko", &n.ko)] {
        if v.as_deref().is_some_and(blank) {
            return Err(cx.err(
                &span,
                format!("{what}: a name must not be blank (name.{lang}: leave it out instead)"),
            ));
        }
    }
    Ok(n)
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses and checks an office configuration: each section of the file in
/// its own step below, every error naming its line.
pub(super) fn parse(text: &str, file: &str, strict: Strictness) -> Result<Config, ConfigError> {
    let cx = Ctx { text, file, strict };
    let raw = parse_toml(&cx)?;
    let utc_offset = parse_utc_offset(&cx, &raw.office)?;
    let (sections, section_ids) = parse_sections(&cx, raw.sections)?;
    let (queues, queue_index) = parse_queues(&cx, raw.queues)?;
    let (counters, counter_index) = parse_counters(&cx, raw.counters, &section_ids, &queue_index)?;
    every_queue_served(&cx, &queues, &counters)?;
    let tags = parse_tags(&cx, raw.tags)?;
    let calendar = parse_calendar(&cx, raw.calendar)?;
    let alpha = parse_estimate(&cx, raw.estimate)?;
    let displays = parse_displays(&cx, raw.displays)?;
    let kiosks = parse_kiosks(&cx, raw.kiosks, &queues)?;
    let reports = parse_reports(raw.reports);
    Ok(Config {
        reports,
        kiosks,
        displays,
        office: Office {
            name: checked_names(&cx, raw.office.name, "office")?,
            utc_offset,
        },
        sections,
        queues,
        counters,
        tags,
        calendar,
        estimate: EstimateParams { alpha },
        source: text.to_string(),
        queue_index,
        counter_index,
    })
}

/// The TOML itself; a syntax error names its line.
fn parse_toml(cx: &Ctx<'_>) -> Result<RawConfig, ConfigError> {
    let (text, file) = (cx.text, cx.file);
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| cx.line_of(&s)).unwrap_or(0);
        // toml's message repeats the source excerpt; the first line says it.
        let message = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        ConfigError {
            file: file.to_string(),
            line,
            message,
        }
    })
}

fn parse_utc_offset(cx: &Ctx<'_>, office: &RawOffice) -> Result<FixedOffset, ConfigError> {
    office.utc_offset.get_ref().parse().map_err(|_| {
        cx.err(
            &office.utc_offset.span(),
            format!(
                "utc_offset {:?} is not an offset like \"+09:00\"",
                office.utc_offset.get_ref()
            ),
        )
    })
}

/// The sections, and their ids for the counters' check.
fn parse_sections(
    cx: &Ctx<'_>,
    raw: Vec<RawSection>,
) -> Result<(Vec<Section>, BTreeSet<String>), ConfigError> {
    let file = cx.file;
    let mut sections = Vec::new();
    let mut section_ids = BTreeSet::new();
    for s in raw {
        let id = s.id.get_ref();
        if !is_valid_id(id) {
            return Err(cx.err(
                &s.id.span(),
                format!("section id {id:?} must be 1–32 characters of a–z, 0–9, '_' or '-'"),
            ));
        }
        if !section_ids.insert(id.clone()) {
            return Err(cx.err(&s.id.span(), format!("section id {id:?} is used twice")));
        }
        sections.push(Section {
            id: id.clone(),
            name: checked_names(cx, s.name, &format!("section {id:?}"))?,
        });
    }
    if sections.is_empty() {
        return Err(ConfigError {
            file: file.to_string(),
            line: 1,
            message: "at least one [[sections]] entry is needed".into(),
        });
    }
    Ok((sections, section_ids))
}

/// The queues, each checked on its own ([`parse_queue`]), with numbers
/// unique across categories.
fn parse_queues(
    cx: &Ctx<'_>,
    raw: Vec<RawQueue>,
) -> Result<(Vec<Queue>, BTreeMap<String, usize>), ConfigError> {
    let file = cx.file;
    let mut queues = Vec::new();
    let mut queue_index = BTreeMap::new();
    let mut ranges: Vec<(NumberRange, String)> = Vec::new();
    for q in raw {
        let id = q.id.get_ref().clone();
        if !is_valid_id(&id) {
            return Err(cx.err(
                &q.id.span(),
                format!("queue id {id:?} must be 1–32 characters of a–z, 0–9, '_' or '-'"),
            ));
        }
        if queue_index.contains_key(&id) {
            return Err(cx.err(&q.id.span(), format!("queue id {id:?} is used twice")));
        }
        let stage = q.stage.as_ref().is_some_and(|s| *s.get_ref());
        let numbers = match (&q.numbers, stage) {
            (Some(n), true) => {
                return Err(cx.err(&n.span(), format!("queue {id:?} is a stage (stage = true), so it cannot have its own numbers: its tickets keep the number they were issued with")));
            }
            (None, false) => {
                return Err(cx.err(&q.id.span(), format!("queue {id:?} needs either numbers = {{ from = …, to = … }} (a reception category) or stage = true")));
            }
            (None, true) => None,
            (Some(n), false) => {
                let r = *n.get_ref();
                if r.from == 0 || r.from > r.to {
                    return Err(cx.err(
                        &n.span(),
                        format!(
                            "queue {id:?}: numbers must satisfy 1 <= from <= to (got {}–{})",
                            r.from, r.to
                        ),
                    ));
                }
                if let Some((_, other)) = ranges
                    .iter()
                    .find(|(o, _)| o.from <= r.to && r.from <= o.to)
                {
                    return Err(cx.err(&n.span(), format!("queue {id:?}: numbers {}–{} overlap those of queue {other:?}; numbers must be unique across categories", r.from, r.to)));
                }
                ranges.push((r, id.clone()));
                Some(r)
            }
        };
        let colour = q.colour.get_ref();
        let colour_ok = colour.len() == 7
            && colour.starts_with('#')
            && colour[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if !colour_ok {
            return Err(cx.err(
                &q.colour.span(),
                format!("queue {id:?}: colour {colour:?} must look like \"#1b7a3a\""),
            ));
        }
        let minutes = *q.typical_service_minutes.get_ref();
        if !(minutes > 0.0 && minutes <= 240.0) {
            return Err(cx.err(&q.typical_service_minutes.span(), format!("queue {id:?}: typical_service_minutes must be between 0 and 240 (got {minutes})")));
        }
        let mut closing = super::IssuingClose::default();
        if let Some(t) = &q.last_issue {
            if numbers.is_none() {
                return Err(cx.err(&t.span(), format!("queue {id:?}: last_issue is for reception categories (queues with numbers), not stages")));
            }
            let at =
                chrono::NaiveTime::parse_from_str(t.get_ref().trim(), "%H:%M").map_err(|_| {
                    cx.err(
                        &t.span(),
                        format!(
                            "queue {id:?}: last_issue {:?} must be a time like \"16:45\"",
                            t.get_ref()
                        ),
                    )
                })?;
            closing.last_issue = Some(at);
        }
        if let Some(b) = &q.close_when_unservable {
            if numbers.is_none() && *b.get_ref() {
                return Err(cx.err(&b.span(), format!("queue {id:?}: close_when_unservable is for reception categories (queues with numbers), not stages")));
            }
            closing.when_unservable = *b.get_ref();
        }
        queue_index.insert(id.clone(), queues.len());
        let name = checked_names(cx, q.name, &format!("queue {id:?}"))?;
        queues.push(Queue {
            id,
            name,
            numbers,
            colour: colour.to_ascii_lowercase(),
            shape: q.shape,
            typical_service_secs: minutes * 60.0,
            closing,
        });
    }
    if !queues.iter().any(Queue::is_category) {
        return Err(ConfigError {
            file: file.to_string(),
            line: 1,
            message: "at least one queue with numbers (a reception category) is needed".into(),
        });
    }
    Ok((queues, queue_index))
}

/// The counters: known sections and queues, each number once.
fn parse_counters(
    cx: &Ctx<'_>,
    raw: Vec<RawCounter>,
    section_ids: &BTreeSet<String>,
    queue_index: &BTreeMap<String, usize>,
) -> Result<(Vec<Counter>, BTreeMap<u16, usize>), ConfigError> {
    let mut counters = Vec::new();
    let mut counter_index = BTreeMap::new();
    for c in raw {
        let number = *c.number.get_ref();
        if number == 0 {
            return Err(cx.err(&c.number.span(), "counter numbers start at 1"));
        }
        if counter_index.contains_key(&number) {
            return Err(cx.err(
                &c.number.span(),
                format!("counter {number} is defined twice"),
            ));
        }
        if !section_ids.contains(c.section.get_ref()) {
            return Err(cx.err(
                &c.section.span(),
                format!(
                    "counter {number}: unknown section {:?}",
                    c.section.get_ref()
                ),
            ));
        }
        if c.serves.get_ref().is_empty() {
            return Err(cx.err(
                &c.serves.span(),
                format!("counter {number}: serves must name at least one queue"),
            ));
        }
        let mut serves = Vec::new();
        for q in c.serves.into_inner() {
            if !queue_index.contains_key(q.get_ref()) {
                return Err(cx.err(
                    &q.span(),
                    format!("counter {number}: unknown queue {:?}", q.get_ref()),
                ));
            }
            if serves.contains(q.get_ref()) {
                return Err(cx.err(
                    &q.span(),
                    format!("counter {number}: queue {:?} is listed twice", q.get_ref()),
                ));
            }
            serves.push(q.into_inner());
        }
        counter_index.insert(number, counters.len());
        counters.push(Counter {
            number,
            section: c.section.into_inner(),
            serves,
            policy: c.policy,
        });
    }
    Ok((counters, counter_index))
}

/// A queue no counter serves could never be called.
fn every_queue_served(
    cx: &Ctx<'_>,
    queues: &[Queue],
    counters: &[Counter],
) -> Result<(), ConfigError> {
    let file = cx.file;
    for q in queues {
        if !counters.iter().any(|c| c.serves.contains(&q.id)) {
            return Err(ConfigError {
                file: file.to_string(),
                line: 1,
                message: format!(
                    "queue {:?} is served by no counter: its tickets could never be called",
                    q.id
                ),
            });
        }
    }
    Ok(())
}

fn parse_tags(cx: &Ctx<'_>, raw: Vec<RawTag>) -> Result<Vec<Tag>, ConfigError> {
    let mut tags = Vec::new();
    for t in raw {
        let id = t.id.get_ref();
        if !is_valid_id(id) {
            return Err(cx.err(
                &t.id.span(),
                format!("tag id {id:?} must be 1–32 characters of a–z, 0–9, '_' or '-'"),
            ));
        }
        if tags.iter().any(|o: &Tag| &o.id == id) {
            return Err(cx.err(&t.id.span(), format!("tag id {id:?} is used twice")));
        }
        tags.push(Tag {
            id: id.clone(),
            name: checked_names(cx, t.name, &format!("tag {id:?}"))?,
        });
    }
    Ok(tags)
}

/// The estimate's smoothing (default 0.02).
fn parse_estimate(cx: &Ctx<'_>, raw: Option<RawEstimate>) -> Result<f64, ConfigError> {
    Ok(match raw {
        None => 0.02,
        Some(e) => {
            let a = *e.alpha.get_ref();
            if !(a > 0.0 && a <= 1.0) {
                return Err(cx.err(
                    &e.alpha.span(),
                    format!("estimate.alpha must be in (0, 1] (got {a})"),
                ));
            }
            a
        }
    })
}

fn parse_displays(cx: &Ctx<'_>, raw: Option<RawDisplays>) -> Result<Displays, ConfigError> {
    Ok(match raw {
        None => Displays::default(),
        Some(d) => {
            let seconds = match d.seconds_per_page {
                None => Displays::default().seconds_per_page,
                Some(s) => {
                    let v = *s.get_ref();
                    if !(3..=600).contains(&v) {
                        return Err(cx.err(
                            &s.span(),
                            format!("displays.seconds_per_page must be 3–600 (got {v})"),
                        ));
                    }
                    v
                }
            };
            Displays {
                message: d.message,
                seconds_per_page: seconds,
            }
        }
    })
}

/// Each kiosk offers reception categories only.
fn parse_kiosks(
    cx: &Ctx<'_>,
    raw: Vec<RawKiosk>,
    queues: &[Queue],
) -> Result<Vec<KioskRule>, ConfigError> {
    let mut kiosks = Vec::new();
    for k in raw {
        let mut categories = Vec::new();
        for c in k.categories {
            if !queues
                .iter()
                .any(|q| q.id == *c.get_ref() && q.is_category())
            {
                return Err(cx.err(
                    &c.span(),
                    format!(
                        "kiosk {:?}: {:?} is not a reception category",
                        k.name,
                        c.get_ref()
                    ),
                ));
            }
            categories.push(c.into_inner());
        }
        kiosks.push(KioskRule {
            name: k.name,
            categories,
        });
    }
    Ok(kiosks)
}

fn parse_reports(raw: Option<RawReports>) -> Reports {
    match raw {
        None => Reports::default(),
        Some(r) => Reports {
            folder: r
                .folder
                .map_or_else(|| Reports::default().folder, std::path::PathBuf::from),
            daily: r.daily,
            monthly: r.monthly,
        },
    }
}

fn parse_calendar(cx: &Ctx<'_>, raw: RawCalendar) -> Result<Calendar, ConfigError> {
    let mut closed = Vec::new();
    for c in raw.closed {
        let r: MonthDayRange = c
            .get_ref()
            .parse()
            .map_err(|e: String| cx.err(&c.span(), e))?;
        closed.push(r);
    }
    let mut rules = Vec::new();
    for r in raw.open {
        let on =
            r.on.get_ref()
                .parse()
                .map_err(|e: String| cx.err(&r.on.span(), e))?;
        let hours: Hours = r
            .hours
            .get_ref()
            .parse()
            .map_err(|e: String| cx.err(&r.hours.span(), e))?;
        rules.push(DayRule {
            name: r.name,
            on,
            hours,
            except_holidays: r.except_holidays,
        });
    }
    let mut extra = Vec::new();
    for x in raw.extra {
        let date = NaiveDate::parse_from_str(x.date.get_ref(), "%Y-%m-%d").map_err(|_| {
            cx.err(
                &x.date.span(),
                format!("date {:?} must look like \"2027-01-09\"", x.date.get_ref()),
            )
        })?;
        let hours: Hours = x
            .hours
            .get_ref()
            .parse()
            .map_err(|e: String| cx.err(&x.hours.span(), e))?;
        extra.push(ExtraDay {
            name: x.name,
            date,
            hours,
        });
    }
    Ok(Calendar {
        closed,
        rules,
        extra,
    })
}
