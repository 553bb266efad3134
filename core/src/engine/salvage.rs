//! Keeping every record that can be trusted after damage in the middle of
//! the log (R10, R19; issue 17, outside tester storage-rt6 F3: one flipped
//! byte in an older segment made `recover --accept-damage` drop the 125,094
//! records after it, sealed segments included).
//!
//! `backup::recover` reads the damaged log on past a record it cannot read:
//! from the next well-formed record on, every CRC, number and link is
//! checked again, and a closed segment's seal (`log::seals`) confirms the
//! chain up to its end. The repaired log keeps the record numbers: each
//! record that cannot be read is replaced by a record of its own
//! (`by: "damaged-record"`, no events), and the records after it are
//! written again with the same contents, chained anew from there (their
//! hashes differ from the damaged folder's, which is kept whole). A later
//! record that does not apply without the lost one (a call of a ticket
//! issued in it) is set aside the same way and named: it is no state the
//! office can trust. The start that follows raises every queue's numbers
//! above the evidence (`--accept-damage`), so nothing lost is given twice.

use chrono::NaiveDate;

use super::{encode_body, Engine, EngineError, Evidence, RecordBody};
use crate::config::Config;
use crate::log::Record;
use crate::model::{Event, Millis, Number};

/// The `by` of a record that stands in for one set aside.
pub const SET_ASIDE_BY: &str = "damaged-record";

/// The `by` of a record that stands in for an unreadable business-day
/// opening that the records after it imply (outside tester storage-rt11
/// F-K: one flipped byte in today's `day_opened` set aside the whole day,
/// 515 acknowledged visitors told "ask staff").
pub const INFERRED_BY: &str = "damaged-record-inferred";

/// A piece of a damaged log, in record order.
#[derive(Debug, Clone)]
pub enum Piece {
    /// A record read and checked (its link to the one before it only when
    /// it did not follow a lost one).
    Kept(Record),
    /// A record that could not be read: its number, why, and its bytes as
    /// found (what they still show is evidence, never state).
    Lost { seq: u64, why: String, raw: Vec<u8> },
}

/// A record the repaired log holds no state of, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub seq: u64,
    pub why: String,
    /// The business day open when it came (the state before it).
    pub day: Option<NaiveDate>,
    /// The tickets it shows (read from an intact record, or from what the
    /// bytes of an unreadable one still show): number, queue when known,
    /// request id when it had one. Never trusted for state: every one is
    /// raised over and its request answered "lost — ask staff" by the
    /// `--accept-damage` record (storage-rt8 F8).
    pub tickets: Vec<(Number, Option<String>, Option<String>)>,
    /// Tickets this record moved at a counter (called, served, completed,
    /// transferred …) that wait in a queue again in the repaired state:
    /// staff look for them (outside tester storage-rt10 F-E: visitors
    /// already served were back in the queue, unnamed).
    pub requeued: Vec<Number>,
    /// It changed the office's settings (or its bytes still say so): the
    /// office runs on the settings before it (storage-rt10 F-F).
    pub settings: bool,
}

impl SetAside {
    /// What it still shows, for staff: "ticket 38 (koseki), request k1-…".
    pub fn hints(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (n, category, request) in &self.tickets {
            out.push(match category {
                Some(c) => format!("ticket {n} ({c})"),
                None => format!("ticket {n}"),
            });
            if let Some(r) = request {
                out.push(format!("request {r}"));
            }
        }
        out
    }
}

/// The evidence the set-aside records hold (their tickets' numbers and
/// request ids, on the latest day among them) for the `--accept-damage`
/// record: every number raised, every request refused (storage-rt8 F8:
/// they came only from the snapshot and the high-water mark, so with those
/// gone a retry of an acknowledged request got a new ticket).
pub fn evidence(set_aside: &[SetAside], last_seq: u64) -> Option<Evidence> {
    let day = set_aside.iter().filter_map(|s| s.day).max();
    let mut ev = Evidence {
        seq: last_seq,
        day,
        ..Evidence::default()
    };
    for s in set_aside.iter().filter(|s| s.day == day) {
        for (n, category, request) in &s.tickets {
            let Some(c) = category else { continue };
            let h = ev.highest.entry(c.clone()).or_insert(*n);
            *h = (*h).max(*n);
            ev.categories.entry(*n).or_insert_with(|| c.clone());
            if let Some(r) = request {
                ev.requests.entry(r.clone()).or_insert(*n);
            }
        }
    }
    (!ev.highest.is_empty() || !ev.requests.is_empty()).then_some(ev)
}

