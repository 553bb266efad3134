//! 混雑予想 (congestion forecast, R6; issue 19): the expected arrivals, wait
//! and number of people waiting for each hour of a kind of day, from a
//! model learned from this office's history, and the forecast's own past
//! accuracy.
//!
//! **The model.** Arrivals per queue and hour (transfers into a queue
//! included) are learned per weekday (Saturday and Sunday openings
//! together) from the recent ordinary days of that weekday, times a factor
//! per season class (the moving season in March–April, the first business
//! day after a holiday, the month's end and start) learned from how much
//! busier past days of the class were than their weekday. Service capacity
//! comes from what the wait estimate learned ([`crate::state::learn`]): the
//! occupancy time per queue and the staffing profile (which counters were
//! open at each minute on the recent business days of that weekday; a
//! counter serving several queues shares itself by their workload). Each
//! queue's day then runs as a fluid queue — the backlog carried from hour
//! to hour while arrivals outrun the counters — plus the waiting of a
//! steady queue at that load (Sakasegawa's approximation for `c`
//! counters). A calibration per queue and hour, learned like the
//! estimate's from how the model's waits compared with the real ones on
//! past days, scales the wait and adds what scaling left over. Finally the
//! calibrated model is averaged with the recent real mean wait of that
//! queue, weekday and hour, each weighted by the other's past squared
//! error (whichever has forecast this office better counts more). The number waiting follows Little's law.
//!
//! **Its accuracy.** The history is walked day by day: each day is first
//! forecast from the days before it only (the forecast "made the day
//! before"), then learned from. Over the business days of the last 30
//! days, the forecast office-wide mean wait of each hour is compared with
//! the real one, weighted by the waits of the hour: the mean absolute
//! error a visitor reading the page met. The staffing profile and the
//! occupancy times are the ones learned now (the engine keeps no earlier
//! copy), the arrivals and the calibration strictly those before each day.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Serialize;

use super::{Cell, Dim, Granularity};
use crate::config::Config;
use crate::state::learn::{Learned, LogHist};

/// Days back whose forecasts the published accuracy covers.
pub const ACCURACY_DAYS: u64 = 30;
/// A day's forecast counts towards the accuracy once this many business
/// days of records came before it.
const MIN_HISTORY_DAYS: usize = 5;
/// Forecast days needed before an accuracy is stated at all.
pub const MIN_ACCURACY_DAYS: usize = 5;
/// Recent days of a weekday behind its arrival profile.
const BASE_DAYS: usize = 10;
/// Pseudo-days of all weekdays' arrivals a weekday's own are shrunk with.
const WEEKDAY_PRIOR_DAYS: f64 = 3.0;
/// Recent days of a season class behind its factor, and the pseudo-days at
/// a factor of 1 it is shrunk with (a class seen once says little).
const FACTOR_DAYS: usize = 10;
const FACTOR_PRIOR_DAYS: f64 = 2.0;
/// Daily decay of the calibration's and the recent waits' sums (a memory
/// of about 30 business days: day-to-day swings are large, a season's
/// onset still shows within weeks) and their prior in tickets.
const CALIB_DECAY: f64 = 0.97;
const CALIB_PRIOR_TICKETS: f64 = 30.0;
/// The load up to which the steady-queue term is computed; beyond it the
/// fluid backlog carries the wait.
const MAX_STEADY_LOAD: f64 = 0.9;
const MINUTES: usize = 24 * 60;
/// Buckets of the arrival profile: Monday … Friday, and weekend openings.
const BUCKETS: usize = 6;
/// The office as a whole, beside the queue ids.
const ALL: &str = "";

/// What sets a weekday's business apart from its usual (issue 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Season {
    Ordinary,
    /// The 1st–5th of the month.
    MonthStart,
    /// From the 25th (month-end rush).
    MonthEnd,
    /// The first business day after a weekday the office was closed.
    AfterHoliday,
    /// March and April (moving season).
    Moving,
}

impl Season {
    /// The class of the weekday `date`, most specific first; `is_open`
    /// tells the office's business days (its calendar).
    pub fn of(date: NaiveDate, is_open: impl Fn(NaiveDate) -> bool) -> Season {
        if matches!(date.month(), 3 | 4) {
            Season::Moving
        } else if after_holiday(date, is_open) {
            Season::AfterHoliday
        } else if date.day() >= 25 {
            Season::MonthEnd
        } else if date.day() <= 5 {
            Season::MonthStart
        } else {
            Season::Ordinary
        }
    }
}

/// Whether the last weekday before `date` (Saturday and Sunday skipped)
/// was a closed day: a public holiday, the year-end closure.
fn after_holiday(date: NaiveDate, is_open: impl Fn(NaiveDate) -> bool) -> bool {
    let mut p = date;
    for _ in 0..3 {
        let Some(prev) = p.pred_opt() else {
            return false;
        };
        p = prev;
        if !matches!(p.weekday(), Weekday::Sat | Weekday::Sun) {
            return !is_open(p);
        }
    }
    false
}

/// The arrival profile a date belongs to: 0–4 Monday–Friday, 5 weekend.
fn bucket(date: NaiveDate) -> usize {
    match date.weekday() {
        Weekday::Sat | Weekday::Sun => 5,
        w => w.num_days_from_monday() as usize,
    }
}

