//! The display surfaces (R3, R4, R5, R6) and the data each one shows, as a
//! pure function of (configuration, state, now). The renderer turns each
//! into HTML and JSON; nothing here touches files or the network.

use std::collections::{BTreeMap, BTreeSet};

use madoguchi_core::config::{Config, Names};
use madoguchi_core::model::{CounterNo, Millis, Number, Status, StepKind};
use madoguchi_core::state::{Basis, QueueEstimate, State, WaitRange};
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
    /// When the ticket came to this counter's current state (called, or
    /// serving since).
    at: Millis,
    /// The last time it was announced: called, recalled or resumed. The
    /// displays chime and speak exactly when this changes (one announcement
    /// rule: start of service changes `at`, never this).
    called_at: Millis,
    /// The last announcement was a recall (再呼出).
    recall: bool,
}

/// The last announcement of a ticket (see [`Call::called_at`]).
fn last_call(t: &madoguchi_core::model::Ticket) -> Option<(Millis, bool)> {
    t.history.iter().rev().find_map(|s| match s.what {
        StepKind::Called { .. } | StepKind::Resumed { .. } => Some((s.at, false)),
        StepKind::Recalled { .. } => Some((s.at, true)),
        _ => None,
    })
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
            Status::Called { counter, at } | Status::Serving { counter, since: at } => {
                let (called_at, recall) = last_call(t).unwrap_or((at, false));
                Some(Call {
                    number: t.number,
                    counter,
                    at,
                    called_at,
                    recall,
                })
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.called_at));
    out
}

/// The numbers of a queue that were called and did not come (不在), in
/// number order: public as a number, like a call, so the mobile ticket
/// page and the relay's push can say 「職員に声をおかけください」 after a
/// call too (issue 20). A returned absentee is waiting again and leaves
/// this list.
fn passed(state: &State, queue: &str) -> Vec<Number> {
    let mut out: Vec<Number> = state
        .tickets
        .values()
        .filter(|t| t.queue == queue && matches!(t.status, Status::Absent { .. }))
        .map(|t| t.number)
        .collect();
    out.sort_unstable();
    out
}

/// For each ticket still in the office's hands (waiting, called, being
/// served, passed or held) that has a secret tag, the public check of it
/// (issue 20, `madoguchi_wire::ticket`): the relay takes a push
/// subscription only with the tag from the ticket's QR code, and this is
/// all it needs to recognise one. The tag itself is never published.
fn tag_checks(state: &State) -> serde_json::Map<String, Value> {
    state
        .tickets
        .values()
        .filter(|t| !t.status.is_finished())
        .filter_map(|t| {
            let tag = t.tag.as_deref()?;
            let date = t.date.to_string();
            Some((
                t.number.to_string(),
                Value::String(madoguchi_wire::ticket::check(&date, t.number, tag)),
            ))
        })
        .collect()
}

/// The numbers of a queue whose visit is over today — served (Done),
/// cancelled, or still open when the day closed (Unserved) — in number
/// order: so the mobile ticket page can tell a finished ticket
/// 「受付は終わりました」 apart from a number never issued today (browser
/// red team F4). Numbers only, as in the other public lists.
fn finished(state: &State, queue: &str) -> Vec<Number> {
    numbers_where(state, queue, Status::is_finished)
}

/// The numbers of a queue still waiting or called when the day closed
/// (未対応; also in [`finished`]): their visit ended before their turn, so
/// the phone page must not thank them for a visit done (outside tester
/// pages-rt5 F3) but say the day ended first and what to do.
fn unserved(state: &State, queue: &str) -> Vec<Number> {
    numbers_where(state, queue, |s| matches!(s, Status::Unserved { .. }))
}

/// The numbers of a queue cancelled by staff (取消; also in [`finished`]):
/// the phone page must not thank them for a visit done (outside tester
/// pages-rt7 N4) but say the ticket was cancelled and to ask staff.
fn cancelled(state: &State, queue: &str) -> Vec<Number> {
    numbers_where(state, queue, |s| matches!(s, Status::Cancelled { .. }))
}

/// The numbers of a queue on hold at a counter (保留): their visit is
/// under way, not passed.
fn held(state: &State, queue: &str) -> Vec<Number> {
    numbers_where(state, queue, |s| matches!(s, Status::Held { .. }))
}

fn numbers_where(state: &State, queue: &str, keep: impl Fn(&Status) -> bool) -> Vec<Number> {
    let mut out: Vec<Number> = state
        .tickets
        .values()
        .filter(|t| t.queue == queue && keep(&t.status))
        .map(|t| t.number)
        .collect();
    out.sort_unstable();
    out
}

