//! The estimate's published accuracy (issue 19, R6): for the public status
//! page, yesterday's (the previous business day's) and this month's mean
//! absolute error, bias and range coverage, kept in the state's small part
//! as tickets are first called, so a replay of the log gives the same
//! figures. The statistics cells hold the same measures per queue, hour,
//! day and month for the reports.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::model::{Millis, StepKind, Ticket};
use crate::stats::SHORT_WAIT_S;

/// Sums over tickets first called in their category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Accuracy {
    pub n: u64,
    pub actual_sum_s: u64,
    pub abs_err_sum_s: u64,
    pub err_sum_s: i64,
    pub covered: u64,
}

impl Accuracy {
    fn add(&mut self, t: &Ticket, actual: u32) {
        let err = i64::from(t.expected_wait_s_at_issue) - i64::from(actual);
        self.n += 1;
        self.actual_sum_s += u64::from(actual);
        self.abs_err_sum_s += err.unsigned_abs();
        self.err_sum_s += err;
        self.covered += u64::from(
            (t.expected_wait_low_s_at_issue..=t.expected_wait_high_s_at_issue).contains(&actual),
        );
    }

    fn words(&self) -> Option<(f64, Lean, f64)> {
        (self.n > 0).then(|| {
            let n = self.n as f64;
            // A share of waits that were almost nothing says nothing
            // (outside tester est-rt8 F3): the lean in minutes then.
            let lean = if self.actual_sum_s >= SHORT_WAIT_S * self.n {
                Lean::Percent(self.err_sum_s as f64 / self.actual_sum_s as f64 * 100.0)
            } else {
                Lean::Minutes(self.err_sum_s as f64 / n / 60.0)
            };
            (
                self.abs_err_sum_s as f64 / n / 60.0,
                lean,
                self.covered as f64 / n * 100.0,
            )
        })
    }
}

/// How far the estimates leaned long (+) or short (−).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lean {
    Percent(f64),
    /// Used where the mean wait was under [`SHORT_WAIT_S`].
    Minutes(f64),
}

/// The figures the public page states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Published {
    pub today: Option<(NaiveDate, Accuracy)>,
    pub yesterday: Option<(NaiveDate, Accuracy)>,
    /// The month (first day) and its sums, today included.
    pub month: Option<(NaiveDate, Accuracy)>,
}

impl Published {
    /// A business day opens: today's figures become yesterday's.
    pub fn start_day(&mut self, date: NaiveDate) {
        if let Some(t) = self.today.take() {
            self.yesterday = Some(t);
        }
        self.today = Some((date, Accuracy::default()));
        let first = date.with_day(1).unwrap_or(date);
        if self.month.is_none_or(|(m, _)| m != first) {
            self.month = Some((first, Accuracy::default()));
        }
    }

    /// `t` is called at `at` (before the call is applied): its first call
    /// in its category counts.
    pub fn called(&mut self, t: &Ticket, at: Millis) {
        let first_leg = t.queue == t.category
            && !t.history.iter().any(|s| {
                matches!(
                    s.what,
                    StepKind::Called { .. } | StepKind::Transferred { .. }
                )
            });
        if !first_leg {
            return;
        }
        let actual = at.secs_since(t.issued_at);
        for (_, a) in [&mut self.today, &mut self.month].into_iter().flatten() {
            a.add(t, actual);
        }
    }

    /// One sentence for the public page, Japanese and English; `None`
    /// before any ticket was called.
    pub fn sentence(&self) -> Option<(String, String)> {
        let part = |x: &Option<(NaiveDate, Accuracy)>| {
            x.as_ref().and_then(|(d, a)| Some((*d, a.words()?)))
        };
        let y = part(&self.yesterday);
        let m = part(&self.month);
        let ja = |(mae, lean, cov): (f64, Lean, f64)| {
            format!(
                "平均 {mae:.1} 分のずれ（{}）、予想の幅に入った方 {cov:.0}%",
                lean_ja(lean)
            )
        };
        let en = |(mae, lean, cov): (f64, Lean, f64)| {
            let lean = match lean {
                Lean::Percent(p) => format!("{p:+.0}%"),
                Lean::Minutes(m) => format!("{m:+.1} min"),
            };
            format!("off by {mae:.1} min on average ({lean}), {cov:.0}% within the range")
        };
        let mut out_ja = Vec::new();
        let mut out_en = Vec::new();
        if let Some((d, w)) = y {
            out_ja.push(format!(
                "前回の開庁日（{}月{}日）は{}",
                d.month(),
                d.day(),
                ja(w)
            ));
            out_en.push(format!("last business day ({d}): {}", en(w)));
        }
        if let Some((_, w)) = m {
            out_ja.push(format!("今月は{}", ja(w)));
            out_en.push(format!("this month: {}", en(w)));
        }
        if out_ja.is_empty() {
            return None;
        }
        Some((
            format!("待ち時間の予想の実績: {}でした。", out_ja.join("、")),
            format!(
                "How accurate our wait estimates were — {}.",
                out_en.join("; ")
            ),
        ))
    }
}

