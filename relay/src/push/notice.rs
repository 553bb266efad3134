//! When to push, from the public data the relay already has (the `ticket`
//! topic the office publishes for the mobile ticket page: numbers, people
//! ahead, the estimate, calls) — the office sends nothing new (R6). A
//! subscription is told once when its threshold is crossed ("N people
//! ahead" or "about M minutes"), once per counter when it is called, and
//! once when its number has passed (「職員に声をおかけください」): the
//! office lists the numbers called that did not come (`passed`, numbers
//! only), so a pass after a call is told too; a number that leaves the
//! queue without a call seen is told the same. A passed number that comes
//! back (staff return it to the queue) is followed afresh. A subscription
//! ends when its number leaves the lists, its date is not the served day,
//! or the day closes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What the visitor asked to be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Threshold {
    /// When at most this many people are ahead.
    Ahead(u32),
    /// When the expected wait is at most this many minutes.
    Minutes(u32),
}

impl Threshold {
    pub fn valid(self) -> bool {
        match self {
            Threshold::Ahead(n) => (1..=30).contains(&n),
            Threshold::Minutes(m) => (1..=120).contains(&m),
        }
    }
}

/// The languages of the mobile page ("easy" is やさしい日本語).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Ja,
    Easy,
    En,
    Zh,
    Ko,
}

impl Lang {
    /// The BCP 47 tag of the text (やさしい日本語 is Japanese).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Ja | Lang::Easy => "ja",
            Lang::En => "en",
            Lang::Zh => "zh",
            Lang::Ko => "ko",
        }
    }
}

/// A ticket's public token: its date and number, as in the page's URL
/// fragment (`2026-12-06/1001`). Anyone can guess one; subscribing takes
/// a [`Claim`], the token with the ticket's secret tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token {
    pub date: String,
    pub number: u32,
}

impl TryFrom<String> for Token {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Token, &'static str> {
        Token::parse(&s).ok_or("not a ticket token (YYYY-MM-DD/number)")
    }
}

impl From<Token> for String {
    fn from(t: Token) -> String {
        t.to_string()
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.date, self.number)
    }
}

impl Token {
    pub fn parse(s: &str) -> Option<Token> {
        let (date, number) = s.split_once('/')?;
        let b = date.as_bytes();
        let date_ok = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            });
        let number_ok =
            (1..=6).contains(&number.len()) && number.bytes().all(|c| c.is_ascii_digit());
        if !(date_ok && number_ok) {
            return None;
        }
        Some(Token {
            date: date.to_string(),
            number: number.parse().ok()?,
        })
    }
}

/// What a subscriber sends for its ticket: the token and the ticket's
/// secret tag from its QR code (`2026-12-06/1001/0123456789abcdef`, the
/// page's URL fragment). The tag is optional here so that a token without
/// one is refused like an unknown ticket (404), not as malformed: the
/// answer then tells a guesser nothing about which tickets are live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: Token,
    pub tag: Option<String>,
}

impl Claim {
    /// `None` when the token part is not a token; a tag of the wrong form
    /// is kept, to fail the check like any wrong tag.
    pub fn parse(s: &str) -> Option<Claim> {
        let (token, tag) = match s.match_indices('/').nth(1) {
            Some((i, _)) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        Some(Claim {
            token: Token::parse(token)?,
            tag: tag.map(|t| t.chars().take(64).collect()),
        })
    }
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Claim, D::Error> {
        let s = String::deserialize(d)?;
        Claim::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("not a ticket token (YYYY-MM-DD/number/tag)"))
    }
}

/// Where a number is in the served data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Waiting {
        queue: String,
        ahead: u32,
        minutes: u32,
        /// The page's own words for this wait, ja, en, zh, ko, やさしい日本語
        /// (the ticket data's columns 2–6), so a push says what the page
        /// says (outside tester push-rt6 F6: 「約 16 分」 vs 「およそ15分」).
        words: Vec<String>,
    },
    Serving {
        queue: String,
        counter: String,
    },
    /// Called and did not come (不在): staff may still return it.
    Passed {
        queue: String,
    },
}

/// The served `ticket` topic, indexed by number.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub date: Option<String>,
    pub day_open: bool,
    pub places: HashMap<u32, Place>,
    /// The office lists passed numbers: then a number gone from every list
    /// was served or cancelled, never "passed" by inference.
    pub lists_passed: bool,
    /// The public check of each live ticket's secret tag
    /// (`madoguchi_wire::ticket::check`); a ticket without one (an office
    /// before tags, or a ticket issued before them) cannot subscribe.
    pub checks: HashMap<u32, String>,
}

