//! Wait estimates (R2, R4): how many wait in a queue and how long a new or a
//! waiting ticket should expect to wait, as a point and an 80 % range.
//!
//! The method, also described in ARCHITECTURE.md:
//! - What the office's history taught ([`super::learn`]): each queue's
//!   distribution of occupancy times (call → release), today's pace, the
//!   pause between calls, how often absentees come back and when, and which
//!   counters were closed when on recent business days.
//! - A small **Monte-Carlo replay** of the queues from now: the counters
//!   that serve the queue (and the queues they share), each busy one freeing
//!   after a sampled rest of its current ticket (conditional on the time
//!   already spent), each following the closures of one recent business day
//!   (same weekday first; a lunch not yet taken today still comes, one
//!   taken early does not come again, a counter closed now reopens when that
//!   day says), calling by its policy, with sampled occupancy times and
//!   absentees returning to the front. [`SAMPLES`] replays (fewer for long
//!   queues) with common random numbers ([`Draws`]: keyed by the business
//!   day, the replay and the ticket, not the clock or the last event), so
//!   the same state gives the same estimate, time passing moves it
//!   smoothly, and an event moves it only through what the event changed.
//! - The point is the mean of the replays, the range their 10th and 90th
//!   percentiles; both then pass through a **calibration** learned from the
//!   waits that followed earlier estimates (the scale of the point, the
//!   width of each side of the range).
//!
//! Without history (fewer than [`RELIABLE_SAMPLES`] timings of the queue or
//! no business day recorded) the estimate is marked unreliable and surfaces
//! say so in words. The ticket-issued event records the estimate shown, so
//! its accuracy is measured afterwards against the real wait.

use chrono::Datelike;
use serde::Serialize;

use super::learn::{DayStaffing, LogHist, Sampler};
use super::{local_min, ServiceTime, State, WaitKey};
use crate::config::{CallPolicy, Config};
use crate::model::{CounterNo, Millis, Number};

/// Longest occupancy fed into the moving average; a counter left "busy"
/// over lunch must not make every estimate absurd.
const MAX_SAMPLE_SECS: f64 = 2.0 * 3600.0;

/// Replays per estimate (up to 60 tickets ahead; fewer beyond, down to
/// [`MIN_SAMPLES`]).
pub const SAMPLES: usize = 48;
pub const MIN_SAMPLES: usize = 16;

/// Calls simulated per replay at most (bounds the cost of a very long
/// queue; the rest is extrapolated).
const MAX_CALLS: usize = 1500;

/// Timings of a queue before its estimate is called reliable.
pub const RELIABLE_SAMPLES: u64 = 30;

/// Whether a wait can be put in numbers, and if not, why (issue 19: no
/// invented precision). Surfaces turn it into words
/// (`madoguchi_renderer::surfaces::wait_words`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Enough history, and a counter serving the queue is open.
    Estimate,
    /// Too little history: fewer than [`RELIABLE_SAMPLES`] timings of the
    /// queue, or no business day recorded.
    LittleHistory,
    /// No counter serving the queue is open now. Nobody can say when one
    /// opens (a counter closed mid-day, staff not yet arrived), so the
    /// replay's guess from other days is not shown as a wait (issue 18,
    /// browser finding F17: every waiting ticket showed the same 5 minutes).
    NoCounterOpen,
}

/// A queue's figures, as shown on kiosks and guidance displays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueEstimate {
    pub queue: String,
    pub waiting: u32,
    /// The expected wait of a ticket issued now.
    pub expected_wait_s: u32,
    /// Its 80 % range.
    pub expected_wait_low_s: u32,
    pub expected_wait_high_s: u32,
    /// Whether the wait can be put in numbers, and if not, why.
    pub basis: Basis,
    /// `basis == Basis::Estimate`: false says so instead of a number.
    pub reliable: bool,
    /// The mean occupancy time learned.
    pub service_secs: f64,
    /// Counters open for the queue now.
    pub counters: f64,
}

