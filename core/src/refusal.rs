//! Why a command was refused. A refused command changes nothing; callers
//! branch on the variant, the server shows `code()` with the Japanese and
//! English messages.

use chrono::NaiveDate;

use crate::model::{CounterNo, Millis, Number};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("the business day is not open")]
    DayNotOpen,
    #[error("the business day {date} is already open")]
    DayAlreadyOpen { date: NaiveDate },
    /// `open_day` for a date not after the last business day.
    /// `today_was_open`: the date is today, which was open before a wrong
    /// day after it (`last`) was opened by mistake; today cannot open
    /// again (its numbers would be given twice), and asking for a date
    /// after `last` would be asking for the impossible, so the message
    /// says what to do instead (outside tester insider-rt12 L1b).
    #[error("{}", day_not_after_last_en(.date, .last, .today_was_open))]
    DayNotAfterLast {
        date: NaiveDate,
        last: NaiveDate,
        today_was_open: bool,
    },
    /// `reopen_day` for a day that is not the office's today: only a day
    /// closed by mistake today may open again.
    #[error("the business day {date} is not today ({today}) and cannot be reopened")]
    ReopenNotToday { date: NaiveDate, today: NaiveDate },
    #[error("there is no counter {counter}")]
    UnknownCounter { counter: CounterNo },
    #[error("there is no reception category {category:?}")]
    UnknownCategory { category: String },
    #[error("there is no queue {queue:?}")]
    UnknownQueue { queue: String },
    #[error("there is no procedure tag {tag:?}")]
    UnknownTag { tag: String },
    #[error("there is no ticket {number} today")]
    UnknownTicket { number: Number },
    #[error("counter {counter} is closed")]
    CounterClosed { counter: CounterNo },
    #[error("counter {counter} is already open")]
    CounterAlreadyOpen { counter: CounterNo },
    #[error("counter {counter} is busy with ticket {number}")]
    CounterBusy { counter: CounterNo, number: Number },
    #[error("counter {counter} has no ticket")]
    CounterIdle { counter: CounterNo },
    #[error("nobody is waiting for counter {counter}")]
    NothingWaiting { counter: CounterNo },
    #[error("ticket {number} is {status}, not waiting")]
    NotWaiting {
        number: Number,
        status: &'static str,
    },
    /// `call_number` for a ticket whose queue the counter does not serve:
    /// the displays would send the visitor to a counter of another section
    /// (issue 18). A transferred ticket is in the queue it was sent to.
    #[error("ticket {number} is in queue {queue:?}, which counter {counter} does not serve")]
    NotServedHere {
        number: Number,
        counter: CounterNo,
        queue: String,
        /// The queue's name in Japanese, for the message.
        queue_name: String,
    },
    #[error("ticket {number} is {status}, not absent")]
    NotAbsent {
        number: Number,
        status: &'static str,
    },
    #[error("ticket {number} is {status}, not held")]
    NotHeld {
        number: Number,
        status: &'static str,
    },
    #[error("ticket {number} is already being served at counter {counter}")]
    AlreadyStarted { number: Number, counter: CounterNo },
    #[error("ticket {number} is already finished ({status})")]
    TicketFinished {
        number: Number,
        status: &'static str,
    },
    #[error("ticket {number} is already in queue {queue:?}")]
    SameQueue { number: Number, queue: String },
    #[error("category {category:?} has issued all its numbers today")]
    NumbersExhausted { category: String },
    #[error("time {now} is before the last recorded event at {last}")]
    TimeWentBackwards { now: Millis, last: Millis },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("this request id was used for another ticket request")]
    RequestIdReused,
    /// The request's ticket was issued, then lost with damaged storage
    /// (the office started with `--accept-damage`): its number is not
    /// given again, and no new one is given for the same request.
    #[error(
        "the ticket for this request (number {number}) was lost with damaged storage; ask staff"
    )]
    LostTicket { number: Number },
    /// Issuing in the category closed by itself (受付終了, issue 19); the
    /// words say why and when to come instead.
    #[error("reception in {category:?} has closed for today ({})", .closed.why.code())]
    IssuingClosed {
        category: String,
        closed: Box<crate::state::IssuingClosed>,
    },
    /// Reopening a category whose issuing is not closed.
    #[error("reception in {category:?} is not closed")]
    IssuingNotClosed { category: String },
}