#[derive(Deserialize)]
struct Message {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    date: Option<String>,
    #[serde(default)]
    day_open: bool,
    #[serde(default)]
    queues: Vec<Queue>,
    /// Number → check of its tag; anything else in it is ignored.
    #[serde(default)]
    checks: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Queue {
    queue: String,
    #[serde(default)]
    serving: Vec<Vec<serde_json::Value>>,
    #[serde(default)]
    waiting: Vec<Vec<serde_json::Value>>,
    /// Absent after a call (an office before issue 20's `passed` sends none).
    #[serde(default)]
    passed: Option<Vec<serde_json::Value>>,
    /// "estimate" when the waits are numbers; otherwise (too little
    /// history, no counter open) the minutes are no estimate and no notice
    /// goes by them (outside tester pages-rt5 F2). Absent from an older
    /// office: numbers.
    #[serde(default)]
    wait_basis: Option<String>,
}

fn number(v: Option<&serde_json::Value>) -> Option<u32> {
    v?.as_u64().and_then(|n| u32::try_from(n).ok())
}

impl Board {
    /// Reads the topic's JSON; `None` if it is not the ticket page's data
    /// (the relay then keeps what it had rather than end subscriptions).
    pub fn parse(body: &str) -> Option<Board> {
        let m: Message = serde_json::from_str(body).ok()?;
        let mut places = HashMap::new();
        let mut lists_passed = false;
        for q in m.data.queues {
            lists_passed |= q.passed.is_some();
            for n in q.passed.iter().flatten().filter_map(|v| number(Some(v))) {
                places.entry(n).or_insert(Place::Passed {
                    queue: q.queue.clone(),
                });
            }
            let estimated = q.wait_basis.as_deref().is_none_or(|b| b == "estimate");
            let minutes_of = |e: &Vec<serde_json::Value>| {
                if estimated {
                    number(e.get(1)).unwrap_or(u32::MAX)
                } else {
                    u32::MAX
                }
            };
            let words_of = |e: &Vec<serde_json::Value>| -> Vec<String> {
                if !estimated {
                    return Vec::new();
                }
                e.iter()
                    .skip(2)
                    .take(5)
                    .map(|w| w.as_str().unwrap_or_default().to_owned())
                    .collect()
            };
            for (i, e) in q.waiting.iter().enumerate() {
                if let Some(n) = number(e.first()) {
                    places
                        .entry(n)
                        .and_modify(|p| {
                            if matches!(p, Place::Passed { .. }) {
                                *p = Place::Waiting {
                                    queue: q.queue.clone(),
                                    ahead: u32::try_from(i).unwrap_or(u32::MAX),
                                    minutes: minutes_of(e),
                                    words: words_of(e),
                                };
                            }
                        })
                        .or_insert(Place::Waiting {
                            queue: q.queue.clone(),
                            ahead: u32::try_from(i).unwrap_or(u32::MAX),
                            minutes: minutes_of(e),
                            words: words_of(e),
                        });
                }
            }
            for e in &q.serving {
                if let Some(n) = number(e.first()) {
                    let counter = match e.get(1) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    };
                    places.insert(
                        n,
                        Place::Serving {
                            queue: q.queue.clone(),
                            counter,
                        },
                    );
                }
            }
        }
        let checks = m
            .data
            .checks
            .into_iter()
            .filter_map(|(n, c)| Some((n.parse().ok()?, c.as_str()?.to_string())))
            .collect();
        Some(Board {
            date: m.data.date,
            day_open: m.data.day_open,
            places,
            lists_passed,
            checks,
        })
    }

    /// Whether a token names a ticket that is live now (today's, the day
    /// open, waiting, being served, or passed — staff may return it).
    pub fn live(&self, t: &Token) -> bool {
        self.day_open
            && self.date.as_deref() == Some(t.date.as_str())
            && self.places.contains_key(&t.number)
    }

    /// Whether a claim may subscribe: a live ticket and its own tag, as
    /// the office's check of it says. A missing, malformed or wrong tag
    /// fails the same way as a ticket that is not live.
    pub fn admits(&self, c: &Claim) -> bool {
        let Some(tag) = c.tag.as_deref() else {
            return false;
        };
        self.live(&c.token)
            && madoguchi_wire::ticket::valid_tag(tag)
            && self.checks.get(&c.token.number).is_some_and(|want| {
                *want == madoguchi_wire::ticket::check(&c.token.date, c.token.number, tag)
            })
    }
}