/// A wait: point and 80 % range, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct WaitRange {
    pub point_s: u32,
    pub low_s: u32,
    pub high_s: u32,
}

/// The SplitMix64 finaliser of `x` plus the golden gamma: small, fast,
/// and the same everywhere.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random numbers of one replay: **common random numbers** (outside
/// tester pages-rt7 N3). Every draw is keyed by the business day, the
/// replay's index and what it is for — a ticket's occupancy, whether it is
/// absent and when it returns, the pause after it, an idle counter's first
/// call — never by the order of the draws or by the state's last change.
/// An event then changes an estimate only through what it changed: a
/// ticket issued behind changes nothing ahead of it, a call keeps every
/// other ticket's draws (and the called one's occupancy is its rest, drawn
/// with the same number), a completion frees one counter. Seeding each
/// estimate from `Meta::last_at` drew everything afresh at every event, and
/// the guidance display's range jumped 6 (1〜9) → 13 (2〜75) → 6 (1〜9).
#[derive(Debug, Clone, Copy)]
struct Draws(u64);

/// What a draw is for (with a ticket's number or a counter's key).
const OCCUPANCY: u64 = 0;
const ABSENT: u64 = 1;
const RETURN_DELAY: u64 = 2;
const GAP: u64 = 3;
/// Added to the above for a returned absentee's second call.
const AGAIN: u64 = 4;
/// A counter's key among tickets' numbers.
const COUNTER_KEY: u64 = 1 << 40;

impl Draws {
    fn replay(day: u64, k: usize) -> Draws {
        Draws(mix(
            mix(day) ^ (k as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
        ))
    }

    /// Uniform in [0, 1): draw `what` of `who`.
    fn unit(self, who: u64, what: u64) -> f64 {
        let z = mix(self.0 ^ mix(who.wrapping_mul(8).wrapping_add(what)));
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// SplitMix64, for tests.
#[cfg(test)]
struct Rng(u64);

#[cfg(test)]
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One counter in a replay.
struct SimCounter<'a> {
    serves: &'a [usize],
    policy: CallPolicy,
    free_at: f64,
    /// Closed spells ahead, in seconds from now.
    closed: &'a [(f64, f64)],
}

/// What a counter is doing when the replays start.
enum Doing {
    Idle,
    /// Serving a ticket of a queue outside the replay.
    Other,
    /// Serving ticket `number` of replayed queue `qi` for `elapsed`
    /// seconds, which is the cumulative share `f` of that queue's
    /// occupancies.
    Queue {
        qi: usize,
        number: Number,
        elapsed: f64,
        f: f64,
    },
}

/// One counter as every replay of an estimate starts it: all but the
/// sampled rest of its current ticket is the same in each replay, so it is
/// worked out once per estimate.
struct CounterPlan {
    serves: Vec<usize>,
    policy: CallPolicy,
    doing: Doing,
    /// Closed spells ahead, in seconds from now, for each staffing day a
    /// replay may follow (one entry when there is none).
    closed: Vec<Vec<(f64, f64)>>,
}

/// What a replay needs of one queue.
struct SimQueue {
    sampler: Sampler,
    pace: f64,
    returns: f64,
    keys: Vec<WaitKey>,
}

/// The replays of one estimate: for each, when each of the first `target`
/// waiting tickets is called, in seconds from now (one flat buffer).
struct Runs {
    target: usize,
    called: Vec<f64>,
}

impl Runs {
    fn iter(&self) -> impl Iterator<Item = &[f64]> {
        self.called.chunks_exact(self.target.max(1))
    }
}

/// Buffers one estimate's replays reuse.
#[derive(Default)]
struct Scratch {
    pos: Vec<usize>,
    /// Absentees coming back: (arrives at, queue, number), joining at the
    /// front.
    returning: Vec<(f64, usize, Number)>,
    /// Each counter's `free_at` as a [`free_key`].
    free: Vec<i64>,
}

/// The queues sharing counters with `queue` (itself first), and every
/// counter of those queues: what one replay of `queue` must play out.
fn sharing<'c>(config: &'c Config, queue: &str) -> (Vec<String>, Vec<&'c crate::config::Counter>) {
    let mut queues: Vec<String> = vec![queue.to_string()];
    for c in config.counters_serving(queue) {
        for q in &c.serves {
            if !queues.contains(q) {
                queues.push(q.clone());
            }
        }
    }
    let counters = config
        .counters
        .iter()
        .filter(|c| c.serves.iter().any(|q| queues.contains(q)))
        .collect();
    (queues, counters)
}

impl State {
    pub(super) fn observe_service(&mut self, config: &Config, queue: &str, secs: f64) {
        let alpha = config.estimate.alpha;
        let prior = config
            .queue(queue)
            .map_or(600.0, |q| q.typical_service_secs);
        let s = self
            .meta
            .service
            .entry(queue.to_string())
            .or_insert(ServiceTime {
                mean_secs: prior,
                samples: 0,
            });
        let x = secs.clamp(0.0, MAX_SAMPLE_SECS);
        s.mean_secs = alpha * x + (1.0 - alpha) * s.mean_secs;
        s.samples += 1;
        let hist = self
            .meta
            .learned
            .occupancy
            .entry(queue.to_string())
            .or_insert_with(|| LogHist::prior(prior));
        let usual = hist.mean_ln();
        hist.observe(x);
        let pace = self
            .meta
            .learned
            .pace
            .entry(queue.to_string())
            .or_insert((0.0, 0.0));
        pace.0 += x.max(10.0).ln() - usual;
        pace.1 += 1.0;
    }