/// The kind of day a forecast page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// An ordinary weekday (0 = Monday).
    Weekday(u8),
    /// Weekdays on the 1st–5th.
    MonthStart,
    /// Weekdays from the 25th (month-end rush).
    MonthEnd,
    /// The first business day after a holiday.
    AfterHoliday,
    /// Weekdays in March and April (moving season).
    Season,
    /// Sunday and Saturday openings.
    Weekend,
}

impl DayKind {
    /// The kind of `date`, most specific first; `is_open` tells the
    /// office's business days.
    pub fn of(date: NaiveDate, is_open: impl Fn(NaiveDate) -> bool) -> DayKind {
        if bucket(date) == 5 {
            return DayKind::Weekend;
        }
        match Season::of(date, is_open) {
            Season::Moving => DayKind::Season,
            Season::AfterHoliday => DayKind::AfterHoliday,
            Season::MonthEnd => DayKind::MonthEnd,
            Season::MonthStart => DayKind::MonthStart,
            Season::Ordinary => DayKind::Weekday(bucket(date) as u8),
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
            DayKind::MonthStart => "月初め（1〜5日の平日）".into(),
            DayKind::MonthEnd => "月末（25日以降の平日）".into(),
            DayKind::AfterHoliday => "休日明けの開庁日".into(),
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
            DayKind::MonthStart => "Month start (weekdays on the 1st–5th)".into(),
            DayKind::MonthEnd => "Month end (weekdays from the 25th)".into(),
            DayKind::AfterHoliday => "First day after a holiday".into(),
            DayKind::Season => "Weekdays in March and April".into(),
            DayKind::Weekend => "Saturday and Sunday openings".into(),
        }
    }

    /// The arrival profiles and season class a page of this kind shows:
    /// one weekday, or every weekday of the class averaged.
    fn profiles(self) -> (Vec<usize>, Season) {
        match self {
            DayKind::Weekday(d) => (vec![usize::from(d).min(4)], Season::Ordinary),
            DayKind::Weekend => (vec![5], Season::Ordinary),
            DayKind::MonthStart => ((0..5).collect(), Season::MonthStart),
            DayKind::MonthEnd => ((0..5).collect(), Season::MonthEnd),
            DayKind::AfterHoliday => ((0..5).collect(), Season::AfterHoliday),
            DayKind::Season => ((0..5).collect(), Season::Moving),
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
    /// Past days of this kind in the records.
    pub days: usize,
    pub hours: Vec<HourForecast>,
}

/// How far the forecast made the day before was from what happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    /// Business days compared (within the last [`ACCURACY_DAYS`] days).
    pub days: usize,
    /// Mean absolute error of an hour's mean wait, minutes (each hour
    /// weighted by its waits).
    pub mae_min: f64,
    /// The real mean wait over the same hours, minutes.
    pub actual_min: f64,
}

/// The forecast pages' figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub series: Vec<Series>,
    /// `None`: too little history to say.
    pub accuracy: Option<Accuracy>,
    /// The forecast made before each recorded day (the days the accuracy
    /// is measured on among them), for `examples/forecast_eval.rs`.
    #[serde(skip)]
    pub past: Vec<(NaiveDate, Vec<HourForecast>)>,
}

impl Forecast {
    /// The accuracy in one plain sentence, Japanese first.
    pub fn accuracy_words(&self) -> (String, String) {
        accuracy_words(self.accuracy.as_ref())
    }
}

/// [`Forecast::accuracy_words`].
pub fn accuracy_words(a: Option<&Accuracy>) -> (String, String) {
    match a {
        Some(a) => {
            let mae = a.mae_min.round().max(0.0) as u64;
            let actual = a.actual_min.round().max(0.0) as u64;
            if mae == 0 {
                (
                    format!("この予想を過去30日（{}日分）の実際と比べると、1時間ごとの平均待ち時間の誤差は平均1分未満でした（実際の平均待ち時間は{actual}分）。", a.days),
                    format!("Compared with the last 30 days ({} days), this forecast's hourly mean wait was off by less than a minute on average (actual mean wait {actual} min).", a.days),
                )
            } else {
                (
                    format!("この予想を過去30日（{}日分）の実際と比べると、1時間ごとの平均待ち時間の誤差は平均{mae}分でした（実際の平均待ち時間は{actual}分）。", a.days),
                    format!("Compared with the last 30 days ({} days), this forecast's hourly mean wait was off by {mae} min on average (actual mean wait {actual} min).", a.days),
                )
            }
        }
        None => (
            "記録がまだ少ないため、この予想の誤差はまだお示しできません。".into(),
            "Too little history yet to say how accurate this forecast is.".into(),
        ),
    }
}

/// One business day's hourly cells: the office's and each queue's.
#[derive(Debug, Default)]
struct DayCells {
    by: BTreeMap<String, [Cell; 24]>,
}

impl DayCells {
    fn arrivals(&self) -> BTreeMap<String, [f64; 24]> {
        self.by
            .iter()
            .map(|(k, cells)| (k.clone(), cells.map(|c| c.issued as f64)))
            .collect()
    }
}

type Arrivals = BTreeMap<String, [f64; 24]>;

