//! Helpers: run the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_madoguchi"))
}

/// How far the tests' office clock is from the wall clock: fixed once per
/// test process, so every server, restart and command of one run reads the
/// same running clock.
fn clock_shift() -> chrono::TimeDelta {
    static SHIFT: std::sync::OnceLock<chrono::TimeDelta> = std::sync::OnceLock::new();
    *SHIFT.get_or_init(|| {
        let jst = chrono::FixedOffset::east_opt(9 * 3600).expect("jst");
        let now = chrono::Utc::now();
        let ten = now
            .with_timezone(&jst)
            .date_naive()
            .and_hms_opt(10, 0, 0)
            .expect("10:00")
            .and_local_timezone(jst)
            .single()
            .expect("jst has no gaps");
        ten.with_timezone(&chrono::Utc) - now
    })
}

/// The office's time now, as every binary the tests start reads it: 10:00
/// (JST) on the day the test process started, running at the wall clock's
/// pace. A suite run at midnight or at night meets neither a change of
/// business day nor closed hours (CI failed on both at 00:00 JST).
pub fn office_now() -> chrono::DateTime<chrono::FixedOffset> {
    (chrono::Utc::now() + clock_shift())
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("jst"))
}

/// `madoguchi` with the tests' office clock ([`office_now`]) set; a test
/// that sets `MADOGUCHI_CLOCK` itself afterwards overrides it.
pub fn office() -> Command {
    let mut c = Command::new(bin());
    c.env(
        madoguchi_core::clock::CLOCK_VAR,
        office_now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
    );
    c
}

/// Runs `madoguchi --data <data> <args>`.
pub fn run(data: &Path, args: &[&str]) -> Output {
    office()
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run madoguchi")
}

pub fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "madoguchi {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

pub fn log_bytes(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .expect("log")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect()
}

/// Today in the office's time zone (JST), as the servers the tests start
/// see it ([`office_now`]).
pub fn today() -> String {
    office_now().date_naive().to_string()
}

/// Copies a folder tree (a data folder, a log) as a file manager would.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}