/// Adds `extra` (what set-aside records show) to `ev`: the same day's
/// tickets join, a later day's replace, an earlier day's are no longer
/// given (numbers start again each day).
pub fn merge(ev: Option<Evidence>, extra: Evidence) -> Evidence {
    let Some(mut ev) = ev else { return extra };
    ev.seq = ev.seq.max(extra.seq);
    for w in &extra.seen_by {
        if !ev.seen_by.contains(w) {
            ev.seen_by.push(w.clone());
        }
    }
    if ev.day.is_none() || extra.day > ev.day {
        ev.day = extra.day;
        ev.highest = extra.highest;
        ev.requests = extra.requests;
        ev.categories = extra.categories;
        ev.served = extra.served;
        ev.unnumbered = extra.unnumbered;
    } else if ev.day == extra.day {
        for (r, c) in extra.unnumbered {
            ev.unnumbered.entry(r).or_insert(c);
        }
        ev.served.extend(extra.served);
        for (c, n) in extra.highest {
            let h = ev.highest.entry(c).or_insert(n);
            *h = (*h).max(n);
        }
        for (r, n) in extra.requests {
            ev.requests.entry(r).or_insert(n);
        }
        for (n, c) in extra.categories {
            ev.categories.entry(n).or_insert(c);
        }
    }
    ev
}

/// How many records are appended at once (one write, one sync).
const BATCH: usize = 512;

