//! Unit and property tests of the state machine.

use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;
use crate::config::DEFAULT_OFFICE_TOML;
use crate::model::{Command, Event, Millis, Number};
use crate::refusal::Refusal;

const MIN: i64 = 60_000;

struct Office {
    cfg: Config,
    st: State,
    now: i64,
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default()
}

impl Office {
    fn new(cfg: Config) -> Office {
        let st = State::new(&cfg);
        Office {
            cfg,
            st,
            now: 1_795_000_000_000,
        }
    }

    fn default_open() -> Office {
        let mut o = Office::new(Config::embedded_default());
        o.ok(Command::OpenDay { date: day(24) });
        o
    }

    fn tick(&mut self, minutes: i64) {
        self.now += minutes * MIN;
    }

    fn try_cmd(&mut self, c: Command) -> Result<Vec<Event>, Refusal> {
        let at = Millis(self.now);
        let events = self.st.decide(&self.cfg, at, &c)?;
        for e in &events {
            self.st
                .apply(&self.cfg, at, e)
                .expect("decided events apply");
        }
        self.st.check_invariants().expect("invariants");
        Ok(events)
    }

    fn ok(&mut self, c: Command) -> Vec<Event> {
        let name = c.name();
        self.try_cmd(c)
            .unwrap_or_else(|r| panic!("{name} refused: {r}"))
    }

    /// Asserts the refusal and that nothing changed.
    fn refused(&mut self, c: Command) -> Refusal {
        let before = self.st.clone();
        let r = self.try_cmd(c).expect_err("should be refused");
        assert_eq!(self.st, before, "a refused command changed the state");
        r
    }

    fn open(&mut self, counter: u16) {
        self.ok(Command::OpenCounter {
            counter,
            staff: None,
        });
    }

    fn issue(&mut self, category: &str) -> Number {
        let e = self.ok(Command::IssueTicket {
            category: category.into(),
            kiosk: None,
            request_id: None,
        });
        e[0].ticket().expect("a ticket")
    }

    fn call(&mut self, counter: u16) -> Number {
        self.ok(Command::CallNext { counter })[0]
            .ticket()
            .expect("called")
    }

    fn status(&self, n: Number) -> &'static str {
        self.st.ticket(n).expect("ticket").status.name()
    }
}

#[test]
fn numbers_run_per_category_and_restart_each_day() {
    let mut o = Office::default_open();
    assert_eq!(o.issue("koseki"), 1);
    assert_eq!(o.issue("idou"), 1001);
    assert_eq!(o.issue("koseki"), 2);
    o.ok(Command::CloseDay);
    assert_eq!(o.status(1), "unserved");
    o.tick(60 * 14);
    o.ok(Command::OpenDay { date: day(25) });
    assert_eq!(o.issue("koseki"), 1);
    assert_eq!(o.issue("idou"), 1001);
}

/// Issue 17 (outside tester storage-rt14 K1): the margin an accepted loss
/// carries (`next_day_raised`) leaves the open day's numbering alone, is
/// kept in the snapshot's meta, numbers only the next day opened after it,
/// and is gone after that day.
#[test]
fn a_carried_margin_numbers_the_next_day_opened_once() {
    let mut o = Office::default_open();
    assert_eq!(o.issue("koseki"), 1);
    let after: std::collections::BTreeMap<String, Number> =
        [("koseki".to_string(), 100), ("idou".to_string(), 1100)].into();
    o.st.apply(&o.cfg, Millis(o.now), &Event::NextDayRaised { after })
        .expect("applies");
    assert_eq!(o.issue("koseki"), 2, "the open day goes on as it was");
    let meta = serde_json::to_string(&o.st.meta).expect("meta");
    let back: Meta = serde_json::from_str(&meta).expect("meta back");
    assert_eq!(back.next_day_after, o.st.meta.next_day_after);
    o.ok(Command::CloseDay);
    o.tick(60 * 14);
    o.ok(Command::OpenDay { date: day(25) });
    assert_eq!(o.issue("koseki"), 101);
    assert_eq!(o.issue("idou"), 1101);
    assert!(o.st.meta.next_day_after.is_empty());
    o.ok(Command::CloseDay);
    o.tick(60 * 24);
    o.ok(Command::OpenDay { date: day(26) });
    assert_eq!(o.issue("koseki"), 1, "carried once");
}

#[test]
fn commands_that_do_not_fit_are_refused_and_change_nothing() {
    let mut o = Office::new(Config::embedded_default());
    assert_eq!(
        o.refused(Command::CallNext { counter: 1 }),
        Refusal::DayNotOpen
    );
    o.ok(Command::OpenDay { date: day(24) });
    assert_eq!(
        o.refused(Command::OpenDay { date: day(25) }),
        Refusal::DayAlreadyOpen { date: day(24) }
    );
    assert_eq!(
        o.refused(Command::CallNext { counter: 1 }),
        Refusal::CounterClosed { counter: 1 }
    );
    assert_eq!(
        o.refused(Command::CallNext { counter: 99 }),
        Refusal::UnknownCounter { counter: 99 }
    );
    o.open(1);
    assert_eq!(
        o.refused(Command::Complete {
            counter: 1,
            tags: vec![]
        }),
        Refusal::CounterIdle { counter: 1 }
    );
    assert_eq!(
        o.refused(Command::CallNext { counter: 1 }),
        Refusal::NothingWaiting { counter: 1 }
    );
    assert_eq!(
        o.refused(Command::CallNumber {
            counter: 1,
            number: 5
        }),
        Refusal::UnknownTicket { number: 5 }
    );
    assert!(matches!(
        o.refused(Command::IssueTicket {
            category: "koufu".into(),
            kiosk: None,
            request_id: None
        }),
        Refusal::UnknownCategory { .. }
    ));
    let n = o.issue("koseki");
    o.call(1);
    assert_eq!(
        o.refused(Command::CallNext { counter: 1 }),
        Refusal::CounterBusy {
            counter: 1,
            number: n
        }
    );
    assert_eq!(
        o.refused(Command::CloseCounter { counter: 1 }),
        Refusal::CounterBusy {
            counter: 1,
            number: n
        }
    );
    assert!(matches!(
        o.refused(Command::Complete {
            counter: 1,
            tags: vec!["nope".into()]
        }),
        Refusal::UnknownTag { .. }
    ));
    o.ok(Command::StartService { counter: 1 });
    assert!(matches!(
        o.refused(Command::MarkAbsent { counter: 1 }),
        Refusal::AlreadyStarted { .. }
    ));
    o.ok(Command::Complete {
        counter: 1,
        tags: vec!["birth".into()],
    });
    assert!(matches!(
        o.refused(Command::Cancel { number: n }),
        Refusal::TicketFinished { .. }
    ));
    assert!(matches!(
        o.refused(Command::ReturnAbsent { number: n }),
        Refusal::NotAbsent { .. }
    ));
    assert!(matches!(
        o.refused(Command::Transfer {
            number: 1,
            to: "nowhere".into(),
            tags: vec![],
            note: None
        }),
        Refusal::TicketFinished { .. }
    ));
    o.tick(-1);
    assert!(matches!(
        o.refused(Command::CloseCounter { counter: 1 }),
        Refusal::TimeWentBackwards { .. }
    ));
    o.tick(1);
    assert!(matches!(
        o.refused(Command::OpenCounter {
            counter: 2,
            staff: Some("x".repeat(65))
        }),
        Refusal::TooLong { field: "staff", .. }
    ));
}

