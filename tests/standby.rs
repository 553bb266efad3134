//! A standby follows the primary over loopback, refuses commands, and after
//! the primary dies is promoted and carries on the day with no number issued
//! twice (R9).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::{cmd, Server};

#[test]
fn the_standby_follows_and_takes_over() {
    let mut primary = Server::start();
    let (pc, pcsrf) = primary.admin();
    crate::server::open_today(&pc, &primary, &pcsrf, &[10]);
    for _ in 0..3 {
        cmd(
            &pc,
            &primary,
            &pcsrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
    }
    let link: Value = pc
        .post(primary.url("/api/devices"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"name": "standby-1", "role": "standby"}))
        .send()
        .expect("device")
        .json()
        .expect("json");
    let link = link["enrol_url"].as_str().expect("link").to_string();
    let mut standby = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &primary.base,
            "--enrol-link",
            &link,
        ],
    );
    // The standby takes the primary's accounts: its own first-start admin
    // is replaced by the primary's (issue 24).
    crate::failover::sign_in_once_followed(
        &primary,
        &standby,
        "admin",
        &primary.admin_password,
        30,
    )
    .expect("the accounts never arrived");
    standby.admin_password = primary.admin_password.clone();
    let (sc, scsrf) = standby.admin();
    // Caught up, then a new command reaches it within a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::server::seq(&sc, &standby) < crate::server::seq(&pc, &primary) {
        assert!(Instant::now() < deadline, "the standby never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, v) = cmd(
        &pc,
        &primary,
        &pcsrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let made = Instant::now();
    let want = v["seq"].as_u64().expect("seq");
    while crate::server::seq(&sc, &standby) < want {
        assert!(
            made.elapsed() < Duration::from_secs(1),
            "not on the standby within 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status: Value = sc
        .get(standby.url("/api/status"))
        .send()
        .expect("status")
        .json()
        .expect("json");
    assert_eq!(
        status["queues"][1]["waiting"], 4,
        "the standby holds the primary's queue"
    );
    // The standby refuses commands.
    let (st, v) = cmd(
        &sc,
        &standby,
        &scsrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "standby");
    // The primary dies; the standby is promoted and carries on.
    primary.stop();
    // From the command line (`madoguchi promote`), as an operator would.
    let pw = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(pw.path(), format!("{}\n", standby.admin_password)).expect("pw");
    let out = crate::util::office()
        .args(["promote", "--url", &standby.url(""), "--password-file"])
        .arg(pw.path())
        .output()
        .expect("promote");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is now the primary"));
    // A second promotion is refused with a clear message.
    let again = crate::util::office()
        .args(["promote", "--url", &standby.url(""), "--password-file"])
        .arg(pw.path())
        .output()
        .expect("promote");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not a standby"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let (st, v) = cmd(
        &sc,
        &standby,
        &scsrf,
        json!({"command": "issue_ticket", "category": "idou"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["ticket"], 1005,
        "numbering goes on; no number is issued twice"
    );
    let (st, v) = cmd(
        &sc,
        &standby,
        &scsrf,
        json!({"command": "call_next", "counter": 10}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let admin = sc
        .get(standby.url("/admin"))
        .send()
        .expect("admin")
        .text()
        .expect("html");
    assert!(
        admin.contains("promoted to primary"),
        "the failover is in the fault records"
    );
}

#[test]
fn the_primary_refuses_a_standby_whose_log_differs() {
    let s = Server::start();
    let (c, _) = s.admin();
    let r = c
        .get(s.url("/api/replication?after=1&hash=00"))
        .send()
        .expect("replication");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.json::<Value>().expect("json")["error"]["code"],
        "diverged"
    );
    // Strangers get nothing.
    let r = Server::client()
        .get(s.url("/api/replication?after=0"))
        .send()
        .expect("anon");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
