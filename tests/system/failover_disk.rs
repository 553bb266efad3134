//! Issue 24 on a full disk (R10, R18): the fence's hold files cannot be
//! written on a small tmpfs filled to its last byte (mounting needs root,
//! as CI runs), yet every hold takes effect in memory and the failure is a
//! named fault on /admin.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::json;

use crate::failover::{
    data_of, enrolled_primary, issue, number, office_admin_send, page_text, Office,
};
use crate::util::ok;

/// Unmounts the small tmpfs of a full-disk test when it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem under `dir` to its last byte (a file `filler`).
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8; 512]).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
}

/// Issue 24 on a full disk (a real one: a small tmpfs, as root): an
/// unverified epoch claim and the numbers a device saw cannot be written
/// to `<data>/epoch-claims`, yet the claim holds commands in memory and
/// the failure is a named fault (`hold_not_written`) on /admin; the
/// numbers are still raised above what the device saw once confirmed.
#[test]
fn a_full_disk_keeps_a_claim_hold_in_memory_and_names_the_fault() {
    let e = enrolled_primary();
    let dir = tempfile::tempdir().expect("tmp");
    let bak = dir.path().join("full.bak");
    ok(
        &data_of(&e.primary),
        &["backup", "--out", &bak.display().to_string()],
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "this test mounts a small tmpfs and needs root (CI runs as root)"
    );
    let _mount = Mount(mnt.clone());
    let spare = mnt.join("spare");
    ok(&spare, &["restore", &bak.display().to_string()]);
    let restored = Office::start(&spare, &[]);
    let r = Client::new()
        .get(format!("{}/api/status", restored.base))
        .bearer_auth(&e.kiosk)
        .send()
        .expect("status");
    let own = r
        .headers()
        .get("madoguchi-issued")
        .and_then(|v| v.to_str().ok())
        .expect("issued header")
        .to_string();
    let date = own.split(' ').next().unwrap_or_default().to_string();
    fill(&mnt);
    let r = Client::new()
        .post(format!("{}/api/commands", restored.base))
        .bearer_auth(&e.kiosk)
        .header("Madoguchi-Epoch", "1")
        .header("Madoguchi-Issued", format!("{date} idou=1010"))
        .json(&json!({"command": "issue_ticket", "category": "idou"}))
        .send()
        .expect("command");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let written = std::fs::read_to_string(spare.join("epoch-claims")).unwrap_or_default();
    assert!(
        !written.contains("kiosk-1"),
        "the disk took it after all: {written}"
    );
    std::fs::remove_file(mnt.join("filler")).expect("free");
    let pw = e.primary.admin_password.clone();
    let (st, v) = office_admin_send(
        &restored.base,
        &pw,
        "/api/standby/confirm-off",
        // The kiosk's report is a hint: the admin types the number seen
        // (insider-rt9 F7, fence9).
        json!({"hold": "restored", "highest": {"idou": 1010}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["resume_from"], json!({"idou": 1011}), "{v}");
    // The claim still holds (in memory), and /admin names the fault.
    let (st, v) = issue(&restored.base, &e.kiosk);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "unverified_epoch_claim", "{v}");
    let admin = page_text(&restored.base, "/admin", Some(("admin", &pw)), None);
    assert!(
        admin.contains("hold_not_written")
            && admin.contains("受付停止を書けない")
            && admin.contains("kiosk-1：第1期"),
        "{admin}"
    );
    let (st, v) = office_admin_send(
        &restored.base,
        &pw,
        "/api/standby/confirm-off",
        json!({"hold": "epoch_claim", "highest": {"idou": 1010}}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = issue(&restored.base, &e.kiosk);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(number(&v), 1011, "{v}");
}
