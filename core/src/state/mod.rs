//! The queue state machine of one office: the business day, counters, tickets
//! and their queues (R1, R3, R8).
//!
//! [`State::decide`] checks a command against the state and returns the events
//! it causes, or a [`Refusal`] — and never changes anything. [`State::apply`]
//! changes the state by one event and is all a replay of the log needs.
//!
//! **Invariant:** a ticket is in at most one place: in one queue's waiting
//! set, or at one counter, or set aside (absent, held), or finished.

pub mod accuracy;
pub mod closing;
mod decide;
mod estimate;
pub mod learn;

pub use closing::{ClosedWhy, ClosedWords, IssuingClosed};
pub use estimate::{Basis, QueueEstimate, WaitRange, SAMPLES as ESTIMATE_SAMPLES};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::{CounterNo, Event, Millis, Number, Status, Step, StepKind, Ticket};

/// A counter's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CounterState {
    pub open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    /// The ticket called to, or being served at, the counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Number>,
    /// When the current ticket came to the counter (its occupancy start).
    #[serde(default)]
    pub since: Millis,
}

/// The current (or, after closing, the last) business day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    pub date: NaiveDate,
    pub opened_at: Millis,
    /// Opened on a day the calendar does not list (臨時開庁).
    pub special: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Millis>,
}

/// The moving average of how long a ticket of a queue occupies a counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceTime {
    pub mean_secs: f64,
    pub samples: u64,
}

/// Everything but the tickets: small, written whole with every snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Meta {
    pub day: Option<Day>,
    pub next_number: BTreeMap<String, Number>,
    pub counters: BTreeMap<CounterNo, CounterState>,
    pub service: BTreeMap<String, ServiceTime>,
    pub last_at: Millis,
    /// The business date open before the current one: a wrongly opened
    /// future day may be repaired by opening today only if today was not
    /// that day (its numbers would be given again).
    #[serde(default)]
    pub previous_day: Option<chrono::NaiveDate>,
    /// What the wait estimate learned from the history.
    #[serde(default)]
    pub learned: learn::Learned,
    /// The epoch in force: 0 until the first promotion of a standby, then
    /// the last `promoted` record's (issue 24).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// Categories staff reopened today after their issuing closed by
    /// itself (受付終了, [`closing`]).
    #[serde(default)]
    pub issuing_reopened: std::collections::BTreeSet<String>,
    /// The estimate's accuracy, yesterday and this month, for the public
    /// page ([`accuracy`]).
    #[serde(default)]
    pub accuracy: accuracy::Published,
    /// After an accepted loss that nothing vouched for (issue 17,
    /// storage-rt14 K1, [`Event::NextDayRaised`]): each category's number
    /// the next day opened numbers after; cleared when a day opens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_day_after: BTreeMap<String, Number>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Local minutes after midnight of `at`.
fn local_min(config: &Config, at: Millis) -> i32 {
    let off = i64::from(config.office.utc_offset.local_minus_utc()) / 60;
    (at.0.div_euclid(60_000) + off).rem_euclid(24 * 60) as i32
}

/// Order in a queue: returned absentees first, then by time joined.
type WaitKey = (u8, Millis, Number);

fn wait_key(t: &Ticket) -> Option<WaitKey> {
    match t.status {
        Status::Waiting { since, front } => Some((u8::from(!front), since, t.number)),
        _ => None,
    }
}

/// The whole state of the office.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    pub meta: Meta,
    /// The tickets of `meta.day`.
    pub tickets: BTreeMap<Number, Ticket>,
    /// Kiosk request ids of the day, for idempotent issuing.
    pub requests: BTreeMap<String, Number>,
    /// Derived from `tickets`: each queue's waiting tickets in call order.
    waiting: BTreeMap<String, BTreeSet<WaitKey>>,
}

/// An event that does not fit the state it is applied to: the log it came
/// from was not written by this state machine, or is damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event does not fit the state: {0}")]
pub struct Inconsistent(pub String);

impl State {
    /// A new office with every configured counter closed.
    pub fn new(config: &Config) -> State {
        let mut s = State::default();
        s.reconcile(config);
        s
    }

