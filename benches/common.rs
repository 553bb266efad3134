//! Shared by the benchmarks that run the real office server: start it on a
//! loopback port with a configuration and read its start-up lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `madoguchi serve`. (Each bench reads the fields it needs.)
#[allow(dead_code)]
pub struct Served {
    pub child: Child,
    pub base: String,
    pub admin_password: String,
    pub display_enrol: String,
}

/// Starts the server on 127.0.0.1:0 with `config_toml`, data in `dir/data`.
#[allow(dead_code)]
pub fn serve(dir: &Path, config_toml: &str) -> Served {
    serve_args(dir, config_toml, &[])
}

/// As [`serve`], with more options after `serve`.
#[allow(dead_code)]
pub fn serve_args(dir: &Path, config_toml: &str, extra: &[&str]) -> Served {
    let cfg = dir.join("office.toml");
    std::fs::write(&cfg, config_toml).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_madoguchi"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut base, mut pw, mut enrol) = (String::new(), String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(b) = line.strip_prefix("listening on ") {
            base = b.trim().into();
        }
        if let Some(p) = line.trim().strip_prefix("admin password: ") {
            pw = p.into();
        }
        if let Some(e) = line.trim().strip_prefix("display enrolment:") {
            enrol = e.trim().into();
            break;
        }
    }
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        base,
        admin_password: pw,
        display_enrol: enrol,
    }
}