fn lean_ja(lean: Lean) -> String {
    match lean {
        Lean::Percent(p) if p >= 0.5 => format!("長めに {p:.0}%"),
        Lean::Percent(p) if p <= -0.5 => format!("短めに {:.0}%", -p),
        Lean::Minutes(m) if m >= 0.05 => format!("長めに {m:.1} 分"),
        Lean::Minutes(m) if m <= -0.05 => format!("短めに {:.1} 分", -m),
        _ => "偏りなし".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, Step};

    fn ticket(shown: u32, low: u32, high: u32) -> Ticket {
        Ticket {
            number: 1,
            date: "2026-11-25".parse().expect("date"),
            category: "idou".into(),
            queue: "idou".into(),
            issued_at: Millis(0),
            people_ahead_at_issue: 0,
            expected_wait_s_at_issue: shown,
            expected_wait_low_s_at_issue: low,
            expected_wait_high_s_at_issue: high,
            tag: None,
            status: Status::Waiting {
                since: Millis(0),
                front: false,
            },
            history: Vec::new(),
        }
    }

    #[test]
    fn yesterday_and_the_month_in_one_sentence() {
        let mut p = Published::default();
        assert_eq!(p.sentence(), None);
        p.start_day("2026-11-25".parse().expect("date"));
        // Shown 10 min (8–14), waited 12: 2 min short, inside.
        p.called(&ticket(600, 480, 840), Millis(720_000));
        // Shown 20 min (15–25), waited 16: 4 min long, inside.
        p.called(&ticket(1200, 900, 1500), Millis(960_000));
        p.start_day("2026-11-26".parse().expect("date"));
        // Shown 5 min (4–6), waited 10: 5 min short, outside.
        p.called(&ticket(300, 240, 360), Millis(600_000));
        let (ja, en) = p.sentence().expect("sentence");
        // Yesterday: |−2|+|+4| = 6 min over 2; bias +2 min of 28 = +7 %.
        // Month: 11 min over 3 = 3.7; bias −3 of 38 min = −8 %; 2 of 3.
        assert_eq!(
            ja,
            "待ち時間の予想の実績: 前回の開庁日（11月25日）は平均 3.0 分のずれ（長めに 7%）、予想の幅に入った方 100%、今月は平均 3.7 分のずれ（短めに 8%）、予想の幅に入った方 67%でした。"
        );
        assert!(
            en.contains("this month: off by 3.7 min on average (-8%), 67% within the range"),
            "{en}"
        );
        // A called-again or transferred ticket does not count twice.
        let mut again = ticket(300, 240, 360);
        again.history.push(Step {
            at: Millis(1),
            what: StepKind::Called {
                counter: 10,
                out_of_order: false,
            },
        });
        p.called(&again, Millis(900_000));
        assert_eq!(p.month.expect("month").1.n, 3);
        // Waits of almost nothing: the lean in minutes, not a share of
        // nothing (est-rt8 F3: 1,000–3,000 %). Shown 2 min (0–4), called
        // after 10 s: 1.8 min long.
        let mut quiet = Published::default();
        quiet.start_day("2026-11-27".parse().expect("date"));
        quiet.called(&ticket(120, 0, 240), Millis(10_000));
        quiet.start_day("2026-11-30".parse().expect("date"));
        let (ja, en) = quiet.sentence().expect("sentence");
        assert!(
            ja.contains("前回の開庁日（11月27日）は平均 1.8 分のずれ（長めに 1.8 分）"),
            "{ja}"
        );
        assert!(en.contains("(+1.8 min)"), "{en}");
        // A new month starts from nothing; yesterday stays.
        p.start_day("2026-12-01".parse().expect("date"));
        assert_eq!(p.month.expect("month").1.n, 0);
        assert_eq!(p.yesterday.expect("yesterday").1.n, 1);
    }
}