    /// The learned occupancy histogram of `queue` (its prior before any
    /// timing), handed to `f` without a copy.
    fn with_occupancy<T>(&self, config: &Config, queue: &str, f: impl FnOnce(&LogHist) -> T) -> T {
        match self.meta.learned.occupancy.get(queue) {
            Some(h) => f(h),
            None => f(&LogHist::prior(
                config
                    .queue(queue)
                    .map_or(600.0, |q| q.typical_service_secs),
            )),
        }
    }

    fn occupancy_sampler(&self, config: &Config, queue: &str) -> Sampler {
        self.with_occupancy(config, queue, LogHist::sampler)
    }

    fn occupancy_secs(&self, config: &Config, queue: &str) -> f64 {
        self.with_occupancy(config, queue, LogHist::mean_secs)
    }

    /// Whether the estimate of `queue` rests on enough history.
    pub fn estimate_reliable(&self, queue: &str) -> bool {
        let timed = self
            .meta
            .learned
            .occupancy
            .get(queue)
            .map_or(0, |h| h.samples);
        timed >= RELIABLE_SAMPLES && !self.meta.learned.days.is_empty()
    }

    /// Whether the wait in `queue` can be put in numbers now ([`Basis`]).
    pub fn estimate_basis(&self, config: &Config, queue: &str) -> Basis {
        if !self.estimate_reliable(queue) {
            Basis::LittleHistory
        } else if self.open_counters_serving(config, queue) == 0 {
            Basis::NoCounterOpen
        } else {
            Basis::Estimate
        }
    }

    fn open_counters_serving(&self, config: &Config, queue: &str) -> usize {
        config
            .counters_serving(queue)
            .filter(|c| self.meta.counters.get(&c.number).is_some_and(|s| s.open))
            .count()
    }

    /// The recent business days a replay follows: the same weekday first.
    fn staffing_days(&self) -> Vec<&DayStaffing> {
        let l = &self.meta.learned;
        let same: Vec<&DayStaffing> = l
            .days
            .iter()
            .rev()
            .filter(|d| d.weekday == l.today.weekday)
            .take(4)
            .collect();
        if same.len() >= 2 {
            return same;
        }
        l.days.iter().rev().take(6).collect()
    }

