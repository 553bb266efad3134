//! 受付終了 (issue 19, R1, R6): issuing in a reception category that closes
//! by itself before the business day does — at the category's configured
//! last issuing time, or (when configured) once the wait estimate says a
//! visitor issued now could not be served before the office closes.
//!
//! The close is a pure function of (configuration, state, now): nothing is
//! recorded when it happens, so every surface and the engine agree on it at
//! every moment. What is recorded: staff reopening a category for the rest
//! of the day (`IssuingReopened`, audited with who did it) and each request
//! refused by the close (`TurnedAway`, counted in the statistics).

use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::Serialize;

use super::{State, WaitRange};
use crate::config::Config;
use crate::model::Millis;

/// Why a category's issuing is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum ClosedWhy {
    /// Past the configured last issuing time.
    LastIssue { at: NaiveTime },
    /// A visitor issued now would most likely not be served before the
    /// office closes at `closes` (the 10th percentile of the wait already
    /// reaches past it).
    Unservable { closes: NaiveTime },
}

impl ClosedWhy {
    /// The short code recorded with a turned-away request.
    pub fn code(&self) -> &'static str {
        match self {
            ClosedWhy::LastIssue { .. } => "last_issue",
            ClosedWhy::Unservable { .. } => "unservable",
        }
    }
}

/// The next business day's opening, for "when to come instead".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NextOpening {
    pub date: NaiveDate,
    pub open: NaiveTime,
}

/// A category's issuing closed by itself, with what a visitor is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuingClosed {
    pub category: String,
    pub why: ClosedWhy,
    pub next: Option<NextOpening>,
    /// What the kiosk, the displays and the public page say.
    pub words: ClosedWords,
}

/// The close in plain words: why, and when to come instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedWords {
    pub ja: String,
    /// やさしい日本語 (short sentences, hiragana for hard kanji).
    pub easy: String,
    pub en: String,
    pub zh: String,
    pub ko: String,
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
const WEEKDAYS_EASY: [&str; 7] = [
    "げつようび",
    "かようび",
    "すいようび",
    "もくようび",
    "きんようび",
    "どようび",
    "にちようび",
];

fn hm(t: NaiveTime) -> String {
    t.format("%-H:%M").to_string()
}

/// The words of a close of category `name_ja` / `name_en`.
pub fn closed_words(
    name_ja: &str,
    name_en: &str,
    why: ClosedWhy,
    next: Option<NextOpening>,
) -> ClosedWords {
    let (reason_ja, reason_easy, reason_en) = match why {
        ClosedWhy::LastIssue { at } => (
            format!("（番号札の発行は {} までです）", hm(at)),
            format!("ばんごうの かみは {} までです。", hm(at)),
            format!(" (tickets are issued until {})", hm(at)),
        ),
        ClosedWhy::Unservable { closes } => (
            format!(
                "（今からでは閉庁の {} までにご案内できない見込みです）",
                hm(closes)
            ),
            format!("いまからでは {} までに まにあいません。", hm(closes)),
            format!(
                " (a visitor arriving now could not be served before we close at {})",
                hm(closes)
            ),
        ),
    };
    let (come_ja, come_easy, come_en, come_zh, come_ko) = match next {
        Some(n) => {
            let wd = n.date.weekday().num_days_from_monday() as usize;
            let (m, d, t) = (n.date.month(), n.date.day(), hm(n.open));
            (
                format!(
                    "次は {m}月{d}日（{}）{t} からお越しください。",
                    WEEKDAYS_JA[wd]
                ),
                format!(
                    "つぎは {m}がつ{d}にち（{}）の {t} から きて ください。",
                    WEEKDAYS_EASY[wd]
                ),
                format!("Please come on {} from {t}.", n.date.format("%a %-d %b")),
                format!("请于{m}月{d}日 {t} 以后再来。"),
                format!("{m}월 {d}일 {t} 이후에 다시 와 주세요."),
            )
        }
        None => (
            "職員に声をおかけください。".to_string(),
            "しょくいんに はなして ください。".to_string(),
            "Please ask a member of staff.".to_string(),
            "请咨询工作人员。".to_string(),
            "직원에게 문의해 주세요.".to_string(),
        ),
    };
    ClosedWords {
        ja: format!("{name_ja}は、本日の受付を終了しました{reason_ja}。{come_ja}"),
        easy: format!("きょうの うけつけは おわりました。{reason_easy}{come_easy}"),
        en: format!("{name_en}: reception has closed for today{reason_en}. {come_en}"),
        zh: format!("今天的受理已结束。{come_zh}"),
        ko: format!("오늘 접수는 마감되었습니다. {come_ko}"),
    }
}