/// Reads the hourly cells (`Engine::stats(.., Granularity::Hour)`) by day.
fn by_day(hourly: &[(String, Dim, Cell)]) -> BTreeMap<NaiveDate, DayCells> {
    let mut days: BTreeMap<NaiveDate, DayCells> = BTreeMap::new();
    for (b, dim, cell) in hourly {
        let key = match dim {
            Dim::All => ALL.to_string(),
            Dim::Queue(q) => q.clone(),
            _ => continue,
        };
        let Some((date, hour)) = b.split_once(' ') else {
            continue;
        };
        let (Ok(date), Some(Ok(hour))) = (
            date.parse::<NaiveDate>(),
            hour.split(':').next().map(str::parse::<usize>),
        ) else {
            continue;
        };
        if hour >= 24 {
            continue;
        }
        let slot = days.entry(date).or_default().by.entry(key).or_default();
        slot[hour].merge(cell);
    }
    // A day with no ticket issued is no business day to learn from.
    days.retain(|_, d| {
        d.by.get(ALL)
            .is_some_and(|c| c.iter().any(|c| c.issued > 0))
    });
    days
}

/// One queue's service: its occupancy time and counters open per minute
/// for each arrival profile.
#[derive(Debug, Clone)]
struct QueueService {
    /// Minutes a counter is taken by one ticket, the pause before the next
    /// call included.
    occupancy_min: f64,
    /// Counters (shares of counters) serving the queue at each minute of
    /// the day, per arrival profile.
    servers: Vec<Vec<f64>>,
}

/// The staffing and service model learned by the wait estimate.
fn services(
    config: &Config,
    learned: &Learned,
    workload_per_day: &BTreeMap<String, f64>,
) -> BTreeMap<String, QueueService> {
    let gap_min = learned.gap_secs() / 60.0;
    let occupancy: BTreeMap<&str, f64> = config
        .queues
        .iter()
        .map(|q| {
            let secs = learned.occupancy.get(&q.id).map_or_else(
                || LogHist::prior(q.typical_service_secs).mean_secs(),
                LogHist::mean_secs,
            );
            (q.id.as_str(), secs / 60.0 + gap_min)
        })
        .collect();
    // Each counter's share of being open at each minute, per profile.
    let mut open: BTreeMap<u16, Vec<Vec<f64>>> = BTreeMap::new();
    for c in &config.counters {
        let mut per = Vec::with_capacity(BUCKETS);
        for b in 0..BUCKETS {
            let same: Vec<_> = learned
                .days
                .iter()
                .filter(|d| usize::from(d.weekday).min(5) == b)
                .collect();
            let days: Vec<_> = if same.is_empty() {
                learned.days.iter().collect()
            } else {
                same
            };
            let mut share = vec![0.0; MINUTES];
            if days.is_empty() {
                // No staffing recorded yet: every counter counts as open.
                share.iter_mut().for_each(|s| *s = 1.0);
            }
            for d in &days {
                let mut o = vec![false; MINUTES];
                let from = usize::try_from(d.opened_min.max(0))
                    .unwrap_or(0)
                    .min(MINUTES);
                o[from..].iter_mut().for_each(|x| *x = true);
                for (s, e) in d.closed.get(&c.number).into_iter().flatten() {
                    let s = usize::try_from((*s).max(0)).unwrap_or(0).min(MINUTES);
                    let e = e.map_or(MINUTES, |e| {
                        usize::try_from(e.max(0)).unwrap_or(0).min(MINUTES)
                    });
                    if s < e {
                        o[s..e].iter_mut().for_each(|x| *x = false);
                    }
                }
                for (x, open) in share.iter_mut().zip(o) {
                    if open {
                        *x += 1.0 / days.len() as f64;
                    }
                }
            }
            per.push(share);
        }
        open.insert(c.number, per);
    }
    config
        .queues
        .iter()
        .map(|q| {
            let mut servers = vec![vec![0.0; MINUTES]; BUCKETS];
            for c in config.counters_serving(&q.id) {
                // A counter serving several queues gives each its share of
                // the work they bring.
                let work = |id: &str| {
                    workload_per_day.get(id).copied().unwrap_or(0.0)
                        * occupancy.get(id).copied().unwrap_or(1.0)
                };
                let total: f64 = c.serves.iter().map(|s| work(s)).sum();
                let share = if total > 0.0 {
                    work(&q.id) / total
                } else {
                    1.0 / c.serves.len().max(1) as f64
                };
                if let Some(per) = open.get(&c.number) {
                    for (b, s) in servers.iter_mut().enumerate() {
                        for (x, o) in s.iter_mut().zip(&per[b]) {
                            *x += o * share;
                        }
                    }
                }
            }
            (
                q.id.clone(),
                QueueService {
                    occupancy_min: occupancy.get(q.id.as_str()).copied().unwrap_or(10.0),
                    servers,
                },
            )
        })
        .collect()
}

