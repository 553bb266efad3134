//! The CLI as a user meets it.

use crate::util::{log_bytes, ok, run};

#[test]
fn help_explains_every_subcommand() {
    let dir = tempfile::tempdir().expect("tmp");
    let help = ok(dir.path(), &["--help"]);
    for sub in [
        "demo", "simulate", "import", "export", "apply", "status", "history", "audit",
    ] {
        assert!(help.contains(sub), "--help mentions {sub}");
    }
    assert!(help.contains("--data"));
    let import_help = ok(dir.path(), &["import", "--help"]);
    assert!(import_help.contains("none of it"), "{import_help}");
}

#[test]
fn demo_runs_a_day_into_a_new_folder_and_the_next_day_after() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let first = ok(&data, &["demo"]);
    assert!(first.contains("発券"), "{first}");
    assert!(data.join("log").is_dir());
    let second = ok(&data, &["demo", "--seed", "2"]);
    let date = |s: &str| {
        s.split(" を模擬運用")
            .next()
            .and_then(|h| h.split(" — ").nth(1))
            .map(str::to_string)
    };
    assert_ne!(
        date(&first),
        date(&second),
        "the second demo runs the next business day"
    );
    let verify = ok(&data, &["audit", "verify"]);
    assert!(verify.starts_with("OK: "), "{verify}");
}

#[test]
fn simulate_import_export_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let file = dir.path().join("days.jsonl");
    let f = file.to_str().expect("path");
    ok(
        &data,
        &[
            "simulate",
            "--days",
            "2",
            "--start",
            "2026-11-24",
            "--seed",
            "4",
            "--out",
            f,
        ],
    );
    let commands = std::fs::read_to_string(&file)
        .expect("read")
        .lines()
        .count();
    assert!(commands > 2000, "{commands} commands");
    ok(&data, &["import", f]);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&data, &["status", "--json"])).expect("json");
    assert_eq!(status["day"]["date"], "2026-11-25");
    let export = ok(&data, &["export"]);
    let records: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(records.len() as u64, status["seq"].as_u64().expect("seq"));
    assert_eq!(
        records[0]["events"][0]["type"], "config_applied",
        "the configuration travels with the export"
    );
    for w in records.windows(2) {
        assert_eq!(w[1]["prev"], w[0]["hash"], "the chain is in the export");
    }
    let history: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["history", "1001", "--date", "2026-11-24", "--json"],
    ))
    .expect("json");
    assert_eq!(history["number"], 1001);
    assert!(history["history"].as_array().expect("steps").len() >= 3);
    let text = ok(&data, &["history", "1001", "--date", "2026-11-24"]);
    assert!(text.contains("発券"), "{text}");
}

#[test]
fn a_bad_import_line_is_named_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let file = dir.path().join("day.jsonl");
    let f = file.to_str().expect("path");
    ok(&data, &["simulate", "--start", "2026-11-24", "--out", f]);
    ok(&data, &["status"]);
    let before = log_bytes(&data);
    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .expect("read")
        .lines()
        .map(String::from)
        .collect();
    lines.insert(
        300,
        "{\"time\": \"2026-11-24T10:00:00+09:00\", \"command\": \"complete\", \"counter\": 77}"
            .into(),
    );
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = run(&data, &["import", f]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 301"), "{err}");
    assert!(err.contains("there is no counter 77"), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(log_bytes(&data), before);

    std::fs::write(&file, "{\"time\": 5}\n").expect("write");
    let out = run(&data, &["import", f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 1"), "{err}");
    assert_eq!(log_bytes(&data), before);
}

#[test]
fn a_config_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let cfg = dir.path().join("office.toml");
    let text = madoguchi_default().replacen("serves = [\"idou\"]", "serves = [\"idoo\"]", 1);
    std::fs::write(&cfg, &text).expect("write");
    let line = text.lines().position(|l| l.contains("idoo")).expect("line") + 1;
    let out = run(&data, &["--config", cfg.to_str().expect("path"), "status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("office.toml:{line}: ")), "{err}");
    assert!(err.contains("unknown queue \"idoo\""), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn apply_answers_each_command_with_its_outcome() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let input = [
        r#"{"time":"2026-11-24T07:30:00+09:00","command":"open_day","date":"2026-11-24"}"#,
        r#"{"time":"2026-11-24T08:00:00+09:00","command":"issue_ticket","category":"idou","kiosk":"k1"}"#,
        r#"{"time":"2026-11-24T08:00:05+09:00","command":"call_next","counter":3}"#,
        r#"not json"#,
    ]
    .join("\n");
    let mut child = crate::util::office()
        .arg("--data")
        .arg(&data)
        .arg("apply")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(answers.len(), 4);
    assert_eq!(answers[0]["ok"], true);
    assert_eq!(answers[1]["ticket"], 1001);
    assert_eq!(answers[2]["ok"], false);
    assert_eq!(answers[2]["code"], "counter_closed");
    assert_eq!(answers[2]["message_ja"], "3 番窓口は閉じています");
    assert_eq!(answers[3]["code"], "bad_line");
}

fn madoguchi_default() -> String {
    let dir = tempfile::tempdir().expect("tmp");
    ok(dir.path(), &["default-config"])
}

/// The import example in README.md imports as written.
#[test]
fn the_readme_import_example_works() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let block = readme
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("json block");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("example.jsonl");
    std::fs::write(&file, block).expect("write");
    let data = dir.path().join("data");
    ok(&data, &["import", file.to_str().expect("path")]);
    let t: serde_json::Value =
        serde_json::from_str(&ok(&data, &["history", "1001", "--json"])).expect("json");
    assert_eq!(t["queue"], "koufu");
    assert_eq!(t["status"]["status"], "waiting");
}