/// Minutes shown for a wait: whole minutes up to half an hour, then fives
/// (a range of 30〜55 reads better than 31〜54).
fn shown_min(secs: u32, up: bool) -> u32 {
    let m = f64::from(secs) / 60.0;
    let step = if m > 30.0 { 5.0 } else { 1.0 };
    let r = if up {
        (m / step).ceil()
    } else {
        (m / step).floor()
    };
    (r * step) as u32
}

/// A wait in plain words, in every language a visitor can choose (R2, R4,
/// R12): 「およそ40分（30〜55分）」 — the point and the 80 % range recorded
/// with the estimate. Without enough history, say so plainly instead of a
/// number (issue 19: no invented precision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitWords {
    /// "range" (a number and its range), "soon" or "none" (no estimate
    /// yet): lets a ticket put 「予想待ち時間」 before a number only.
    pub kind: &'static str,
    pub ja: String,
    /// やさしい日本語: short, hiragana where a kanji needs ふりがな.
    pub easy: String,
    pub en: String,
    pub zh: String,
    pub ko: String,
}

/// The point and range in shown minutes: (point, low, high), low ≤ point ≤
/// high.
fn shown_range(r: WaitRange) -> (u32, u32, u32) {
    let p = {
        let m = f64::from(r.point_s) / 60.0;
        let step = if m > 30.0 { 5.0 } else { 1.0 };
        ((m / step).round() * step).max(1.0) as u32
    };
    let lo = shown_min(r.low_s, false).min(p);
    let hi = shown_min(r.high_s, true).max(p);
    (p, lo, hi)
}

/// See [`WaitWords`]. `basis` says whether the range may be shown at all.
pub fn wait_words(r: WaitRange, basis: Basis) -> WaitWords {
    match basis {
        Basis::Estimate => {}
        Basis::LittleHistory => {
            return WaitWords {
                kind: "none",
                ja: "待ち時間の目安はまだお出しできません（本日の実績が少ないため）".into(),
                easy: "まだ まつ じかんが わかりません".into(),
                en: "No estimate yet (too little history today)".into(),
                zh: "暂时无法预计等候时间".into(),
                ko: "아직 대기 시간을 예상할 수 없습니다".into(),
            };
        }
        Basis::NoCounterOpen => {
            return WaitWords {
                kind: "none",
                ja: "担当の窓口が開くまで、待ち時間の目安はお出しできません".into(),
                easy: "まどぐちが あくまで、まつ じかんが わかりません".into(),
                en: "No estimate until a counter for this opens".into(),
                zh: "窗口开放前无法预计等候时间".into(),
                ko: "창구가 열릴 때까지 대기 시간을 예상할 수 없습니다".into(),
            };
        }
    }
    if r.high_s < 90 {
        return WaitWords {
            kind: "soon",
            ja: "まもなくお呼びします".into(),
            easy: "もうすぐ よびます".into(),
            en: "You will be called shortly".into(),
            zh: "即将叫号".into(),
            ko: "곧 호출합니다".into(),
        };
    }
    let (p, lo, hi) = shown_range(r);
    if lo == hi {
        return WaitWords {
            kind: "range",
            ja: format!("およそ{p}分"),
            easy: format!("だいたい {p} ふん"),
            en: format!("about {p} min"),
            zh: format!("约{p}分钟"),
            ko: format!("약 {p}분"),
        };
    }
    WaitWords {
        kind: "range",
        ja: format!("およそ{p}分（{lo}〜{hi}分）"),
        easy: format!("だいたい {p} ふん（{lo}〜{hi} ふん）"),
        en: format!("about {p} min ({lo}–{hi})"),
        zh: format!("约{p}分钟（{lo}〜{hi}分钟）"),
        ko: format!("약 {p}분 ({lo}~{hi}분)"),
    }
}

fn range_of(e: &QueueEstimate) -> WaitRange {
    WaitRange {
        point_s: e.expected_wait_s,
        low_s: e.expected_wait_low_s,
        high_s: e.expected_wait_high_s,
    }
}

fn message(config: &Config) -> Option<Names> {
    config.displays.message.clone()
}

/// The waits of one moment: for each queue, the range of a ticket issued
/// now and of each ticket waiting. These are the estimator's replays, the
/// costly part of the site (a few hundred replays per queue; tens of ms on
/// a long queue). The office server works them out apart from the build
/// and hands the last ones in, so that a call reaches the displays without
/// waiting for new replays; the build reads every count, call and number
/// from the state it is given (issue 16, R15).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Waits {
    queues: BTreeMap<String, QueueWaits>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct QueueWaits {
    new_ticket: WaitRange,
    waiting: BTreeMap<Number, WaitRange>,
}