    /// The closed spells of `counter` from now, in seconds from now, if it
    /// follows `day`.
    fn spells_ahead(
        &self,
        counter: CounterNo,
        open_now: bool,
        now_min: i32,
        day: Option<&DayStaffing>,
    ) -> Vec<(f64, f64)> {
        let rel = |m: i32| f64::from(m - now_min) * 60.0;
        let today = self.meta.learned.today.closed.get(&counter);
        let mut out = Vec::new();
        let Some(day) = day else {
            if !open_now {
                out.push((0.0, f64::INFINITY));
            }
            return out;
        };
        let spells: &[(i32, Option<i32>)] = day.closed.get(&counter).map_or(&[], |s| s);
        let mut from_min = now_min;
        if !open_now {
            // Closed now: since when, and when that day says it reopens.
            let since = today
                .and_then(|s| s.last())
                .map_or(self.meta.learned.today.opened_min, |s| s.0);
            let elapsed = now_min - since;
            let reopen = match day.spell_at(counter, now_min) {
                // That day it was closed now too, in a closure begun near
                // the same time (a lunch, a late opening) and lasting
                // longer than this one so far: it reopens when that one
                // ended, or not at all if that one did not.
                Some((s, e)) if (s - since).abs() <= 90 && e.is_none_or(|e| e - s > elapsed) => e,
                _ => {
                    // Else a closure of that day begun near the same time
                    // and lasting longer than this one has so far tells how
                    // long it lasts; else the median of that day's
                    // closures that lasted longer; if none did, it stays
                    // closed. A closure already longer than the similar
                    // ones is not one of them: counters staff closed at
                    // 10:30 were, at 12:30, taken for that day's 45-minute
                    // lunches begun near 10:30 and replayed as back a
                    // minute later, so one open counter was shown to serve
                    // a visitor every 3 minutes (outside tester pages-rt7
                    // N2; before that, "back in 5 minutes": pages-rt5 F1).
                    let similar = spells
                        .iter()
                        .filter_map(|(s, e)| e.map(|e| (*s, e)))
                        .filter(|(s, e)| (s - since).abs() <= 90 && e - s > elapsed)
                        .min_by_key(|(s, _)| (s - since).abs());
                    match similar {
                        Some((s, e)) => Some((since + e - s).max(now_min + 1)),
                        None => day
                            .closure_lasting_beyond(elapsed)
                            .map(|len| (since + len).max(now_min + 1)),
                    }
                }
            };
            match reopen {
                Some(e) => {
                    out.push((0.0, rel(e)));
                    from_min = e;
                }
                None => {
                    out.push((0.0, f64::INFINITY));
                    return out;
                }
            }
        }
        let taken_today = |s: i32, e: i32| {
            today.is_some_and(|t| {
                t.iter().any(|(ts, te)| {
                    *ts > self.meta.learned.today.opened_min + 30
                        && *ts < e + 60
                        && te.is_none_or(|te| te > s - 60)
                })
            })
        };
        for &(s, e) in spells {
            let Some(e) = e else { continue };
            if e <= from_min || s <= day.opened_min + 30 {
                // Over, or the start-of-day opening.
                continue;
            }
            if taken_today(s, e) {
                continue;
            }
            if s < from_min {
                // That day it had begun by now; today it has not: it is
                // late and comes after the current ticket.
                out.push((rel(from_min), rel(from_min + (e - s))));
            } else {
                out.push((rel(s), rel(e)));
            }
        }
        out
    }

    /// Each of `queues` as the replays see it: its waiting tickets, how
    /// long its visitors take and how many come back.
    fn sim_queues(&self, config: &Config, queues: &[String]) -> Vec<SimQueue> {
        let l = &self.meta.learned;
        queues
            .iter()
            .map(|q| {
                let keys: Vec<WaitKey> = self
                    .waiting
                    .get(q)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                SimQueue {
                    sampler: self.occupancy_sampler(config, q),
                    pace: l.pace(q),
                    returns: l.returns.get(q).map_or(0.02, |r| r.value(0.02)),
                    keys,
                }
            })
            .collect()
    }