/// What a subscription has been told (kept with it across restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The queue the number was last seen in (a transfer starts afresh).
    pub queue: Option<String>,
    pub near_sent: bool,
    /// The counter of the last call told.
    pub called: Option<String>,
    /// "Please speak to staff" told (cleared when the number comes back).
    #[serde(default)]
    pub passed: bool,
}

/// A notice to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Near {
        ahead: u32,
        minutes: u32,
        /// The page's words for the wait (see [`Place::Waiting`]).
        words: Vec<String>,
    },
    Called {
        counter: String,
    },
    Passed,
}

/// Whether the subscription goes on after this update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    End,
}

/// The notice (if any) this update makes for one subscription.
pub fn decide(
    board: &Board,
    token: &Token,
    threshold: Threshold,
    p: &mut Progress,
) -> (Option<Notice>, Fate) {
    if !board.day_open || board.date.as_deref() != Some(token.date.as_str()) {
        return (None, Fate::End);
    }
    let moved = |queue: &str, p: &mut Progress| {
        if p.queue.as_deref() != Some(queue) {
            *p = Progress {
                queue: Some(queue.to_string()),
                ..Progress::default()
            };
        }
    };
    // Back in line after a pass: a new call will be told.
    let back = |p: &mut Progress| {
        if p.passed {
            p.passed = false;
            p.called = None;
        }
    };
    match board.places.get(&token.number) {
        Some(Place::Waiting {
            queue,
            ahead,
            minutes,
            words,
        }) => {
            moved(queue, p);
            back(p);
            let crossed = match threshold {
                Threshold::Ahead(n) => *ahead <= n,
                Threshold::Minutes(m) => *minutes <= m,
            };
            if crossed && !p.near_sent {
                p.near_sent = true;
                return (
                    Some(Notice::Near {
                        ahead: *ahead,
                        minutes: *minutes,
                        words: words.clone(),
                    }),
                    Fate::Keep,
                );
            }
            (None, Fate::Keep)
        }
        Some(Place::Serving { queue, counter }) => {
            moved(queue, p);
            back(p);
            p.near_sent = true;
            if p.called.as_deref() != Some(counter.as_str()) {
                p.called = Some(counter.clone());
                return (
                    Some(Notice::Called {
                        counter: counter.clone(),
                    }),
                    Fate::Keep,
                );
            }
            (None, Fate::Keep)
        }
        Some(Place::Passed { queue }) => {
            moved(queue, p);
            p.near_sent = true;
            if p.passed {
                return (None, Fate::Keep);
            }
            p.passed = true;
            (Some(Notice::Passed), Fate::Keep)
        }
        // Gone from the lists: served (after a call we told), told it had
        // passed already, or — from an office that lists passed numbers —
        // served or cancelled while this relay was not looking (down, or
        // between two versions).
        None if p.called.is_some() || p.passed || board.lists_passed => (None, Fate::End),
        // An older office: gone without a call seen is taken as passed.
        None => (Some(Notice::Passed), Fate::End),
    }
}

/// The wait in a notice's words: the page's own words for it where the
/// office sent them (`words`, column `col`), else the minutes; nothing when
/// there is no estimate (`u32::MAX`: too little history, no counter open,
/// or an office that sent none).
fn wait(
    minutes: u32,
    words: &[String],
    col: usize,
    said: impl Fn(&str) -> String,
    mins: impl Fn(u32) -> String,
) -> String {
    if minutes == u32::MAX {
        return String::new();
    }
    match words.get(col).filter(|w| !w.is_empty()) {
        Some(w) => said(w),
        None => mins(minutes),
    }
}