impl Waits {
    /// Replays every queue of `state` at `now`.
    pub fn of(config: &Config, state: &State, now: Millis) -> Waits {
        let queues = config
            .queues
            .iter()
            .map(|q| {
                let w = QueueWaits {
                    new_ticket: state.wait_range(config, &q.id, now),
                    waiting: state
                        .waiting_ranges(config, &q.id, now)
                        .into_iter()
                        .collect(),
                };
                (q.id.clone(), w)
            })
            .collect();
        Waits { queues }
    }

    /// The range of a ticket of `queue` issued now; replayed here for a
    /// queue these waits do not know (a configuration changed since).
    fn new_ticket(&self, config: &Config, state: &State, queue: &str, now: Millis) -> WaitRange {
        match self.queues.get(queue) {
            Some(w) => w.new_ticket,
            None => state.wait_range(config, queue, now),
        }
    }

    /// Each ticket waiting in `queue` now, in queue order, with its range:
    /// from these waits, or for a ticket issued since, the range it was
    /// issued with less the time since.
    fn waiting(
        &self,
        config: &Config,
        state: &State,
        queue: &str,
        now: Millis,
    ) -> Vec<(Number, WaitRange)> {
        let Some(w) = self.queues.get(queue) else {
            return state.waiting_ranges(config, queue, now);
        };
        state
            .waiting_in(queue)
            .map(|n| {
                let r = w.waiting.get(&n).copied().unwrap_or_else(|| {
                    let Some(t) = state.ticket(n) else {
                        return WaitRange::default();
                    };
                    let gone =
                        u32::try_from((now.0 - t.issued_at.0).max(0) / 1000).unwrap_or(u32::MAX);
                    WaitRange {
                        point_s: t.expected_wait_s_at_issue.saturating_sub(gone),
                        low_s: t.expected_wait_low_s_at_issue.saturating_sub(gone),
                        high_s: t.expected_wait_high_s_at_issue.saturating_sub(gone),
                    }
                });
                (n, r)
            })
            .collect()
    }
}

/// What every surface of one build shares: one estimate per queue (shared
/// by the guidance displays and the public page), the waits of each ticket
/// and the day's state.
struct Build<'a> {
    config: &'a Config,
    state: &'a State,
    now: Millis,
    estimates: Vec<QueueEstimate>,
    waits: &'a Waits,
    day_open: bool,
    /// "open", "closed" or "not_started": before the morning's 業務開始 a
    /// closed day is "not started", not "closed for today" (browser red
    /// team F9): a business day on the calendar not opened yet today.
    day_state: &'static str,
    today: chrono::NaiveDate,
}

impl<'a> Build<'a> {
    fn new(config: &'a Config, state: &'a State, now: Millis, waits: &'a Waits) -> Self {
        let estimates = config
            .queues
            .iter()
            .map(|q| {
                state.estimate_from(config, &q.id, waits.new_ticket(config, state, &q.id, now))
            })
            .collect();
        let day_open = state.day_is_open();
        let today = now.to_datetime(config.office.utc_offset).date_naive();
        let day_state = if day_open {
            "open"
        } else if state.meta.day.as_ref().is_some_and(|d| d.date == today)
            || config.calendar.opening(today).is_none()
        {
            "closed"
        } else {
            "not_started"
        };
        Build {
            config,
            state,
            now,
            estimates,
            waits,
            day_open,
            day_state,
            today,
        }
    }

    /// Each queue with its estimate.
    fn queues(&self) -> impl Iterator<Item = (&'a madoguchi_core::config::Queue, &QueueEstimate)> {
        self.config.queues.iter().zip(&self.estimates)
    }

    /// The wait of a queue as the guidance displays and the public page
    /// show it: counts, minutes, the range in words and 受付終了.
    /// Minutes only when the wait may be put in numbers ([`Basis::Estimate`]):
    /// with no counter open or too little history the fields are null, as
    /// the words say (outside tester pages-rt7: status.json carried minutes
    /// for a queue with no counter open).
    fn wait_fields(&self, queue: &str, e: &QueueEstimate) -> Value {
        let numbers = e.basis == Basis::Estimate;
        let min = |x: u32| numbers.then_some(x);
        json!({
            "waiting": e.waiting,
            "expected_wait_min": min(e.expected_wait_s.div_ceil(60)),
            "expected_wait_low_min": min(e.expected_wait_low_s / 60),
            "expected_wait_high_min": min(e.expected_wait_high_s.div_ceil(60)),
            "estimate_reliable": e.reliable,
            "wait_words": wait_words(range_of(e), e.basis),
            "issuing_closed": self
                .state
                .issuing_closed(self.config, queue, self.now, Some(range_of(e)))
                .map(|c| c.words),
        })
    }

