//! Wait estimates (R2, R4): how many wait in a queue and how long a new or a
//! waiting ticket should expect to wait.
//!
//! The method, also described in ARCHITECTURE.md:
//! - `s`, the **occupancy time** of the queue: an exponentially weighted moving
//!   average (weight `estimate.alpha` for the newest) of how long each ticket
//!   from the queue held a counter, from its call until it was completed,
//!   transferred, held, cancelled or marked absent. Before the first timing it
//!   is the queue's `typical_service_minutes`; it carries over between days.
//! - `c`, the **counters working on the queue**: each open counter that serves
//!   the queue counts `1/k`, where `k` is the number of that counter's queues
//!   that have someone waiting (the queue itself included), because such a
//!   counter splits its calls between them. With no counter open, the
//!   configured counters count instead, as they will open.
//! - `i`, the open counters serving the queue that are **idle** now.
//! - A ticket with `k` people ahead waits `0` when `k < i`; otherwise it waits
//!   for the first counter to free (`s / (c + 1)`, the expected minimum of `c`
//!   residual service times spread evenly over `s`), then for `k - i` more
//!   completions at `c / s` per second: `s / (c + 1) + (k - i) · s / c`.
//!
//! The ticket-issued event records the estimate shown to the visitor, so its
//! accuracy is measured afterwards against the real wait.

use serde::Serialize;

use super::{ServiceTime, State};
use crate::config::Config;
use crate::model::Number;

/// Longest occupancy fed into the average; a counter left "busy" over lunch
/// must not make every estimate absurd.
const MAX_SAMPLE_SECS: f64 = 2.0 * 3600.0;

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
        let share = |serves: &[String]| {
            let busy_queues = serves
                .iter()
                .filter(|q| q.as_str() == queue || self.waiting_count(q) > 0)
                .count();
            1.0 / busy_queues.max(1) as f64
        };
        let mut open = 0.0;
        let mut idle = 0;
        let mut configured = 0.0;
        for c in config.counters_serving(queue) {
            let w = share(&c.serves);
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

    /// Expected wait in seconds of a ticket of `queue` with `ahead` people
    /// before it.
    pub fn wait_for_position(&self, config: &Config, queue: &str, ahead: usize) -> u32 {
        let s = self.occupancy_secs(config, queue);
        let (c, idle) = self.capacity(config, queue);
        if c <= 0.0 {
            return 0;
        }
        if ahead < idle {
            return 0;
        }
        let secs = s / (c + 1.0) + (ahead - idle) as f64 * s / c;
        secs.round().clamp(0.0, f64::from(u32::MAX)) as u32
    }

    /// The figures of one queue.
    pub fn estimate(&self, config: &Config, queue: &str) -> QueueEstimate {
        let waiting = self.waiting_count(queue);
        let (counters, _) = self.capacity(config, queue);
        QueueEstimate {
            queue: queue.to_string(),
            waiting: u32::try_from(waiting).unwrap_or(u32::MAX),
            expected_wait_s: self.wait_for_position(config, queue, waiting),
            service_secs: self.occupancy_secs(config, queue),
            counters,
        }
    }

    /// Each waiting ticket of `queue` with its expected remaining wait.
    pub fn waiting_with_estimates(&self, config: &Config, queue: &str) -> Vec<(Number, u32)> {
        self.waiting_in(queue)
            .enumerate()
            .map(|(k, n)| (n, self.wait_for_position(config, queue, k)))
            .collect()
    }
}
