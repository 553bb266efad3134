//! Read models: what the API and the pages show, built from one
//! [`Snapshot`] of the engine's state (so a view is always one consistent
//! moment). The snapshot is copied on the engine thread; the view, with
//! its wait estimates (the replays of `state::estimate`), is worked out
//! beside it, so commands do not queue behind an estimate (the server
//! bench of 2026-12-07: fifty stations' commands waited behind the site
//! build's estimates of 2,000 waiting tickets on the engine thread).

use madoguchi_core::config::{Config, Names};
use madoguchi_core::engine::Engine;
use madoguchi_core::model::{CounterNo, Millis, Number, Status};
use madoguchi_core::state::State;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct WaitingTicket {
    pub number: Number,
    pub waiting_since: Millis,
    pub expected_wait_s: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub id: String,
    pub name: Names,
    /// A reception category (kiosk button), not a stage.
    pub category: bool,
    pub colour: String,
    pub shape: String,
    pub waiting: u32,
    pub expected_wait_s: u32,
    pub expected_wait_min: u32,
    /// The wait of a ticket issued now in plain words, with its range or
    /// "no estimate yet" (issue 19); the kiosk shows these.
    pub wait_words: madoguchi_renderer::surfaces::WaitWords,
    /// 受付終了 (issue 19): issuing closed by itself, why and when to come.
    pub issuing_closed: Option<madoguchi_core::state::IssuingClosed>,
    pub list: Vec<WaitingTicket>,
    /// The latest calls of tickets in this queue: (number, counter).
    pub called: Vec<(Number, CounterNo)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterView {
    pub number: CounterNo,
    pub section: String,
    pub section_name: String,
    pub serves: Vec<String>,
    pub open: bool,
    pub staff: Option<String>,
    pub ticket: Option<Number>,
    pub ticket_status: Option<&'static str>,
    pub ticket_queue: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub office: Names,
    pub seq: u64,
    pub now: Millis,
    pub date: Option<chrono::NaiveDate>,
    /// The office's business date now, by the office clock: what a page
    /// opening the day names (never the browser's own clock, which may be
    /// in another time zone or wrong).
    pub today: chrono::NaiveDate,
    pub day_open: bool,
    /// Today's business day was opened and has been closed: the station
    /// says the day is over (and who can reopen it), not that it has not
    /// begun (issue 18).
    pub closed_today: bool,
    pub queues: Vec<QueueView>,
    pub counters: Vec<CounterView>,
    pub tags: Vec<(String, String)>,
    /// Absent tickets, for "return".
    pub absent: Vec<Number>,
    /// Held tickets with the counter that held them, for "resume".
    pub held: Vec<(Number, CounterNo)>,
}

impl StatusView {
    /// What a kiosk or display needs and nothing more: no staff names
    /// (R11: send terminals nothing that helps an attack).
    pub fn for_devices(&mut self) {
        for c in &mut self.counters {
            c.staff = None;
        }
    }
}

fn shape_name(s: madoguchi_core::config::Shape) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Every counter as the staff and start pages show it: cheap (no wait
/// estimates), so pages that anyone on the LAN may open use this, not
/// [`status`] (issue 23: an anonymous page must not make the engine
/// estimate every queue).
pub fn counters(config: &Config, state: &State) -> Vec<CounterView> {
    config
        .counters
        .iter()
        .map(|c| {
            let s = state.counter(c.number);
            let ticket = s.and_then(|s| s.ticket);
            let t = ticket.and_then(|n| state.ticket(n));
            CounterView {
                number: c.number,
                section: c.section.clone(),
                section_name: config
                    .sections
                    .iter()
                    .find(|x| x.id == c.section)
                    .map(|x| x.name.ja.clone())
                    .unwrap_or_default(),
                serves: c.serves.clone(),
                open: s.is_some_and(|s| s.open),
                staff: s.and_then(|s| s.staff.clone()),
                ticket,
                ticket_status: t.map(|t| t.status.name()),
                ticket_queue: t.map(|t| t.queue.clone()),
            }
        })
        .collect()
}

/// A copy of what views are made from, taken in one engine read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub config: Config,
    pub state: State,
    pub now: Millis,
    pub seq: u64,
    pub today: chrono::NaiveDate,
}

impl Snapshot {
    /// Copies the engine's configuration and state (call on the engine
    /// thread; the copy is cheap next to estimating from it).
    pub fn of(engine: &Engine) -> Snapshot {
        Snapshot {
            config: engine.config().clone(),
            state: engine.state().clone(),
            now: engine.now(),
            seq: engine.seq(),
            today: engine.office_date(),
        }
    }
}

pub fn status(snap: &Snapshot) -> StatusView {
    let (config, state, now) = (&snap.config, &snap.state, snap.now);
    let queues = config
        .queues
        .iter()
        .map(|q| {
            let e = state.estimate(config, &q.id, now);
            let range = madoguchi_core::state::WaitRange {
                point_s: e.expected_wait_s,
                low_s: e.expected_wait_low_s,
                high_s: e.expected_wait_high_s,
            };
            let list = state
                .waiting_with_estimates(config, &q.id, now)
                .into_iter()
                .map(|(number, expected_wait_s)| WaitingTicket {
                    number,
                    waiting_since: match state.ticket(number).map(|t| &t.status) {
                        Some(Status::Waiting { since, .. }) => *since,
                        _ => now,
                    },
                    expected_wait_s,
                })
                .collect();
            let mut called: Vec<(Millis, Number, CounterNo)> = state
                .tickets
                .values()
                .filter(|t| t.queue == q.id)
                .filter_map(|t| match t.status {
                    Status::Called { counter, at } | Status::Serving { counter, since: at } => {
                        Some((at, t.number, counter))
                    }
                    _ => None,
                })
                .collect();
            called.sort_by_key(|c| std::cmp::Reverse(c.0));
            QueueView {
                id: q.id.clone(),
                name: q.name.clone(),
                category: q.is_category(),
                colour: q.colour.clone(),
                shape: shape_name(q.shape),
                waiting: e.waiting,
                expected_wait_s: e.expected_wait_s,
                expected_wait_min: e.expected_wait_s.div_ceil(60),
                wait_words: madoguchi_renderer::surfaces::wait_words(range, e.basis),
                issuing_closed: q
                    .is_category()
                    .then(|| state.issuing_closed(config, &q.id, now, Some(range)))
                    .flatten(),
                list,
                called: called.into_iter().take(8).map(|(_, n, c)| (n, c)).collect(),
            }
        })
        .collect();
    let counters = counters(config, state);
    StatusView {
        office: config.office.name.clone(),
        seq: snap.seq,
        now,
        date: state.meta.day.as_ref().map(|d| d.date),
        today: snap.today,
        day_open: state.day_is_open(),
        closed_today: state
            .meta
            .day
            .as_ref()
            .is_some_and(|d| d.closed_at.is_some() && d.date == snap.today),
        queues,
        counters,
        tags: config
            .tags
            .iter()
            .map(|t| (t.id.clone(), t.name.ja.clone()))
            .collect(),
        absent: state
            .tickets
            .values()
            .filter(|t| matches!(t.status, Status::Absent { .. }))
            .map(|t| t.number)
            .collect(),
        held: state
            .tickets
            .values()
            .filter_map(|t| match t.status {
                Status::Held { counter, .. } => Some((t.number, counter)),
                _ => None,
            })
            .collect(),
    }
}