impl Refusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::DayNotOpen => "day_not_open",
            Refusal::DayAlreadyOpen { .. } => "day_already_open",
            Refusal::DayNotAfterLast { .. } => "day_not_after_last",
            Refusal::ReopenNotToday { .. } => "reopen_not_today",
            Refusal::UnknownCounter { .. } => "unknown_counter",
            Refusal::UnknownCategory { .. } => "unknown_category",
            Refusal::UnknownQueue { .. } => "unknown_queue",
            Refusal::UnknownTag { .. } => "unknown_tag",
            Refusal::UnknownTicket { .. } => "unknown_ticket",
            Refusal::CounterClosed { .. } => "counter_closed",
            Refusal::CounterAlreadyOpen { .. } => "counter_already_open",
            Refusal::CounterBusy { .. } => "counter_busy",
            Refusal::CounterIdle { .. } => "counter_idle",
            Refusal::NothingWaiting { .. } => "nothing_waiting",
            Refusal::NotWaiting { .. } => "not_waiting",
            Refusal::NotServedHere { .. } => "not_served_here",
            Refusal::NotAbsent { .. } => "not_absent",
            Refusal::NotHeld { .. } => "not_held",
            Refusal::AlreadyStarted { .. } => "already_started",
            Refusal::TicketFinished { .. } => "ticket_finished",
            Refusal::SameQueue { .. } => "same_queue",
            Refusal::NumbersExhausted { .. } => "numbers_exhausted",
            Refusal::TimeWentBackwards { .. } => "time_went_backwards",
            Refusal::TooLong { .. } => "too_long",
            Refusal::RequestIdReused => "request_id_reused",
            Refusal::LostTicket { .. } => "lost_ask_staff",
            Refusal::IssuingClosed { .. } => "issuing_closed",
            Refusal::IssuingNotClosed { .. } => "issuing_not_closed",
        }
    }

    /// The message in Japanese, for staff screens and kiosks.
    pub fn message_ja(&self) -> String {
        match self {
            Refusal::DayNotOpen => "本日の業務が開始されていません".into(),
            Refusal::DayAlreadyOpen { date } => format!("{date} の業務はすでに開始されています"),
            Refusal::DayNotAfterLast {
                date,
                last,
                today_was_open: false,
            } => format!("{date} は前回の業務日 {last} より後の日付にしてください"),
            Refusal::DayNotAfterLast {
                date,
                last,
                today_was_open: true,
            } => format!("本日（{date}）は、誤って {last} の業務を開始する前に一度開始しているため、本日中は業務を開始し直せません（本日すでに出した番号を二度出さないためです）。本日の残りの受付は番号札を使わずに進めてください。明日からは、その日の日付で通常どおり業務を開始できます（{last} と同じ日付になる日を除きます）。誤って開始した日のことは監査記録に残っています。分からないときはシステムの管理者に連絡してください"),
            Refusal::ReopenNotToday { date, today } => {
                format!("{date} は本日（{today}）ではないため、受付を再開できません")
            }
            Refusal::UnknownCounter { counter } => format!("{counter} 番窓口はありません"),
            Refusal::UnknownCategory { category } => format!("受付区分「{category}」はありません"),
            Refusal::UnknownQueue { queue } => format!("待ち列「{queue}」はありません"),
            Refusal::UnknownTag { tag } => format!("業種「{tag}」はありません"),
            Refusal::UnknownTicket { number } => format!("本日 {number} 番の番号札はありません"),
            Refusal::CounterClosed { counter } => format!("{counter} 番窓口は閉じています"),
            Refusal::CounterAlreadyOpen { counter } => {
                format!("{counter} 番窓口はすでに開いています")
            }
            Refusal::CounterBusy { counter, number } => {
                format!("{counter} 番窓口は {number} 番の対応中です")
            }
            Refusal::CounterIdle { counter } => {
                format!("{counter} 番窓口に対応中の番号はありません")
            }
            Refusal::NothingWaiting { counter } => format!("{counter} 番窓口の待ち人数は 0 人です"),
            Refusal::NotWaiting { number, .. } => format!("{number} 番は待ち状態ではありません"),
            Refusal::NotServedHere {
                number,
                counter,
                queue_name,
                ..
            } => format!(
                "{number} 番は「{queue_name}」の待ち列の番号です。{counter} 番窓口はこの待ち列を担当していないため、呼び出せません（この窓口で対応するときは、先にこの窓口の待ち列へ回付してください）"
            ),
            Refusal::NotAbsent { number, .. } => format!("{number} 番は不在ではありません"),
            Refusal::NotHeld { number, .. } => format!("{number} 番は保留中ではありません"),
            Refusal::AlreadyStarted { number, counter } => {
                format!("{number} 番は {counter} 番窓口で対応中です")
            }
            Refusal::TicketFinished { number, .. } => format!("{number} 番はすでに終了しています"),
            Refusal::SameQueue { number, .. } => format!("{number} 番はすでにその待ち列にいます"),
            Refusal::NumbersExhausted { category } => {
                format!(
                    "受付区分「{category}」の本日の番号がなくなりました。職員に声をおかけください"
                )
            }
            Refusal::TimeWentBackwards { .. } => "時刻が前回の記録より前になっています".into(),
            Refusal::TooLong { max, .. } => format!("入力が長すぎます（{max} 文字まで）"),
            Refusal::RequestIdReused => {
                "この受付番号（request_id）は別の発券に使われています。新しい番号で送ってください"
                    .into()
            }
            Refusal::LostTicket { number } => {
                format!("この発券（{number} 番）の記録は障害で失われました。職員にお声がけください")
            }
            Refusal::IssuingClosed { closed, .. } => closed.words.ja.clone(),
            Refusal::IssuingNotClosed { category } => {
                format!("受付区分「{category}」の受付は終了していません")
            }
        }
    }
}

/// The English of [`Refusal::DayNotAfterLast`].
fn day_not_after_last_en(date: &NaiveDate, last: &NaiveDate, today_was_open: &bool) -> String {
    if *today_was_open {
        format!("today ({date}) was open before the wrong day {last} was opened by mistake, so it cannot open again today (its numbers would be given twice): take today's remaining visitors without tickets; from tomorrow a day opens as usual with its own date (except a date equal to {last})")
    } else {
        format!("the business day {date} must come after the last one, {last}")
    }
}
