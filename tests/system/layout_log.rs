//! /preview and the layouts folder (issue 18): a broken layout is warned
//! about once per distinct error, not about seven times a second while it
//! stays broken (reading the layouts used to wake the folder watcher, which
//! reloaded them, which read them…). Needs no browser; it lives here because
//! it reads the server's log, which the shared test server throws away.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_broken_layout_is_warned_about_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let layouts = dir.path().join("layouts");
    std::fs::create_dir_all(&layouts).expect("layouts");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts");
    for entry in std::fs::read_dir(repo).expect("layouts") {
        let p = entry.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().to_string();
        if name.starts_with("display_") {
            std::fs::copy(&p, layouts.join(&name)).expect("copy");
        }
    }
    let log = dir.path().join("serve.log");
    let mut child = crate::util::office()
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--layouts"])
        .arg(&layouts)
        .env("MADOGUCHI_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        assert!(Instant::now() < deadline, "the server did not start");
        if line.expect("line").starts_with("listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    std::thread::sleep(Duration::from_millis(500));
    let board = layouts.join("display_board.html");
    std::fs::write(&board, "{% for %}\n").expect("break");
    // Three seconds broken: the old loop logged about twenty warnings.
    std::thread::sleep(Duration::from_secs(3));
    let mut text = String::new();
    std::fs::File::open(&log)
        .expect("log")
        .read_to_string(&mut text)
        .expect("read");
    let _ = child.kill();
    let _ = child.wait();
    let warnings = text.matches("layout error").count();
    assert_eq!(warnings, 1, "one warning per distinct error:\n{text}");
    let reloads = text.matches("layouts reloaded").count();
    assert!(
        reloads <= 1,
        "reading the layouts does not reload them:\n{text}"
    );
}