impl Engine {
    /// Appends `pieces` (numbered from the log's next record on): kept
    /// records with their contents, each lost one and each that does not
    /// apply as a `damaged-record` record with no events. Returns the
    /// records set aside. Nothing that does not apply reaches the log: each
    /// record is checked on a copy of the state first.
    pub fn append_salvaged(
        &mut self,
        pieces: &[Piece],
    ) -> Result<(Vec<SetAside>, Vec<String>), EngineError> {
        let mut set_aside = Vec::new();
        let mut inferred_notes = Vec::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut shadow: Option<(crate::state::State, Config)> = None;
        for (i, piece) in pieces.iter().enumerate() {
            let due = self.log.tail().next_seq + pending.len() as u64;
            let (state, config) =
                shadow.get_or_insert_with(|| (self.state.clone(), self.config.clone()));
            let placeholder = |state: &crate::state::State| {
                encode_body(&RecordBody {
                    at: state.meta.last_at,
                    by: Some(SET_ASIDE_BY.to_string()),
                    events: Vec::new(),
                })
            };
            let day = state.meta.day.as_ref().map(|d| d.date);
            let mut settings = false;
            let (seq, outcome, shown) = match piece {
                Piece::Lost { seq, why, raw } => {
                    settings = String::from_utf8_lossy(raw).contains("\"config_applied\"");
                    (*seq, Err(why.clone()), shown_in_raw(raw))
                }
                Piece::Kept(r) => (
                    r.seq,
                    check(state, config, r).map(|()| r.payload.clone()),
                    RecordBody::decode(r).map(|b| b.events).unwrap_or_default(),
                ),
            };
            if seq != due {
                return Err(EngineError::Corrupt {
                    seq: due,
                    reason: format!("record {seq} came where {due} was due while salvaging"),
                });
            }
            let outcome = match (outcome, piece) {
                (Err(why), Piece::Lost { raw, .. }) => {
                    let after = &pieces[i + 1..];
                    let inferred = infer_day_opened(state, config, raw, after)
                        .map(|(body, date)| (body, format!(
                            "記録 {seq} は読めませんが、後の記録から業務日 {date} の開始と分かるため、開始の記録として残しました（その日の記録は退避しません） / record {seq} cannot be read, but the records after it show it opened business day {date}: kept as that opening, and the day's records with it"
                        )))
                        .or_else(|| {
                            infer_counter_opened(state, config, raw, after).map(|(body, c)| (body, format!(
                                "記録 {seq} は読めませんが、後の記録から窓口 {c} を開いた記録と分かるため、窓口を開いた記録として残しました（その窓口の記録は退避しません。担当者の名前は分かりません） / record {seq} cannot be read, but the records after it show it opened counter {c}: kept as that opening, and the counter's records with it (who signed in is not known)"
                            )))
                        });
                    match inferred {
                        Some((body, note)) => {
                            inferred_notes.push(note);
                            for e in &body.events {
                                let _ = state.apply(config, body.at, e);
                            }
                            Ok(encode_body(&body))
                        }
                        None => {
                            // Its bytes still show a day's opening that
                            // nothing after it confirms (the last record):
                            // the day is not open, said so (outside tester
                            // storage-rt12 F-R, variant a: nothing told
                            // staff to open it again).
                            let opened_later = after.iter().any(|p| match p {
                                Piece::Kept(r) => RecordBody::decode(r).is_ok_and(|b| {
                                    b.events.iter().any(|e| {
                                        matches!(
                                            e,
                                            Event::DayOpened { .. } | Event::DayReopened { .. }
                                        )
                                    })
                                }),
                                Piece::Lost { .. } => false,
                            });
                            if String::from_utf8_lossy(raw).contains("\"day_opened\"")
                                && !state.day_is_open()
                                && !opened_later
                            {
                                inferred_notes.push(format!(
                                    "記録 {seq} は業務の開始の記録のようですが、読めないため退避しました。業務は始まっていない状態です。管理画面で今日の業務を開始してください（番号は続きから出ます） / record {seq} looks like a business day's opening but cannot be read and was set aside: no day is open; open today's business day on /admin (numbers go on after those taken)"
                                ));
                            }
                            Err(why)
                        }
                    }
                }
                (outcome, _) => outcome,
            };
            match outcome {
                Ok(payload) => pending.push(payload),
                Err(why) => {
                    pending.push(placeholder(state));
                    let tickets = tickets_shown(state, config, &shown);
                    let moved = shown
                        .iter()
                        .filter(|e| !matches!(e, Event::TicketIssued { .. }))
                        .filter_map(Event::ticket)
                        .collect();
                    set_aside.push(SetAside {
                        seq,
                        why,
                        day,
                        tickets,
                        requeued: moved,
                        settings: settings
                            || shown
                                .iter()
                                .any(|e| matches!(e, Event::ConfigApplied { .. })),
                    });
                    // The copy may hold half of a record that did not apply.
                    shadow = None;
                }
            }
            if pending.len() >= BATCH || shadow.is_none() {
                self.append_new(&mut pending)?;
            }
        }
        self.append_new(&mut pending)?;
        self.flush_store()?;
        let today = self.state.meta.day.as_ref().map(|d| d.date);
        for s in &mut set_aside {
            let same_day = s.day == today;
            let waiting = |n: &Number| {
                same_day
                    && self
                        .state
                        .ticket(*n)
                        .is_some_and(|t| matches!(t.status, crate::model::Status::Waiting { .. }))
            };
            s.requeued.retain(waiting);
            s.requeued.dedup();
        }
        Ok((set_aside, inferred_notes))
    }

    /// Appends `payloads` as new records (chained from the log's end) and
    /// applies them.
    fn append_new(&mut self, payloads: &mut Vec<Vec<u8>>) -> Result<(), EngineError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let tail = self.log.tail();
        let mut pos = self.log.append(payloads)?;
        self.feed.publish(tail.next_seq, payloads);
        let mut prev = tail.last_hash;
        for (i, payload) in payloads.drain(..).enumerate() {
            let r = Record {
                seq: tail.next_seq + i as u64,
                prev,
                payload,
            };
            self.apply_record(pos, &r)?;
            prev = r.hash();
            pos.offset += r.framed_len();
        }
        self.mark_appended();
        self.write_high_water()
    }
}