/// The notification, in the visitor's language: title and body.
pub fn text(n: &Notice, number: u32, lang: Lang) -> (String, String) {
    match (n, lang) {
        (Notice::Near { ahead, minutes, words }, Lang::Ja) => (
            "まもなく順番です".into(),
            format!("{number} 番：あなたの前にあと {ahead} 人{}。窓口の近くへお戻りください。", wait(*minutes, words, 0, |w| format!("。待ち時間の目安は{w}"), |m| format!("（約 {m} 分）"))),
        ),
        (Notice::Near { ahead, minutes, words }, Lang::Easy) => (
            "もうすぐ じゅんばんです".into(),
            format!("{number} ばん：あなたの まえに あと {ahead} にん{}。まどぐちの ちかくに もどって ください。", wait(*minutes, words, 4, |w| format!("。まつ じかんは {w}"), |m| format!("（だいたい {m} ふん）"))),
        ),
        (Notice::Near { ahead, minutes, words }, Lang::En) => (
            "Your turn is near".into(),
            format!("No. {number}: {ahead} ahead of you{}. Please come back to the counters.", wait(*minutes, words, 1, |w| format!("; expected wait {w}"), |m| format!(" (about {m} min)"))),
        ),
        (Notice::Near { ahead, minutes, words }, Lang::Zh) => (
            "即将轮到您".into(),
            format!("{number} 号：您前面还有 {ahead} 人{}。请回到窗口附近。", wait(*minutes, words, 2, |w| format!("，预计等候{w}"), |m| format!("（约 {m} 分钟）"))),
        ),
        (Notice::Near { ahead, minutes, words }, Lang::Ko) => (
            "곧 차례입니다".into(),
            format!("{number}번: 앞에 {ahead}명{}. 창구 근처로 돌아와 주세요.", wait(*minutes, words, 3, |w| format!(", 예상 대기 {w}"), |m| format!(" (약 {m}분)"))),
        ),
        (Notice::Called { counter }, Lang::Ja) => (
            "お呼びしています".into(),
            format!("受付番号 {number} 番の方、{counter} 番窓口へお越しください。"),
        ),
        (Notice::Called { counter }, Lang::Easy) => (
            "よんでいます".into(),
            format!("{number} ばんの かた、{counter} ばんの まどぐちに きて ください。"),
        ),
        (Notice::Called { counter }, Lang::En) => (
            "You are being called".into(),
            format!("Number {number}, please go to counter {counter}."),
        ),
        (Notice::Called { counter }, Lang::Zh) => (
            "正在叫您的号码".into(),
            format!("{number} 号，请到 {counter} 号窗口。"),
        ),
        (Notice::Called { counter }, Lang::Ko) => (
            "호출 중입니다".into(),
            format!("{number}번, {counter}번 창구로 와 주세요."),
        ),
        (Notice::Passed, Lang::Ja) => (
            "番号を過ぎました".into(),
            format!("{number} 番はお呼びした番号を過ぎています。職員に声をおかけください。"),
        ),
        (Notice::Passed, Lang::Easy) => (
            "ばんごうが すぎました".into(),
            format!("{number} ばんは もう よばれました。しょくいんに はなして ください。"),
        ),
        (Notice::Passed, Lang::En) => (
            "Your number has passed".into(),
            format!("No. {number} has passed. Please speak to a member of staff."),
        ),
        (Notice::Passed, Lang::Zh) => (
            "您的号码已过".into(),
            format!("{number} 号已过。请咨询工作人员。"),
        ),
        (Notice::Passed, Lang::Ko) => (
            "번호가 지났습니다".into(),
            format!("{number}번이 지났습니다. 직원에게 문의해 주세요."),
        ),
    }
}