/// The mean wait, minutes, of each hour's arrivals at one queue: a fluid
/// backlog plus a steady queue's wait at the hour's load.
fn model_waits(arrivals: &[f64; 24], servers: &[f64], occupancy_min: f64) -> [f64; 24] {
    let mut out = [0.0; 24];
    let Some(first) = arrivals.iter().position(|a| *a > 0.0) else {
        return out;
    };
    let last = arrivals.iter().rposition(|a| *a > 0.0).unwrap_or(first);
    let occ = occupancy_min.max(0.1);
    // While no counter is open, arrivals wait for the day's usual capacity.
    let open: Vec<f64> = servers[first * 60..(last + 1) * 60]
        .iter()
        .copied()
        .filter(|s| *s > 1e-9)
        .collect();
    if open.is_empty() {
        return out;
    }
    let usual = open.iter().sum::<f64>() / open.len() as f64;
    let mut backlog = 0.0_f64;
    let mut sums = [0.0; 24];
    for (h, a_h) in arrivals.iter().enumerate().take(last + 1).skip(first) {
        let a = a_h / 60.0;
        for m in h * 60..(h + 1) * 60 {
            let c = servers.get(m).copied().unwrap_or(0.0);
            let cap = c / occ;
            if a > 0.0 {
                let (c_eff, cap_eff) = if c > 1e-9 {
                    (c, cap)
                } else {
                    (usual, usual / occ)
                };
                let load = (a / cap_eff).min(MAX_STEADY_LOAD);
                let steady = occ * load.powf((2.0 * (c_eff + 1.0)).sqrt() - 1.0)
                    / (c_eff.max(0.5) * (1.0 - load));
                sums[h] += a * (backlog / cap_eff + steady);
            }
            backlog = (backlog + a - cap).max(0.0);
        }
        if a > 0.0 {
            // The mean over the hour's arrivals (a per minute, 60 minutes).
            out[h] = sums[h] / (a * 60.0);
        }
    }
    out
}

/// The day-by-day learner: arrival profiles, season factors, calibration.
#[derive(Debug, Default)]
struct Learner {
    /// Per profile: recent ordinary days' arrivals, and recent days of any
    /// class (used while a profile has no ordinary day yet).
    ordinary: Vec<VecDeque<Arrivals>>,
    any: Vec<VecDeque<Arrivals>>,
    /// Per (class, key): recent days' arrivals over their profile's.
    ratios: BTreeMap<(Season, String), VecDeque<f64>>,
    /// Per (queue, hour), hour 24 for the queue as a whole: decayed sums
    /// of real wait minutes, the model's wait minutes and tickets.
    calib: BTreeMap<(String, usize), (f64, f64, f64)>,
    /// Per queue: decayed squared errors of the calibrated model and of
    /// the recent mean wait, hour by hour, weighted by waits.
    errors: BTreeMap<String, (f64, f64)>,
    /// Per (queue, profile, hour): decayed sums of real wait minutes and
    /// waits.
    by_profile: BTreeMap<(String, usize, usize), (f64, f64)>,
    days: usize,
}

fn mean(days: &VecDeque<Arrivals>, key: &str) -> Option<[f64; 24]> {
    if days.is_empty() {
        return None;
    }
    let mut out = [0.0; 24];
    for d in days {
        if let Some(a) = d.get(key) {
            for (o, x) in out.iter_mut().zip(a) {
                *o += x;
            }
        }
    }
    Some(out.map(|x| x / days.len() as f64))
}

impl Learner {
    fn new() -> Learner {
        Learner {
            ordinary: vec![VecDeque::new(); BUCKETS],
            any: vec![VecDeque::new(); BUCKETS],
            ..Learner::default()
        }
    }

    /// The usual arrivals of `key` per hour on profile `b`: the recent
    /// ordinary days of that weekday (any days while it has none), shrunk
    /// towards all weekdays' by [`WEEKDAY_PRIOR_DAYS`] (two or three
    /// Fridays say little about Fridays).
    fn base(&self, b: usize, key: &str) -> [f64; 24] {
        let own = if self.ordinary[b].is_empty() {
            &self.any[b]
        } else {
            &self.ordinary[b]
        };
        let range = if b < 5 { 0..5 } else { 5..6 };
        let mut pooled: VecDeque<Arrivals> = self.ordinary[range.clone()]
            .iter()
            .flatten()
            .cloned()
            .collect();
        if pooled.is_empty() {
            pooled = self.any[range].iter().flatten().cloned().collect();
        }
        if pooled.is_empty() {
            pooled = self.any.iter().flatten().cloned().collect();
        }
        let pooled = mean(&pooled, key).unwrap_or([0.0; 24]);
        match mean(own, key) {
            None => pooled,
            Some(own_mean) => {
                let n = own.len() as f64;
                let mut out = [0.0; 24];
                for (o, (a, p)) in out.iter_mut().zip(own_mean.iter().zip(&pooled)) {
                    *o = (n * a + WEEKDAY_PRIOR_DAYS * p) / (n + WEEKDAY_PRIOR_DAYS);
                }
                out
            }
        }
    }

    /// The recent mean real wait of `queue` at `hour` on profile `b`
    /// (decayed like the calibration; shrunk towards all profiles' by
    /// [`CALIB_PRIOR_TICKETS`]), when seen.
    fn recent(&self, queue: &str, b: usize, hour: usize) -> Option<f64> {
        let all = self
            .calib
            .get(&(queue.to_string(), hour))
            .filter(|s| s.2 > 0.0)
            .map(|s| s.0 / s.2)?;
        let (sum, n) = self
            .by_profile
            .get(&(queue.to_string(), b, hour))
            .copied()
            .unwrap_or((0.0, 0.0));
        Some((sum + CALIB_PRIOR_TICKETS * all) / (n + CALIB_PRIOR_TICKETS))
    }