impl State {
    /// Whether issuing in `category` has closed by itself at `now`, and
    /// why. `estimate` is the wait of a ticket issued now, if the caller
    /// already has it (the unservable close needs it; without it, that
    /// close is not checked). `None` on a closed business day (issuing
    /// follows the day itself then), after staff reopened the category,
    /// and for a category without a configured close.
    pub fn issuing_closed(
        &self,
        config: &Config,
        category: &str,
        now: Millis,
        estimate: Option<WaitRange>,
    ) -> Option<IssuingClosed> {
        if !self.day_is_open() || self.meta.issuing_reopened.contains(category) {
            return None;
        }
        let q = config.queue(category)?;
        let local = now.to_datetime(config.office.utc_offset);
        let date = self.meta.day.as_ref()?.date;
        let hours = config.calendar.opening(date).map(|o| o.hours);
        let why = if let Some(at) = q.closing.last_issue.filter(|at| local.time() >= *at) {
            ClosedWhy::LastIssue { at }
        } else {
            let closes = hours.map(|h| h.close)?;
            let e = estimate.filter(|_| q.closing.when_unservable)?;
            // Only a reliable estimate closes issuing: without history the
            // office would turn people away on a guess.
            if !self.estimate_reliable(category) {
                return None;
            }
            let served_from = local
                .time()
                .overflowing_add_signed(chrono::TimeDelta::seconds(i64::from(e.low_s)));
            // Past midnight (overflow) is past closing too.
            if served_from.1 == 0 && served_from.0 < closes {
                return None;
            }
            ClosedWhy::Unservable { closes }
        };
        // Bounded: a calendar closed for months names no day.
        let next = date.succ_opt().and_then(|d| {
            d.iter_days()
                .take(60)
                .find_map(|x| config.calendar.opening(x))
                .map(|o| NextOpening {
                    date: o.date,
                    open: o.hours.open,
                })
        });
        Some(IssuingClosed {
            category: category.to_string(),
            why,
            next,
            words: closed_words(
                &q.name.ja,
                q.name.en.as_deref().unwrap_or(&q.name.ja),
                why,
                next,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_OFFICE_TOML;
    use crate::model::{Command, Event};
    use crate::refusal::Refusal;
    use crate::state::learn::{DayStaffing, LogHist};

    /// The default office with 受付終了 set for 住民異動 (idou).
    fn office(settings: &str) -> Config {
        let text = DEFAULT_OFFICE_TOML.replacen(
            "typical_service_minutes = 15\n",
            &format!("typical_service_minutes = 15\n{settings}\n"),
            1,
        );
        Config::parse(&text, "test.toml").expect("config")
    }

    /// 2026-11-26 (Thu) at `hh:mm` JST.
    fn at(hh: i64, mm: i64) -> Millis {
        Millis(1_795_618_800_000 + (hh * 60 + mm) * 60_000)
    }

    fn run(
        config: &Config,
        state: &mut State,
        now: Millis,
        c: Command,
    ) -> Result<Vec<Event>, Refusal> {
        let events = state.decide(config, now, &c)?;
        for e in &events {
            state.apply(config, now, e).expect("applies");
        }
        Ok(events)
    }

    fn issue(cat: &str) -> Command {
        Command::IssueTicket {
            category: cat.into(),
            kiosk: None,
            request_id: None,
        }
    }

    fn opened(config: &Config) -> State {
        let mut st = State::new(config);
        run(
            config,
            &mut st,
            at(7, 55),
            Command::OpenDay {
                date: "2026-11-26".parse().expect("date"),
            },
        )
        .expect("open");
        st
    }

    #[test]
    fn issuing_closes_at_the_last_issuing_time_and_staff_reopen_it() {
        let config = office("last_issue = \"16:45\"");
        let mut st = opened(&config);
        run(&config, &mut st, at(16, 44), issue("idou")).expect("before 16:45");
        let refused = run(&config, &mut st, at(16, 45), issue("idou")).expect_err("closed");
        let Refusal::IssuingClosed { closed, .. } = &refused else {
            panic!("{refused:?}");
        };
        assert_eq!(closed.why.code(), "last_issue");
        // Why and when to come instead, in plain words.
        assert_eq!(
            closed.words.ja,
            "住民異動の受付は、本日の受付を終了しました（番号札の発行は 16:45 までです）。次は 11月27日（金）8:00 からお越しください。"
        );
        assert_eq!(
            closed.words.easy,
            "きょうの うけつけは おわりました。ばんごうの かみは 16:45 までです。つぎは 11がつ27にち（きんようび）の 8:00 から きて ください。"
        );
        assert_eq!(refused.code(), "issuing_closed");
        assert_eq!(refused.message_ja(), closed.words.ja);
        // Other categories go on; a category without the setting too.
        run(&config, &mut st, at(16, 50), issue("koseki")).expect("koseki open");
        assert!(st
            .issuing_closed(&config, "koseki", at(17, 0), None)
            .is_none());
        // Reopening what is not closed is refused; reopening works once.
        assert_eq!(
            run(
                &config,
                &mut st,
                at(16, 51),
                Command::ReopenIssuing {
                    category: "koseki".into()
                }
            ),
            Err(Refusal::IssuingNotClosed {
                category: "koseki".into()
            })
        );
        assert_eq!(
            run(
                &config,
                &mut st,
                at(16, 51),
                Command::ReopenIssuing {
                    category: "koufu".into()
                }
            ),
            Err(Refusal::UnknownCategory {
                category: "koufu".into()
            }),
            "a stage has no issuing"
        );
        let ev = run(
            &config,
            &mut st,
            at(16, 52),
            Command::ReopenIssuing {
                category: "idou".into(),
            },
        )
        .expect("reopen");
        assert_eq!(
            ev,
            vec![Event::IssuingReopened {
                category: "idou".into()
            }]
        );
        run(&config, &mut st, at(17, 30), issue("idou")).expect("reopened for the day");
        // The next business day closes by itself again.
        run(&config, &mut st, at(18, 0), Command::CloseDay).expect("close");
        let next = Millis(at(16, 46).0 + 24 * 3_600_000);
        run(
            &config,
            &mut st,
            Millis(next.0 - 9 * 3_600_000),
            Command::OpenDay {
                date: "2026-11-27".parse().expect("date"),
            },
        )
        .expect("open next");
        assert!(st.issuing_closed(&config, "idou", next, None).is_some());
        // A closed business day is not 受付終了: the day itself is closed.
        run(&config, &mut st, Millis(next.0 + 60_000), Command::CloseDay).expect("close");
        assert!(st
            .issuing_closed(&config, "idou", Millis(next.0 + 120_000), None)
            .is_none());
    }

    #[test]
    fn issuing_closes_when_a_new_visitor_could_not_be_served_before_closing() {
        let config = office("close_when_unservable = true");
        let mut st = opened(&config);
        let wait = |low_min: u32| WaitRange {
            point_s: low_min * 60 + 600,
            low_s: low_min * 60,
            high_s: low_min * 60 + 1200,
        };
        // Without history the estimate is a guess: nobody is turned away.
        assert!(st
            .issuing_closed(&config, "idou", at(17, 30), Some(wait(60)))
            .is_none());
        let mut hist = LogHist::prior(900.0);
        hist.samples = 100;
        st.meta.learned.occupancy.insert("idou".into(), hist);
        st.meta.learned.days.push_back(DayStaffing::default());
        assert!(st.estimate_reliable("idou"));
        // Closes at 18:00 (a Thursday): 17:30 + 20 min is served, + 31 min
        // (even at the range's low end) is not.
        assert!(st
            .issuing_closed(&config, "idou", at(17, 30), Some(wait(20)))
            .is_none());
        let c = st
            .issuing_closed(&config, "idou", at(17, 30), Some(wait(31)))
            .expect("closed");
        assert_eq!(
            c.why,
            ClosedWhy::Unservable {
                closes: NaiveTime::from_hms_opt(18, 0, 0).expect("t")
            }
        );
        assert!(
            c.words
                .ja
                .contains("閉庁の 18:00 までにご案内できない見込み"),
            "{}",
            c.words.ja
        );
        assert!(
            c.words.ja.contains("次は 11月27日（金）8:00"),
            "{}",
            c.words.ja
        );
        // Without an estimate at hand, that close is not judged.
        assert!(st
            .issuing_closed(&config, "idou", at(17, 30), None)
            .is_none());
    }

    #[test]
    fn the_setting_is_checked() {
        let bad = DEFAULT_OFFICE_TOML.replacen(
            "typical_service_minutes = 15\n",
            "typical_service_minutes = 15\nlast_issue = \"16時45分\"\n",
            1,
        );
        let e = Config::parse(&bad, "office.toml").expect_err("bad time");
        assert!(e.message.contains("last_issue"), "{}", e.message);
        let stage = DEFAULT_OFFICE_TOML.replacen(
            "typical_service_minutes = 4\n",
            "typical_service_minutes = 4\nlast_issue = \"16:45\"\n",
            1,
        );
        let e = Config::parse(&stage, "office.toml").expect_err("stage");
        assert!(e.message.contains("not stages"), "{}", e.message);
    }
}
