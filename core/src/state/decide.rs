//! Commands to events: every check a command must pass, in one place.

use super::State;
use crate::config::Config;
use crate::model::{
    Command, CounterNo, Event, Millis, Number, Status, Ticket, MAX_ID_CHARS, MAX_NOTE_CHARS,
};
use crate::refusal::Refusal;

fn check_len(field: &'static str, value: Option<&String>, max: usize) -> Result<(), Refusal> {
    match value {
        Some(v) if v.chars().count() > max => Err(Refusal::TooLong { field, max }),
        _ => Ok(()),
    }
}

impl State {
    /// The repair of a day opened by mistake far ahead (issue 23): once
    /// that day is closed, today may be opened although it comes before
    /// it — when the wrong day is still in the future by the office's clock
    /// and issued no numbers (so nothing is stored under its date).
    fn wrong_day_repaired_by(&self, config: &Config, now: Millis, date: chrono::NaiveDate) -> bool {
        // Numbers issued on the wrong day no longer stop it (insider-rt10
        // N8: one kiosk press on a mistyped day stopped issuing for three
        // days): today's numbering goes on after them (`open_day`).
        let today = now.to_datetime(config.office.utc_offset).date_naive();
        let Some(day) = &self.meta.day else {
            return false;
        };
        day.closed_at.is_some()
            && day.date > today
            && date == today
            // Today itself was open before the wrong day: reopening it
            // would give its numbers again.
            && self.meta.previous_day.is_none_or(|p| p < today)
    }

    /// The events `command` causes at `now`, or why it is refused. Changes
    /// nothing.
    pub fn decide(
        &self,
        config: &Config,
        now: Millis,
        command: &Command,
    ) -> Result<Vec<Event>, Refusal> {
        self.decide_given(config, now, command, None)
    }

    /// [`State::decide`], with the wait estimate of an `issue_ticket`
    /// already known: `estimate` must be what [`State::wait_range`] gives
    /// for this state, queue and time (an import's write pass passes what
    /// its check pass computed on an identical state; the estimate is the
    /// costly part of deciding and a pure function of these).
    pub(crate) fn decide_given(
        &self,
        config: &Config,
        now: Millis,
        command: &Command,
        estimate: Option<super::WaitRange>,
    ) -> Result<Vec<Event>, Refusal> {
        if now < self.meta.last_at {
            return Err(Refusal::TimeWentBackwards {
                now,
                last: self.meta.last_at,
            });
        }
        if let Command::OpenDay { date } = command {
            return self.open_day(config, now, *date);
        }
        if let Command::ReopenDay = command {
            return self.reopen_day(config, now);
        }
        if !self.day_is_open() {
            return Err(Refusal::DayNotOpen);
        }
        let events = match command {
            Command::OpenDay { .. } | Command::ReopenDay => unreachable!("handled above"),
            Command::CloseDay => self.close_day(),
            Command::OpenCounter { counter, staff } => {
                check_len("staff", staff.as_ref(), MAX_ID_CHARS)?;
                let c = self.counter_state(*counter)?;
                if c.open {
                    return Err(Refusal::CounterAlreadyOpen { counter: *counter });
                }
                vec![Event::CounterOpened {
                    counter: *counter,
                    staff: staff.clone(),
                }]
            }
            Command::CloseCounter { counter } => {
                let c = self.open_counter(*counter)?;
                if let Some(number) = c.ticket {
                    return Err(Refusal::CounterBusy {
                        counter: *counter,
                        number,
                    });
                }
                vec![Event::CounterClosed { counter: *counter }]
            }
            Command::IssueTicket {
                category,
                kiosk,
                request_id,
            } => self.issue(config, now, category, kiosk, request_id, estimate)?,
            Command::CallNext { counter } => {
                self.idle_counter(*counter)?;
                let number = self
                    .next_for(config, *counter)
                    .ok_or(Refusal::NothingWaiting { counter: *counter })?;
                vec![Event::Called {
                    number,
                    counter: *counter,
                    out_of_order: false,
                }]
            }
            Command::CallNumber { counter, number } => {
                self.call_number(config, *counter, *number)?
            }
            Command::Recall { counter } => {
                let t = self.ticket_at(*counter)?;
                self.not_started(t, *counter)?;
                vec![Event::Recalled {
                    number: t.number,
                    counter: *counter,
                }]
            }
            Command::StartService { counter } => {
                let t = self.ticket_at(*counter)?;
                self.not_started(t, *counter)?;
                vec![Event::Started {
                    number: t.number,
                    counter: *counter,
                }]
            }
            Command::Complete { counter, tags } => {
                let t = self.ticket_at(*counter)?;
                check_tags(config, tags)?;
                vec![Event::Completed {
                    number: t.number,
                    counter: *counter,
                    tags: tags.clone(),
                }]
            }
            Command::MarkAbsent { counter } => {
                let t = self.ticket_at(*counter)?;
                self.not_started(t, *counter)?;
                vec![Event::Absent {
                    number: t.number,
                    counter: *counter,
                }]
            }
            Command::ReturnAbsent { number } => {
                let t = self.known_ticket(*number)?;
                if !matches!(t.status, Status::Absent { .. }) {
                    return Err(Refusal::NotAbsent {
                        number: *number,
                        status: t.status.name(),
                    });
                }
                vec![Event::Returned { number: *number }]
            }
            Command::Transfer {
                number,
                to,
                tags,
                note,
            } => self.transfer(config, *number, to, tags, note)?,
            Command::Hold { counter, note } => {
                check_len("note", note.as_ref(), MAX_NOTE_CHARS)?;
                let t = self.ticket_at(*counter)?;
                vec![Event::Held {
                    number: t.number,
                    counter: *counter,
                    note: note.clone(),
                }]
            }
            Command::Resume { number, counter } => self.resume(config, *number, *counter)?,
            Command::Cancel { number } => {
                let t = self.unfinished_ticket(*number)?;
                vec![Event::Cancelled {
                    number: *number,
                    counter: t.status.counter(),
                }]
            }
            Command::ReopenIssuing { category } => self.reopen_issuing(config, now, category)?,
        };
        Ok(events)
    }