/// The push message the service worker shows (`relay/src/push/sw.js`).
pub fn payload(n: &Notice, t: &Token, lang: Lang) -> String {
    let (title, body) = text(n, t.number, lang);
    serde_json::json!({
        "title": title,
        "body": body,
        "tag": format!("madoguchi-{}-{}", t.date, t.number),
        "url": format!("/m#{t}"),
        "kind": match n { Notice::Near { .. } => "near", Notice::Called { .. } => "called", Notice::Passed => "passed" },
        // The notification's language (sw.js), so a screen reader reads
        // it in its own voice (outside tester push-rt6 F5).
        "lang": lang.tag(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(date: &str, open: bool, waiting: &[u32], serving: &[(u32, &str)]) -> Board {
        let body = serde_json::json!({
            "topic": "ticket",
            "data": {
                "date": date,
                "day_open": open,
                "queues": [{
                    "queue": "idou",
                    "serving": serving.iter().map(|(n, c)| serde_json::json!([n, c])).collect::<Vec<_>>(),
                    "waiting": waiting.iter().enumerate().map(|(i, n)| serde_json::json!([n, (i as u32 + 1) * 4, "およそ", null])).collect::<Vec<_>>(),
                }],
            },
            "html": "<div></div>",
        });
        Board::parse(&body.to_string()).expect("ticket data")
    }

    fn with_passed(mut b: Board, passed: &[u32]) -> Board {
        for n in passed {
            b.places.insert(
                *n,
                Place::Passed {
                    queue: "idou".into(),
                },
            );
        }
        b
    }

    #[test]
    fn a_pass_after_a_call_is_told_once_and_a_returned_number_is_followed_again() {
        let t = Token::parse("2026-12-06/105").expect("token");
        let mut p = Progress::default();
        let th = Threshold::Ahead(1);
        let steps = [
            board("2026-12-06", true, &[104, 105], &[]),
            board("2026-12-06", true, &[104], &[(105, "3")]),
            with_passed(board("2026-12-06", true, &[104], &[]), &[105]),
            with_passed(board("2026-12-06", true, &[104], &[(103, "3")]), &[105]),
            board("2026-12-06", true, &[105, 104], &[]),
            board("2026-12-06", true, &[104], &[(105, "3")]),
        ];
        let mut told = Vec::new();
        for b in &steps {
            let (n, fate) = decide(b, &t, th, &mut p);
            assert_eq!(fate, Fate::Keep);
            told.extend(n);
        }
        let called = Notice::Called {
            counter: "3".into(),
        };
        assert_eq!(
            told,
            vec![
                Notice::Near {
                    ahead: 1,
                    minutes: 8,
                    words: vec!["およそ".into(), String::new()]
                },
                called.clone(),
                Notice::Passed,
                called
            ],
            "near, called, passed once, called again at the same counter after the return"
        );
        let (n, fate) = decide(&board("2026-12-06", true, &[104], &[]), &t, th, &mut p);
        assert_eq!((n, fate), (None, Fate::End), "served: ends quietly");

        // Passed, then gone (cancelled at the desk): nothing more to say.
        let mut p = Progress::default();
        let passed = with_passed(board("2026-12-06", true, &[], &[]), &[105]);
        assert!(passed.live(&t), "a passed number may still subscribe");
        assert_eq!(
            decide(&passed, &t, th, &mut p),
            (Some(Notice::Passed), Fate::Keep)
        );
        assert_eq!(decide(&passed, &t, th, &mut p), (None, Fate::Keep));
        assert_eq!(
            decide(&board("2026-12-06", true, &[], &[]), &t, th, &mut p),
            (None, Fate::End)
        );
    }

    /// Outside tester pages-rt5 F2: with no estimate (no counter open)
    /// the minutes sent are no wait: no notice goes by them, and a notice
    /// by people ahead names no minutes.
    #[test]
    fn minutes_without_an_estimate_fire_nothing_and_are_not_told() {
        let body = serde_json::json!({
            "data": {
                "date": "2026-12-06",
                "day_open": true,
                "queues": [
                    {"queue": "idou", "wait_basis": "no_counter_open", "serving": [], "waiting": [[105, 3], [106, 4]]},
                ],
            },
        });
        let b = Board::parse(&body.to_string()).expect("ticket data");
        let t = Token::parse("2026-12-06/106").expect("token");
        let mut p = Progress::default();
        assert_eq!(
            decide(&b, &t, Threshold::Minutes(30), &mut p),
            (None, Fate::Keep),
            "4 'minutes' of no estimate are not a wait of 4 minutes"
        );
        let (n, _) = decide(&b, &t, Threshold::Ahead(1), &mut p);
        let n = n.expect("near by people ahead");
        let (_, body) = text(&n, 106, Lang::Ja);
        assert!(body.contains("あと 1 人") && !body.contains('分'), "{body}");
    }

    /// Outside tester push-rt6 F6: the near notice said 「約 16 分」 while
    /// the page said 「およそ15分」: a push words the wait as the page does,
    /// in each language, where the office sent the words.
    #[test]
    fn a_near_notice_words_the_wait_as_the_page_does() {
        let body = serde_json::json!({
            "data": {
                "date": "2026-12-06",
                "day_open": true,
                "queues": [
                    {"queue": "idou", "wait_basis": "estimate", "serving": [], "waiting": [
                        [105, 16, "およそ15分（10〜20分）", "about 15 min (10–20)", "约15分钟（10~20分钟）", "약 15분 (10~20분)", "だいたい 15ふん"],
                    ]},
                ],
            },
        });
        let b = Board::parse(&body.to_string()).expect("ticket data");
        let t = Token::parse("2026-12-06/105").expect("token");
        let mut p = Progress::default();
        let (n, _) = decide(&b, &t, Threshold::Ahead(3), &mut p);
        let n = n.expect("near");
        for (lang, want) in [
            (Lang::Ja, "およそ15分（10〜20分）"),
            (Lang::En, "about 15 min (10–20)"),
            (Lang::Zh, "约15分钟（10~20分钟）"),
            (Lang::Ko, "약 15분 (10~20분)"),
            (Lang::Easy, "だいたい 15ふん"),
        ] {
            let (_, body) = text(&n, 105, lang);
            assert!(
                body.contains(want) && !body.contains("16"),
                "{lang:?}: {body}"
            );
        }
    }

    #[test]
    fn the_office_list_of_passed_numbers_is_read_and_waiting_wins_over_it() {
        let body = serde_json::json!({
            "data": {
                "date": "2026-12-06",
                "day_open": true,
                "queues": [
                    {"queue": "idou", "serving": [], "waiting": [], "passed": [105, "x", -1, 106]},
                    {"queue": "koufu", "serving": [], "waiting": [[106, 4]], "passed": []},
                ],
            },
        });
        let b = Board::parse(&body.to_string()).expect("ticket data");
        assert_eq!(
            b.places.get(&105),
            Some(&Place::Passed {
                queue: "idou".into()
            })
        );
        assert!(matches!(b.places.get(&106), Some(Place::Waiting { .. })));
        assert_eq!(b.places.len(), 2, "only numbers are read");
        assert!(b.lists_passed);

        // From such an office, a number gone without a call seen (the
        // relay was down for the call and the service) ends quietly.
        let t = Token::parse("2026-12-06/107").expect("token");
        let mut p = Progress::default();
        let waiting = Board {
            places: HashMap::from([(
                107,
                Place::Waiting {
                    queue: "idou".into(),
                    ahead: 5,
                    minutes: 20,
                    words: vec![],
                },
            )]),
            ..b.clone()
        };
        assert_eq!(
            decide(&waiting, &t, Threshold::Ahead(1), &mut p),
            (None, Fate::Keep)
        );
        assert_eq!(
            decide(&b, &t, Threshold::Ahead(1), &mut p),
            (None, Fate::End)
        );
        let older = Board {
            lists_passed: false,
            ..b
        };
        let mut p = Progress::default();
        assert_eq!(
            decide(&older, &t, Threshold::Ahead(1), &mut p),
            (Some(Notice::Passed), Fate::End),
            "an office without the list: gone without a call is passed"
        );
    }

    #[test]
    fn progress_written_before_the_passed_flag_still_reads() {
        let p: Progress =
            serde_json::from_str(r#"{"queue":"idou","near_sent":true,"called":"3"}"#).expect("old");
        assert!(!p.passed && p.near_sent);
    }

    #[test]
    fn tokens_are_a_date_and_a_number() {
        assert_eq!(
            Token::parse("2026-12-06/1001"),
            Some(Token {
                date: "2026-12-06".into(),
                number: 1001
            })
        );
        for bad in [
            "2026-12-06",
            "2026-12-6/1",
            "2026-12-06/",
            "2026-12-06/1234567",
            "../x/1",
            "2026-12-06/+1",
            "２０２６-12-06/1",
        ] {
            assert!(Token::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_a_live_ticket_with_its_own_tag_is_admitted() {
        let tag = "0123456789abcdef";
        let mut b = board("2026-12-06", true, &[104, 105], &[]);
        b.checks
            .insert(105, madoguchi_wire::ticket::check("2026-12-06", 105, tag));
        let claim = |s: &str| Claim::parse(s).expect("a token");
        assert!(b.admits(&claim("2026-12-06/105/0123456789abcdef")));
        for refused in [
            "2026-12-06/105",
            "2026-12-06/105/",
            "2026-12-06/105/0123456789abcdee",
            "2026-12-06/105/0123456789ABCDEF",
            "2026-12-06/105/0123456789abcdef0",
            // Another ticket's tag, or a live ticket with no check.
            "2026-12-06/104/0123456789abcdef",
        ] {
            assert!(!b.admits(&claim(refused)), "{refused}");
        }
        assert_eq!(
            claim("2026-12-06/105/x/y").tag.as_deref(),
            Some("x/y"),
            "kept, to fail"
        );
        assert!(Claim::parse("105/0123456789abcdef").is_none());
        // The day over, the check no longer admits.
        b.day_open = false;
        assert!(!b.admits(&claim("2026-12-06/105/0123456789abcdef")));
        // The office's data as published: the checks read, junk ignored.
        let body = serde_json::json!({"data": {"date": "2026-12-06", "day_open": true,
            "queues": [{"queue": "idou", "waiting": [[105, 4]]}],
            "checks": {"105": madoguchi_wire::ticket::check("2026-12-06", 105, tag), "x": "y", "106": 3}}});
        let b = Board::parse(&body.to_string()).expect("ticket data");
        assert_eq!(b.checks.len(), 1);
        assert!(b.admits(&claim("2026-12-06/105/0123456789abcdef")));
    }

    #[test]
    fn each_notice_fires_once_as_the_queue_moves() {
        let t = Token::parse("2026-12-06/105").expect("token");
        let mut p = Progress::default();
        let th = Threshold::Ahead(2);
        let mut told = Vec::new();
        let steps = [
            board("2026-12-06", true, &[101, 102, 103, 104, 105], &[]),
            board("2026-12-06", true, &[102, 103, 104, 105], &[(101, "3")]),
            board("2026-12-06", true, &[103, 104, 105], &[(102, "3")]),
            board("2026-12-06", true, &[104, 105], &[(103, "3")]),
            board("2026-12-06", true, &[105], &[(104, "3")]),
            board("2026-12-06", true, &[], &[(105, "5")]),
            board("2026-12-06", true, &[], &[(105, "5")]),
        ];
        for b in &steps {
            let (n, fate) = decide(b, &t, th, &mut p);
            assert_eq!(fate, Fate::Keep);
            told.extend(n);
        }
        assert_eq!(
            told,
            vec![
                Notice::Near {
                    ahead: 2,
                    minutes: 12,
                    words: vec!["およそ".into(), String::new()]
                },
                Notice::Called {
                    counter: "5".into()
                }
            ]
        );
        let (n, fate) = decide(&board("2026-12-06", true, &[], &[]), &t, th, &mut p);
        assert_eq!((n, fate), (None, Fate::End), "served: ends quietly");
    }

    #[test]
    fn a_number_gone_without_a_call_is_told_to_see_staff_and_closed_days_end_all() {
        let t = Token::parse("2026-12-06/105").expect("token");
        let mut p = Progress::default();
        let th = Threshold::Minutes(5);
        let b = board("2026-12-06", true, &[104, 105], &[]);
        assert_eq!(decide(&b, &t, th, &mut p), (None, Fate::Keep), "8 min > 5");
        let b = board("2026-12-06", true, &[105], &[]);
        assert!(matches!(
            decide(&b, &t, th, &mut p),
            (Some(Notice::Near { .. }), Fate::Keep)
        ));
        let b = board("2026-12-06", true, &[106], &[]);
        assert_eq!(
            decide(&b, &t, th, &mut p),
            (Some(Notice::Passed), Fate::End)
        );
        let mut p = Progress::default();
        for b in [
            board("2026-12-06", false, &[105], &[]),
            board("2026-12-07", true, &[105], &[]),
        ] {
            assert_eq!(decide(&b, &t, th, &mut p), (None, Fate::End));
        }
        assert!(board("2026-12-06", true, &[105], &[]).live(&t));
        assert!(!board("2026-12-06", false, &[105], &[]).live(&t));
        assert!(!board("2026-12-07", true, &[105], &[]).live(&t));
        assert!(!board("2026-12-06", true, &[104], &[]).live(&t));
    }

    #[test]
    fn every_language_names_the_number_and_the_counter() {
        let t = Token::parse("2026-12-06/105").expect("token");
        for lang in [Lang::Ja, Lang::Easy, Lang::En, Lang::Zh, Lang::Ko] {
            let (_, body) = text(
                &Notice::Called {
                    counter: "7".into(),
                },
                105,
                lang,
            );
            assert!(
                body.contains("105") && body.contains('7'),
                "{lang:?}: {body}"
            );
        }
        let p: serde_json::Value =
            serde_json::from_str(&payload(&Notice::Passed, &t, Lang::Ja)).expect("json");
        assert!(p["body"]
            .as_str()
            .unwrap_or("")
            .contains("職員に声をおかけください"));
        assert_eq!(p["url"], "/m#2026-12-06/105");
    }
}