    /// One display per counter: the number it serves now.
    fn counter_displays(&self) -> impl Iterator<Item = Surface> + '_ {
        let (config, state) = (self.config, self.state);
        config.counters.iter().map(move |c| {
            let cs = state.counter(c.number);
            let ticket = cs.and_then(|s| s.ticket).and_then(|n| state.ticket(n));
            let queue = ticket.map(|t| t.queue.clone());
            Surface {
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
                    "called_at": ticket.and_then(last_call).map(|(at, _)| at),
                    "recall": ticket.and_then(last_call).is_some_and(|(_, r)| r),
                }),
            }
        })
    }

    /// One guidance display per queue: its calls, its wait, its counters.
    fn guidance_displays(&self) -> impl Iterator<Item = Surface> + '_ {
        let (config, state) = (self.config, self.state);
        self.queues().map(move |(q, e)| {
            let counters: Vec<CounterNo> =
                config.counters_serving(&q.id).map(|c| c.number).collect();
            let mut data = json!({
                "queue": q.id,
                "name": q.name,
                "shape": shape(config, &q.id),
                "stage": !q.is_category(),
                "day_open": self.day_open,
                "day_state": self.day_state,
                "calls": calls(state, &q.id).into_iter().take(8).collect::<Vec<_>>(),
                "counters": counters,
                "message": message(config),
            });
            merge(&mut data, self.wait_fields(&q.id, e));
            Surface {
                topic: format!("guidance/{}", q.id),
                layout: "display_guidance.html",
                title: q.name.ja.clone(),
                data,
            }
        })
    }

    /// The staff board: one entry per section, two sections a page
    /// (readable from across the back office).
    fn staff_board(&self) -> Surface {
        let sections: Vec<Value> = self
            .config
            .sections
            .iter()
            .map(|s| self.section(&s.id, &s.name))
            .collect();
        let pages: Vec<Vec<Value>> = sections.chunks(2).map(<[Value]>::to_vec).collect();
        Surface {
            topic: "board".into(),
            layout: "display_board.html",
            title: "職員用周知機".into(),
            data: json!({
                "pages": pages,
                "seconds_per_page": self.config.displays.seconds_per_page,
                "day_open": self.day_open,
                "message": message(self.config),
            }),
        }
    }

    /// A section of the staff board: who waits, how long the longest, and
    /// its counters open, busy and idle.
    fn section(&self, id: &str, name: &Names) -> Value {
        let state = self.state;
        let counters: Vec<_> = self
            .config
            .counters
            .iter()
            .filter(|c| c.section == id)
            .collect();
        let queues: BTreeSet<&str> = counters
            .iter()
            .flat_map(|c| c.serves.iter().map(String::as_str))
            .collect();
        let waiting: Vec<Number> = queues.iter().flat_map(|q| state.waiting_in(q)).collect();
        let longest = waiting
            .iter()
            .filter_map(|n| match state.ticket(*n).map(|t| &t.status) {
                Some(Status::Waiting { since, .. }) => Some(self.now.secs_since(*since)),
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
            "id": id,
            "name": name,
            "waiting": waiting.len(),
            "longest_wait_min": longest / 60,
            "counters": counters.len(),
            "open": open,
            "busy": busy,
            "idle": open - busy,
        })
    }

    /// The mobile ticket page (R2): one public file for every ticket. The
    /// visitor's number stays in the URL fragment and never reaches a
    /// server; the page finds it in these lists (numbers only). Each
    /// waiting number: [number, minutes, words ja, en, zh, ko, やさしい日本語]
    /// — the range, or why there is none, in every language the page
    /// offers: these words are their one source (the page has no wording
    /// of its own for a wait; the relay reads the first two).
    fn ticket_page(&self) -> Surface {
        let (config, state) = (self.config, self.state);
        let queues: Vec<Value> = config
            .queues
            .iter()
            .map(|q| {
                let basis = state.estimate_basis(config, &q.id);
                let waiting: Vec<Value> = self
                    .waits
                    .waiting(config, state, &q.id, self.now)
                    .into_iter()
                    .map(|(n, r)| {
                        let words = wait_words(r, basis);
                        json!([
                            n,
                            r.point_s.div_ceil(60),
                            words.ja,
                            words.en,
                            words.zh,
                            words.ko,
                            words.easy
                        ])
                    })
                    .collect();
                json!({
                    "queue": q.id,
                    "name": q.name,
                    "shape": shape(config, &q.id),
                    // Whether the waits are numbers at all: the page words
                    // the other languages by it (outside tester pages-rt5
                    // F2: 中文, 한국어 and やさしい日本語 showed a number).
                    "wait_basis": basis,
                    "numbers": q.numbers.map(|r| [r.from, r.to]),
                    "serving": calls(state, &q.id).into_iter().map(|c| json!([c.number, c.counter])).collect::<Vec<_>>(),
                    "waiting": waiting,
                    "passed": passed(state, &q.id),
                    "finished": finished(state, &q.id),
                    "unserved": unserved(state, &q.id),
                    "cancelled": cancelled(state, &q.id),
                    "held": held(state, &q.id),
                })
            })
            .collect();
        Surface {
            topic: "ticket".into(),
            layout: "display_ticket.html",
            title: "番号札の状況".into(),
            data: json!({
                "date": state.meta.day.as_ref().map(|d| d.date),
                "day_open": self.day_open,
                "day_state": self.day_state,
                "queues": queues,
                "checks": tag_checks(state),
            }),
        }
    }

    /// The public status page: numbers and counts only.
    fn status_page(&self) -> Surface {
        let categories: Vec<Value> = self
            .queues()
            .map(|(q, e)| {
                let mut v = json!({
                    "queue": q.id,
                    "name": q.name,
                    "shape": shape(self.config, &q.id),
                    "serving": calls(self.state, &q.id).into_iter().take(5).map(|c| c.number).collect::<Vec<_>>(),
                });
                merge(&mut v, self.wait_fields(&q.id, e));
                v
            })
            .collect();
        let hours = self
            .config
            .calendar
            .opening(self.today)
            .map(|o| o.hours.to_string());
        Surface {
            topic: "status".into(),
            layout: "display_status.html",
            title: "窓口の混雑状況".into(),
            data: json!({
                "office": self.config.office.name,
                "day_open": self.day_open,
                // Closed by staff today reads 「本日の受付は終了しました」,
                // not 「受付時間外です」 (outside tester pages-rt5 F4).
                "day_state": self.day_state,
                "hours_today": hours,
                "queues": categories,
                // The estimate's accuracy, yesterday and this month (issue 19).
                "accuracy": self.state.meta.accuracy.sentence(),
            }),
        }
    }
}