#[test]
fn strict_policy_takes_queues_in_order() {
    let cfg = Config::parse(
        &DEFAULT_OFFICE_TOML.replacen(
            "serves = [\"koufu\", \"koseki\"]\npolicy = \"longest_wait\"",
            "serves = [\"koufu\", \"koseki\"]\npolicy = \"strict\"",
            1,
        ),
        "t",
    )
    .expect("config");
    assert_eq!(
        cfg.counter(4).map(|c| c.policy),
        Some(crate::config::CallPolicy::Strict)
    );
    let mut o = Office::new(cfg);
    o.ok(Command::OpenDay { date: day(24) });
    o.open(4);
    o.open(10);
    let k = o.issue("koseki");
    o.tick(1);
    let i = o.issue("idou");
    assert_eq!(o.call(10), i);
    o.ok(Command::Transfer {
        number: i,
        to: "koufu".into(),
        tags: vec![],
        note: None,
    });
    assert_eq!(o.status(i), "waiting");
    // koseki has waited longer, but counter 4 is strict: koufu first.
    assert_eq!(o.call(4), i);
    o.ok(Command::Complete {
        counter: 4,
        tags: vec![],
    });
    assert_eq!(o.call(4), k);
}

#[test]
fn longest_wait_policy_crosses_queues() {
    let mut o = Office::default_open();
    o.open(4); // serves koufu, koseki; longest_wait
    o.open(10);
    let k = o.issue("koseki");
    o.tick(1);
    let i = o.issue("idou");
    o.call(10);
    o.ok(Command::Transfer {
        number: i,
        to: "koufu".into(),
        tags: vec![],
        note: None,
    });
    assert_eq!(o.call(4), k, "koseki ticket waited longer");
}

#[test]
fn call_by_number_out_of_order_is_recorded() {
    let mut o = Office::default_open();
    o.open(1);
    let a = o.issue("koseki");
    let b = o.issue("koseki");
    let e = o.ok(Command::CallNumber {
        counter: 1,
        number: b,
    });
    assert_eq!(
        e,
        vec![Event::Called {
            number: b,
            counter: 1,
            out_of_order: true
        }]
    );
    o.ok(Command::Complete {
        counter: 1,
        tags: vec![],
    });
    let e = o.ok(Command::CallNumber {
        counter: 1,
        number: a,
    });
    assert_eq!(
        e,
        vec![Event::Called {
            number: a,
            counter: 1,
            out_of_order: false
        }]
    );
}

/// Found in Chromium (issue 18, F3): counter 10 serves only 住民異動, yet
/// G on a 戸籍 number called it and the 戸籍 guidance display sent that
/// visitor to 10 番. A number is called only at a counter serving its queue
/// — the queue it is in now, so a transferred ticket follows its transfer.
#[test]
fn call_by_number_only_from_a_queue_the_counter_serves() {
    let mut o = Office::default_open();
    o.open(10); // idou only
    o.open(4); // koufu, koseki
    let k = o.issue("koseki");
    let i = o.issue("idou");
    let r = o.refused(Command::CallNumber {
        counter: 10,
        number: k,
    });
    assert_eq!(
        r,
        Refusal::NotServedHere {
            number: k,
            counter: 10,
            queue: "koseki".into(),
            queue_name: "戸籍届出と証明発行の受付".into(),
        }
    );
    assert_eq!(r.code(), "not_served_here");
    let ja = r.message_ja();
    assert!(
        ja.contains("「戸籍届出と証明発行の受付」")
            && ja.contains("10 番窓口はこの待ち列を担当していない"),
        "{ja}"
    );
    // An absent visitor is in their queue too.
    o.ok(Command::CallNumber {
        counter: 4,
        number: k,
    });
    o.ok(Command::MarkAbsent { counter: 4 });
    assert!(matches!(
        o.refused(Command::CallNumber {
            counter: 10,
            number: k
        }),
        Refusal::NotServedHere { .. }
    ));
    // Transferred to 証明の交付: counter 4 may call it, counter 10 no more.
    o.ok(Command::CallNumber {
        counter: 10,
        number: i,
    });
    o.ok(Command::Transfer {
        number: i,
        to: "koufu".into(),
        tags: vec![],
        note: None,
    });
    assert!(matches!(
        o.refused(Command::CallNumber {
            counter: 10,
            number: i
        }),
        Refusal::NotServedHere { ref queue, .. } if queue == "koufu"
    ));
    let e = o.ok(Command::CallNumber {
        counter: 4,
        number: i,
    });
    assert!(matches!(e[..], [Event::Called { number, counter: 4, .. }] if number == i));
}