    /// The weight of the model against the recent mean, per queue: each
    /// weighted by the other's past squared error (inverse variance), 1/2
    /// while neither has been tried.
    fn model_weight(&self, queue: &str) -> f64 {
        let (m, r) = self.errors.get(queue).copied().unwrap_or((0.0, 0.0));
        (r + 1.0) / (m + r + 2.0)
    }

    /// The forecast wait of `queue` at `hour` for the model's `raw` wait.
    fn wait(&self, queue: &str, b: usize, hour: usize, raw: f64) -> f64 {
        let model = self.calibrated(queue, hour, raw);
        match self.recent(queue, b, hour) {
            Some(r) => {
                let a = self.model_weight(queue);
                a * model + (1.0 - a) * r
            }
            None => model,
        }
    }

    fn factor(&self, season: Season, key: &str) -> f64 {
        if season == Season::Ordinary {
            return 1.0;
        }
        let r = self.ratios.get(&(season, key.to_string()));
        let (sum, n) = r.map_or((0.0, 0.0), |r| (r.iter().sum(), r.len() as f64));
        (sum + FACTOR_PRIOR_DAYS) / (n + FACTOR_PRIOR_DAYS)
    }

    fn keys(&self) -> BTreeSet<String> {
        self.any
            .iter()
            .flatten()
            .flat_map(|d| d.keys().cloned())
            .collect()
    }

    fn arrivals(&self, b: usize, season: Season) -> Arrivals {
        let season = if b == 5 { Season::Ordinary } else { season };
        self.keys()
            .into_iter()
            .map(|k| {
                let f = self.factor(season, &k);
                let a = self.base(b, &k).map(|x| x * f);
                (k, a)
            })
            .collect()
    }

    /// The calibrated wait of `queue` at `hour` for the model's `raw`
    /// wait: a scale (shrunk towards the queue's over all hours, itself
    /// towards 1, and held within 0.2–5 so that one odd stretch cannot
    /// blow a busy day up), then the mean of what the scale left over
    /// (shrunk towards 0): a model far too low on a short queue still ends
    /// near the waits seen.
    fn calibrated(&self, queue: &str, hour: usize, raw: f64) -> f64 {
        let scale = |(actual, model, tickets): (f64, f64, f64), towards: f64| {
            if model <= 0.0 || tickets <= 0.0 {
                return towards;
            }
            let prior = CALIB_PRIOR_TICKETS * model / tickets;
            ((actual + prior * towards) / (model + prior)).clamp(0.2, 5.0)
        };
        let whole = self
            .calib
            .get(&(queue.to_string(), 24))
            .map_or(1.0, |s| scale(*s, 1.0));
        match self.calib.get(&(queue.to_string(), hour)) {
            Some(&(actual, model, tickets)) => {
                let r = scale((actual, model, tickets), whole);
                let rest = (actual - r * model) / (tickets + CALIB_PRIOR_TICKETS);
                (r * raw + rest).max(0.0)
            }
            None => whole * raw,
        }
    }

    /// The forecast of a day of profile `b` and class `season`: per hour,
    /// the office's arrivals, mean wait and number waiting; and the
    /// model's uncalibrated waits per queue.
    fn predict(
        &self,
        services: &BTreeMap<String, QueueService>,
        b: usize,
        season: Season,
    ) -> (Vec<HourForecast>, BTreeMap<String, [f64; 24]>) {
        let arrivals = self.arrivals(b, season);
        let mut raw = BTreeMap::new();
        let mut wait_sum = [0.0; 24];
        let mut legs = [0.0; 24];
        for (q, s) in services {
            let Some(a) = arrivals.get(q) else {
                continue;
            };
            let w = model_waits(a, &s.servers[b], s.occupancy_min);
            for h in 0..24 {
                let cal = self.wait(q, b, h, w[h]);
                wait_sum[h] += a[h] * cal;
                legs[h] += a[h];
            }
            raw.insert(q.clone(), w);
        }
        let all = arrivals.get(ALL).copied().unwrap_or([0.0; 24]);
        let hours = (0..24)
            .filter(|h| all[*h] > 0.0 || legs[*h] > 0.0)
            .map(|h| {
                let wait = if legs[h] > 0.0 {
                    wait_sum[h] / legs[h]
                } else {
                    0.0
                };
                HourForecast {
                    hour: h as u32,
                    arrivals: all[h],
                    wait_min: wait,
                    waiting: wait_sum[h] / 60.0,
                }
            })
            .collect();
        (hours, raw)
    }

