//! The vocabulary of the queue: commands (what a kiosk or a member of staff
//! asks for), events (what happened, as recorded in the event log) and tickets
//! with their history (R1, R2, R3, R8).
//!
//! Commands carry no time: `now` is passed beside them, so a whole day can be
//! replayed and tested deterministically. Events carry every value the state
//! machine chose (the number issued, the ticket a counter called, the wait the
//! visitor was shown), so replaying events never needs to decide anything.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};

/// A ticket number, unique per office and business day (category ranges do
/// not overlap).
pub type Number = u32;

/// A counter's number as shown to visitors ("5 番窓口").
pub type CounterNo = u16;

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub fn from_datetime<Tz: TimeZone>(t: &DateTime<Tz>) -> Millis {
        Millis(t.timestamp_millis())
    }

    pub fn to_datetime(self, offset: FixedOffset) -> DateTime<FixedOffset> {
        DateTime::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .with_timezone(&offset)
    }

    /// Whole seconds from `earlier` to `self`, never negative.
    pub fn secs_since(self, earlier: Millis) -> u32 {
        u32::try_from((self.0 - earlier.0).max(0) / 1000).unwrap_or(u32::MAX)
    }
}

/// Longest internal note kept with a transfer or hold (characters).
pub const MAX_NOTE_CHARS: usize = 200;
/// Longest kiosk, staff or request identifier (characters).
pub const MAX_ID_CHARS: usize = 64;