#[test]
fn absent_visitor_returns_to_the_front() {
    let mut o = Office::default_open();
    o.open(1);
    let a = o.issue("koseki");
    let b = o.issue("koseki");
    o.call(1);
    o.ok(Command::Recall { counter: 1 });
    o.ok(Command::MarkAbsent { counter: 1 });
    assert_eq!(o.status(a), "absent");
    assert_eq!(o.st.waiting_in("koseki").collect::<Vec<_>>(), vec![b]);
    o.tick(5);
    o.ok(Command::ReturnAbsent { number: a });
    assert_eq!(o.st.waiting_in("koseki").collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(o.call(1), a);
}

#[test]
fn transfer_keeps_the_number_and_history_shows_the_path() {
    let mut o = Office::default_open();
    o.open(10);
    o.open(24);
    let n = o.issue("idou");
    o.tick(2);
    o.call(10);
    o.ok(Command::StartService { counter: 10 });
    o.tick(15);
    o.ok(Command::Transfer {
        number: n,
        to: "koufu".into(),
        tags: vec!["tennyu".into()],
        note: Some("住民票2通".into()),
    });
    assert_eq!(o.call(24), n);
    o.ok(Command::Complete {
        counter: 24,
        tags: vec!["juminhyo".into()],
    });
    let t = o.st.ticket(n).expect("ticket");
    let steps: Vec<&str> = t
        .history
        .iter()
        .map(|s| match &s.what {
            StepKind::Issued { .. } => "issued",
            StepKind::Called { .. } => "called",
            StepKind::Started { .. } => "started",
            StepKind::Transferred { .. } => "transferred",
            StepKind::Completed { .. } => "completed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        steps,
        [
            "issued",
            "called",
            "started",
            "transferred",
            "called",
            "completed"
        ]
    );
    assert_eq!(t.queue, "koufu");
    assert_eq!(t.category, "idou");
    let m = o.issue("idou");
    assert!(matches!(
        o.refused(Command::Transfer {
            number: m,
            to: "idou".into(),
            tags: vec![],
            note: None
        }),
        Refusal::SameQueue { .. }
    ));
}

#[test]
fn hold_frees_the_counter_and_resume_calls_there() {
    let mut o = Office::default_open();
    o.open(1);
    let a = o.issue("koseki");
    let b = o.issue("koseki");
    o.call(1);
    o.ok(Command::Hold {
        counter: 1,
        note: None,
    });
    assert_eq!(o.status(a), "held");
    assert_eq!(o.call(1), b);
    assert!(matches!(
        o.refused(Command::Resume {
            number: a,
            counter: 1
        }),
        Refusal::CounterBusy { .. }
    ));
    o.ok(Command::Complete {
        counter: 1,
        tags: vec![],
    });
    // Not at a counter that does not serve its queue (10: 住民異動 only).
    o.open(10);
    assert!(matches!(
        o.refused(Command::Resume {
            number: a,
            counter: 10
        }),
        Refusal::NotServedHere { .. }
    ));
    o.ok(Command::Resume {
        number: a,
        counter: 1,
    });
    assert_eq!(o.status(a), "called");
    o.ok(Command::Cancel { number: a });
    assert_eq!(o.st.counter(1).and_then(|c| c.ticket), None);
}

#[test]
fn a_retried_kiosk_request_gets_the_same_ticket() {
    let mut o = Office::default_open();
    let issue = |r: &str| Command::IssueTicket {
        category: "koseki".into(),
        kiosk: Some("kiosk-1".into()),
        request_id: Some(r.into()),
    };
    assert_eq!(o.ok(issue("req-1")).len(), 1);
    assert!(o.ok(issue("req-1")).is_empty());
    assert_eq!(o.ok(issue("req-2"))[0].ticket(), Some(2));
}

#[test]
fn an_exhausted_range_is_refused() {
    let cfg = Config::parse(
        &DEFAULT_OFFICE_TOML.replace("from = 1, to = 999", "from = 1, to = 2"),
        "t",
    )
    .expect("config");
    let mut o = Office::new(cfg);
    o.ok(Command::OpenDay { date: day(24) });
    o.issue("koseki");
    o.issue("koseki");
    assert!(matches!(
        o.refused(Command::IssueTicket {
            category: "koseki".into(),
            kiosk: None,
            request_id: None
        }),
        Refusal::NumbersExhausted { .. }
    ));
}

#[test]
fn opening_an_unlisted_day_is_special() {
    let mut o = Office::new(Config::embedded_default());
    let e = o.ok(Command::OpenDay { date: day(22) }); // a Sunday
    assert_eq!(
        e,
        vec![Event::DayOpened {
            date: day(22),
            special: true,
            after_wrong_day: Default::default(),
        }]
    );
    o.ok(Command::CloseDay);
    assert_eq!(
        o.refused(Command::OpenDay { date: day(22) }),
        Refusal::DayNotAfterLast {
            date: day(22),
            last: day(22),
            today_was_open: false,
        }
    );
}

/// Outside tester pages-rt5 F1: with the other counters just closed by
/// staff (open at this time on the day followed), one counter open, the
/// waits grew no more after the first few: the closed counters were
/// replayed as back within 5 minutes. Now they come back after the day's
/// closures that lasted longer (none: not at all), so each place waits
/// longer than the one before it.
#[test]
fn counters_just_closed_are_not_replayed_as_back_at_once() {
    let mut o = Office::default_open();
    let mut hist = learn::LogHist::prior(480.0);
    hist.samples = 100;
    o.st.meta.learned.occupancy.insert("koseki".into(), hist);
    // A day followed on which counters 1–3 were open all day.
    o.st.meta.learned.days.push_back(learn::DayStaffing {
        weekday: o.st.meta.learned.today.weekday,
        opened_min: o.st.meta.learned.today.opened_min,
        closed: Default::default(),
    });
    for c in [1, 2, 3] {
        o.open(c);
    }
    o.tick(30);
    for c in [2, 3] {
        o.ok(Command::CloseCounter { counter: c });
    }
    for _ in 0..8 {
        o.issue("koseki");
    }
    let waits: Vec<u32> =
        o.st.waiting_with_estimates(&o.cfg, "koseki", Millis(o.now))
            .into_iter()
            .map(|(_, w)| w)
            .collect();
    assert_eq!(waits.len(), 8);
    for pair in waits.windows(2).skip(1) {
        assert!(
            pair[1] > pair[0] + 120,
            "each place waits longer: {waits:?}"
        );
    }
    // One counter at 8 minutes a ticket: the eighth waits near an hour.
    assert!(waits[7] > 40 * 60, "{waits:?}");
}

#[test]
fn a_closure_goes_on_as_long_as_the_days_longer_ones() {
    let day = learn::DayStaffing {
        weekday: 0,
        opened_min: 510,
        closed: [
            (1, vec![(480, Some(510)), (700, Some(760))]),
            (2, vec![(600, Some(610)), (800, Some(830))]),
        ]
        .into_iter()
        .collect(),
    };
    // The start-of-day closure is left out: 60, 10 and 30 minutes.
    assert_eq!(day.closure_lasting_beyond(0), Some(30));
    assert_eq!(day.closure_lasting_beyond(20), Some(60));
    assert_eq!(day.closure_lasting_beyond(60), None);
}

/// With history but no counter of the queue open, the wait is not put in
/// numbers (browser finding F17: every waiting ticket showed the same
/// 5 minutes, the replay's guess of when other days' counters opened).
#[test]
fn no_counter_open_gives_no_wait_in_numbers() {
    let mut o = Office::default_open();
    let mut hist = learn::LogHist::prior(480.0);
    hist.samples = 100;
    o.st.meta.learned.occupancy.insert("koseki".into(), hist);
    o.st.meta
        .learned
        .days
        .push_back(learn::DayStaffing::default());
    o.issue("koseki");
    o.issue("koseki");
    let now = Millis(o.now);
    let closed = o.st.estimate(&o.cfg, "koseki", now);
    assert_eq!(closed.basis, Basis::NoCounterOpen);
    assert!(!closed.reliable);
    assert_eq!(o.st.estimate_basis(&o.cfg, "koseki"), Basis::NoCounterOpen);
    // Counter 4 serves 証明の交付 and 戸籍: one open is enough.
    o.open(4);
    let open = o.st.estimate(&o.cfg, "koseki", Millis(o.now));
    assert_eq!(open.basis, Basis::Estimate);
    assert!(open.reliable);
    // Without history the reason is the history, counters or not.
    o.st.meta.learned.occupancy.clear();
    assert_eq!(o.st.estimate_basis(&o.cfg, "koseki"), Basis::LittleHistory);
}

#[test]
fn wait_estimate_follows_the_documented_method() {
    let mut o = Office::default_open();
    // koseki alone at counter 1 (2..9 closed), no history: the prior of
    // 8 minutes per ticket, and the estimate says it is not reliable.
    o.open(1);
    let now = |o: &Office| Millis(o.now);
    let idle = o.st.wait_range(&o.cfg, "koseki", now(&o));
    assert!(idle.point_s < 30, "idle counter: {idle:?}");
    assert!(!o.st.estimate(&o.cfg, "koseki", now(&o)).reliable);
    o.issue("koseki");
    o.call(1);
    o.tick(2);
    // One busy counter, 2 minutes in: the rest of its ticket, sampled
    // from the time spent so far.
    let one = o.st.estimate(&o.cfg, "koseki", now(&o));
    assert!((200..600).contains(&one.expected_wait_s), "{one:?}");
    assert!(one.expected_wait_low_s < one.expected_wait_s);
    assert!(one.expected_wait_s < one.expected_wait_high_s);
    assert_eq!(
        one,
        o.st.estimate(&o.cfg, "koseki", now(&o)),
        "same state, same estimate"
    );
    o.issue("koseki");
    // One ahead: about one more whole ticket.
    let two = o.st.estimate(&o.cfg, "koseki", now(&o));
    assert!(
        two.expected_wait_s > one.expected_wait_s + 300,
        "{one:?} {two:?}"
    );
    assert_eq!(
        o.st.wait_for_position(&o.cfg, "koseki", 0, now(&o)),
        o.st.waiting_with_estimates(&o.cfg, "koseki", now(&o))[0].1
    );
    // A second counter shortens the wait.
    o.open(2);
    let more = o.st.estimate(&o.cfg, "koseki", now(&o));
    assert!(more.expected_wait_s < two.expected_wait_s, "{more:?}");
    // A completion pulls the moving average: alpha * 2 min + (1 - alpha) * s.
    o.ok(Command::Complete {
        counter: 1,
        tags: vec![],
    });
    let alpha = o.cfg.estimate.alpha;
    let mean = alpha * 120.0 + (1.0 - alpha) * 480.0;
    assert!((o.st.meta.service["koseki"].mean_secs - mean).abs() < 1e-9);
    assert_eq!(o.st.meta.learned.occupancy["koseki"].samples, 1);
}

#[test]
fn a_shared_counter_gives_each_queue_its_share_of_the_work() {
    let mut o = Office::default_open();
    o.open(4); // serves koufu and koseki, longest wait first
    o.open(10);
    let i = o.issue("idou");
    o.call(10);
    o.issue("koseki");
    o.issue("koseki");
    let now = Millis(o.now);
    let alone = o.st.wait_for_position(&o.cfg, "koseki", 1, now);
    // A koufu ticket waiting since before the second koseki ticket goes
    // first at counter 4; one arriving after it does not.
    o.ok(Command::Transfer {
        number: i,
        to: "koufu".into(),
        tags: vec![],
        note: None,
    });
    let later = o.st.wait_for_position(&o.cfg, "koseki", 1, Millis(o.now));
    assert_eq!(alone, later, "a later koufu ticket does not go first");
    let mut o = Office::default_open();
    o.open(4);
    o.open(10);
    let i = o.issue("idou");
    o.call(10);
    o.ok(Command::Transfer {
        number: i,
        to: "koufu".into(),
        tags: vec![],
        note: None,
    });
    o.tick(1);
    o.issue("koseki");
    let with_koufu = o.st.wait_range(&o.cfg, "koseki", Millis(o.now));
    assert!(with_koufu.point_s > 120, "{with_koufu:?}");
}

#[test]
fn the_range_is_recorded_on_every_issued_ticket() {
    let mut o = Office::default_open();
    o.open(1);
    for _ in 0..5 {
        let e = o.ok(Command::IssueTicket {
            category: "koseki".into(),
            kiosk: None,
            request_id: None,
        });
        let Event::TicketIssued {
            expected_wait_s,
            expected_wait_low_s: Some(low),
            expected_wait_high_s: Some(high),
            ..
        } = e[0]
        else {
            panic!("no range: {e:?}");
        };
        assert!(low <= expected_wait_s && expected_wait_s <= high);
    }
    // A record written before ranges existed still replays.
    let old: Event = serde_json::from_str(
        r#"{"type":"ticket_issued","number":7,"category":"koseki","people_ahead":0,"expected_wait_s":60}"#,
    )
    .expect("old record");
    assert!(matches!(
        old,
        Event::TicketIssued {
            expected_wait_low_s: None,
            ..
        }
    ));
}

#[test]
fn close_day_closes_counters_and_records_the_unserved() {
    let mut o = Office::default_open();
    o.open(1);
    let a = o.issue("koseki");
    let b = o.issue("koseki");
    o.call(1);
    let e = o.ok(Command::CloseDay);
    assert_eq!(
        e,
        vec![
            Event::Unserved { number: a },
            Event::Unserved { number: b },
            Event::CounterClosed { counter: 1 },
            Event::DayClosed { date: day(24) },
        ]
    );
    assert!(o
        .st
        .meta
        .counters
        .values()
        .all(|c| !c.open && c.ticket.is_none()));
}

// ------------------------------------------------------------ properties

/// A small office: two categories, a stage, counters with both policies.
const SMALL: &str = r##"
[office]
name = { ja = "テスト" }
utc_offset = "+09:00"
[[sections]]
id = "a"
name = { ja = "A係" }
[[queues]]
id = "k"
name = { ja = "K" }
numbers = { from = 1, to = 40 }
colour = "#000000"
shape = "circle"
typical_service_minutes = 5
[[queues]]
id = "i"
name = { ja = "I" }
numbers = { from = 100, to = 140 }
colour = "#000000"
shape = "square"
typical_service_minutes = 10
[[queues]]
id = "s"
name = { ja = "S" }
stage = true
colour = "#000000"
shape = "triangle"
typical_service_minutes = 3
[[counters]]
number = 1
section = "a"
serves = ["k"]
[[counters]]
number = 2
section = "a"
serves = ["s", "k"]
policy = "longest_wait"
[[counters]]
number = 3
section = "a"
serves = ["i", "s"]
[[tags]]
id = "t"
name = { ja = "T" }
[calendar]
"##;

fn small() -> Config {
    Config::parse(SMALL, "small.toml").expect("small config")
}

fn arb_command() -> impl Strategy<Value = Command> {
    let counter = 0u16..=4; // 0 and 4 do not exist
    let number = prop_oneof![1u32..=6, 100u32..=106];
    let queue = prop_oneof![
        Just("k".to_string()),
        Just("i".to_string()),
        Just("s".to_string()),
        Just("x".to_string())
    ];
    prop_oneof![
        // The clock starts on the 18th: the 18th and 19th are "today" for
        // a while, so that `reopen_day` is sometimes accepted.
        1 => prop_oneof![18u32..=19, 21u32..=23].prop_map(|d| Command::OpenDay { date: day(d) }),
        1 => Just(Command::CloseDay),
        1 => Just(Command::ReopenDay),
        3 => counter.clone().prop_map(|c| Command::OpenCounter { counter: c, staff: None }),
        1 => counter.clone().prop_map(|c| Command::CloseCounter { counter: c }),
        6 => prop_oneof![Just("k"), Just("i"), Just("s")].prop_map(|c| Command::IssueTicket { category: c.into(), kiosk: None, request_id: None }),
        2 => (0u8..4).prop_map(|r| Command::IssueTicket { category: "k".into(), kiosk: None, request_id: Some(format!("r{r}")) }),
        6 => counter.clone().prop_map(|c| Command::CallNext { counter: c }),
        2 => (counter.clone(), number.clone()).prop_map(|(c, n)| Command::CallNumber { counter: c, number: n }),
        1 => counter.clone().prop_map(|c| Command::Recall { counter: c }),
        3 => counter.clone().prop_map(|c| Command::StartService { counter: c }),
        4 => (counter.clone(), proptest::bool::ANY).prop_map(|(c, t)| Command::Complete { counter: c, tags: if t { vec!["t".into()] } else { vec![] } }),
        2 => counter.clone().prop_map(|c| Command::MarkAbsent { counter: c }),
        2 => number.clone().prop_map(|n| Command::ReturnAbsent { number: n }),
        2 => (number.clone(), queue).prop_map(|(n, q)| Command::Transfer { number: n, to: q, tags: vec![], note: None }),
        1 => counter.clone().prop_map(|c| Command::Hold { counter: c, note: None }),
        1 => (number.clone(), counter.clone()).prop_map(|(n, c)| Command::Resume { number: n, counter: c }),
        1 => number.prop_map(|n| Command::Cancel { number: n }),
    ]
}

/// Opens every counter and serves until nobody waits; every waiting ticket
/// must be called. Returns how many were called.
fn drain(cfg: &Config, st: &mut State, mut now: Millis) -> usize {
    let mut called = 0;
    let waiting: usize = cfg.queues.iter().map(|q| st.waiting_count(&q.id)).sum();
    for c in &cfg.counters {
        let free = [
            Command::OpenCounter {
                counter: c.number,
                staff: None,
            },
            Command::Complete {
                counter: c.number,
                tags: vec![],
            },
        ];
        for cmd in free {
            if let Ok(events) = st.decide(cfg, now, &cmd) {
                for e in &events {
                    st.apply(cfg, now, e).expect("apply");
                }
            }
        }
    }
    for _ in 0..10_000 {
        let mut progress = false;
        for c in &cfg.counters {
            now = Millis(now.0 + 1000);
            if let Ok(events) = st.decide(cfg, now, &Command::CallNext { counter: c.number }) {
                for e in &events {
                    st.apply(cfg, now, e).expect("apply");
                }
                let done = st
                    .decide(
                        cfg,
                        now,
                        &Command::Complete {
                            counter: c.number,
                            tags: vec![],
                        },
                    )
                    .expect("complete");
                for e in &done {
                    st.apply(cfg, now, e).expect("apply");
                }
                called += 1;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    assert!(called >= waiting, "called {called} of {waiting} waiting");
    called
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_the_invariants(
        cmds in proptest::collection::vec((0i64..=5 * MIN, arb_command()), 1..150)
    ) {
        let cfg = small();
        let mut st = State::new(&cfg);
        let mut log: Vec<(Millis, Event)> = Vec::new();
        let mut now = 1_795_000_000_000i64;
        let mut issued_today: std::collections::BTreeSet<Number> = Default::default();
        for (dt, cmd) in &cmds {
            now += dt;
            let at = Millis(now);
            match st.decide(&cfg, at, cmd) {
                Err(_) => {}
                Ok(events) => {
                    for e in &events {
                        // A call sends the visitor only to a counter that
                        // serves the queue they are in (issue 18, F3).
                        if let Event::Called { number, counter, .. } = e {
                            let queue = st.ticket(*number).map(|t| t.queue.clone()).unwrap_or_default();
                            let serves = cfg.counter(*counter).is_some_and(|c| c.serves.contains(&queue));
                            prop_assert!(serves, "{} called from {:?} at counter {}", number, queue, counter);
                        }
                        st.apply(&cfg, at, e).map_err(|x| TestCaseError::fail(x.to_string()))?;
                        match e {
                            Event::DayOpened { .. } => issued_today.clear(),
                            Event::TicketIssued { number, .. } => {
                                prop_assert!(issued_today.insert(*number), "number {} issued twice in a day", number);
                            }
                            _ => {}
                        }
                        log.push((at, e.clone()));
                    }
                }
            }
            st.check_invariants().map_err(|x| TestCaseError::fail(x.to_string()))?;
        }
        // State rebuilt from the events equals the live state...
        let mut replayed = State::new(&cfg);
        for (at, e) in &log {
            replayed.apply(&cfg, *at, e).map_err(|x| TestCaseError::fail(x.to_string()))?;
        }
        prop_assert_eq!(&replayed, &st);
        // ...and so does the state stored as JSON parts (the sled shape).
        let meta: Meta = serde_json::from_slice(&serde_json::to_vec(&st.meta).expect("ser")).expect("de");
        let tickets = serde_json::from_slice(&serde_json::to_vec(&st.tickets).expect("ser")).expect("de");
        let stored = State::from_parts(meta, tickets, st.requests.clone());
        prop_assert_eq!(&stored, &st);
        // Every waiting ticket can still be reached by some counter.
        if st.day_is_open() {
            drain(&cfg, &mut st, Millis(now + 1));
        }
    }

    #[test]
    fn a_refused_command_changes_nothing(
        cmds in proptest::collection::vec(arb_command(), 1..80)
    ) {
        let cfg = small();
        let mut st = State::new(&cfg);
        let mut now = 1_795_000_000_000i64;
        for cmd in &cmds {
            now += 30_000;
            let at = Millis(now);
            let before = st.clone();
            match st.decide(&cfg, at, cmd) {
                Err(_) => prop_assert_eq!(&st, &before),
                Ok(events) => {
                    for e in &events {
                        st.apply(&cfg, at, e).map_err(|x| TestCaseError::fail(x.to_string()))?;
                    }
                }
            }
        }
    }
}

/// Found by the property test: serde_json's default float parsing is not
/// exact, so a snapshot read back from sled differed from the replayed state
/// in the last bit of a service-time average. `float_roundtrip` fixes it.
#[test]
fn service_time_averages_survive_the_snapshot_exactly() {
    let mut meta = Meta::default();
    meta.service.insert(
        "i".into(),
        ServiceTime {
            mean_secs: 901.400_000_000_000_1,
            samples: 1,
        },
    );
    let back: Meta = serde_json::from_slice(&serde_json::to_vec(&meta).expect("ser")).expect("de");
    assert_eq!(back, meta);
}

/// A found break (issue 23): a far day opened by mistake and closed may be
/// repaired by opening today — but never when today was already open before
/// it, which would give today's numbers again.
#[test]
fn a_wrong_day_is_repaired_only_if_today_was_not_open_before_it() {
    // The test clock's `now` is 2026-11-18 in Tokyo.
    let today = day(18);
    let far = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or_default();

    let mut o = Office::new(Config::embedded_default());
    o.ok(Command::OpenDay { date: far });
    o.ok(Command::CloseDay);
    o.ok(Command::OpenDay { date: today });
    assert_eq!(o.issue("idou"), 1001, "repaired: today opens");

    let mut o = Office::new(Config::embedded_default());
    o.ok(Command::OpenDay { date: today });
    assert_eq!(o.issue("idou"), 1001);
    o.ok(Command::CloseDay);
    o.tick(1);
    o.ok(Command::OpenDay { date: far });
    o.ok(Command::CloseDay);
    assert_eq!(
        o.refused(Command::OpenDay { date: today }),
        Refusal::DayNotAfterLast {
            date: today,
            last: far,
            today_was_open: true,
        },
        "1001 was given today already"
    );
    // Said with what to do, not as a date to pick after the wrong day
    // (outside tester insider-rt12 L1b: 「… 9999-12-31 より後の日付に
    // してください」).
    let said = o.refused(Command::OpenDay { date: today }).message_ja();
    assert!(!said.contains("より後の日付にしてください"), "{said}");
    assert!(said.contains("本日中は業務を開始し直せません"), "{said}");
    assert!(said.contains("明日からは"), "{said}");
}

/// Outside tester insider-rt10 N8 (issue 23, R11): a day opened ahead by
/// mistake that issued numbers stopped today from opening until that day
/// had passed. Now today opens, and its numbering goes on after the wrong
/// day's (those tickets are in visitors' hands), across a replay too.
#[test]
fn a_wrong_day_that_issued_numbers_is_repaired_and_its_numbers_stay_taken() {
    let today = day(18);
    let mut o = Office::new(Config::embedded_default());
    o.ok(Command::OpenDay { date: day(20) });
    assert_eq!(o.issue("idou"), 1001);
    assert_eq!(o.issue("idou"), 1002);
    o.ok(Command::CloseDay);
    let e = o.ok(Command::OpenDay { date: today });
    let Some(Event::DayOpened {
        after_wrong_day, ..
    }) = e.first()
    else {
        panic!("{e:?}");
    };
    assert_eq!(after_wrong_day.get("idou"), Some(&1002), "{e:?}");
    assert_eq!(o.issue("idou"), 1003, "today's numbers go on after them");
    let first_koseki = o.issue("koseki");
    assert!(
        first_koseki >= 1,
        "a category the wrong day never used starts as usual"
    );
    // Today closed and the wrong day again: the ordinary rule holds.
    o.ok(Command::CloseDay);
    assert!(matches!(
        o.refused(Command::OpenDay { date: today }),
        Refusal::DayNotAfterLast { .. }
    ));
}

/// A found break (issue 23): a day closed by mistake opens again, the same
/// date, its numbers going on — and only today's, only when closed.
#[test]
fn a_day_closed_by_mistake_reopens_and_its_numbers_go_on() {
    // The test clock's `now` is 2026-11-18 in Tokyo.
    let today = day(18);
    let mut o = Office::new(Config::embedded_default());
    assert_eq!(o.refused(Command::ReopenDay), Refusal::DayNotOpen);
    o.ok(Command::OpenDay { date: today });
    assert_eq!(
        o.refused(Command::ReopenDay),
        Refusal::DayAlreadyOpen { date: today }
    );
    assert_eq!(o.issue("idou"), 1001);
    assert_eq!(o.issue("idou"), 1002);
    o.tick(1);
    let closed = o.ok(Command::CloseDay);
    assert!(closed.contains(&Event::Unserved { number: 1001 }));
    o.tick(1);
    assert_eq!(
        o.ok(Command::ReopenDay),
        vec![Event::DayReopened { date: today }]
    );
    assert!(o.st.day_is_open());
    assert_eq!(o.issue("idou"), 1003, "numbering goes on, no number twice");
    assert_eq!(
        o.st.ticket(1001).map(|t| t.status.name()),
        Some("unserved"),
        "what the closing recorded stays recorded"
    );
    // Another day than today does not reopen.
    let mut o = Office::new(Config::embedded_default());
    o.ok(Command::OpenDay { date: day(17) });
    o.ok(Command::CloseDay);
    assert_eq!(
        o.refused(Command::ReopenDay),
        Refusal::ReopenNotToday {
            date: day(17),
            today
        }
    );
}

/// Nothing happening, time passing: every waiting ticket's point and range
/// move by little more than the time passed (outside tester pages-rt5 F8:
/// the range jumped 6〜25 → 6〜29 → 7〜24 between rebuilds a few seconds
/// apart, because the replays were seeded from the clock).
#[test]
fn an_estimate_does_not_jitter_while_nothing_happens() {
    let mut o = Office::default_open();
    let mut hist = learn::LogHist::prior(480.0);
    hist.samples = 100;
    o.st.meta.learned.occupancy.insert("koseki".into(), hist);
    o.st.meta
        .learned
        .days
        .push_back(learn::DayStaffing::default());
    o.open(1);
    for _ in 0..5 {
        o.issue("koseki");
    }
    o.call(1);
    o.tick(2);
    let base = o.now;
    let at = |k: i64| Millis(base + k * 5_000);
    let mut before = o.st.waiting_ranges(&o.cfg, "koseki", at(0));
    let mut new_before = o.st.wait_range(&o.cfg, "koseki", at(0));
    assert_eq!(before.len(), 4);
    for k in 1..=24 {
        let now = o.st.waiting_ranges(&o.cfg, "koseki", at(k));
        let new_now = o.st.wait_range(&o.cfg, "koseki", at(k));
        let pairs = before
            .iter()
            .zip(&now)
            .map(|((n, a), (_, b))| (*n, *a, *b))
            .chain([(0, new_before, new_now)]);
        for (n, a, b) in pairs {
            for (x, y) in [
                (a.point_s, b.point_s),
                (a.low_s, b.low_s),
                (a.high_s, b.high_s),
            ] {
                assert!(x.abs_diff(y) <= 15, "ticket {n}, 5 s later: {a:?} → {b:?}");
            }
        }
        before = now;
        new_before = new_now;
    }
}

/// Moves the office clock to local minute `m` (after midnight) of the
/// current or next day.
fn at_local(o: &mut Office, m: i32) {
    let now = local_min(&o.cfg, Millis(o.now));
    let ahead = (m - now).rem_euclid(24 * 60);
    o.now += i64::from(ahead) * MIN;
}

/// A history day on which the 住民異動 counters 10–14 took staggered
/// lunches of 45 minutes between 11:00 and 12:00, open otherwise.
fn idou_lunch_day(weekday: u8) -> learn::DayStaffing {
    learn::DayStaffing {
        weekday,
        opened_min: 510,
        closed: [
            (11, vec![(660, Some(705))]),
            (12, vec![(690, Some(735))]),
            (13, vec![(705, Some(750))]),
            (14, vec![(720, Some(765))]),
        ]
        .into_iter()
        .collect(),
    }
}

/// Outside tester pages-rt7 N2 (issue 18, issue 19): staff closed four of
/// five 住民異動 counters at 10:30; at 12:30 one counter serves five
/// waiting visitors at about 15 minutes each. The history days' lunches
/// began near 10:30 and lasted 45 minutes, so the old replay took each of
/// them for "this closure" and, the closure having already lasted two
/// hours, reopened all four counters a minute from now: about 3 minutes a
/// visitor, a range starting at 0. A closure lasting longer than the
/// similar ones of the day followed is not one of them.
#[test]
fn counters_closed_longer_than_the_days_lunches_do_not_come_back_in_a_minute() {
    let mut o = Office::new(Config::embedded_default());
    at_local(&mut o, 510);
    o.ok(Command::OpenDay { date: day(24) });
    let mut hist = learn::LogHist::prior(900.0);
    hist.samples = 100;
    o.st.meta.learned.occupancy.insert("idou".into(), hist);
    let weekday = o.st.meta.learned.today.weekday;
    for _ in 0..4 {
        o.st.meta.learned.days.push_back(idou_lunch_day(weekday));
    }
    for c in 10..=14 {
        o.open(c);
    }
    at_local(&mut o, 630);
    for c in 11..=14 {
        o.ok(Command::CloseCounter { counter: c });
    }
    at_local(&mut o, 750);
    for _ in 0..5 {
        o.issue("idou");
    }
    let now = Millis(o.now);
    let ranges = o.st.waiting_ranges(&o.cfg, "idou", now);
    let new = o.st.wait_range(&o.cfg, "idou", now);
    let shown: Vec<(u32, u32, u32)> = ranges
        .iter()
        .map(|(_, r)| (r.low_s / 60, r.point_s / 60, r.high_s / 60))
        .collect();
    // One counter at 15 minutes a visitor: the fifth waits about an hour,
    // and no one behind the first is sure to be called at once.
    assert!(ranges[4].1.point_s > 45 * 60, "{shown:?}");
    for (i, (_, r)) in ranges.iter().enumerate().skip(2) {
        assert!(r.low_s >= i as u32 * 5 * 60, "place {i}: {shown:?}");
    }
    for pair in ranges.windows(2) {
        assert!(pair[1].1.point_s > pair[0].1.point_s + 5 * 60, "{shown:?}");
        assert!(pair[1].1.low_s >= pair[0].1.low_s, "{shown:?}");
    }
    assert!(new.point_s >= ranges[4].1.point_s, "{new:?} {shown:?}");
    assert!(new.low_s >= ranges[4].1.low_s, "{new:?} {shown:?}");
}

/// Each waiting ticket's range, by number.
fn ranges_by_number(o: &Office, queue: &str) -> BTreeMap<Number, WaitRange> {
    o.st.waiting_ranges(&o.cfg, queue, Millis(o.now))
        .into_iter()
        .collect()
}

/// Outside tester pages-rt7 N3: the guidance display's range jumped with
/// every staff action, 6 (1〜9) → 13 (2〜75) → 6 (1〜9) for the same queue
/// within minutes, because each event reseeded the replays. Over a morning
/// of events, each waiting ticket's estimate moves only as far as the
/// event explains: a ticket issued behind it changes nothing, a minute
/// passing moves it by about a minute, a completion and the next call
/// shorten it by at most about one occupancy and never lengthen it.
#[test]
fn successive_estimates_move_only_as_far_as_the_event_explains() {
    let mut o = Office::new(Config::embedded_default());
    at_local(&mut o, 510);
    o.ok(Command::OpenDay { date: day(24) });
    let mut hist = learn::LogHist::prior(900.0);
    hist.samples = 100;
    o.st.meta.learned.occupancy.insert("idou".into(), hist);
    let weekday = o.st.meta.learned.today.weekday;
    for _ in 0..4 {
        o.st.meta.learned.days.push_back(idou_lunch_day(weekday));
    }
    for c in 10..=12 {
        o.open(c);
    }
    for _ in 0..12 {
        o.issue("idou");
    }
    for c in 10..=12 {
        o.call(c);
    }
    o.tick(2);
    let mut jumps = Vec::new();
    for step in 0..18 {
        let before = ranges_by_number(&o, "idou");
        let what = match step % 3 {
            0 => {
                o.issue("idou");
                "issue"
            }
            1 => {
                o.tick(1);
                "a minute"
            }
            _ => {
                let c = 10 + (step / 3 % 3) as u16;
                o.ok(Command::Complete {
                    counter: c,
                    tags: vec![],
                });
                o.call(c);
                "complete and call"
            }
        };
        let after = ranges_by_number(&o, "idou");
        let places: Vec<u32> = after.values().map(|r| r.point_s).collect();
        assert!(
            places.windows(2).all(|p| p[0] <= p[1]),
            "step {step} ({what}): later places wait longer: {places:?}"
        );
        for (n, a) in &before {
            let Some(b) = after.get(n) else { continue };
            let moves = [
                i64::from(b.point_s) - i64::from(a.point_s),
                i64::from(b.low_s) - i64::from(a.low_s),
                i64::from(b.high_s) - i64::from(a.high_s),
            ];
            let (down, up) = match what {
                "issue" => (0, 0),
                "a minute" => (-75, 15),
                // One occupancy of about 15 minutes, at most, sooner; the
                // calibration of the called ticket may move it a little.
                _ => (-1800, 60),
            };
            if moves.iter().any(|m| *m < down || *m > up) {
                jumps.push(format!("step {step} ({what}), ticket {n}: {a:?} → {b:?}"));
            }
        }
    }
    assert!(
        jumps.is_empty(),
        "{} jumps:\n{}",
        jumps.len(),
        jumps.join("\n")
    );
}

/// Outside tester est-rt8 F2 (issue 19): the replay's error depends on how
/// far ahead it looks, and one calibration factor per queue averages the
/// two ends out — short queues were shown too short, long ones too long
/// (51+ ahead +23 %, the range holding 47 %). Here the one 戸籍 counter
/// takes 8 minutes a visitor for the first ten of the day and 3 minutes
/// after (the occupancy the replay samples is their mix, about 3.7
/// minutes), 70 visitors in line at the opening, nine days running. The
/// queue's single factor (about 1.17) showed the 11th–20th about 30 %
/// short and the 51st–70th about 15 % long; calibrated per band of places
/// ahead, both are within about 10 %.
#[test]
fn long_and_short_queues_are_each_calibrated_by_places_ahead() {
    let mut o = Office::new(Config::embedded_default());
    // The occupancies of earlier such days learned: the replay's inputs
    // are right, the error is in how they add up over the horizon.
    let mut hist = learn::LogHist::prior(480.0);
    for k in 0..420 {
        hist.observe(if k % 70 < 10 { 480.0 } else { 180.0 });
    }
    o.st.meta.learned.occupancy.insert("koseki".into(), hist);
    // (places ahead, shown, real) of the last day's tickets.
    let mut last_day: Vec<(usize, f64, f64)> = Vec::new();
    for d in 0..9 {
        at_local(&mut o, 510);
        o.ok(Command::OpenDay { date: day(16 + d) });
        o.open(1);
        let numbers: Vec<Number> = (0..70).map(|_| o.issue("koseki")).collect();
        let issued = o.now;
        last_day.clear();
        for (k, n) in numbers.iter().enumerate() {
            assert_eq!(o.call(1), *n);
            let shown = f64::from(o.st.ticket(*n).expect("ticket").expected_wait_s_at_issue);
            last_day.push((k, shown, ((o.now - issued) / 1000) as f64));
            o.tick(if k < 10 { 8 } else { 3 });
            o.ok(Command::Complete {
                counter: 1,
                tags: vec![],
            });
        }
        o.ok(Command::CloseDay);
    }
    let error = |from: usize, to: usize| {
        let cell: Vec<&(usize, f64, f64)> = last_day
            .iter()
            .filter(|(k, _, _)| (from..=to).contains(k))
            .collect();
        let shown: f64 = cell.iter().map(|c| c.1).sum();
        let real: f64 = cell.iter().map(|c| c.2).sum();
        shown / real - 1.0
    };
    let (mid, long) = (error(11, 20), error(51, 69));
    let seen: Vec<String> = last_day
        .iter()
        .map(|(k, s, r)| format!("{k}: {:.0}/{:.0}", s / 60.0, r / 60.0))
        .collect();
    assert!(
        mid.abs() < 0.12,
        "11–20 ahead: {:+.0} % {seen:?}",
        mid * 100.0
    );
    assert!(
        long.abs() < 0.08,
        "51–69 ahead: {:+.0} % {seen:?}",
        long * 100.0
    );
}

/// Outside tester est-rt8 F2 (issue 19): the replay paused 56 s between
/// two calls of a counter where the office paused 27 s, because a lunch
/// between a release and the next call was learned as a pause (at its
/// 10-minute cap) — and the replays follow the day's closures as well.
/// A closure in between is not a pause between visitors; a pause is.
#[test]
fn a_closure_is_not_learned_as_a_pause_between_calls() {
    let mut o = Office::default_open();
    o.open(1);
    for _ in 0..3 {
        o.issue("koseki");
    }
    let complete = |o: &mut Office| {
        o.ok(Command::Complete {
            counter: 1,
            tags: vec![],
        });
    };
    o.call(1);
    o.tick(5);
    complete(&mut o);
    // Lunch, with visitors waiting.
    o.ok(Command::CloseCounter { counter: 1 });
    o.tick(50);
    o.open(1);
    o.call(1);
    let prior = o.st.meta.learned.gap_secs();
    assert!((prior - 20.0).abs() < 1e-9, "after the lunch: {prior} s");
    o.tick(5);
    complete(&mut o);
    o.tick(1);
    o.call(1);
    // One pause of 60 s against the prior's five of 20 s.
    let gap = o.st.meta.learned.gap_secs();
    assert!(
        (gap - 160.0 / 6.0).abs() < 1e-6,
        "after a minute's pause: {gap} s"
    );
}