    /// Replays the queues around `queue` from `now` and returns, per
    /// replay, the seconds until each of the first `n` waiting tickets of
    /// `queue` (plus, with `new`, one more issued now) is called.
    fn replays(&self, config: &Config, queue: &str, now: Millis, new: bool) -> Runs {
        let (queues, counters) = sharing(config, queue);
        let l = &self.meta.learned;
        let mut sq = self.sim_queues(config, &queues);
        // As many replays whether or not a new ticket is added, so that the
        // new ticket's replays are those of the tickets waiting.
        let waiting = sq[0].keys.len();
        if new {
            // Keyed by the number it will get: once issued, its draws stay.
            let number = self
                .meta
                .next_number
                .get(queue)
                .copied()
                .unwrap_or(Number::MAX);
            sq[0].keys.push((1, now, number));
        }
        let target = sq[0].keys.len();
        if target == 0 {
            return Runs {
                target: 0,
                called: Vec::new(),
            };
        }
        let gap = l.gap_secs();
        let return_delay = l.return_delay_min() * 60.0;
        let now_min = local_min(config, now);
        let days = self.staffing_days();
        let any_open = counters.iter().any(|c| {
            c.serves.iter().any(|q| q == queue)
                && self.meta.counters.get(&c.number).is_some_and(|s| s.open)
        });
        // Everything about a counter but the sampled rest of its ticket is
        // the same in every replay (the staffing day only picks among
        // precomputed spells): worked out once here, not per replay.
        let plans: Vec<CounterPlan> = counters
            .iter()
            .map(|c| {
                let st = self.meta.counters.get(&c.number);
                // With nobody at work for the queue, the configured
                // counters count as if they opened now.
                let open = st.is_some_and(|s| s.open) || !any_open && days.is_empty();
                let closed = if days.is_empty() {
                    vec![self.spells_ahead(c.number, open, now_min, None)]
                } else {
                    days.iter()
                        .map(|d| self.spells_ahead(c.number, open, now_min, Some(d)))
                        .collect()
                };
                let doing = match st.and_then(|s| s.ticket).and_then(|n| self.tickets.get(&n)) {
                    Some(t) => match queues.iter().position(|q| *q == t.queue) {
                        Some(qi) => {
                            let elapsed = st.map_or(0.0, |s| f64::from(now.secs_since(s.since)));
                            let f = sq[qi].sampler.cdf(elapsed / sq[qi].pace);
                            Doing::Queue {
                                qi,
                                number: t.number,
                                elapsed,
                                f,
                            }
                        }
                        None => Doing::Other,
                    },
                    None => Doing::Idle,
                };
                CounterPlan {
                    serves: c
                        .serves
                        .iter()
                        .filter_map(|q| queues.iter().position(|x| x == q))
                        .collect(),
                    policy: c.policy,
                    doing,
                    closed,
                }
            })
            .collect();
        // Common random numbers ([`Draws`]), keyed by the business day: not
        // by `now` (outside tester pages-rt5 F8: a seed from the clock drew
        // fresh numbers at every rebuild of the displays), nor by the
        // state's last change (pages-rt7 N3: fresh numbers at every event).
        let day = self
            .meta
            .day
            .as_ref()
            .map_or(0, |d| i64::from(d.date.num_days_from_ce()) as u64);
        // A long queue costs more per replay and needs fewer: its wait is
        // a sum of many occupancies, whose spread averages out.
        let samples = (SAMPLES * 60 / (waiting + 1)).clamp(MIN_SAMPLES, SAMPLES);
        let mut called = vec![f64::NAN; samples * target];
        let mut sim: Vec<SimCounter> = Vec::with_capacity(plans.len());
        let mut scratch = Scratch::default();
        for (k, out) in called.chunks_exact_mut(target).enumerate() {
            let d = if days.is_empty() { 0 } else { k % days.len() };
            let draws = Draws::replay(day, k);
            sim.clear();
            for (p, c) in plans.iter().zip(&counters) {
                let free_at = match p.doing {
                    Doing::Queue {
                        qi,
                        number,
                        elapsed,
                        f,
                    } => {
                        // The same draw as its occupancy had while it
                        // waited: a call moves nothing but the time.
                        let u = draws.unit(u64::from(number), OCCUPANCY);
                        residual(&sq[qi], elapsed, f, u) + gap
                    }
                    Doing::Other => gap,
                    Doing::Idle => gap * draws.unit(COUNTER_KEY | u64::from(c.number), GAP),
                };
                sim.push(SimCounter {
                    serves: &p.serves,
                    policy: p.policy,
                    free_at,
                    closed: &p.closed[d],
                });
            }
            replay_once(&mut sim, &sq, out, gap, return_delay, draws, &mut scratch);
        }
        Runs { target, called }
    }