    /// Learns from one past day, after it was forecast (`raw`: the model's
    /// waits for it).
    fn learn(
        &mut self,
        day: &DayCells,
        b: usize,
        season: Season,
        raw: &BTreeMap<String, [f64; 24]>,
    ) {
        let actual = day.arrivals();
        if b < 5 && season != Season::Ordinary {
            for (k, a) in &actual {
                let expected: f64 = self.base(b, k).iter().sum();
                if expected > 0.0 && self.days > 0 {
                    let r = self.ratios.entry((season, k.clone())).or_default();
                    r.push_back(a.iter().sum::<f64>() / expected);
                    if r.len() > FACTOR_DAYS {
                        r.pop_front();
                    }
                }
            }
        }
        // How the calibrated model and the recent mean did on this day,
        // before either learns from it.
        for e in self.errors.values_mut() {
            e.0 *= CALIB_DECAY;
            e.1 *= CALIB_DECAY;
        }
        for (q, w) in raw {
            let Some(cells) = day.by.get(q) else {
                continue;
            };
            for (h, c) in cells.iter().enumerate() {
                let Some(recent) = self.recent(q, b, h).filter(|_| c.waits > 0) else {
                    continue;
                };
                let n = c.waits as f64;
                let real = c.wait_sum_s as f64 / 60.0 / n;
                let model = self.calibrated(q, h, w[h]);
                let e = self.errors.entry(q.clone()).or_default();
                e.0 += n * (model - real).powi(2);
                e.1 += n * (recent - real).powi(2);
            }
        }
        for s in self.by_profile.values_mut() {
            s.0 *= CALIB_DECAY;
            s.1 *= CALIB_DECAY;
        }
        for s in self.calib.values_mut() {
            s.0 *= CALIB_DECAY;
            s.1 *= CALIB_DECAY;
            s.2 *= CALIB_DECAY;
        }
        for (q, w) in raw {
            let Some(cells) = day.by.get(q) else {
                continue;
            };
            for (h, c) in cells.iter().enumerate() {
                if c.waits == 0 {
                    continue;
                }
                let n = c.waits as f64;
                let real = c.wait_sum_s as f64 / 60.0;
                for key in [h, 24] {
                    let s = self.calib.entry((q.clone(), key)).or_default();
                    s.0 += real;
                    s.1 += n * w[h];
                    s.2 += n;
                }
                let s = self.by_profile.entry((q.clone(), b, h)).or_default();
                s.0 += real;
                s.1 += n;
            }
        }
        let push = |list: &mut VecDeque<Arrivals>| {
            list.push_back(actual.clone());
            if list.len() > BASE_DAYS {
                list.pop_front();
            }
        };
        push(&mut self.any[b]);
        if season == Season::Ordinary || b == 5 {
            push(&mut self.ordinary[b]);
        }
        self.days += 1;
    }
}

/// Builds the forecast from hourly cells of the office and its queues
/// (`Engine::stats(.., Granularity::Hour)`) and what the wait estimate
/// learned, as of `today` (whose cells are left out once an earlier day is
/// recorded).
pub fn forecast(
    config: &Config,
    learned: &Learned,
    hourly: &[(String, Dim, Cell)],
    today: NaiveDate,
) -> Forecast {
    let is_open = |d: NaiveDate| config.calendar.opening(d).is_some();
    let mut days = by_day(hourly);
    // Today is not over: its few hours would pull its weekday down. Only an
    // office with no earlier day learns from it (something rather than
    // nothing to show).
    if days.range(..today).next().is_some() {
        days.retain(|d, _| *d < today);
    }
    let n_days = days.len().max(1) as f64;
    let workload: BTreeMap<String, f64> = config
        .queues
        .iter()
        .map(|q| {
            let total: u64 = days
                .values()
                .filter_map(|d| d.by.get(&q.id))
                .flat_map(|c| c.iter().map(|c| c.issued))
                .sum();
            (q.id.clone(), total as f64 / n_days)
        })
        .collect();
    let services = services(config, learned, &workload);
    let since = today
        .checked_sub_days(Days::new(ACCURACY_DAYS))
        .unwrap_or(today);
    let mut learner = Learner::new();
    let (mut err, mut real, mut weight, mut scored) = (0.0, 0.0, 0.0, 0usize);
    let mut kinds: BTreeMap<DayKind, usize> = BTreeMap::new();
    let mut past = Vec::new();
    for (date, day) in &days {
        let b = bucket(*date);
        let season = Season::of(*date, is_open);
        let (hours, raw) = learner.predict(&services, b, season);
        if *date >= since && *date < today && learner.days >= MIN_HISTORY_DAYS {
            if let Some(all) = day.by.get(ALL) {
                let (e, r, w) = score(&hours, all);
                err += e;
                real += r;
                weight += w;
                scored += usize::from(w > 0.0);
            }
        }
        learner.learn(day, b, season, &raw);
        past.push((*date, hours));
        *kinds.entry(DayKind::of(*date, is_open)).or_default() += 1;
    }
    let accuracy = (scored >= MIN_ACCURACY_DAYS && weight > 0.0).then(|| Accuracy {
        days: scored,
        mae_min: round1(err / weight),
        actual_min: round1(real / weight),
    });
    let series = kinds
        .into_iter()
        .map(|(kind, n)| {
            let (profiles, season) = kind.profiles();
            let mut merged: BTreeMap<u32, (f64, f64, f64)> = BTreeMap::new();
            for b in &profiles {
                let (hours, _) = learner.predict(&services, *b, season);
                for h in hours {
                    let e = merged.entry(h.hour).or_default();
                    e.0 += h.arrivals;
                    e.1 += h.waiting;
                    e.2 += h.wait_min * h.arrivals;
                }
            }
            let k = profiles.len().max(1) as f64;
            let hours = merged
                .into_iter()
                .map(|(hour, (arrivals, waiting, wait_weighted))| HourForecast {
                    hour,
                    arrivals: round1(arrivals / k),
                    wait_min: round1(if arrivals > 0.0 {
                        wait_weighted / arrivals
                    } else {
                        0.0
                    }),
                    waiting: round1(waiting / k),
                })
                .collect();
            Series {
                kind,
                label_ja: kind.label_ja(),
                label_en: kind.label_en(),
                days: n,
                hours,
            }
        })
        .collect();
    Forecast {
        series,
        accuracy,
        past,
    }
}