/// Whether record `r` applies to `state` (changed as it would be): each
/// event must find the ticket where it says (a completion of a ticket whose
/// call was set aside does not: outside tester storage-rt8 F1, it left the
/// ticket done and waiting at once, and the repair was refused at its own
/// last record), and the state must keep its invariants after it.
fn check(state: &mut crate::state::State, config: &mut Config, r: &Record) -> Result<(), String> {
    let body = RecordBody::decode(r).map_err(|e| e.to_string())?;
    let unfit = |x: String| format!("does not apply without the records set aside before it: {x}");
    let raises = body.by.as_deref() == Some(super::ACCEPT_DAMAGE_BY);
    for event in &body.events {
        // Tickets are issued only on an open day (an `--accept-damage`
        // record may cancel at once onto a closed one): outside tester
        // storage-rt12 F-R, today's tickets after a lost opening were
        // applied to the closed wrong day, and the opening not inferred.
        if matches!(event, Event::TicketIssued { .. }) && !raises && !state.day_is_open() {
            return Err(unfit(
                "a ticket issued while no business day is open".into(),
            ));
        }
        if let Event::ConfigApplied { source } = event {
            *config = Config::parse_recorded(source, &format!("event log record {}", r.seq))
                .map_err(|e| e.to_string())?;
        }
        fits(state, event).map_err(unfit)?;
        state
            .apply(config, body.at, event)
            .map_err(|x| unfit(x.to_string()))?;
    }
    state.check_invariants().map_err(|x| unfit(x.to_string()))?;
    Ok(())
}

/// An unreadable record that opened a business day, when the records
/// after it show it did: no day is open, the next readable record does
/// not apply as things are but does after an opening of the day its bytes
/// still name (`"date":"…"`), or failing that the day of its time in the
/// office's zone. The stand-in record (`by` [`INFERRED_BY`]) opens that
/// day; what the bytes say of a special day is kept when readable. A day
/// not after the last one is inferred only as the repair of a wrong day
/// opened ahead, as `open_day` allows it, with that day's numbers taken.
fn infer_day_opened(
    state: &crate::state::State,
    config: &Config,
    raw: &[u8],
    after: &[Piece],
) -> Option<(RecordBody, NaiveDate)> {
    if state.day_is_open() {
        return None;
    }
    let next = after.iter().find_map(|p| match p {
        Piece::Kept(r) => Some(r),
        Piece::Lost { .. } => None,
    })?;
    let next_body = RecordBody::decode(next).ok()?;
    if next_body
        .events
        .iter()
        .any(|e| matches!(e, Event::DayOpened { .. } | Event::DayReopened { .. }))
    {
        return None;
    }
    let without = applies_on(state.clone(), config.clone(), after)?;
    let text = String::from_utf8_lossy(raw);
    // The bytes' date only if the next record's time agrees (a flipped
    // digit can still read as a date).
    let by_time = crate::clock::office_date(next_body.at, config.office.utc_offset);
    let date = values(&text, "\"date\":\"", true)
        .first()
        .and_then(|d| d.parse::<NaiveDate>().ok())
        .filter(|d| *d == by_time)
        .unwrap_or(by_time);
    // A day not after the last one opens only as the repair of a wrong
    // day opened ahead (`State::open_day`'s rule): its numbers stay taken,
    // read from the wrong day's kept tickets, never from damaged bytes
    // (outside tester storage-rt12 F-R: today's opening after a wrong day
    // was not inferred, the office stayed closed on the wrong date and the
    // retries of today's acknowledged requests got new tickets).
    let after_wrong_day = match &state.meta.day {
        Some(d) if d.date >= date => {
            let repair = d.closed_at.is_some()
                && d.date > by_time
                && date == by_time
                && state.meta.previous_day.is_none_or(|p| p < date);
            if !repair {
                return None;
            }
            let mut highest = std::collections::BTreeMap::new();
            for t in state.tickets.values() {
                let h = highest.entry(t.category.clone()).or_insert(t.number);
                *h = (*h).max(t.number);
            }
            highest
        }
        _ => Default::default(),
    };
    let at = values(&text, "\"at\":", false)
        .first()
        .and_then(|a| a.parse::<i64>().ok())
        .map(Millis)
        .filter(|a| *a >= state.meta.last_at && *a <= next_body.at)
        .unwrap_or_else(|| next_body.at.max(state.meta.last_at));
    let body = RecordBody {
        at,
        by: Some(INFERRED_BY.to_string()),
        events: vec![Event::DayOpened {
            date,
            special: text.contains("\"special\":true"),
            // A wrong day's numbers (a repair's) are the kept wrong day's
            // tickets, not what the damaged bytes seem to say.
            after_wrong_day,
        }],
    };
    let mut trial = state.clone();
    let trial_config = config.clone();
    for e in &body.events {
        trial.apply(&trial_config, at, e).ok()?;
    }
    trial.check_invariants().ok()?;
    let with = applies_on(trial, trial_config, after).unwrap_or(usize::MAX);
    (with > without).then_some((body, date))
}