    /// The wait of a ticket of `queue` issued at `now`: point and range.
    pub fn wait_range(&self, config: &Config, queue: &str, now: Millis) -> WaitRange {
        self.wait_range_and_replays(config, queue, now).0
    }

    /// [`Self::wait_range`] and the replays' own waits it was made from
    /// (seconds, before the calibration), for measuring where the error
    /// comes from (`examples/est_replay.rs`).
    pub fn wait_range_and_replays(
        &self,
        config: &Config,
        queue: &str,
        now: Millis,
    ) -> (WaitRange, Vec<f64>) {
        let runs = self.replays(config, queue, now, true);
        let waits: Vec<f64> = runs.iter().filter_map(|r| r.last().copied()).collect();
        let range = self.summarise(config, queue, now, self.waiting_count(queue), &waits);
        (range, waits)
    }

    /// The point and range of a ticket of `queue` with `ahead` places
    /// ahead from its replays' `waits`, through the calibration of its
    /// band of places ahead ([`super::learn::Learned::point_scale`]).
    fn summarise(
        &self,
        config: &Config,
        queue: &str,
        now: Millis,
        ahead: usize,
        waits: &[f64],
    ) -> WaitRange {
        if waits.is_empty() {
            return WaitRange::default();
        }
        let l = &self.meta.learned;
        let scale = l.point_scale(queue, ahead);
        let width = l.width(queue, local_min(config, now) / 60, ahead);
        let mut sorted: Vec<f64> = waits.iter().map(|w| w * scale).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let q = |p: f64| {
            let x = p * (n - 1) as f64;
            let i = x.floor() as usize;
            let j = (i + 1).min(n - 1);
            sorted[i] + (sorted[j] - sorted[i]) * (x - i as f64)
        };
        let low = mean - (mean - q(0.1)).max(0.0) * width.low_scale;
        let high = mean + (q(0.9) - mean).max(0.0) * width.high_scale;
        let secs = |x: f64| x.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        let point = secs(mean);
        WaitRange {
            point_s: point,
            low_s: secs(low).min(point),
            high_s: secs(high).max(point),
        }
    }

    /// Expected wait in seconds, at `now`, of a ticket of `queue` with
    /// `ahead` people before it (the waiting tickets now, in their order;
    /// `ahead` beyond them counts as a new ticket).
    pub fn wait_for_position(
        &self,
        config: &Config,
        queue: &str,
        ahead: usize,
        now: Millis,
    ) -> u32 {
        if ahead >= self.waiting_count(queue) {
            return self.wait_range(config, queue, now).point_s;
        }
        self.waiting_ranges(config, queue, now)
            .get(ahead)
            .map_or(0, |(_, r)| r.point_s)
    }

    /// The figures of one queue at `now`.
    pub fn estimate(&self, config: &Config, queue: &str, now: Millis) -> QueueEstimate {
        self.estimate_from(config, queue, self.wait_range(config, queue, now))
    }