/// A day's forecast against what happened, hour by hour: the sums of
/// |forecast − real mean wait| and of the real mean wait, in minutes, each
/// hour weighted by its waits, and the weight. An hour without a wait
/// counts nothing; an hour with waits but no forecast counts as forecast 0.
fn score(hours: &[HourForecast], real: &[Cell; 24]) -> (f64, f64, f64) {
    let (mut err, mut sum, mut weight) = (0.0, 0.0, 0.0);
    for (h, c) in real.iter().enumerate() {
        if c.waits == 0 {
            continue;
        }
        let n = c.waits as f64;
        let actual = c.wait_sum_s as f64 / 60.0 / n;
        let shown = hours
            .iter()
            .find(|f| f.hour as usize == h)
            .map_or(0.0, |f| f.wait_min);
        err += n * (shown - actual).abs();
        sum += n * actual;
        weight += n;
    }
    (err, sum, weight)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The granularity the forecast reads.
pub const SOURCE: Granularity = Granularity::Hour;

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn cell(issued: u64, waits: u64, wait_sum_s: u64) -> Cell {
        Cell {
            issued,
            waits,
            wait_sum_s,
            ..Cell::default()
        }
    }

    #[test]
    fn season_classes_of_a_date() {
        let cfg = Config::embedded_default();
        let open = |d: NaiveDate| cfg.calendar.opening(d).is_some();
        // 2026-11-23 (Mon) is 勤労感謝の日: the Tuesday after it.
        assert!(!open(date("2026-11-23")), "the holiday is closed");
        assert_eq!(Season::of(date("2026-11-24"), open), Season::AfterHoliday);
        assert_eq!(Season::of(date("2026-11-25"), open), Season::MonthEnd);
        assert_eq!(Season::of(date("2026-12-02"), open), Season::MonthStart);
        assert_eq!(Season::of(date("2026-12-10"), open), Season::Ordinary);
        // A Monday after an ordinary weekend is an ordinary Monday…
        assert_eq!(Season::of(date("2026-12-14"), open), Season::Ordinary);
        // …after a closed Friday it is a day after a holiday.
        let friday_closed = |d: NaiveDate| d != date("2026-12-11");
        assert_eq!(
            Season::of(date("2026-12-14"), friday_closed),
            Season::AfterHoliday
        );
        // The moving season wins over every other class.
        assert_eq!(Season::of(date("2027-03-29"), open), Season::Moving);
        assert_eq!(Season::of(date("2027-04-01"), open), Season::Moving);
        // The year-end closure: 4 January follows closed days.
        assert_eq!(Season::of(date("2027-01-04"), open), Season::AfterHoliday);
        assert_eq!(
            DayKind::of(date("2026-12-13"), open),
            DayKind::Weekend,
            "a Sunday opening"
        );
        assert_eq!(DayKind::of(date("2026-12-10"), open), DayKind::Weekday(3));
        assert_eq!(DayKind::of(date("2027-03-29"), open), DayKind::Season);
    }

    #[test]
    fn the_score_weights_each_hour_by_its_waits() {
        let f = |hour, wait_min| HourForecast {
            hour,
            arrivals: 0.0,
            wait_min,
            waiting: 0.0,
        };
        let mut real = [Cell::default(); 24];
        // 09:00: 30 waits of 20 min on average, forecast 25 → 5 off.
        real[9] = cell(30, 30, 30 * 20 * 60);
        // 10:00: 10 waits of 10 min, forecast 4 → 6 off.
        real[10] = cell(10, 10, 10 * 10 * 60);
        // 11:00: waits but no forecast → counts as forecast 0 (3 off).
        real[11] = cell(5, 5, 5 * 3 * 60);
        // 12:00 forecast but nobody waited: nothing to compare.
        let (err, sum, w) = score(&[f(9, 25.0), f(10, 4.0), f(12, 9.0)], &real);
        assert_eq!(w, 45.0);
        assert!((err - (30.0 * 5.0 + 10.0 * 6.0 + 5.0 * 3.0)).abs() < 1e-9);
        assert!((sum - (30.0 * 20.0 + 10.0 * 10.0 + 5.0 * 3.0)).abs() < 1e-9);
    }

    #[test]
    fn the_fluid_queue_carries_a_backlog_and_a_quiet_hour_waits_little() {
        let servers = vec![2.0; MINUTES];
        let mut quiet = [0.0; 24];
        quiet[9] = 6.0; // one an hour per counter every 20 min: load 0.5
        let w = model_waits(&quiet, &servers, 10.0);
        assert!(w[9] > 0.0 && w[9] < 10.0, "{w:?}");
        // Twice the capacity for two hours, then nobody: the backlog of the
        // first hours is worked off into the third.
        let mut busy = [0.0; 24];
        busy[9] = 24.0;
        busy[10] = 24.0;
        busy[11] = 1.0;
        let w = model_waits(&busy, &servers, 10.0);
        assert!(w[10] > w[9] + 20.0, "{w:?}");
        // 24 waiting at 11:00, 12 an hour served: a visitor of 11:00–12:00
        // waits behind the 12–24 still there (about 90 min).
        assert!((80.0..110.0).contains(&w[11]), "{w:?}");
        assert_eq!(w[12], 0.0);
        // No counter at all: nothing to say.
        assert_eq!(model_waits(&busy, &[0.0; MINUTES], 10.0), [0.0; 24]);
    }

    /// Weekdays of June 2026 (no holiday): `issued` at 09:00 per day (150
    /// on the 25th and after), each waiting `wait_min`.
    fn june(issued: impl Fn(NaiveDate) -> u64, wait_min: u64) -> Vec<(String, Dim, Cell)> {
        let mut rows = Vec::new();
        for d in 1..=30 {
            let day = NaiveDate::from_ymd_opt(2026, 6, d).expect("date");
            if bucket(day) == 5 {
                continue;
            }
            let n = issued(day);
            let c = cell(n, n, n * wait_min * 60);
            for dim in [Dim::All, Dim::Queue("idou".into())] {
                rows.push((format!("{day} 09:00"), dim, c));
            }
        }
        rows
    }

    #[test]
    fn a_season_class_scales_its_weekdays_arrivals() {
        let cfg = Config::embedded_default();
        let rows = june(|d| if d.day() >= 25 { 150 } else { 100 }, 30);
        let f = forecast(&cfg, &Learned::default(), &rows, date("2026-07-01"));
        let kind = |k| {
            f.series
                .iter()
                .find(|s| s.kind == k)
                .unwrap_or_else(|| panic!("{k:?}"))
        };
        let tue = kind(DayKind::Weekday(1));
        assert_eq!(tue.hours.len(), 1);
        assert_eq!(tue.hours[0].arrivals, 100.0);
        // 25, 26, 29, 30 June, each 1.5 × the usual, shrunk with two
        // pseudo-days at 1: (4 × 1.5 + 2) / 6.
        let end = kind(DayKind::MonthEnd);
        assert_eq!(end.days, 4);
        assert_eq!(end.hours[0].arrivals, round1(100.0 * 8.0 / 6.0));
        // The month's first days (1–5 June) came before any ordinary day:
        // their own level, factor 1.
        assert_eq!(kind(DayKind::MonthStart).hours[0].arrivals, 100.0);
    }

    #[test]
    fn the_accuracy_compares_each_day_with_the_forecast_made_before_it() {
        let cfg = Config::embedded_default();
        let rows = june(|_| 60, 25);
        // Too little history: 3 days.
        let few: Vec<_> = rows
            .iter()
            .filter(|(b, _, _)| b.as_str() < "2026-06-04")
            .cloned()
            .collect();
        let f = forecast(&cfg, &Learned::default(), &few, date("2026-06-04"));
        assert_eq!(f.accuracy, None);
        assert!(f.accuracy_words().0.contains("記録がまだ少ない"));
        // A month of the same day: the calibration learns the real wait,
        // so the forecast ends close to it.
        let f = forecast(&cfg, &Learned::default(), &rows, date("2026-07-01"));
        let a = f.accuracy.clone().expect("accuracy");
        // 22 weekdays; the first 5 only teach.
        assert_eq!(a.days, 22 - MIN_HISTORY_DAYS);
        assert_eq!(a.actual_min, 25.0);
        assert!(a.mae_min < 5.0, "{a:?}");
        let tue = f
            .series
            .iter()
            .find(|s| s.kind == DayKind::Weekday(1))
            .expect("tuesday");
        assert!((tue.hours[0].wait_min - 25.0).abs() < 2.0, "{tue:?}");
        // Little's law: 60 an hour waiting 25 min → 25 people.
        assert!((tue.hours[0].waiting - 25.0).abs() < 2.0, "{tue:?}");
        // Days outside the last 30 do not count; nor does today.
        let f = forecast(&cfg, &Learned::default(), &rows, date("2026-07-20"));
        assert!(f.accuracy.expect("accuracy").days < a.days);
        let f = forecast(&cfg, &Learned::default(), &rows, date("2026-06-15"));
        let a = f.accuracy.expect("accuracy");
        // Days 8–12 June are forecast from 5+ days before them; 15 June is
        // today.
        assert_eq!(a.days, 5);
        let (ja, en) = accuracy_words(Some(&Accuracy {
            days: 20,
            mae_min: 6.4,
            actual_min: 41.6,
        }));
        assert_eq!(
            ja,
            "この予想を過去30日（20日分）の実際と比べると、1時間ごとの平均待ち時間の誤差は平均6分でした（実際の平均待ち時間は42分）。"
        );
        assert!(en.contains("off by 6 min"), "{en}");
    }
}