/// How many of the readable records in `after` apply in turn on `state`
/// before the first that does not (at most [`LOOK_AHEAD`]); `None` when
/// all of them do, or one opens a day first: nothing to infer.
fn applies_on(
    mut state: crate::state::State,
    mut config: Config,
    after: &[Piece],
) -> Option<usize> {
    for (n, piece) in after.iter().take(LOOK_AHEAD).enumerate() {
        // Another unreadable record is passed over: what it held is set
        // aside on its own (outside tester storage-rt12 F-S: with the
        // day's opening and the next record both unreadable, the second
        // was taken as the opening).
        let Piece::Kept(r) = piece else {
            continue;
        };
        let opens = RecordBody::decode(r).is_ok_and(|b| {
            b.events
                .iter()
                .any(|e| matches!(e, Event::DayOpened { .. } | Event::DayReopened { .. }))
        });
        if opens {
            return None;
        }
        if check(&mut state, &mut config, r).is_err() {
            return Some(n);
        }
    }
    None
}

/// An unreadable record that opened a counter, when the records after it
/// show it did (outside tester storage-rt12 F-S: counter 1's opening
/// unreadable set aside every call at counter 1 after it, 264 records,
/// and 88 visitors served were waiting again): a day is open, the bytes
/// show no ticket issued, and opening one closed counter lets more of the
/// readable records after it apply than without (the counter the bytes
/// still name first when several do as well). The stand-in record (`by`
/// [`INFERRED_BY`]) opens it; who signed in is not known.
fn infer_counter_opened(
    state: &crate::state::State,
    config: &Config,
    raw: &[u8],
    after: &[Piece],
) -> Option<(RecordBody, crate::model::CounterNo)> {
    if !state.day_is_open() {
        return None;
    }
    let text = String::from_utf8_lossy(raw);
    if text.contains("\"ticket_issued\"") {
        return None;
    }
    let next = after.iter().find_map(|p| match p {
        Piece::Kept(r) => Some(r),
        Piece::Lost { .. } => None,
    })?;
    let next_at = RecordBody::decode(next).ok()?.at;
    let without = applies_on(state.clone(), config.clone(), after)?;
    let named: Option<crate::model::CounterNo> = values(&text, "\"counter\":", false)
        .first()
        .and_then(|c| c.parse().ok());
    let at = values(&text, "\"at\":", false)
        .first()
        .and_then(|a| a.parse::<i64>().ok())
        .map(Millis)
        .filter(|a| *a >= state.meta.last_at && *a <= next_at)
        .unwrap_or_else(|| next_at.max(state.meta.last_at));
    let mut best: Option<(usize, crate::model::CounterNo)> = None;
    for (no, _) in state.meta.counters.iter().filter(|(_, c)| !c.open) {
        let event = Event::CounterOpened {
            counter: *no,
            staff: None,
        };
        let mut trial = state.clone();
        if trial.apply(config, at, &event).is_err() || trial.check_invariants().is_err() {
            continue;
        }
        let with = applies_on(trial, config.clone(), after).unwrap_or(usize::MAX);
        let better = match best {
            None => true,
            Some((w, _)) => with > w || (with == w && Some(*no) == named),
        };
        if with > without && better {
            best = Some((with, *no));
        }
    }
    let (_, counter) = best?;
    Some((
        RecordBody {
            at,
            by: Some(INFERRED_BY.to_string()),
            events: vec![Event::CounterOpened {
                counter,
                staff: None,
            }],
        },
        counter,
    ))
}

/// How far past an unreadable record its followers are tried.
const LOOK_AHEAD: usize = 256;

/// The state an event of a counter needs: its ticket at that counter.
fn fits(state: &crate::state::State, event: &Event) -> Result<(), String> {
    use crate::model::Status;
    let ticket = |n: Number| state.ticket(n).ok_or_else(|| format!("no ticket {n}"));
    match event {
        Event::Called { number, .. } => match ticket(*number)?.status {
            Status::Waiting { .. } => Ok(()),
            ref s => Err(format!("ticket {number} called while {}", s.name())),
        },
        Event::Recalled { number, counter }
        | Event::Started { number, counter }
        | Event::Completed {
            number, counter, ..
        }
        | Event::Absent { number, counter }
        | Event::Held {
            number, counter, ..
        } => {
            let t = ticket(*number)?;
            if t.status.counter() == Some(*counter) {
                Ok(())
            } else {
                Err(format!(
                    "ticket {number} is {}, not at counter {counter}",
                    t.status.name()
                ))
            }
        }
        Event::Resumed { number, .. } => match ticket(*number)?.status {
            Status::Held { .. } => Ok(()),
            ref s => Err(format!("ticket {number} resumed while {}", s.name())),
        },
        Event::Returned { number } => match ticket(*number)?.status {
            Status::Absent { .. } => Ok(()),
            ref s => Err(format!("ticket {number} returned while {}", s.name())),
        },
        Event::DayClosed { .. } if !state.day_is_open() => {
            Err("day closed while none is open".into())
        }
        _ => Ok(()),
    }
}