    /// `open_day`: after the last day closed, never the same day again
    /// (its numbers would be given twice) unless a wrong day is repaired.
    fn open_day(
        &self,
        config: &Config,
        now: Millis,
        date: chrono::NaiveDate,
    ) -> Result<Vec<Event>, Refusal> {
        if let Some(day) = &self.meta.day {
            if day.closed_at.is_none() {
                return Err(Refusal::DayAlreadyOpen { date: day.date });
            }
            if date <= day.date && !self.wrong_day_repaired_by(config, now, date) {
                let today = now.to_datetime(config.office.utc_offset).date_naive();
                return Err(Refusal::DayNotAfterLast {
                    date,
                    last: day.date,
                    // Today open before a wrong day after it: said so,
                    // with what to do (insider-rt12 L1b).
                    today_was_open: date == today && day.date > today,
                });
            }
        }
        let special = config.calendar.opening(date).is_none();
        // Only a repair of a wrong day opens a date not after the last
        // one; that day's numbers stay taken.
        let after_wrong_day = match &self.meta.day {
            Some(day) if date <= day.date => {
                let mut highest = std::collections::BTreeMap::new();
                for t in self.tickets.values() {
                    let h = highest.entry(t.category.clone()).or_insert(t.number);
                    *h = (*h).max(t.number);
                }
                highest
            }
            _ => std::collections::BTreeMap::new(),
        };
        Ok(vec![Event::DayOpened {
            date,
            special,
            after_wrong_day,
        }])
    }

