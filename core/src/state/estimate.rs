//! Wait estimates (R2, R4): how many wait in a queue and how long a new or a
//! waiting ticket should expect to wait.
//!
//! The method, also described in ARCHITECTURE.md:
//! - `s_q`, the **occupancy time** of queue `q`: an exponentially weighted
//!   moving average (weight `estimate.alpha` for the newest) of how long each
//!   ticket from the queue held a counter, from its call until it was
//!   completed, transferred, held, cancelled or marked absent. Before the
//!   first timing it is the queue's `typical_service_minutes`; it carries
//!   over between days.
//! - Each open counter serving the queue gives it a **share** of its time:
//!   1 for a counter with one queue; otherwise the queue's part of the work
//!   waiting at the counter's queues (waiting tickets × `s`, counting at
//!   least one ticket for the queue itself). The counter then spends
//!   `s_q / share` per ticket of the queue.
//! - Each counter **frees** at: now if idle; otherwise after the expected
//!   rest of its current ticket, `s − elapsed`, but at least a quarter of `s`
//!   (service times have a long tail).
//! - The waiting tickets, in call order, each take the counter that frees
//!   first; a ticket's expected wait is when its counter frees. A new ticket
//!   is one more at the end. With no counter open, the configured counters
//!   count as if they opened now.
//!
//! The ticket-issued event records the estimate shown to the visitor, so its
//! accuracy is measured afterwards against the real wait.

use serde::Serialize;

use super::{ServiceTime, State};
use crate::config::Config;
use crate::model::{Millis, Number};

/// Longest occupancy fed into the average; a counter left "busy" over lunch
/// must not make every estimate absurd.
const MAX_SAMPLE_SECS: f64 = 2.0 * 3600.0;

/// A counter busy for longer than the average is expected to need at least
/// this part of the average again (service times have a long tail).
const RESIDUAL_FLOOR: f64 = 0.25;

/// A queue's figures, as shown on kiosks and guidance displays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueEstimate {
    pub queue: String,
    pub waiting: u32,
    /// The expected wait of a ticket issued now.
    pub expected_wait_s: u32,
    /// The moving average occupancy time.
    pub service_secs: f64,
    /// Counters working on the queue, weighted.
    pub counters: f64,
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
    }

    fn occupancy_secs(&self, config: &Config, queue: &str) -> f64 {
        self.meta.service.get(queue).map_or_else(
            || {
                config
                    .queue(queue)
                    .map_or(600.0, |q| q.typical_service_secs)
            },
            |s| s.mean_secs,
        )
    }

    /// Weighted counters and idle counters working on `queue`.
    fn capacity(&self, config: &Config, queue: &str) -> (f64, usize) {
        let mut open = 0.0;
        let mut idle = 0;
        let mut configured = 0.0;
        for c in config.counters_serving(queue) {
            let w = self.share(config, &c.serves, queue);
            configured += w;
            if let Some(state) = self.meta.counters.get(&c.number).filter(|s| s.open) {
                open += w;
                if state.ticket.is_none() {
                    idle += 1;
                }
            }
        }
        if open > 0.0 {
            (open, idle)
        } else {
            (configured, 0)
        }
    }

    /// The part of a counter's time that goes to `queue`: its share of the
    /// work waiting in the counter's queues (waiting tickets × occupancy),
    /// counting at least one ticket for `queue` itself.
    fn share(&self, config: &Config, serves: &[String], queue: &str) -> f64 {
        if serves.len() == 1 {
            return 1.0;
        }
        let work = |q: &str| {
            let n = self.waiting_count(q).max(usize::from(q == queue));
            n as f64 * self.occupancy_secs(config, q)
        };
        let total: f64 = serves.iter().map(|q| work(q)).sum();
        if total <= 0.0 {
            return 1.0;
        }
        work(queue) / total
    }

    /// When each counter working on `queue` can next take one of its
    /// tickets, and how long it then spends per ticket of the queue.
    fn counter_schedule(&self, config: &Config, queue: &str, now: Millis) -> Vec<(f64, f64)> {
        let s = self.occupancy_secs(config, queue);
        let open: Vec<_> = config
            .counters_serving(queue)
            .filter_map(|c| Some((c, self.meta.counters.get(&c.number).filter(|st| st.open)?)))
            .collect();
        if open.is_empty() {
            // Nobody at work yet: the configured counters, as they open.
            return config
                .counters_serving(queue)
                .map(|c| (0.0, s / self.share(config, &c.serves, queue)))
                .collect();
        }
        open.into_iter()
            .map(|(c, st)| {
                let step = s / self.share(config, &c.serves, queue);
                let free_in = match st.ticket.and_then(|n| self.tickets.get(&n)) {
                    None => 0.0,
                    Some(t) => {
                        let mean = self.occupancy_secs(config, &t.queue);
                        let elapsed = f64::from(now.secs_since(st.since));
                        (mean - elapsed).max(mean * RESIDUAL_FLOOR)
                    }
                };
                (free_in, step)
            })
            .collect()
    }

    /// Expected waits of the tickets at positions `0..n` of `queue`: each in
    /// turn takes the counter that frees first.
    fn waits(&self, config: &Config, queue: &str, n: usize, now: Millis) -> Vec<u32> {
        let mut counters = self.counter_schedule(config, queue, now);
        let mut out = Vec::with_capacity(n);
        if counters.is_empty() {
            out.resize(n, 0);
            return out;
        }
        for _ in 0..n {
            // A handful of counters: a linear scan beats a heap.
            let (i, _) = counters
                .iter()
                .enumerate()
                .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                .unwrap_or((0, &(0.0, 0.0)));
            let (free, step) = counters[i];
            out.push(free.round().clamp(0.0, f64::from(u32::MAX)) as u32);
            counters[i].0 = free + step;
        }
        out
    }

    /// Expected wait in seconds, at `now`, of a ticket of `queue` with
    /// `ahead` people before it.
    pub fn wait_for_position(
        &self,
        config: &Config,
        queue: &str,
        ahead: usize,
        now: Millis,
    ) -> u32 {
        self.waits(config, queue, ahead + 1, now)
            .last()
            .copied()
            .unwrap_or(0)
    }

    /// The figures of one queue at `now`.
    pub fn estimate(&self, config: &Config, queue: &str, now: Millis) -> QueueEstimate {
        let waiting = self.waiting_count(queue);
        let (counters, _) = self.capacity(config, queue);
        QueueEstimate {
            queue: queue.to_string(),
            waiting: u32::try_from(waiting).unwrap_or(u32::MAX),
            expected_wait_s: self.wait_for_position(config, queue, waiting, now),
            service_secs: self.occupancy_secs(config, queue),
            counters,
        }
    }

    /// Each waiting ticket of `queue` with its expected remaining wait at
    /// `now`.
    pub fn waiting_with_estimates(
        &self,
        config: &Config,
        queue: &str,
        now: Millis,
    ) -> Vec<(Number, u32)> {
        let waits = self.waits(config, queue, self.waiting_count(queue), now);
        self.waiting_in(queue).zip(waits).collect()
    }
}
