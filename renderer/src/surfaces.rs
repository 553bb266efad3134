//! The display surfaces (R3, R4, R5, R6) and the data each one shows, as a
//! pure function of (configuration, state, now). The renderer turns each
//! into HTML and JSON; nothing here touches files or the network.

use std::collections::BTreeSet;

use madoguchi_core::config::{Config, Names};
use madoguchi_core::model::{CounterNo, Millis, Number, Status};
use madoguchi_core::state::State;
use serde::Serialize;
use serde_json::{json, Value};

/// A surface: its topic ("guidance/idou"), the layout that draws it and its
/// data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Surface {
    pub topic: String,
    pub layout: &'static str,
    pub title: String,
    pub data: Value,
}

#[derive(Debug, Clone, Serialize)]
struct Call {
    number: Number,
    counter: CounterNo,
    at: Millis,
}

fn shape(config: &Config, queue: &str) -> String {
    config
        .queue(queue)
        .and_then(|q| serde_json::to_value(q.shape).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Tickets of a queue now at a counter, the latest call first.
fn calls(state: &State, queue: &str) -> Vec<Call> {
    let mut out: Vec<Call> = state
        .tickets
        .values()
        .filter(|t| t.queue == queue)
        .filter_map(|t| match t.status {
            Status::Called { counter, at } | Status::Serving { counter, since: at } => Some(Call {
                number: t.number,
                counter,
                at,
            }),
            _ => None,
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.at));
    out
}

fn message(config: &Config) -> Option<Names> {
    config.displays.message.clone()
}

/// Every surface of the office.
pub fn surfaces(config: &Config, state: &State, now: Millis) -> Vec<Surface> {
    let mut out = Vec::new();
    let day_open = state.day_is_open();
    for c in &config.counters {
        let cs = state.counter(c.number);
        let ticket = cs.and_then(|s| s.ticket).and_then(|n| state.ticket(n));
        let queue = ticket.map(|t| t.queue.clone());
        out.push(Surface {
            topic: format!("counter/{}", c.number),
            layout: "display_counter.html",
            title: format!("{} 番窓口", c.number),
            data: json!({
                "counter": c.number,
                "open": cs.is_some_and(|s| s.open),
                "ticket": ticket.map(|t| t.number),
                "queue": queue,
                "queue_name": queue.as_deref().and_then(|q| config.queue(q)).map(|q| q.name.clone()),
                "shape": queue.as_deref().map(|q| shape(config, q)),
                "called_at": cs.filter(|s| s.ticket.is_some()).map(|s| s.since),
            }),
        });
    }
    for q in &config.queues {
        let e = state.estimate(config, &q.id, now);
        let counters: Vec<CounterNo> = config.counters_serving(&q.id).map(|c| c.number).collect();
        out.push(Surface {
            topic: format!("guidance/{}", q.id),
            layout: "display_guidance.html",
            title: q.name.ja.clone(),
            data: json!({
                "queue": q.id,
                "name": q.name,
                "shape": shape(config, &q.id),
                "stage": !q.is_category(),
                "day_open": day_open,
                "waiting": e.waiting,
                "expected_wait_min": e.expected_wait_s.div_ceil(60),
                "calls": calls(state, &q.id).into_iter().take(8).collect::<Vec<_>>(),
                "counters": counters,
                "message": message(config),
            }),
        });
    }
    // The staff board: one entry per section.
    let sections: Vec<Value> = config
        .sections
        .iter()
        .map(|s| {
            let counters: Vec<_> = config
                .counters
                .iter()
                .filter(|c| c.section == s.id)
                .collect();
            let queues: BTreeSet<&str> = counters
                .iter()
                .flat_map(|c| c.serves.iter().map(String::as_str))
                .collect();
            let waiting: Vec<Number> = queues.iter().flat_map(|q| state.waiting_in(q)).collect();
            let longest = waiting
                .iter()
                .filter_map(|n| match state.ticket(*n).map(|t| &t.status) {
                    Some(Status::Waiting { since, .. }) => Some(now.secs_since(*since)),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let open = counters
                .iter()
                .filter(|c| state.counter(c.number).is_some_and(|x| x.open))
                .count();
            let busy = counters
                .iter()
                .filter(|c| {
                    state
                        .counter(c.number)
                        .is_some_and(|x| x.open && x.ticket.is_some())
                })
                .count();
            json!({
                "id": s.id,
                "name": s.name,
                "waiting": waiting.len(),
                "longest_wait_min": longest / 60,
                "counters": counters.len(),
                "open": open,
                "busy": busy,
                "idle": open - busy,
            })
        })
        .collect();
    // Two sections a page: readable from across the back office.
    let pages: Vec<Vec<Value>> = sections.chunks(2).map(<[Value]>::to_vec).collect();
    out.push(Surface {
        topic: "board".into(),
        layout: "display_board.html",
        title: "職員用周知機".into(),
        data: json!({
            "pages": pages,
            "seconds_per_page": config.displays.seconds_per_page,
            "day_open": day_open,
            "message": message(config),
        }),
    });
    // The public status page: numbers and counts only.
    let categories: Vec<Value> = config
        .queues
        .iter()
        .map(|q| {
            let e = state.estimate(config, &q.id, now);
            json!({
                "queue": q.id,
                "name": q.name,
                "shape": shape(config, &q.id),
                "serving": calls(state, &q.id).into_iter().take(5).map(|c| c.number).collect::<Vec<_>>(),
                "waiting": e.waiting,
                "expected_wait_min": e.expected_wait_s.div_ceil(60),
            })
        })
        .collect();
    let today = now.to_datetime(config.office.utc_offset).date_naive();
    let hours = config.calendar.opening(today).map(|o| o.hours.to_string());
    // The mobile ticket page (R2): one public file for every ticket. The
    // visitor's number stays in the URL fragment and never reaches a server;
    // the page finds it in these lists (numbers only).
    let ticket_queues: Vec<Value> = config
        .queues
        .iter()
        .map(|q| {
            let waiting: Vec<Value> = state
                .waiting_with_estimates(config, &q.id, now)
                .into_iter()
                .map(|(n, s)| json!([n, s.div_ceil(60)]))
                .collect();
            json!({
                "queue": q.id,
                "name": q.name,
                "shape": shape(config, &q.id),
                "numbers": q.numbers.map(|r| [r.from, r.to]),
                "serving": calls(state, &q.id).into_iter().map(|c| json!([c.number, c.counter])).collect::<Vec<_>>(),
                "waiting": waiting,
            })
        })
        .collect();
    out.push(Surface {
        topic: "ticket".into(),
        layout: "display_ticket.html",
        title: "番号札の状況".into(),
        data: json!({
            "date": state.meta.day.as_ref().map(|d| d.date),
            "day_open": day_open,
            "queues": ticket_queues,
        }),
    });
    out.push(Surface {
        topic: "status".into(),
        layout: "display_status.html",
        title: "窓口の混雑状況".into(),
        data: json!({
            "office": config.office.name,
            "day_open": day_open,
            "hours_today": hours,
            "queues": categories,
        }),
    });
    out
}