    /// Rebuilds a state from its stored parts.
    pub fn from_parts(
        meta: Meta,
        tickets: BTreeMap<Number, Ticket>,
        requests: BTreeMap<String, Number>,
    ) -> State {
        let mut s = State {
            meta,
            tickets,
            requests,
            waiting: BTreeMap::new(),
        };
        s.rebuild_waiting();
        s
    }

    fn rebuild_waiting(&mut self) {
        self.waiting = self.waiting_index();
    }

    /// The waiting index as the tickets make it (no copy of the state:
    /// `recover --accept-damage` checks it after every salvaged record).
    fn waiting_index(&self) -> BTreeMap<String, BTreeSet<WaitKey>> {
        let mut waiting: BTreeMap<String, BTreeSet<WaitKey>> = BTreeMap::new();
        for t in self.tickets.values() {
            if let Some(k) = wait_key(t) {
                waiting.entry(t.queue.clone()).or_default().insert(k);
            }
        }
        waiting
    }

    /// Brings the counters in line with a (new) configuration: added counters
    /// start closed; removed ones disappear (the engine refuses a change that
    /// removes a counter in use).
    fn reconcile(&mut self, config: &Config) {
        let known: BTreeSet<CounterNo> = config.counters.iter().map(|c| c.number).collect();
        self.meta.counters.retain(|n, _| known.contains(n));
        for n in known {
            self.meta.counters.entry(n).or_default();
        }
    }

    pub fn day_is_open(&self) -> bool {
        self.meta
            .day
            .as_ref()
            .is_some_and(|d| d.closed_at.is_none())
    }

    pub fn ticket(&self, number: Number) -> Option<&Ticket> {
        self.tickets.get(&number)
    }

    pub fn counter(&self, number: CounterNo) -> Option<&CounterState> {
        self.meta.counters.get(&number)
    }