    /// `issue_ticket`: a retried request answers with nothing new; a new
    /// one takes the first free number of the category's range, with the
    /// wait estimate (`estimate`, or computed here) recorded in the event.
    fn issue(
        &self,
        config: &Config,
        now: Millis,
        category: &str,
        kiosk: &Option<String>,
        request_id: &Option<String>,
        estimate: Option<super::WaitRange>,
    ) -> Result<Vec<Event>, Refusal> {
        check_len("kiosk", kiosk.as_ref(), MAX_ID_CHARS)?;
        check_len("request_id", request_id.as_ref(), MAX_ID_CHARS)?;
        if let Some(r) = request_id {
            if let Some(n) = self.requests.get(r) {
                // The same request again: the ticket exists, nothing
                // happens. The same id for another category is a
                // different request, refused, never answered with
                // the earlier ticket.
                if self.tickets.get(n).is_some_and(|t| t.category != *category) {
                    return Err(Refusal::RequestIdReused);
                }
                return Ok(Vec::new());
            }
        }
        let range = config
            .queue(category)
            .and_then(|q| q.numbers)
            .ok_or_else(|| Refusal::UnknownCategory {
                category: category.to_owned(),
            })?;
        let start = self
            .meta
            .next_number
            .get(category)
            .copied()
            .unwrap_or(range.from)
            .max(range.from);
        let number = (start..=range.to)
            .find(|n| !self.tickets.contains_key(n))
            .ok_or_else(|| Refusal::NumbersExhausted {
                category: category.to_owned(),
            })?;
        let ahead = self.waiting_count(category);
        let expected = estimate.unwrap_or_else(|| self.wait_range(config, category, now));
        if let Some(closed) = self.issuing_closed(config, category, now, Some(expected)) {
            return Err(Refusal::IssuingClosed {
                category: category.to_owned(),
                closed: Box::new(closed),
            });
        }
        Ok(vec![Event::TicketIssued {
            number,
            category: category.to_owned(),
            kiosk: kiosk.clone(),
            request_id: request_id.clone(),
            people_ahead: u32::try_from(ahead).unwrap_or(u32::MAX),
            expected_wait_s: expected.point_s,
            expected_wait_low_s: Some(expected.low_s),
            expected_wait_high_s: Some(expected.high_s),
            // The engine draws it (issue 20): decide stays pure.
            tag: None,
        }])
    }

    /// `call_number`: a waiting or absent ticket of a queue this counter
    /// serves, out of order if it is not the one `call_next` would take.
    fn call_number(
        &self,
        config: &Config,
        counter: CounterNo,
        number: Number,
    ) -> Result<Vec<Event>, Refusal> {
        self.idle_counter(counter)?;
        let t = self.known_ticket(number)?;
        match t.status {
            Status::Waiting { .. } | Status::Absent { .. } => {}
            _ => {
                return Err(Refusal::NotWaiting {
                    number,
                    status: t.status.name(),
                })
            }
        }
        served_here(config, counter, number, &t.queue)?;
        let out_of_order = self.next_for(config, counter) != Some(number);
        Ok(vec![Event::Called {
            number,
            counter,
            out_of_order,
        }])
    }

    /// `transfer`: an unfinished ticket to a known queue (not the queue it
    /// already waits in).
    fn transfer(
        &self,
        config: &Config,
        number: Number,
        to: &str,
        tags: &[String],
        note: &Option<String>,
    ) -> Result<Vec<Event>, Refusal> {
        check_len("note", note.as_ref(), MAX_NOTE_CHARS)?;
        let t = self.unfinished_ticket(number)?;
        if config.queue(to).is_none() {
            return Err(Refusal::UnknownQueue {
                queue: to.to_owned(),
            });
        }
        if matches!(t.status, Status::Waiting { .. }) && t.queue == to {
            return Err(Refusal::SameQueue {
                number,
                queue: to.to_owned(),
            });
        }
        check_tags(config, tags)?;
        Ok(vec![Event::Transferred {
            number,
            counter: t.status.counter(),
            to: to.to_owned(),
            tags: tags.to_vec(),
            note: note.clone(),
        }])
    }

    /// `resume`: a held ticket, at an idle counter serving its queue.
    fn resume(
        &self,
        config: &Config,
        number: Number,
        counter: CounterNo,
    ) -> Result<Vec<Event>, Refusal> {
        let t = self.known_ticket(number)?;
        if !matches!(t.status, Status::Held { .. }) {
            return Err(Refusal::NotHeld {
                number,
                status: t.status.name(),
            });
        }
        self.idle_counter(counter)?;
        served_here(config, counter, number, &t.queue)?;
        Ok(vec![Event::Resumed { number, counter }])
    }

    /// `reopen_issuing`: only a category whose issuing closed by itself.
    fn reopen_issuing(
        &self,
        config: &Config,
        now: Millis,
        category: &str,
    ) -> Result<Vec<Event>, Refusal> {
        if !config.queue(category).is_some_and(|q| q.is_category()) {
            return Err(Refusal::UnknownCategory {
                category: category.to_owned(),
            });
        }
        let expected = self.wait_range(config, category, now);
        if self
            .issuing_closed(config, category, now, Some(expected))
            .is_none()
        {
            return Err(Refusal::IssuingNotClosed {
                category: category.to_owned(),
            });
        }
        Ok(vec![Event::IssuingReopened {
            category: category.to_owned(),
        }])
    }