/// Adds `more`'s fields to the object `into`.
fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(into), Value::Object(more)) = (into, more) {
        into.extend(more);
    }
}

/// Every surface of the office: counter and guidance displays, the staff
/// board, the mobile ticket page and the public status page.
pub fn surfaces(config: &Config, state: &State, now: Millis) -> Vec<Surface> {
    surfaces_with(config, state, now, &Waits::of(config, state, now))
}

/// [`surfaces`] with the waits worked out before (see [`Waits`]).
pub fn surfaces_with(config: &Config, state: &State, now: Millis, waits: &Waits) -> Vec<Surface> {
    let mut out = display_surfaces(config, state, now, waits);
    out.extend(page_surfaces(config, state, now, waits));
    out
}

/// The screens of the office: counter and guidance displays and the staff
/// board — what a call must reach first.
pub fn display_surfaces(
    config: &Config,
    state: &State,
    now: Millis,
    waits: &Waits,
) -> Vec<Surface> {
    let b = Build::new(config, state, now, waits);
    let mut out: Vec<Surface> = b.counter_displays().collect();
    out.extend(b.guidance_displays());
    out.push(b.staff_board());
    out
}

/// The pages for phones and the public: the mobile ticket page (every
/// waiting number with its wait in five languages) and the status page.
pub fn page_surfaces(config: &Config, state: &State, now: Millis, waits: &Waits) -> Vec<Surface> {
    let b = Build::new(config, state, now, waits);
    vec![b.ticket_page(), b.status_page()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use madoguchi_core::model::Command;

    fn r(p: u32, l: u32, h: u32) -> WaitRange {
        WaitRange {
            point_s: p * 60,
            low_s: l * 60,
            high_s: h * 60,
        }
    }

    #[test]
    fn waits_in_plain_words() {
        assert_eq!(
            wait_words(r(40, 30, 55), Basis::Estimate).ja,
            "およそ40分（30〜55分）"
        );
        assert_eq!(
            wait_words(r(12, 9, 16), Basis::Estimate).ja,
            "およそ12分（9〜16分）"
        );
        assert_eq!(
            wait_words(r(12, 9, 16), Basis::Estimate).en,
            "about 12 min (9–16)"
        );
        assert_eq!(
            wait_words(r(0, 0, 1), Basis::Estimate).ja,
            "まもなくお呼びします"
        );
        assert!(wait_words(r(40, 30, 55), Basis::LittleHistory)
            .ja
            .contains("まだ"));
    }

    /// Every language of the kiosk, for a reliable range, a short wait and
    /// no estimate yet (issue 19: the kiosk and the ticket show the range).
    #[test]
    fn every_kiosk_language_has_the_range_or_says_there_is_none() {
        let w = wait_words(r(40, 30, 55), Basis::Estimate);
        assert_eq!(w.easy, "だいたい 40 ふん（30〜55 ふん）");
        assert_eq!(w.zh, "约40分钟（30〜55分钟）");
        assert_eq!(w.ko, "약 40분 (30~55분)");
        // Over half an hour, fives outward: 31〜54 reads as 30〜55.
        assert_eq!(
            wait_words(
                WaitRange {
                    point_s: 41 * 60,
                    low_s: 31 * 60,
                    high_s: 54 * 60
                },
                Basis::Estimate
            )
            .ja,
            "およそ40分（30〜55分）"
        );
        // The range always holds the point; a range of one value is just
        // the point.
        assert_eq!(wait_words(r(5, 5, 5), Basis::Estimate).ja, "およそ5分");
        assert_eq!(wait_words(r(5, 6, 4), Basis::Estimate).ja, "およそ5分");
        let short = wait_words(
            WaitRange {
                point_s: 20,
                low_s: 0,
                high_s: 80,
            },
            Basis::Estimate,
        );
        assert_eq!(short.easy, "もうすぐ よびます");
        let none = wait_words(r(40, 30, 55), Basis::LittleHistory);
        assert_eq!(none.easy, "まだ まつ じかんが わかりません");
        // No counter open (browser finding F17): words, not a guess.
        let closed = wait_words(r(40, 30, 55), Basis::NoCounterOpen);
        assert_eq!(
            closed.ja,
            "担当の窓口が開くまで、待ち時間の目安はお出しできません"
        );
        assert_eq!(closed.kind, "none");
        for w in [&none, &closed] {
            for text in [&w.ja, &w.easy, &w.en, &w.zh, &w.ko] {
                assert!(
                    !text.chars().any(|c| c.is_ascii_digit()),
                    "no number: {text}"
                );
            }
        }
    }

    /// Outside tester pages-rt7: status.json carried minutes for a queue
    /// with no counter open; like the words, the fields carry no number
    /// then, and carry minutes once a counter opens.
    #[test]
    fn no_counter_open_puts_no_minutes_in_status_or_guidance() {
        let config = Config::embedded_default();
        let mut state = State::new(&config);
        let date = "2026-11-26".parse().expect("date");
        run(&config, &mut state, 1, Command::OpenDay { date });
        let mut hist = madoguchi_core::state::learn::LogHist::prior(900.0);
        hist.samples = 100;
        state.meta.learned.occupancy.insert("idou".into(), hist);
        state
            .meta
            .learned
            .days
            .push_back(madoguchi_core::state::learn::DayStaffing::default());
        for at in [2, 3] {
            run(
                &config,
                &mut state,
                at,
                Command::IssueTicket {
                    category: "idou".into(),
                    kiosk: None,
                    request_id: None,
                },
            );
        }
        let fields = |state: &State| {
            let s = surfaces(&config, state, Millis(10));
            let status = s.iter().find(|s| s.topic == "status").expect("status");
            let q = status.data["queues"]
                .as_array()
                .and_then(|a| a.iter().find(|q| q["queue"] == "idou"))
                .cloned()
                .expect("idou");
            let g = s
                .iter()
                .find(|s| s.topic == "guidance/idou")
                .expect("guidance")
                .data
                .clone();
            (q, g)
        };
        let (q, g) = fields(&state);
        assert_eq!(q["wait_words"]["kind"], "none");
        for v in [&q, &g] {
            for k in [
                "expected_wait_min",
                "expected_wait_low_min",
                "expected_wait_high_min",
            ] {
                assert!(v[k].is_null(), "{k}: {v}");
            }
        }
        run(
            &config,
            &mut state,
            5,
            Command::OpenCounter {
                counter: 10,
                staff: None,
            },
        );
        let (q, g) = fields(&state);
        assert!(
            q["expected_wait_min"].as_u64().is_some_and(|m| m > 0),
            "{q}"
        );
        assert!(
            g["expected_wait_min"].as_u64().is_some_and(|m| m > 0),
            "{g}"
        );
    }

    /// Issue 16: a build with the waits of an earlier state reads every
    /// count and number from the state it is given; a ticket issued since
    /// those waits shows the range it was issued with; with waits of the
    /// same state the build is the full build.
    #[test]
    fn a_build_with_earlier_waits_takes_counts_and_numbers_from_the_state() {
        let config = Config::embedded_default();
        let mut state = State::new(&config);
        let date = "2026-11-26".parse().expect("date");
        run(&config, &mut state, 1, Command::OpenDay { date });
        let mut hist = madoguchi_core::state::learn::LogHist::prior(900.0);
        hist.samples = 100;
        state.meta.learned.occupancy.insert("idou".into(), hist);
        state
            .meta
            .learned
            .days
            .push_back(madoguchi_core::state::learn::DayStaffing::default());
        run(
            &config,
            &mut state,
            2,
            Command::OpenCounter {
                counter: 10,
                staff: None,
            },
        );
        let issue = |state: &mut State, at: i64| {
            run(
                &config,
                state,
                at,
                Command::IssueTicket {
                    category: "idou".into(),
                    kiosk: None,
                    request_id: None,
                },
            );
        };
        for at in [3, 4, 5] {
            issue(&mut state, at);
        }
        let earlier = Waits::of(&config, &state, Millis(6));
        issue(&mut state, 7_000);
        let now = Millis(8_000);
        let topic = |list: &[Surface], t: &str| {
            list.iter()
                .find(|s| s.topic == t)
                .map(|s| s.data.clone())
                .expect("surface")
        };
        let quick = surfaces_with(&config, &state, now, &earlier);
        let full = surfaces(&config, &state, now);
        assert_eq!(
            surfaces_with(&config, &state, now, &Waits::of(&config, &state, now)),
            full
        );
        let g = topic(&quick, "guidance/idou");
        assert_eq!(g["waiting"], 4, "{g}");
        let idou = |t: &Value| {
            t["queues"]
                .as_array()
                .and_then(|a| a.iter().find(|q| q["queue"] == "idou"))
                .cloned()
                .expect("idou")
        };
        let waiting = idou(&topic(&quick, "ticket"))["waiting"].clone();
        let numbers: Vec<u64> = waiting
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|w| w[0].as_u64())
            .collect();
        assert_eq!(numbers, [1001, 1002, 1003, 1004], "{waiting}");
        let newest = state.ticket(1004).expect("issued");
        let shown = u64::from(
            newest
                .expected_wait_s_at_issue
                .saturating_sub(1)
                .div_ceil(60),
        );
        assert_eq!(waiting[3][1].as_u64(), Some(shown), "{waiting}");
        assert!(shown > 0, "{waiting}");
    }

    fn run(config: &Config, state: &mut State, at: i64, cmd: Command) {
        for e in state.decide(config, Millis(at), &cmd).expect("accepted") {
            state.apply(config, Millis(at), &e).expect("applies");
        }
    }

    fn guidance_call(config: &Config, state: &State, now: i64) -> Value {
        let s = surfaces(config, state, Millis(now));
        let g = s
            .iter()
            .find(|s| s.topic == "guidance/idou")
            .expect("guidance");
        g.data["calls"][0].clone()
    }

    /// One announcement rule: a call and a recall change `called_at` (the
    /// displays announce), a start of service does not.
    #[test]
    fn recall_is_a_new_announcement_and_start_is_not() {
        let config = Config::embedded_default();
        let mut state = State::new(&config);
        let date = "2026-11-26".parse().expect("date");
        run(&config, &mut state, 1, Command::OpenDay { date });
        run(
            &config,
            &mut state,
            2,
            Command::OpenCounter {
                counter: 10,
                staff: None,
            },
        );
        run(
            &config,
            &mut state,
            3,
            Command::IssueTicket {
                category: "idou".into(),
                kiosk: None,
                request_id: None,
            },
        );
        run(&config, &mut state, 10, Command::CallNext { counter: 10 });
        let called = guidance_call(&config, &state, 11);
        assert_eq!(called["called_at"], 10);
        assert_eq!(called["recall"], false);
        run(&config, &mut state, 20, Command::Recall { counter: 10 });
        let recalled = guidance_call(&config, &state, 21);
        assert_eq!(recalled["called_at"], 20, "a recall is announced");
        assert_eq!(recalled["recall"], true);
        run(
            &config,
            &mut state,
            30,
            Command::StartService { counter: 10 },
        );
        let started = guidance_call(&config, &state, 31);
        assert_eq!(started["called_at"], 20, "a start is not announced");
        assert_eq!(started["at"], 30);
        let s = surfaces(&config, &state, Millis(31));
        let c = s.iter().find(|s| s.topic == "counter/10").expect("counter");
        assert_eq!(c.data["called_at"], 20);
        assert_eq!(c.data["recall"], true);
    }
    /// The ticket data carries, for each live ticket with a tag, the public
    /// check of its tag and never the tag itself; a finished ticket's
    /// check is withdrawn (issue 20).
    #[test]
    fn live_tickets_publish_the_check_of_their_tag_never_the_tag() {
        let config = Config::embedded_default();
        let mut state = State::new(&config);
        let date = "2026-11-26".parse().expect("date");
        run(&config, &mut state, 1, Command::OpenDay { date });
        for at in [2, 3, 4] {
            run(
                &config,
                &mut state,
                at,
                Command::IssueTicket {
                    category: "idou".into(),
                    kiosk: None,
                    request_id: None,
                },
            );
        }
        let numbers: Vec<u32> = state.tickets.keys().copied().collect();
        // The engine draws tags; a ticket from a log before tags has none.
        for (i, n) in numbers.iter().take(2).enumerate() {
            if let Some(t) = state.tickets.get_mut(n) {
                t.tag = Some(format!("{:016x}", 0xabcd_0000_0000_0000_u64 + i as u64));
            }
        }
        let data = |state: &State| {
            let s = surfaces(&config, state, Millis(5));
            let t = s.iter().find(|s| s.topic == "ticket").expect("ticket");
            (t.data.clone(), serde_json::to_string(&s).expect("json"))
        };
        let (d, everything) = data(&state);
        let checks = d["checks"].as_object().expect("checks");
        assert_eq!(checks.len(), 2, "{checks:?}: the untagged one has none");
        for (i, n) in numbers.iter().take(2).enumerate() {
            let tag = format!("{:016x}", 0xabcd_0000_0000_0000_u64 + i as u64);
            assert_eq!(
                checks[&n.to_string()],
                madoguchi_wire::ticket::check("2026-11-26", *n, &tag)
            );
            assert!(!everything.contains(&tag), "the tag is never published");
        }
        run(
            &config,
            &mut state,
            6,
            Command::Cancel { number: numbers[0] },
        );
        let (d, _) = data(&state);
        assert!(
            d["checks"].get(numbers[0].to_string()).is_none(),
            "finished"
        );
        assert!(d["checks"].get(numbers[1].to_string()).is_some());
    }

    /// A called number that did not come is listed as passed on the mobile
    /// ticket page's data — a number only — and leaves the list when the
    /// visitor returns (issue 20).
    #[test]
    fn an_absent_number_is_published_as_passed_until_it_returns() {
        let config = Config::embedded_default();
        let mut state = State::new(&config);
        let date = "2026-11-26".parse().expect("date");
        run(&config, &mut state, 1, Command::OpenDay { date });
        run(
            &config,
            &mut state,
            2,
            Command::OpenCounter {
                counter: 10,
                staff: None,
            },
        );
        for at in [3, 4] {
            run(
                &config,
                &mut state,
                at,
                Command::IssueTicket {
                    category: "idou".into(),
                    kiosk: None,
                    request_id: None,
                },
            );
        }
        let ticket_queue = |state: &State, now: i64| -> Value {
            let s = surfaces(&config, state, Millis(now));
            let t = s.iter().find(|s| s.topic == "ticket").expect("ticket");
            t.data["queues"]
                .as_array()
                .and_then(|qs| qs.iter().find(|q| q["queue"] == "idou"))
                .cloned()
                .expect("idou")
        };
        run(&config, &mut state, 10, Command::CallNext { counter: 10 });
        let q = ticket_queue(&state, 11);
        let first = q["serving"][0][0].as_u64().expect("called number");
        assert_eq!(q["passed"], json!([]));
        run(&config, &mut state, 20, Command::MarkAbsent { counter: 10 });
        let q = ticket_queue(&state, 21);
        assert_eq!(q["passed"], json!([first]), "{q}");
        assert_eq!(q["serving"], json!([]));
        assert!(q["waiting"]
            .as_array()
            .is_some_and(|w| w.iter().all(|e| e[0] != json!(first))));
        let number = u32::try_from(first).expect("number");
        run(&config, &mut state, 30, Command::ReturnAbsent { number });
        let q = ticket_queue(&state, 31);
        assert_eq!(q["passed"], json!([]), "returned: waiting again");
        assert_eq!(q["waiting"][0][0], json!(first), "first in line");
        // Served: listed as finished (not passed), so the phone says the
        // visit is over; the second number, still waiting, is not (F4).
        run(&config, &mut state, 40, Command::CallNext { counter: 10 });
        run(
            &config,
            &mut state,
            41,
            Command::Complete {
                counter: 10,
                tags: vec![],
            },
        );
        let q = ticket_queue(&state, 42);
        assert_eq!(q["finished"], json!([first]), "{q}");
        assert_eq!(q["passed"], json!([]));
        assert_eq!(q["held"], json!([]));
        let s = surfaces(&config, &state, Millis(43));
        let t = s.iter().find(|s| s.topic == "ticket").expect("ticket");
        assert_eq!(t.data["day_state"], "open");
    }
}