/// The events an unreadable record's bytes still show: the whole body if
/// its JSON still parses (a flip in a byte that is no part of it), else
/// each ticket number with the request id and queue beside it.
fn shown_in_raw(raw: &[u8]) -> Vec<Event> {
    if let Some(i) = raw.iter().position(|&b| b == b'{') {
        let mut stream = serde_json::Deserializer::from_slice(&raw[i..]).into_iter::<RecordBody>();
        if let Some(Ok(body)) = stream.next() {
            return body.events;
        }
    }
    let text = String::from_utf8_lossy(raw);
    let numbers = values(&text, "\"number\":", false);
    let requests = values(&text, "\"request_id\":\"", true);
    let categories = values(&text, "\"category\":\"", true);
    numbers
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let number = n.parse().ok()?;
            // Paired in order only when the counts agree (one ticket).
            let pair = |v: &Vec<String>| (v.len() == numbers.len()).then(|| v[i].clone());
            Some(Event::TicketIssued {
                number,
                category: pair(&categories).unwrap_or_default(),
                kiosk: None,
                request_id: pair(&requests),
                people_ahead: 0,
                expected_wait_s: 0,
                expected_wait_low_s: None,
                expected_wait_high_s: None,
                tag: None,
            })
        })
        .collect()
}

/// The values after `key` in `text` (quoted strings, else digits), at most 16.
fn values(text: &str, key: &str, quoted: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        rest = &rest[i + key.len()..];
        let value: String = if quoted {
            rest.chars().take_while(|c| *c != '"').take(64).collect()
        } else {
            rest.chars()
                .take_while(|c| c.is_ascii_digit())
                .take(10)
                .collect()
        };
        if !value.is_empty() && value.chars().all(|c| !c.is_control()) {
            out.push(value);
        }
        if out.len() >= 16 {
            break;
        }
    }
    out
}

/// The tickets `events` name, with the queue each belongs to: the event's
/// own, the ticket's in `state`, else the one queue whose number range
/// holds it.
fn tickets_shown(
    state: &crate::state::State,
    config: &Config,
    events: &[Event],
) -> Vec<(Number, Option<String>, Option<String>)> {
    let mut out: Vec<(Number, Option<String>, Option<String>)> = Vec::new();
    for e in events {
        let Some(n) = e.ticket() else { continue };
        let (category, request) = match e {
            Event::TicketIssued {
                category,
                request_id,
                ..
            } => (
                Some(category.clone()).filter(|c| config.queue(c).is_some()),
                request_id.clone(),
            ),
            _ => (None, None),
        };
        let category = category
            .or_else(|| state.ticket(n).map(|t| t.category.clone()))
            .or_else(|| {
                let holding: Vec<String> = config
                    .categories()
                    .filter(|q| q.numbers.is_some_and(|r| r.from <= n && n <= r.to))
                    .map(|q| q.id.clone())
                    .collect();
                (holding.len() == 1).then(|| holding[0].clone())
            });
        if !out
            .iter()
            .any(|(m, _, r)| *m == n && (r == &request || request.is_none()))
        {
            out.push((n, category, request));
        }
    }
    out
}

/// What the bytes of a record that cannot be read may still tell: the
/// ticket numbers and request ids that look intact in them (never trusted
/// for state; named in the report so that staff can look for them).
pub fn hints(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for (key, quoted, word) in [
        ("\"number\":", false, "ticket"),
        ("\"request_id\":\"", true, "request"),
    ] {
        for value in values(&text, key, quoted) {
            let item = format!("{word} {value}");
            if !out.contains(&item) {
                out.push(item);
            }
            if out.len() >= 16 {
                return out;
            }
        }
    }
    out
}