    /// The estimate of `queue` with the wait range `r` worked out before
    /// (the replays are the costly part; the counts are read now). The site
    /// build takes its ranges from the last replays so that a call reaches
    /// the displays without waiting for new ones (issue 16).
    pub fn estimate_from(&self, config: &Config, queue: &str, r: WaitRange) -> QueueEstimate {
        let waiting = self.waiting_count(queue);
        let counters = self.open_counters_serving(config, queue) as f64;
        let basis = self.estimate_basis(config, queue);
        QueueEstimate {
            queue: queue.to_string(),
            waiting: u32::try_from(waiting).unwrap_or(u32::MAX),
            expected_wait_s: r.point_s,
            expected_wait_low_s: r.low_s,
            expected_wait_high_s: r.high_s,
            basis,
            reliable: basis == Basis::Estimate,
            service_secs: self.occupancy_secs(config, queue),
            counters,
        }
    }

    /// Each waiting ticket of `queue` with its expected remaining wait and
    /// range at `now`.
    pub fn waiting_ranges(
        &self,
        config: &Config,
        queue: &str,
        now: Millis,
    ) -> Vec<(Number, WaitRange)> {
        let runs = self.replays(config, queue, now, false);
        self.waiting_in(queue)
            .enumerate()
            .map(|(i, n)| {
                let waits: Vec<f64> = runs.iter().filter_map(|r| r.get(i).copied()).collect();
                (n, self.summarise(config, queue, now, i, &waits))
            })
            .collect()
    }