    /// A day closed by mistake opens again — only today's, by the office's
    /// clock: an old day's numbers may already be in the statistics and a
    /// future day is repaired by opening today instead.
    fn reopen_day(&self, config: &Config, now: Millis) -> Result<Vec<Event>, Refusal> {
        let day = self.meta.day.as_ref().ok_or(Refusal::DayNotOpen)?;
        if day.closed_at.is_none() {
            return Err(Refusal::DayAlreadyOpen { date: day.date });
        }
        let today = now.to_datetime(config.office.utc_offset).date_naive();
        if day.date != today {
            return Err(Refusal::ReopenNotToday {
                date: day.date,
                today,
            });
        }
        Ok(vec![Event::DayReopened { date: day.date }])
    }

    fn close_day(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .tickets
            .values()
            .filter(|t| !t.status.is_finished())
            .map(|t| Event::Unserved { number: t.number })
            .collect();
        events.extend(
            self.meta
                .counters
                .iter()
                .filter(|(_, c)| c.open)
                .map(|(n, _)| Event::CounterClosed { counter: *n }),
        );
        if let Some(day) = &self.meta.day {
            events.push(Event::DayClosed { date: day.date });
        }
        events
    }

    fn counter_state(&self, counter: CounterNo) -> Result<&super::CounterState, Refusal> {
        self.meta
            .counters
            .get(&counter)
            .ok_or(Refusal::UnknownCounter { counter })
    }

    fn open_counter(&self, counter: CounterNo) -> Result<&super::CounterState, Refusal> {
        let c = self.counter_state(counter)?;
        if !c.open {
            return Err(Refusal::CounterClosed { counter });
        }
        Ok(c)
    }

    fn idle_counter(&self, counter: CounterNo) -> Result<(), Refusal> {
        match self.open_counter(counter)?.ticket {
            Some(number) => Err(Refusal::CounterBusy { counter, number }),
            None => Ok(()),
        }
    }

    fn ticket_at(&self, counter: CounterNo) -> Result<&Ticket, Refusal> {
        let number = self
            .open_counter(counter)?
            .ticket
            .ok_or(Refusal::CounterIdle { counter })?;
        self.known_ticket(number)
    }

    fn not_started(&self, t: &Ticket, counter: CounterNo) -> Result<(), Refusal> {
        match t.status {
            Status::Serving { .. } => Err(Refusal::AlreadyStarted {
                number: t.number,
                counter,
            }),
            _ => Ok(()),
        }
    }

    fn known_ticket(&self, number: Number) -> Result<&Ticket, Refusal> {
        self.tickets
            .get(&number)
            .ok_or(Refusal::UnknownTicket { number })
    }

    fn unfinished_ticket(&self, number: Number) -> Result<&Ticket, Refusal> {
        let t = self.known_ticket(number)?;
        if t.status.is_finished() {
            return Err(Refusal::TicketFinished {
                number,
                status: t.status.name(),
            });
        }
        Ok(t)
    }
}

fn check_tags(config: &Config, tags: &[String]) -> Result<(), Refusal> {
    match tags.iter().find(|t| config.tag(t).is_none()) {
        Some(tag) => Err(Refusal::UnknownTag { tag: tag.clone() }),
        None => Ok(()),
    }
}

/// A ticket is called or resumed only at a counter serving its queue (the
/// one it was transferred to, if it was): the displays of that queue would
/// otherwise send the visitor to a counter of another section (issue 18).
fn served_here(
    config: &Config,
    counter: CounterNo,
    number: Number,
    queue: &str,
) -> Result<(), Refusal> {
    if config
        .counter(counter)
        .is_some_and(|c| c.serves.iter().any(|q| q == queue))
    {
        return Ok(());
    }
    Err(Refusal::NotServedHere {
        number,
        counter,
        queue: queue.to_string(),
        queue_name: config
            .queue(queue)
            .map_or_else(|| queue.to_string(), |q| q.name.ja.clone()),
    })
}