/// What a kiosk or a member of staff asks the office to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Open the business day; numbering restarts for every category.
    OpenDay {
        date: NaiveDate,
    },
    /// Close the business day: anyone still waiting is recorded as unserved
    /// and every counter closes.
    CloseDay,
    /// Reopen the business day closed by mistake today (issue 23): the
    /// same date, its numbering going on where it stopped, so that no
    /// number is given twice. Tickets the closing left unserved stay so.
    ReopenDay,
    OpenCounter {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff: Option<String>,
    },
    CloseCounter {
        counter: CounterNo,
    },
    /// Issue a ticket in a reception category (a kiosk button, R1). A retried
    /// request with the same `request_id` gets the same ticket back.
    IssueTicket {
        category: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kiosk: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Call the next ticket by the counter's queues and policy.
    CallNext {
        counter: CounterNo,
    },
    /// Call a given number, in or out of order (recorded).
    CallNumber {
        counter: CounterNo,
        number: Number,
    },
    /// Call the ticket at the counter again.
    Recall {
        counter: CounterNo,
    },
    /// The visitor has arrived at the counter.
    StartService {
        counter: CounterNo,
    },
    /// The ticket at the counter is done; `tags` are the procedures (業種).
    Complete {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
    /// The called visitor did not come (不在).
    MarkAbsent {
        counter: CounterNo,
    },
    /// An absent visitor came back: first in their queue again.
    ReturnAbsent {
        number: Number,
    },
    /// Move a ticket to another queue or stage, keeping its number (R8).
    Transfer {
        number: Number,
        to: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Put the ticket at the counter aside (保留), freeing the counter.
    Hold {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Take a held ticket back at a counter: it is called there.
    Resume {
        number: Number,
        counter: CounterNo,
    },
    /// The visitor left or the ticket was issued by mistake.
    Cancel {
        number: Number,
    },
    /// Staff open issuing again in a category that closed by itself
    /// (受付終了, issue 19), for the rest of the business day.
    ReopenIssuing {
        category: String,
    },
}

impl Command {
    /// A short stable name, as used in the JSON `command` field.
    pub fn name(&self) -> &'static str {
        match self {
            Command::OpenDay { .. } => "open_day",
            Command::CloseDay => "close_day",
            Command::ReopenDay => "reopen_day",
            Command::OpenCounter { .. } => "open_counter",
            Command::CloseCounter { .. } => "close_counter",
            Command::IssueTicket { .. } => "issue_ticket",
            Command::CallNext { .. } => "call_next",
            Command::CallNumber { .. } => "call_number",
            Command::Recall { .. } => "recall",
            Command::StartService { .. } => "start_service",
            Command::Complete { .. } => "complete",
            Command::MarkAbsent { .. } => "mark_absent",
            Command::ReturnAbsent { .. } => "return_absent",
            Command::Transfer { .. } => "transfer",
            Command::Hold { .. } => "hold",
            Command::Resume { .. } => "resume",
            Command::Cancel { .. } => "cancel",
            Command::ReopenIssuing { .. } => "reopen_issuing",
        }
    }
}

/// What happened. Events are facts: applying them never fails on a state
/// that the same log produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The configuration in force from here on; its text is in the record.
    ConfigApplied {
        source: String,
    },
    /// `special` is true when the calendar does not list the day (臨時開庁).
    DayOpened {
        date: NaiveDate,
        special: bool,
        /// Today opened after a day opened ahead by mistake, closed with
        /// numbers issued (issue 23, R11; outside tester insider-rt10
        /// N8): each category's highest number of that wrong day, so
        /// today's numbering goes on after it and no two visitors in the
        /// room hold the same number. Empty on every other opening (and
        /// absent from its record, so older logs read the same).
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        after_wrong_day: std::collections::BTreeMap<String, Number>,
    },
    DayClosed {
        date: NaiveDate,
    },
    /// The closed day `date` is open again (`reopen_day`): numbering goes
    /// on from where it stopped.
    DayReopened {
        date: NaiveDate,
    },
    CounterOpened {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff: Option<String>,
    },
    CounterClosed {
        counter: CounterNo,
    },
    /// `people_ahead` and `expected_wait_s` are what the visitor was shown,
    /// kept so that the estimate can be audited against the real wait.
    TicketIssued {
        number: Number,
        category: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kiosk: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        people_ahead: u32,
        /// The point shown (the mean of the estimate).
        expected_wait_s: u32,
        /// The 80 % range shown (10th and 90th percentiles); absent in logs
        /// written before ranges were shown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_wait_low_s: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_wait_high_s: Option<u32>,
        /// The ticket's secret tag (16 hex digits, 64 random bits), in its
        /// QR code only: with it the visitor may subscribe to push notices
        /// (issue 20). Chosen by the engine when it executes the command,
        /// never by `decide`, so replay needs no randomness. Absent in logs
        /// written before tags: such tickets cannot subscribe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    Called {
        number: Number,
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        out_of_order: bool,
    },
    Recalled {
        number: Number,
        counter: CounterNo,
    },
    Started {
        number: Number,
        counter: CounterNo,
    },
    Completed {
        number: Number,
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
    Absent {
        number: Number,
        counter: CounterNo,
    },
    Returned {
        number: Number,
    },
    Transferred {
        number: Number,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        counter: Option<CounterNo>,
        to: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Held {
        number: Number,
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Resumed {
        number: Number,
        counter: CounterNo,
    },
    Cancelled {
        number: Number,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        counter: Option<CounterNo>,
    },
    /// Still in the office's hands when the day closed.
    Unserved {
        number: Number,
    },
    /// Issuing in `category` was opened again by staff after it closed by
    /// itself (受付終了, issue 19).
    IssuingReopened {
        category: String,
    },
    /// A ticket request refused because issuing in `category` had closed
    /// by itself (受付終了): counted in the statistics as turned away.
    /// `why` is "last_issue" or "unservable".
    TurnedAway {
        category: String,
        why: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kiosk: Option<String>,
    },
    /// Recorded by an `--accept-damage` start when nothing vouched for the
    /// log's end and the business day it left open is before the office's
    /// today (issue 17, outside tester storage-rt14 K1 and rt13 N6 `t69 f`):
    /// the lost records may have opened a later day, so the next day
    /// opened (by staff, an import or anything) numbers each category after
    /// `after` (its first number plus the margin). Kept in the state until
    /// that day opens, so it survives a restart and follows a standby.
    NextDayRaised {
        after: std::collections::BTreeMap<String, Number>,
    },
    /// A sign-in to the office server, successful or not (R11 audit).
    Login {
        account: String,
        ok: bool,
    },
    /// A staff account or device was added or changed (never a password).
    AccountChanged {
        account: String,
        role: String,
    },
    /// A standby was promoted: epoch `epoch` starts (issue 24). The old
    /// primary, of an earlier epoch, must take no more commands.
    Promoted {
        epoch: u64,
    },
    /// Records up to `through` were moved to `archive` (retention, R14); the
    /// live log starts after them from the checkpoint with this SHA-256.
    LogArchived {
        through: u64,
        through_hash: String,
        checkpoint_sha256: String,
        archive: String,
    },
}

impl Event {
    /// Configuration and audit records: they happen at wall-clock time and
    /// change nothing in the queue.
    pub fn is_administrative(&self) -> bool {
        matches!(
            self,
            Event::ConfigApplied { .. }
                | Event::Login { .. }
                | Event::AccountChanged { .. }
                | Event::Promoted { .. }
                | Event::LogArchived { .. }
        )
    }

    /// The counter this event happened at, if any.
    pub fn counter(&self) -> Option<CounterNo> {
        match self {
            Event::CounterOpened { counter, .. }
            | Event::CounterClosed { counter }
            | Event::Called { counter, .. }
            | Event::Recalled { counter, .. }
            | Event::Started { counter, .. }
            | Event::Completed { counter, .. }
            | Event::Absent { counter, .. }
            | Event::Held { counter, .. }
            | Event::Resumed { counter, .. } => Some(*counter),
            Event::Transferred { counter, .. } | Event::Cancelled { counter, .. } => *counter,
            Event::ConfigApplied { .. }
            | Event::DayOpened { .. }
            | Event::DayClosed { .. }
            | Event::DayReopened { .. }
            | Event::TicketIssued { .. }
            | Event::Returned { .. }
            | Event::Unserved { .. }
            | Event::IssuingReopened { .. }
            | Event::TurnedAway { .. }
            | Event::NextDayRaised { .. }
            | Event::Login { .. }
            | Event::AccountChanged { .. }
            | Event::Promoted { .. }
            | Event::LogArchived { .. } => None,
        }
    }

    /// The ticket this event is about, if any.
    pub fn ticket(&self) -> Option<Number> {
        match self {
            Event::TicketIssued { number, .. }
            | Event::Called { number, .. }
            | Event::Recalled { number, .. }
            | Event::Started { number, .. }
            | Event::Completed { number, .. }
            | Event::Absent { number, .. }
            | Event::Returned { number }
            | Event::Transferred { number, .. }
            | Event::Held { number, .. }
            | Event::Resumed { number, .. }
            | Event::Cancelled { number, .. }
            | Event::Unserved { number } => Some(*number),
            Event::ConfigApplied { .. }
            | Event::Login { .. }
            | Event::AccountChanged { .. }
            | Event::Promoted { .. }
            | Event::LogArchived { .. }
            | Event::DayOpened { .. }
            | Event::DayClosed { .. }
            | Event::DayReopened { .. }
            | Event::CounterOpened { .. }
            | Event::CounterClosed { .. }
            | Event::IssuingReopened { .. }
            | Event::NextDayRaised { .. }
            | Event::TurnedAway { .. } => None,
        }
    }
}

/// Where a ticket is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// In `Ticket::queue`. `front` is set for a returned absentee, who goes
    /// before everyone who has not been called yet.
    Waiting {
        since: Millis,
        front: bool,
    },
    Called {
        counter: CounterNo,
        at: Millis,
    },
    Serving {
        counter: CounterNo,
        since: Millis,
    },
    Absent {
        at: Millis,
    },
    Held {
        counter: CounterNo,
        at: Millis,
    },
    Done {
        at: Millis,
    },
    Cancelled {
        at: Millis,
    },
    Unserved {
        at: Millis,
    },
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Waiting { .. } => "waiting",
            Status::Called { .. } => "called",
            Status::Serving { .. } => "serving",
            Status::Absent { .. } => "absent",
            Status::Held { .. } => "held",
            Status::Done { .. } => "done",
            Status::Cancelled { .. } => "cancelled",
            Status::Unserved { .. } => "unserved",
        }
    }

    /// The counter holding the ticket, when one is.
    pub fn counter(&self) -> Option<CounterNo> {
        match self {
            Status::Called { counter, .. } | Status::Serving { counter, .. } => Some(*counter),
            _ => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Status::Done { .. } | Status::Cancelled { .. } | Status::Unserved { .. }
        )
    }
}

/// One step of a ticket's path through the office (R8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: Millis,
    #[serde(flatten)]
    pub what: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepKind {
    Issued {
        queue: String,
    },
    Called {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        out_of_order: bool,
    },
    Recalled {
        counter: CounterNo,
    },
    Started {
        counter: CounterNo,
    },
    Completed {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
    Absent {
        counter: CounterNo,
    },
    Returned,
    Transferred {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        counter: Option<CounterNo>,
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Held {
        counter: CounterNo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Resumed {
        counter: CounterNo,
    },
    Cancelled {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        counter: Option<CounterNo>,
    },
    Unserved,
}

/// A ticket of the business day `date`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub number: Number,
    pub date: NaiveDate,
    /// The reception category it was issued in.
    pub category: String,
    /// The queue it is in, or was last in.
    pub queue: String,
    pub issued_at: Millis,
    pub people_ahead_at_issue: u32,
    pub expected_wait_s_at_issue: u32,
    /// The range shown at issue (equal to the point for old records).
    #[serde(default)]
    pub expected_wait_low_s_at_issue: u32,
    #[serde(default)]
    pub expected_wait_high_s_at_issue: u32,
    /// The secret tag of its QR code (see [`Event::TicketIssued`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub status: Status,
    pub history: Vec<Step>,
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_timestamp_millis(self.0) {
            Some(t) => write!(f, "{}", t.to_rfc3339()),
            None => write!(f, "{}ms", self.0),
        }
    }
}