    /// Each waiting ticket of `queue` with its expected remaining wait at
    /// `now`.
    pub fn waiting_with_estimates(
        &self,
        config: &Config,
        queue: &str,
        now: Millis,
    ) -> Vec<(Number, u32)> {
        self.waiting_ranges(config, queue, now)
            .into_iter()
            .map(|(n, r)| (n, r.point_s))
            .collect()
    }
}

/// The occupancy of a ticket of `q` drawn with `u`, in seconds.
fn occupancy(q: &SimQueue, u: f64) -> f64 {
    q.sampler.quantile(u) * q.pace
}

/// The rest of an occupancy already `elapsed` seconds long, `f` its
/// cumulative share (`q.sampler.cdf(elapsed / q.pace)`), drawn with `u`:
/// the occupancy `u` gave while the ticket waited, given the time spent.
fn residual(q: &SimQueue, elapsed: f64, f: f64, u: f64) -> f64 {
    if f >= 0.995 {
        // Beyond nearly everything seen: a short while more.
        return q.sampler.quantile(0.25) * q.pace * u;
    }
    let u = f + (1.0 - f) * u;
    (q.sampler.quantile(u) * q.pace - elapsed).max(0.0)
}

/// One replay: writes into `called` when each of the first `called.len()`
/// tickets of queue 0 is called, in seconds from now.
fn replay_once(
    sim: &mut [SimCounter],
    queues: &[SimQueue],
    called: &mut [f64],
    gap: f64,
    return_delay: f64,
    draws: Draws,
    scratch: &mut Scratch,
) {
    let target = called.len();
    called.fill(f64::NAN);
    let pos = &mut scratch.pos;
    pos.clear();
    pos.resize(queues.len(), 0);
    let returning = &mut scratch.returning;
    returning.clear();
    let mut done = 0usize;
    let mut calls = 0usize;
    let mut last_t = 0.0;
    let free = &mut scratch.free;
    free.clear();
    free.extend(sim.iter().map(|c| free_key(c.free_at)));
    while done < target {
        let Some(i) = next_free(free) else {
            break;
        };
        let c = &mut sim[i];
        let t = c.free_at;
        if let Some(&(_, e)) = c.closed.iter().find(|(s, e)| *s <= t && t < *e) {
            c.free_at = e;
            free[i] = free_key(e);
            continue;
        }
        if calls >= MAX_CALLS {
            break;
        }
        // Who the counter calls: a returned absentee first, then by policy.
        let ret = returning
            .iter()
            .enumerate()
            .filter(|(_, (at, q, _))| *at <= t && c.serves.contains(q))
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            .map(|(j, _)| j);
        let pick = if let Some(j) = ret {
            let (_, q, number) = returning.swap_remove(j);
            Some((q, number, AGAIN))
        } else {
            let heads = c
                .serves
                .iter()
                .filter(|&&q| pos[q] < queues[q].keys.len())
                .map(|&q| (queues[q].keys[pos[q]], q));
            let pick = match c.policy {
                CallPolicy::Strict => heads.map(|h| h.1).next(),
                CallPolicy::LongestWait => heads.min().map(|h| h.1),
            };
            pick.map(|q| {
                let number = queues[q].keys[pos[q]].2;
                if q == 0 {
                    called[pos[0]] = t;
                    done += 1;
                }
                pos[q] += 1;
                (q, number, 0)
            })
        };
        match pick {
            Some((q, number, again)) => {
                calls += 1;
                last_t = t;
                let who = u64::from(number);
                let d = occupancy(&queues[q], draws.unit(who, OCCUPANCY + again));
                // A returned absentee is served: absent once at most.
                if again == 0 && draws.unit(who, ABSENT) < queues[q].returns {
                    let delay = return_delay * (0.5 + draws.unit(who, RETURN_DELAY));
                    returning.push((t + 120.0 + delay, q, number));
                }
                c.free_at = t + d + gap * (0.5 + draws.unit(who, GAP + again));
                free[i] = free_key(c.free_at);
            }
            None => {
                // Idle: until the next absentee comes back for it.
                let next = returning
                    .iter()
                    .filter(|(_, q, _)| c.serves.contains(q))
                    .map(|(at, _, _)| *at)
                    .fold(f64::INFINITY, f64::min);
                c.free_at = if next.is_finite() {
                    next.max(t + 1.0)
                } else {
                    f64::INFINITY
                };
                free[i] = free_key(c.free_at);
            }
        }
    }
    if done < target {
        // Cut short (no counter, or the call bound): the rest at the pace
        // of the counters that worked.
        let working = sim.iter().filter(|c| c.free_at.is_finite()).count().max(1) as f64;
        let step = queues[0].sampler.quantile(0.5) * queues[0].pace / working;
        let mut t = last_t;
        for c in called.iter_mut().filter(|c| c.is_nan()) {
            t += step;
            *c = t;
        }
    }
}

/// `free_at` as an integer in the order of [`f64::total_cmp`] (the same
/// transformation), every time that never comes as [`NEVER`].
fn free_key(at: f64) -> i64 {
    if !at.is_finite() {
        return NEVER;
    }
    let bits = at.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The key of a counter that never frees again (a NaN's, above every
/// finite time's).
const NEVER: i64 = i64::MAX;

/// The counter that frees first (the first of equals), if any will: the
/// one a scan with `min_by(total_cmp)` over the finite times finds, found
/// without a branch per counter.
fn next_free(keys: &[i64]) -> Option<usize> {
    let mut best = NEVER;
    let mut at = 0;
    for (i, &k) in keys.iter().enumerate() {
        let better = k < best;
        best = if better { k } else { best };
        at = if better { i } else { at };
    }
    (best != NEVER).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keyed scan picks the counter a scan for the earliest finite
    /// time picks (the first of equals), so the replays call in the same
    /// order.
    #[test]
    fn next_free_picks_what_the_scan_picked() {
        let mut rng = Rng(7);
        for round in 0..2000 {
            let n = 1 + round % 14;
            // Coarse times, so that ties are common; zeros, infinities and
            // a NaN among them.
            let times: Vec<f64> = (0..n)
                .map(|_| match (rng.unit() * 12.0) as u32 {
                    0 => f64::INFINITY,
                    1 => f64::NAN,
                    2 => 0.0,
                    3 => rng.unit() * 1e6,
                    x => f64::from(x) * 60.0,
                })
                .collect();
            let scan = (0..n)
                .filter(|&i| times[i].is_finite())
                .min_by(|&a, &b| times[a].total_cmp(&times[b]));
            let keys: Vec<i64> = times.iter().map(|t| free_key(*t)).collect();
            assert_eq!(next_free(&keys), scan, "{times:?}");
        }
    }
}
