//! What the public pages say, through the real server (issue 18, R6, R11,
//! R12; outside tester pages-rt5 F4, F5, F6, F7):
//!
//! - after staff close the day within the posted hours, the public status
//!   page says today's reception has ended, not 「受付時間外です」, and
//!   no queue says a counter may still open (F4);
//! - the congestion forecast shows no hour outside the office's hours for
//!   its kind of day, its chart and table give the same whole figures, and
//!   a kind of day with too few days of history is marked as not yet
//!   reliable (F5, F6);
//! - a browser not enrolled as a display is told the screen is not
//!   registered and how an administrator registers it, not to log in; an
//!   unknown display is 見つかりません (F7);
//! - the waits shown hold still while nothing happens in the queue (F8).

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::{cmd, Server};

/// A Thursday morning, within the posted 08:00–18:00.
const CLOCK: &str = "2026-11-26T10:00:00+09:00";

fn get_text(c: &reqwest::blocking::Client, s: &Server, path: &str) -> (StatusCode, String) {
    let r = c.get(s.url(path)).send().expect("get");
    (r.status(), r.text().expect("text"))
}

#[test]
fn the_status_page_says_todays_reception_ended_when_staff_close_the_day() {
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |_| {},
        &[("MADOGUCHI_CLOCK", CLOCK)],
    );
    let (c, csrf) = s.admin();
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": "2026-11-26"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let anon = Server::client();
    // The site is rebuilt from the commit feed: wait for it.
    let page_when = |done: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (st, page) = get_text(&anon, &s, "/displays/status.html");
            assert_eq!(st, StatusCode::OK);
            if done(&page) {
                return page;
            }
            assert!(std::time::Instant::now() < deadline, "never: {page}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let open = page_when(&|p| p.contains("待ち 1 人"));
    assert!(open.contains("受付中（本日 08:00-18:00）"), "{open}");
    let (st, v) = cmd(&c, &s, &csrf, json!({"command": "close_day"}));
    assert_eq!(st, StatusCode::OK, "{v}");
    let page = page_when(&|p| !p.contains("受付中"));
    assert!(page.contains("本日の受付は終了しました"), "{page}");
    assert!(page.contains("Reception has closed for today"), "{page}");
    assert!(!page.contains("受付時間外"), "{page}");
    assert!(
        !page.contains("担当の窓口が開くまで"),
        "no counter opens again today: {page}"
    );
}

/// `days` simulated business days from `start` imported into `data`.
fn history(data: &std::path::Path, days: &str, start: &str) {
    let sim = tempfile::tempdir().expect("tmp");
    let file = sim.path().join("days.jsonl");
    let f = file.to_str().expect("path").to_string();
    crate::util::ok(
        data,
        &[
            "simulate", "--days", days, "--start", start, "--seed", "23", "--out", &f,
        ],
    );
    crate::util::ok(data, &["import", &f]);
}

/// The figures of each hour as the chart's titles give them, and as the
/// table's rows do: (waiting, wait minutes, tickets).
fn chart_and_table(html: &str) -> (BTreeMap<u32, [u64; 3]>, BTreeMap<u32, [u64; 3]>) {
    let num = |s: &str| -> u64 {
        s.trim()
            .trim_end_matches(['人', '分', '枚'])
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a whole number: {s:?}"))
    };
    let mut chart = BTreeMap::new();
    for t in html.split("<title>").skip(1) {
        let t = t.split("</title>").next().unwrap_or_default();
        let Some((hour, rest)) = t.split_once("時台: 予想待ち ") else {
            continue;
        };
        let (waiting, rest) = rest.split_once(" 人、待ち時間 約 ").expect("wait");
        let (wait, rest) = rest.split_once(" 分、発券 ").expect("tickets");
        let tickets = rest.trim_end_matches(" 枚");
        chart.insert(
            hour.parse().expect("hour"),
            [num(waiting), num(wait), num(tickets)],
        );
    }
    let mut table = BTreeMap::new();
    let body = html
        .split("<tbody>")
        .nth(1)
        .and_then(|b| b.split("</tbody>").next())
        .expect("table body");
    for row in body.split("<tr>").skip(1) {
        let hour = row
            .split("<th scope=\"row\">")
            .nth(1)
            .and_then(|h| h.split("時台").next())
            .expect("hour");
        let cells: Vec<u64> = row
            .split("<td>")
            .skip(1)
            .map(|c| num(c.split("</td>").next().unwrap_or_default()))
            .collect();
        table.insert(hour.parse().expect("hour"), [cells[0], cells[1], cells[2]]);
    }
    (chart, table)
}

