//! Day-close reports follow the commit feed (issue 16, R7): a day closed by
//! `madoguchi import`, a day the server finds closed in its log at start,
//! and a day a standby follows all get the same reports, written by the
//! same subscriber.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::Server;
use crate::util::ok;

const DAYS: [&str; 2] = ["2026-11-26", "2026-11-27"];

fn report_files(folder: &Path) -> Vec<PathBuf> {
    DAYS.iter()
        .flat_map(|d| [format!("daily/{d}.csv"), format!("daily/{d}.xlsx")])
        .map(|f| folder.join("reports").join(f))
        .collect()
}

fn wait_for_reports(folder: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !report_files(folder).iter().all(|f| f.is_file()) {
        assert!(
            Instant::now() < deadline,
            "reports missing in {}",
            folder.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Files are renamed into place whole; give a second report of the same
    // batch time to land before comparing.
    std::thread::sleep(Duration::from_millis(300));
}

/// The cells of every sheet of an Excel report.
fn sheets(path: &Path) -> Vec<(String, Vec<Vec<String>>)> {
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook(path).expect("xlsx");
    book.sheet_names()
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).expect("sheet");
            let rows = range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect();
            (name, rows)
        })
        .collect()
}

fn assert_same_reports(want: &Path, got: &Path, who: &str) {
    for (w, g) in report_files(want).iter().zip(report_files(got)) {
        if w.extension().is_some_and(|x| x == "csv") {
            let (wb, gb) = (
                std::fs::read(w).expect("csv"),
                std::fs::read(&g).expect("csv"),
            );
            assert!(wb.len() > 100, "a real report");
            assert!(wb == gb, "{who}: {} differs", g.display());
        } else {
            assert_eq!(sheets(w), sheets(&g), "{who}: {} differs", g.display());
        }
    }
}

use crate::util::copy_dir;

#[test]
fn import_restart_and_standby_write_the_same_day_close_reports() {
    let dir = tempfile::tempdir().expect("tmp");
    let imported = dir.path().join("imported");
    let file = dir.path().join("days.jsonl");
    let f = file.to_str().expect("path");
    ok(
        &imported,
        &[
            "simulate", "--days", "2", "--start", DAYS[0], "--seed", "11", "--out", f,
        ],
    );
    ok(&imported, &["import", f]);
    for file in report_files(&imported) {
        assert!(file.is_file(), "import wrote {}", file.display());
    }

    // The server finds both days closed in a log it has not reported yet
    // (the cursor before them): it writes their reports when it starts.
    let log_of = |to: &Path| {
        copy_dir(&imported.join("log"), &to.join("log"));
        // The mark vouches for the log's end (a log alone is refused).
        std::fs::copy(imported.join("HIGHWATER"), to.join("HIGHWATER")).expect("mark");
        std::fs::write(to.join("reports.cursor"), "1\n").expect("cursor");
    };
    let restarted = Server::start_prepared(None, &["--listen", "127.0.0.1:0"], log_of);
    let restarted_data = restarted.data_dir().join("data");
    wait_for_reports(&restarted_data);
    assert_same_reports(&imported, &restarted_data, "the server at start");

    // A standby following that server copies its log from record 1 and
    // writes the same reports from its own feed.
    let (pc, pcsrf) = restarted.admin();
    let link: Value = pc
        .post(restarted.url("/api/devices"))
        .header("X-CSRF-Token", &pcsrf)
        .json(&json!({"name": "standby-1", "role": "standby"}))
        .send()
        .expect("device")
        .json()
        .expect("json");
    let link = link["enrol_url"].as_str().expect("link").to_string();
    let standby = Server::start_args(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--standby-of",
            &restarted.base,
            "--enrol-link",
            &link,
        ],
    );
    let standby_data = standby.data_dir().join("data");
    wait_for_reports(&standby_data);
    assert_same_reports(&imported, &standby_data, "the standby");
}
