//! Retention (R14): `madoguchi archive` moves the oldest closed log
//! segments to an archive folder on a stopped office; the server then runs
//! on the anchored log, `audit verify --archive` checks the archive and the
//! live log together, and a full backup of it restores to the same state.

use serde_json::json;

use crate::server::{cmd, Server};
use crate::util::{ok, run, today};

/// Imports sixty simulated business days from `start` into `data`, a fifth
/// of the usual volume, in segments of 256 KiB: many closed segments, and
/// a test of seconds rather than minutes (at full volume into 32 MiB
/// segments each test took 4–7 minutes of a debug build, the longest of
/// the suite).
fn import_days(data: &std::path::Path, work: &std::path::Path, start: &str) {
    let file = work.join("history.jsonl").display().to_string();
    ok(
        data,
        &[
            "simulate", "--days", "60", "--volume", "0.2", "--start", start, "--out", &file,
        ],
    );
    let out = crate::util::office()
        .env("MADOGUCHI_SEGMENT_BYTES", "262144")
        .arg("--data")
        .arg(data)
        .args(["import", &file])
        .output()
        .expect("run madoguchi");
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let segments = std::fs::read_dir(data.join("log"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "mlog"))
            })
            .count()
        })
        .unwrap_or(0);
    assert!(segments > 5, "closed segments to archive: {segments}");
}

#[test]
fn an_archived_office_runs_verifies_and_restores() {
    let mut s = Server::start();
    s.stop();
    let data = s.data_dir().join("data");
    let work = tempfile::tempdir().expect("tmp");
    let p = |n: &str| work.path().join(n).display().to_string();
    // Sixty business days from June, in many segments.
    import_days(&data, work.path(), "2026-06-01");
    let before = ok(&data, &["audit", "verify"]);
    let state = before
        .rsplit("state ")
        .next()
        .expect("state")
        .trim()
        .to_string();

    let out = ok(
        &data,
        &["archive", "--keep-days", "30", "--to", &p("archive")],
    );
    assert!(out.contains("archived records 1–"), "{out}");
    assert!(out.contains("copying"), "progress is shown: {out}");
    assert!(work
        .path()
        .join("archive")
        .join("00000000000000000001.mlog")
        .exists());
    assert!(!data.join("log").join("00000000000000000001.mlog").exists());
    let verified = ok(&data, &["audit", "verify", "--archive", &p("archive")]);
    assert!(verified.contains("OK: archive"), "{verified}");
    assert!(
        verified.ends_with(&format!("state {state}\n")),
        "same office: {verified}"
    );

    // Nothing more is that old.
    let again = ok(
        &data,
        &["archive", "--keep-days", "30", "--to", &p("archive")],
    );
    assert!(again.contains("nothing to archive"), "{again}");

    // The server runs on the anchored log and records the step for auditors.
    s.restart();
    let (c, csrf) = s.admin();
    let (status, _) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    assert!(status.is_success());
    let busy = run(
        &data,
        &["archive", "--keep-days", "30", "--to", &p("archive")],
    );
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    // Every record of sixty days: long work for a debug build on a busy
    // machine (the client's 10 s is for single requests).
    let audit = c
        .get(s.url("/api/audit/export"))
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .expect("audit export")
        .text()
        .expect("text");
    assert!(
        audit.contains("log_archived"),
        "the step is in the audit log"
    );
    // A standby starting from nothing is told to start from a backup.
    let r = c
        .get(s.url("/api/replication?after=0"))
        .send()
        .expect("replication");
    assert_eq!(r.status(), 400);
    let body = r.text().expect("text");
    assert!(
        body.contains("archived") && body.contains("full backup"),
        "{body}"
    );
    s.stop();
    ok(&data, &["audit", "verify", "--archive", &p("archive")]);

    // A full backup carries the anchor; its restore is the same office.
    ok(&data, &["backup", "--out", &p("full.bak")]);
    let restored = work.path().join("restored");
    ok(&restored, &["restore", &p("full.bak")]);
    let a = ok(&data, &["audit", "verify"]);
    let b = ok(&restored, &["audit", "verify"]);
    assert_eq!(a.split("last hash").nth(1), b.split("last hash").nth(1));
}

#[test]
fn a_changed_archive_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n).display().to_string();
    let data = dir.path().join("data");
    import_days(&data, dir.path(), "2026-05-01");
    ok(
        &data,
        &["archive", "--keep-days", "30", "--to", &p("archive")],
    );
    let seg = dir.path().join("archive").join("00000000000000000001.mlog");
    let mut bytes = std::fs::read(&seg).expect("segment");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&seg, bytes).expect("write");
    let out = run(&data, &["audit", "verify", "--archive", &p("archive")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FAILED in the archive") && err.contains("corrupt at record"),
        "{err}"
    );
    // The live log alone still verifies.
    ok(&data, &["audit", "verify"]);
}
