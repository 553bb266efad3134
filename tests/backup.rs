//! Backup and restore (R10): full and incremental backups, taken while the
//! server runs, restore to an identical log and state; a damaged, truncated
//! or out-of-order backup is refused and nothing is written.

use serde_json::json;

use crate::server::{cmd, Server};
use crate::util::{ok, run};

fn verify_line(data: &std::path::Path) -> String {
    let out = ok(data, &["audit", "verify"]);
    // "OK: N records, …; last hash H, state S"
    out.split("last hash ")
        .nth(1)
        .expect("hashes")
        .trim()
        .to_string()
}

#[test]
fn full_and_incremental_backups_restore_an_identical_office() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n).display().to_string();
    let data = dir.path().join("data");
    ok(
        &data,
        &[
            "simulate",
            "--days",
            "2",
            "--start",
            "2026-11-24",
            "--volume",
            "0.3",
            "--out",
            &p("a.jsonl"),
        ],
    );
    ok(
        &data,
        &[
            "simulate",
            "--days",
            "1",
            "--start",
            "2026-11-26",
            "--volume",
            "0.3",
            "--seed",
            "9",
            "--out",
            &p("b.jsonl"),
        ],
    );
    ok(&data, &["import", &p("a.jsonl")]);
    ok(&data, &["backup", "--out", &p("full.bak")]);
    ok(&data, &["import", &p("b.jsonl")]);
    ok(
        &data,
        &["backup", "--out", &p("incr.bak"), "--after", &p("full.bak")],
    );
    let original = verify_line(&data);

    let restored = dir.path().join("restored");
    ok(&restored, &["restore", &p("full.bak"), &p("incr.bak")]);
    assert_eq!(verify_line(&restored), original, "same last hash and state");

    // Nothing new: an incremental backup says so.
    let out = run(
        &data,
        &["backup", "--out", &p("none.bak"), "--after", &p("incr.bak")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing new"));

    // Refusals, each leaving no folder behind.
    let refuse = |files: &[&str], want: &str| {
        let target = dir.path().join("refused");
        let mut args = vec!["restore"];
        args.extend(files);
        let out = run(&target, &args);
        assert!(!out.status.success(), "{files:?} should be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{files:?}: {err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert!(!target.exists(), "nothing half-written for {files:?}");
    };
    refuse(&[&p("incr.bak")], "start with a full backup");
    refuse(
        &[&p("incr.bak"), &p("full.bak")],
        "start with a full backup",
    );
    let mut bytes = std::fs::read(p("full.bak")).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(p("damaged.bak"), &bytes).expect("write");
    refuse(&[&p("damaged.bak")], "checksum does not match");
    let whole = std::fs::read(p("full.bak")).expect("read");
    std::fs::write(p("short.bak"), &whole[..whole.len() - 100]).expect("write");
    refuse(&[&p("short.bak")], "cut short");
    // Never over an existing folder.
    let out = run(&restored, &["restore", &p("full.bak")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds data"));
}

#[test]
fn a_backup_while_the_server_takes_commands() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    let today = crate::util::today();
    cmd(&c, &s, &csrf, json!({"command": "open_day", "date": today}));
    let data = s.data_dir().join("data");
    let out_dir = tempfile::tempdir().expect("out");
    let writer = {
        let base = s.base.clone();
        let c = c.clone();
        let csrf = csrf.clone();
        std::thread::spawn(move || {
            for _ in 0..150 {
                let r = c
                    .post(format!("{base}/api/commands"))
                    .header("X-CSRF-Token", &csrf)
                    .json(&json!({"command": "issue_ticket", "category": "koseki"}))
                    .send()
                    .expect("issue");
                assert!(r.status().is_success());
            }
        })
    };
    let mut backups: Vec<String> = Vec::new();
    for i in 0..5 {
        let f = out_dir
            .path()
            .join(format!("b{i}.bak"))
            .display()
            .to_string();
        let prev = backups.last().cloned();
        let mut args = vec!["backup", "--out", &f];
        if let Some(p) = &prev {
            args.extend(["--after", p.as_str()]);
        }
        let out = run(&data, &args);
        if out.status.success() {
            backups.push(f);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    writer.join().expect("writer");
    assert!(!backups.is_empty());
    let target = out_dir.path().join("restored");
    let mut args = vec!["restore"];
    args.extend(backups.iter().map(String::as_str));
    let out = run(&target, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The restored log is a prefix of the live one: same records, in order.
    // (The live folder is locked by the server; a backup of it is not.)
    let all = out_dir.path().join("all.bak").display().to_string();
    ok(&data, &["backup", "--out", &all]);
    let everything = out_dir.path().join("everything");
    ok(&everything, &["restore", &all]);
    let restored: Vec<String> = ok(&target, &["export"]).lines().map(String::from).collect();
    let live: Vec<String> = ok(&everything, &["export"])
        .lines()
        .map(String::from)
        .collect();
    assert!(restored.len() >= 2 && restored.len() <= live.len());
    let strip = |l: &str| {
        let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
        v.as_object_mut().map(|o| o.remove("time"));
        v
    };
    for (a, b) in restored.iter().zip(&live) {
        assert_eq!(strip(a), strip(b), "the restored records are the live ones");
    }
}