#[test]
fn the_forecast_keeps_to_office_hours_says_one_figure_and_marks_thin_history() {
    // Two of each weekday (Mon 9th – Wed 25th; the 23rd is a holiday).
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |data| history(data, "12", "2026-11-09"),
        &[("MADOGUCHI_CLOCK", CLOCK)],
    );
    let anon = Server::client();
    let f: Value = anon
        .get(s.url("/forecast.json"))
        .send()
        .expect("json")
        .json()
        .expect("json");
    let series = f.as_array().expect("series");
    let mut kinds = 0;
    for x in series {
        let Some(wd) = x["kind"]["weekday"].as_u64() else {
            continue;
        };
        kinds += 1;
        // Weekdays 08:00–18:00, Wednesday (2) to 20:00.
        let close = if wd == 2 { 20 } else { 18 };
        let hours: Vec<u64> = x["hours"]
            .as_array()
            .expect("hours")
            .iter()
            .filter_map(|h| h["hour"].as_u64())
            .collect();
        assert!(
            hours.iter().all(|h| (8..close).contains(h)),
            "weekday {wd}: hours {hours:?} outside 08:00–{close}:00"
        );
        assert!(
            hours.contains(&8) && hours.contains(&(close - 1)),
            "{hours:?}"
        );
    }
    assert_eq!(kinds, 5, "every weekday: {f}");
    for kind in [
        "weekday-0",
        "weekday-1",
        "weekday-2",
        "weekday-3",
        "weekday-4",
    ] {
        let (st, html) = get_text(&anon, &s, &format!("/forecast?kind={kind}"));
        assert_eq!(st, StatusCode::OK);
        let (chart, table) = chart_and_table(&html);
        assert!(!table.is_empty(), "{kind}: {html}");
        assert_eq!(chart, table, "{kind}: the chart and the table disagree");
        assert!(!table.contains_key(&21), "{kind}: {table:?}");
        // Two days of each weekday: figures, said to be no forecast yet.
        assert!(html.contains("まだ当てになりません"), "{kind}");
        assert!(html.contains("記録は 2 日分しかありません"), "{kind}");
        assert!(html.contains("参考値"), "{kind}");
        assert!(html.contains("Not reliable yet"), "{kind}");
    }
}

#[test]
fn an_unenrolled_screen_is_told_how_to_register_as_a_display() {
    let s = Server::start();
    let fresh = Server::client();
    for path in [
        "/displays/guidance/idou.html",
        "/displays/counter/10.html",
        "/displays/board.html",
    ] {
        let (st, page) = get_text(&fresh, &s, path);
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}");
        assert!(
            page.contains("この画面は表示機として登録されていません"),
            "{path}: {page}"
        );
        assert!(page.contains("/admin/devices"), "{path}: {page}");
        assert!(page.contains("登録用リンク"), "{path}: {page}");
        assert!(!page.contains("ログインしてください"), "{path}: {page}");
    }
    // Data for a display program stays an API answer.
    let r = fresh
        .get(s.url("/displays/guidance/idou.json"))
        .send()
        .expect("json");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // No such display: not found, not "log in".
    let (st, page) = get_text(&fresh, &s, "/displays/nosuch.html");
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(page.contains("見つかりません"), "{page}");
    // An enrolled display sees its screen.
    let d = Server::client();
    d.post(&s.display_enrol).send().expect("enrol");
    let (st, page) = get_text(&d, &s, "/displays/guidance/idou.html");
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(!page.contains("登録されていません"));
}

/// The minutes in a wait's words: 「およそ12分（9〜16分）」 → [12, 9, 16];
/// 「およそ5分」 → [5, 5, 5]; 「まもなく…」 → [0, 0, 0].
fn minutes(words: &str) -> [i64; 3] {
    let nums: Vec<i64> = words
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums[..] {
        [p, lo, hi] => [p, lo, hi],
        [p] => [p, p, p],
        _ => [0, 0, 0],
    }
}

/// Outside tester pages-rt5 F8: with nothing happening in the queue, the
/// ranges jumped (6〜25 → 6〜29 → 7〜24) every time the pages were
/// rebuilt, because the estimate's replays drew new random numbers from
/// the clock. Here each rebuild is forced by an account change (a commit
/// that touches no queue): the waits shown move by at most a minute (a
/// step of five over half an hour).
#[test]
fn the_waits_shown_hold_still_while_nothing_happens() {
    let s = Server::start_env(
        None,
        &["--listen", "127.0.0.1:0"],
        |data| history(data, "2", "2026-11-24"),
        &[("MADOGUCHI_CLOCK", CLOCK)],
    );
    let (c, csrf) = s.admin();
    let (st, v) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": "2026-11-26"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_counter", "counter": 1}),
    );
    for _ in 0..8 {
        let (st, v) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "koseki"}),
        );
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    cmd(&c, &s, &csrf, json!({"command": "call_next", "counter": 1}));
    let anon = Server::client();
    let shown = || -> Vec<(u64, String)> {
        let v: Value = anon
            .get(s.url("/displays/ticket.json"))
            .send()
            .expect("ticket.json")
            .json()
            .expect("json");
        v["data"]["queues"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["queue"] == "koseki"))
            .and_then(|q| q["waiting"].as_array())
            .map(|w| {
                w.iter()
                    .map(|e| {
                        (
                            e[0].as_u64().unwrap_or_default(),
                            e[2].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut first = shown();
    while first.len() != 7 || first.iter().any(|(_, w)| !w.contains("（")) {
        assert!(std::time::Instant::now() < deadline, "no ranges: {first:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        first = shown();
    }
    for i in 0..6 {
        let r = c
            .post(s.url("/api/users"))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"username": format!("clerk{i}"), "role": "staff", "password": "a long enough password"}))
            .send()
            .expect("user");
        assert!(r.status().is_success(), "{:?}", r.text());
        std::thread::sleep(std::time::Duration::from_millis(700));
        let now = shown();
        assert_eq!(now.len(), first.len(), "{now:?}");
        for ((n, a), (_, b)) in first.iter().zip(&now) {
            let (a, b) = (minutes(a), minutes(b));
            for k in 0..3 {
                // Over half an hour minutes are shown in fives: a step
                // there is time passing across a boundary.
                let step = if a[k].max(b[k]) > 30 { 5 } else { 1 };
                assert!(
                    (a[k] - b[k]).abs() <= step,
                    "ticket {n}: {a:?} → {b:?} with nothing happening"
                );
            }
        }
    }
}