    /// The waiting tickets of `queue`, in the order they will be called.
    pub fn waiting_in<'a>(&'a self, queue: &str) -> impl Iterator<Item = Number> + 'a {
        self.waiting
            .get(queue)
            .into_iter()
            .flat_map(|s| s.iter().map(|k| k.2))
    }

    pub fn waiting_count(&self, queue: &str) -> usize {
        self.waiting.get(queue).map_or(0, BTreeSet::len)
    }

    /// The ticket `counter` would call next by its queues and policy.
    pub fn next_for(&self, config: &Config, counter: CounterNo) -> Option<Number> {
        let c = config.counter(counter)?;
        let heads = c
            .serves
            .iter()
            .filter_map(|q| self.waiting.get(q).and_then(|s| s.first()));
        match c.policy {
            crate::config::CallPolicy::Strict => heads.map(|k| k.2).next(),
            crate::config::CallPolicy::LongestWait => heads.min().map(|k| k.2),
        }
    }

    /// Checks the ticket-in-one-place invariant and the derived index; used
    /// by tests and by `madoguchi audit verify`.
    pub fn check_invariants(&self) -> Result<(), Inconsistent> {
        let mut at_counter = BTreeMap::new();
        for (n, c) in &self.meta.counters {
            if let Some(t) = c.ticket {
                if at_counter.insert(t, *n).is_some() {
                    return Err(Inconsistent(format!("ticket {t} is at two counters")));
                }
                if !c.open {
                    return Err(Inconsistent(format!("closed counter {n} holds ticket {t}")));
                }
            }
        }
        if self.waiting_index() != self.waiting {
            return Err(Inconsistent(
                "waiting index differs from the tickets".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for set in self.waiting.values() {
            for k in set {
                if !seen.insert(k.2) {
                    return Err(Inconsistent(format!("ticket {} waits in two queues", k.2)));
                }
            }
        }
        for t in self.tickets.values() {
            let counter = t.status.counter();
            if counter != at_counter.get(&t.number).copied() {
                return Err(Inconsistent(format!(
                    "ticket {} is {} but counters say {:?}",
                    t.number,
                    t.status.name(),
                    at_counter.get(&t.number)
                )));
            }
        }
        Ok(())
    }

    /// A new business day: numbers start again (after a wrong day's, see
    /// [`Event::DayOpened`]), the day's tickets and requests are
    /// forgotten, the estimator starts the day.
    fn start_day(
        &mut self,
        config: &Config,
        at: Millis,
        date: NaiveDate,
        special: bool,
        after_wrong_day: &BTreeMap<String, Number>,
    ) {
        self.meta.previous_day = self.meta.day.as_ref().map(|d| d.date);
        let closed: Vec<CounterNo> = self
            .meta
            .counters
            .iter()
            .filter(|(_, c)| !c.open)
            .map(|(n, _)| *n)
            .collect();
        self.meta.learned.start_day(
            date.weekday().num_days_from_monday() as u8,
            local_min(config, at),
            &closed,
        );
        self.tickets.clear();
        self.requests.clear();
        self.waiting.clear();
        // The day's tickets are gone, so no counter holds one. A day closes
        // with every ticket unserved or done, so this changes nothing on an
        // intact log; after damage (a past day's transfer or absence set
        // aside) a counter kept a ticket of that day, and the next day's
        // ticket of the same number did not fit (outside tester
        // storage-rt10 F-B; issue 17, R10).
        for c in self.meta.counters.values_mut() {
            c.ticket = None;
        }
        self.meta.next_number = config
            .categories()
            .filter_map(|q| {
                let after = after_wrong_day
                    .get(&q.id)
                    .max(self.meta.next_day_after.get(&q.id))
                    .map(|n| n.saturating_add(1));
                q.numbers
                    .map(|r| (q.id.clone(), after.map_or(r.from, |a| a.max(r.from))))
            })
            .collect();
        self.meta.day = Some(Day {
            date,
            opened_at: at,
            special,
            closed_at: None,
        });
        self.meta.issuing_reopened.clear();
        self.meta.next_day_after.clear();
        self.meta.accuracy.start_day(date);
    }

    /// A ticket issued: into its queue, its number taken, its request
    /// remembered.
    fn add_issued(&mut self, at: Millis, e: &Event) -> Result<(), Inconsistent> {
        let Event::TicketIssued {
            number,
            category,
            request_id,
            people_ahead,
            expected_wait_s,
            expected_wait_low_s,
            expected_wait_high_s,
            tag,
            ..
        } = e
        else {
            return Ok(());
        };
        let date = self
            .meta
            .day
            .as_ref()
            .map(|d| d.date)
            .ok_or_else(|| Inconsistent("ticket issued with no day".into()))?;
        if self.tickets.contains_key(number) {
            return Err(Inconsistent(format!("ticket {number} issued twice")));
        }
        // The factor its estimate was corrected by: the state is the one
        // the estimate was made from, so this is that factor.
        let ahead = usize::try_from(*people_ahead).unwrap_or(usize::MAX);
        let factor = self.meta.learned.point_scale(category, ahead);
        self.meta.learned.issued_scale.insert(*number, factor);
        let t = Ticket {
            number: *number,
            date,
            category: category.clone(),
            queue: category.clone(),
            issued_at: at,
            people_ahead_at_issue: *people_ahead,
            expected_wait_s_at_issue: *expected_wait_s,
            expected_wait_low_s_at_issue: expected_wait_low_s.unwrap_or(*expected_wait_s),
            expected_wait_high_s_at_issue: expected_wait_high_s.unwrap_or(*expected_wait_s),
            tag: tag.clone(),
            status: Status::Waiting {
                since: at,
                front: false,
            },
            history: vec![Step {
                at,
                what: StepKind::Issued {
                    queue: category.clone(),
                },
            }],
        };
        self.enqueue(&t);
        self.tickets.insert(*number, t);
        self.meta.next_number.insert(category.clone(), number + 1);
        if let Some(r) = request_id {
            self.requests.insert(r.clone(), *number);
        }
        Ok(())
    }

    /// Applies one event recorded at `at`.
    pub fn apply(
        &mut self,
        config: &Config,
        at: Millis,
        event: &Event,
    ) -> Result<(), Inconsistent> {
        if !event.is_administrative() {
            // A configuration is recorded at wall-clock time, which may be
            // after the (imported, simulated) days still to come.
            self.meta.last_at = self.meta.last_at.max(at);
        }
        match event {
            Event::ConfigApplied { .. } => self.reconcile(config),
            // Audit records: nothing in the queue changes.
            Event::Login { .. } | Event::AccountChanged { .. } | Event::LogArchived { .. } => {}
            Event::Promoted { epoch } => self.meta.epoch = self.meta.epoch.max(*epoch),
            Event::DayOpened {
                date,
                special,
                after_wrong_day,
            } => self.start_day(config, at, *date, *special, after_wrong_day),
            Event::NextDayRaised { after } => {
                for (c, n) in after {
                    let h = self.meta.next_day_after.entry(c.clone()).or_insert(*n);
                    *h = (*h).max(*n);
                }
            }
            Event::DayClosed { .. } => self.day_closed(at)?,
            Event::DayReopened { date } => self.day_reopened(*date)?,
            Event::CounterOpened { counter, staff } => {
                self.counter_opened(config, at, *counter, staff)?
            }
            Event::CounterClosed { counter } => self.counter_closed(config, at, *counter)?,
            e @ Event::TicketIssued { .. } => self.add_issued(at, e)?,
            Event::Called {
                number,
                counter,
                out_of_order,
            } => self.called(config, at, *number, *counter, *out_of_order)?,
            Event::Recalled { number, counter } => {
                self.step(*number, at, StepKind::Recalled { counter: *counter })?;
            }
            Event::Started { number, counter } => {
                self.ticket_mut(*number)?.status = Status::Serving {
                    counter: *counter,
                    since: at,
                };
                self.step(*number, at, StepKind::Started { counter: *counter })?;
            }
            Event::Completed {
                number,
                counter,
                tags,
            } => {
                self.release_counter(config, *number, at, true)?;
                self.ticket_mut(*number)?.status = Status::Done { at };
                self.step(
                    *number,
                    at,
                    StepKind::Completed {
                        counter: *counter,
                        tags: tags.clone(),
                    },
                )?;
            }
            Event::Absent { number, counter } => {
                self.release_counter(config, *number, at, true)?;
                self.ticket_mut(*number)?.status = Status::Absent { at };
                self.step(*number, at, StepKind::Absent { counter: *counter })?;
            }
            Event::Returned { number } => {
                self.learn_from_return(*number, at);
                let t = self.ticket_mut(*number)?;
                t.status = Status::Waiting {
                    since: at,
                    front: true,
                };
                let t = t.clone();
                self.enqueue(&t);
                self.step(*number, at, StepKind::Returned)?;
            }
            Event::Transferred {
                number,
                counter,
                to,
                tags,
                note,
            } => {
                let step = |from| StepKind::Transferred {
                    counter: *counter,
                    from,
                    to: to.clone(),
                    tags: tags.clone(),
                    note: note.clone(),
                };
                self.transferred(config, at, *number, to, step)?
            }
            Event::Held {
                number,
                counter,
                note,
            } => {
                self.release_counter(config, *number, at, true)?;
                self.ticket_mut(*number)?.status = Status::Held {
                    counter: *counter,
                    at,
                };
                self.step(
                    *number,
                    at,
                    StepKind::Held {
                        counter: *counter,
                        note: note.clone(),
                    },
                )?;
            }
            Event::Resumed { number, counter } => {
                self.seat_at_counter(*number, *counter, at)?;
                self.step(*number, at, StepKind::Resumed { counter: *counter })?;
            }
            Event::Cancelled { number, counter } => {
                self.release_counter(config, *number, at, true)?;
                self.leave_queue(*number)?;
                self.ticket_mut(*number)?.status = Status::Cancelled { at };
                self.step(*number, at, StepKind::Cancelled { counter: *counter })?;
            }
            Event::Unserved { number } => {
                self.release_counter(config, *number, at, false)?;
                self.leave_queue(*number)?;
                self.ticket_mut(*number)?.status = Status::Unserved { at };
                self.step(*number, at, StepKind::Unserved)?;
            }
            Event::IssuingReopened { category } => {
                self.meta.issuing_reopened.insert(category.clone());
            }
            // Counted by the statistics; the queue does not change.
            Event::TurnedAway { .. } => {}
        }
        Ok(())
    }

    fn day_closed(&mut self, at: Millis) -> Result<(), Inconsistent> {
        let day = self
            .meta
            .day
            .as_mut()
            .ok_or_else(|| Inconsistent("day closed while none is open".into()))?;
        day.closed_at = Some(at);
        Ok(())
    }

    fn day_reopened(&mut self, date: chrono::NaiveDate) -> Result<(), Inconsistent> {
        let day = self
            .meta
            .day
            .as_mut()
            .filter(|d| d.date == date && d.closed_at.is_some())
            .ok_or_else(|| Inconsistent(format!("day {date} reopened but not closed")))?;
        day.closed_at = None;
        Ok(())
    }

    fn counter_opened(
        &mut self,
        config: &Config,
        at: Millis,
        counter: CounterNo,
        staff: &Option<String>,
    ) -> Result<(), Inconsistent> {
        let c = self.counter_mut(counter)?;
        c.open = true;
        c.staff.clone_from(staff);
        self.meta
            .learned
            .counter_opened(counter, local_min(config, at));
        Ok(())
    }

    fn counter_closed(
        &mut self,
        config: &Config,
        at: Millis,
        counter: CounterNo,
    ) -> Result<(), Inconsistent> {
        let c = self.counter_mut(counter)?;
        if let Some(t) = c.ticket {
            return Err(Inconsistent(format!(
                "counter {counter} closed with ticket {t}"
            )));
        }
        c.open = false;
        c.staff = None;
        self.meta
            .learned
            .counter_closed(counter, local_min(config, at));
        Ok(())
    }

    /// A call: the accuracy record and the learned service model see it
    /// before the ticket leaves its queue for the counter.
    fn called(
        &mut self,
        config: &Config,
        at: Millis,
        number: Number,
        counter: CounterNo,
        out_of_order: bool,
    ) -> Result<(), Inconsistent> {
        if let Some(t) = self.tickets.get(&number) {
            self.meta.accuracy.called(t, at);
        }
        self.learn_from_call(config, number, counter, at);
        self.leave_queue(number)?;
        self.seat_at_counter(number, counter, at)?;
        self.step(
            number,
            at,
            StepKind::Called {
                counter,
                out_of_order,
            },
        )
    }

    /// A transfer: the ticket waits again, at the back of queue `to`;
    /// `step` is told the queue it came from.
    fn transferred(
        &mut self,
        config: &Config,
        at: Millis,
        number: Number,
        to: &str,
        step: impl FnOnce(String) -> StepKind,
    ) -> Result<(), Inconsistent> {
        self.release_counter(config, number, at, true)?;
        self.leave_queue(number)?;
        let t = self.ticket_mut(number)?;
        let from = std::mem::replace(&mut t.queue, to.to_owned());
        t.status = Status::Waiting {
            since: at,
            front: false,
        };
        let t = t.clone();
        self.enqueue(&t);
        self.step(number, at, step(from))
    }

    fn counter_mut(&mut self, n: CounterNo) -> Result<&mut CounterState, Inconsistent> {
        self.meta
            .counters
            .get_mut(&n)
            .ok_or_else(|| Inconsistent(format!("no counter {n}")))
    }

    fn ticket_mut(&mut self, n: Number) -> Result<&mut Ticket, Inconsistent> {
        self.tickets
            .get_mut(&n)
            .ok_or_else(|| Inconsistent(format!("no ticket {n}")))
    }

    fn step(&mut self, n: Number, at: Millis, what: StepKind) -> Result<(), Inconsistent> {
        self.ticket_mut(n)?.history.push(Step { at, what });
        Ok(())
    }

    fn enqueue(&mut self, t: &Ticket) {
        if let Some(k) = wait_key(t) {
            self.waiting.entry(t.queue.clone()).or_default().insert(k);
        }
    }

    /// Takes the ticket out of its queue's waiting set, if it is waiting.
    fn leave_queue(&mut self, n: Number) -> Result<(), Inconsistent> {
        let t = self
            .tickets
            .get(&n)
            .ok_or_else(|| Inconsistent(format!("no ticket {n}")))?;
        if let Some(k) = wait_key(t) {
            let queue = t.queue.clone();
            let set = self
                .waiting
                .get_mut(&queue)
                .filter(|s| s.contains(&k))
                .ok_or_else(|| Inconsistent(format!("ticket {n} missing from its queue")))?;
            set.remove(&k);
            if set.is_empty() {
                // Keep the index equal to a fresh rebuild, which has no
                // empty sets.
                self.waiting.remove(&queue);
            }
        }
        Ok(())
    }

    fn seat_at_counter(
        &mut self,
        n: Number,
        counter: CounterNo,
        at: Millis,
    ) -> Result<(), Inconsistent> {
        let c = self.counter_mut(counter)?;
        if let Some(other) = c.ticket {
            return Err(Inconsistent(format!(
                "counter {counter} already has ticket {other}"
            )));
        }
        c.ticket = Some(n);
        c.since = at;
        self.ticket_mut(n)?.status = Status::Called { counter, at };
        Ok(())
    }

    /// Frees the counter holding ticket `n`, if one does, and (when `timed`)
    /// feeds the time it spent there into its queue's service-time average.
    fn release_counter(
        &mut self,
        config: &Config,
        n: Number,
        at: Millis,
        timed: bool,
    ) -> Result<(), Inconsistent> {
        let t = self
            .tickets
            .get(&n)
            .ok_or_else(|| Inconsistent(format!("no ticket {n}")))?;
        let Some(counter) = t.status.counter() else {
            return Ok(());
        };
        let queue = t.queue.clone();
        let c = self.counter_mut(counter)?;
        if c.ticket != Some(n) {
            return Err(Inconsistent(format!(
                "ticket {n} is not at counter {counter}"
            )));
        }
        c.ticket = None;
        let since = c.since;
        if timed {
            self.observe_service(config, &queue, f64::from(at.secs_since(since)));
        }
        let waiting = config
            .counter(counter)
            .is_some_and(|c| c.serves.iter().any(|q| self.waiting_count(q) > 0));
        self.meta.learned.released.insert(counter, (at, waiting));
        Ok(())
    }

    /// A call teaches the pause between calls, the absentees' return rate
    /// and, for a ticket's first call, how its estimate at issue compared
    /// with its real wait.
    fn learn_from_call(&mut self, config: &Config, n: Number, counter: CounterNo, at: Millis) {
        let l = &mut self.meta.learned;
        if let Some((released, true)) = l.released.remove(&counter) {
            l.gap
                .add(f64::from(at.secs_since(released)).min(600.0), 1.0);
        }
        let Some(t) = self.tickets.get(&n) else {
            return;
        };
        l.returns.entry(t.queue.clone()).or_default().add(0.0, 1.0);
        let first = !t.history.iter().any(|s| {
            matches!(
                s.what,
                StepKind::Called { .. } | StepKind::Transferred { .. }
            )
        });
        if first && matches!(t.status, Status::Waiting { front: false, .. }) {
            let shown = (
                f64::from(t.expected_wait_s_at_issue),
                f64::from(t.expected_wait_low_s_at_issue),
                f64::from(t.expected_wait_high_s_at_issue),
            );
            let actual = f64::from(at.secs_since(t.issued_at));
            let hour = local_min(config, t.issued_at) / 60;
            let ahead = usize::try_from(t.people_ahead_at_issue).unwrap_or(usize::MAX);
            let factor = l.issued_scale.remove(&n);
            l.observe_wait(&t.queue, hour, ahead, shown, factor, actual);
        }
    }

    fn learn_from_return(&mut self, n: Number, at: Millis) {
        let Some(t) = self.tickets.get(&n) else {
            return;
        };
        let l = &mut self.meta.learned;
        l.returns.entry(t.queue.clone()).or_default().add(1.0, 0.0);
        if let Status::Absent { at: gone } = t.status {
            l.return_delay
                .add(f64::from(at.secs_since(gone)) / 60.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests;
