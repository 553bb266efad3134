use chrono::NaiveDate;

use super::*;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

#[test]
fn embedded_default_models_the_ward() {
    let c = Config::embedded_default();
    let count = |s: &str| c.counters.iter().filter(|x| x.section == s).count();
    assert_eq!(count("koseki"), 3);
    assert_eq!(count("shomei"), 6);
    assert_eq!(count("jumin"), 14);
    assert_eq!(count("service"), 2);
    let cats: Vec<&str> = c.categories().map(|q| q.name.ja.as_str()).collect();
    assert_eq!(cats, ["戸籍届出と証明発行の受付", "住民異動の受付"]);
    let stage = c.queue("koufu").expect("stage");
    assert!(!stage.is_category());
    assert_eq!(stage.name.ja, "証明の交付");
    assert_eq!(c.office.utc_offset.local_minus_utc(), 9 * 3600);
    assert_eq!(
        c.category_of_number(1001).map(|q| q.id.as_str()),
        Some("idou")
    );
}

#[test]
fn holidays_of_2026() {
    let expected = [
        "2026-01-01",
        "2026-01-12",
        "2026-02-11",
        "2026-02-23",
        "2026-03-20",
        "2026-04-29",
        "2026-05-03",
        "2026-05-04",
        "2026-05-05",
        "2026-05-06",
        "2026-07-20",
        "2026-08-11",
        "2026-09-21",
        "2026-09-22",
        "2026-09-23",
        "2026-10-12",
        "2026-11-03",
        "2026-11-23",
    ];
    let found: Vec<String> = date("2026-01-01")
        .iter_days()
        .take_while(|d| *d < date("2027-01-01"))
        .filter(|d| is_holiday(*d))
        .map(|d| d.to_string())
        .collect();
    assert_eq!(found, expected);
    assert_eq!(holiday_name(date("2026-05-06")), Some("振替休日"));
    assert_eq!(holiday_name(date("2026-09-22")), Some("国民の休日"));
}

#[test]
fn calendar_follows_the_specification() {
    let cal = Config::embedded_default().calendar;
    let hours = |d: &str| cal.opening(date(d)).map(|o| o.hours.to_string());
    assert_eq!(
        hours("2026-11-24").as_deref(),
        Some("08:00-18:00"),
        "Tuesday"
    );
    assert_eq!(
        hours("2026-11-25").as_deref(),
        Some("08:00-20:00"),
        "Wednesday"
    );
    assert_eq!(hours("2026-11-23"), None, "勤労感謝の日");
    assert_eq!(hours("2026-11-22"), None, "an ordinary Sunday");
    assert_eq!(
        hours("2026-12-13").as_deref(),
        Some("08:30-18:00"),
        "2nd Sunday"
    );
    assert_eq!(
        hours("2026-11-28").as_deref(),
        Some("08:30-18:00"),
        "4th Saturday"
    );
    assert_eq!(hours("2026-11-21"), None, "3rd Saturday");
    assert_eq!(hours("2026-12-29"), None, "year-end closure");
    assert_eq!(hours("2027-01-04").as_deref(), Some("08:00-18:00"));
    assert_eq!(
        hours("2027-03-28").as_deref(),
        Some("08:30-18:00"),
        "last Sunday of March"
    );
    assert_eq!(
        hours("2027-04-04").as_deref(),
        Some("08:30-18:00"),
        "1st Sunday of April"
    );
    assert_eq!(
        hours("2027-04-11").as_deref(),
        Some("08:30-18:00"),
        "2nd Sunday of April"
    );
    assert_eq!(hours("2027-04-18"), None);
    // A Wednesday that is a holiday stays closed.
    assert_eq!(hours("2026-04-29"), None, "昭和の日 on a Wednesday");
}

/// Every broken configuration names its file and line; see the table.
#[test]
fn config_errors_name_file_and_line() {
    let base = DEFAULT_OFFICE_TOML;
    let cases: &[(&str, &str, &str)] = &[
        (
            "serves = [\"koseki\"]\n\n[[counters]]\nnumber = 2",
            "serves = [\"kosekii\"]\n\n[[counters]]\nnumber = 2",
            "unknown queue \"kosekii\"",
        ),
        (
            "numbers = { from = 1001, to = 1999 }",
            "numbers = { from = 900, to = 1999 }",
            "overlap",
        ),
        ("colour = \"#1b7a3a\"", "colour = \"green\"", "colour"),
        (
            "hours = \"08:00-20:00\"",
            "hours = \"20:00-08:00\"",
            "closing time",
        ),
        (
            "on = \"2nd sun\"",
            "on = \"second sunday\"",
            "not a day rule",
        ),
        (
            "utc_offset = \"+09:00\"",
            "utc_offset = \"JST\"",
            "utc_offset",
        ),
        ("number = 25\n", "number = 24\n", "defined twice"),
        ("shape = \"square\"", "shape = \"blob\"", "unknown variant"),
        ("alpha = 0.02", "beta = 1\nalpha = 0.02", "unknown field"),
    ];
    for (from, to, want) in cases {
        assert!(base.contains(from), "fixture {from:?}");
        let text = base.replacen(from, to, 1);
        let err = Config::parse(&text, "office.toml").expect_err(want);
        let at = base.find(from).expect("fixture");
        let line = text[..at].matches('\n').count() + 1;
        assert_eq!(err.file, "office.toml");
        assert!(err.message.contains(want), "{err} should mention {want}");
        assert!(
            err.line == line || err.line + 1 == line || err.line == line + 1,
            "{err}: expected near line {line}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("office.toml:{}: ", err.line)));
    }
}

#[test]
fn a_queue_nobody_serves_is_refused() {
    let text = DEFAULT_OFFICE_TOML
        .replace("serves = [\"koufu\"]", "serves = [\"koseki\"]")
        .replace("serves = [\"koufu\", \"koseki\"]", "serves = [\"koseki\"]");
    let err = Config::parse(&text, "x.toml").expect_err("koufu unserved");
    assert!(err.message.contains("served by no counter"), "{err}");
}

/// Outside tester pages-rt8 F1: a queue named 「　」 (one full-width
/// space) was saved and the kiosk's button lost its name. New settings
/// with a blank name in any language given are refused at the name's
/// line; a configuration already in the log still opens.
#[test]
fn a_blank_name_is_refused_in_new_settings_but_a_recorded_one_still_opens() {
    for (from, to) in [
        ("ja = \"住民異動の受付\"", "ja = \"　\""),
        ("ja = \"住民異動の受付\"", "ja = \"\""),
        ("en = \"Moving in, out or within the ward\"", "en = \" \""),
        ("ja = \"戸籍係\"", "ja = \" \""),
    ] {
        let text = DEFAULT_OFFICE_TOML.replacen(from, to, 1);
        assert_ne!(text, DEFAULT_OFFICE_TOML, "{from}");
        let line = text
            .lines()
            .position(|l| l.contains(to))
            .expect("changed line")
            + 1;
        let e = Config::parse(&text, "office.toml").expect_err("blank name");
        assert!(e.message.contains("must not be blank"), "{e}");
        assert_eq!(e.line, line, "{e}");
        assert!(Config::parse_recorded(&text, "event log record 1").is_ok());
    }
}
