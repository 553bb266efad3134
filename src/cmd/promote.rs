//! `madoguchi promote`: makes a standby the primary (R9) from the command
//! line — the same as the button on the standby's admin page. It signs in
//! as an administrator of the standby and asks it to promote itself; the
//! standby then stops following and accepts commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The standby's address, e.g. http://192.168.10.6:8080
    #[arg(long)]
    pub url: String,
    /// An administrator account on the standby.
    #[arg(long, default_value = "admin")]
    pub user: String,
    /// A file holding the password; else MADOGUCHI_PASSWORD; else it is
    /// read from standard input.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Promote although the standby is not its primary's standby of record
    /// (the primary refused it, or revoked or deleted it, or enrolled
    /// another standby). Only when the old primary and every other standby
    /// are switched off for good: otherwise numbers are given twice.
    #[arg(long)]
    pub override_not_of_record: bool,
}

fn password(a: &Args) -> Result<String> {
    if let Some(f) = &a.password_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    if let Ok(p) = std::env::var("MADOGUCHI_PASSWORD") {
        return Ok(p);
    }
    eprint!("password for {}: ", a.user);
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn message(v: &Value) -> String {
    let e = &v["error"];
    match (e["message_ja"].as_str(), e["message_en"].as_str()) {
        (Some(ja), Some(en)) => format!("{ja} ({en})"),
        _ => v.to_string(),
    }
}

pub fn run(a: Args) -> Result<()> {
    let base = a.url.trim_end_matches('/');
    let pw = password(&a)?;
    let http = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": a.user, "password": pw}))
        .send()
        .with_context(|| format!("cannot reach the standby at {base}"))?;
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("sign-in refused: {}", message(&v));
    }
    let csrf = v["csrf_token"].as_str().unwrap_or_default().to_string();
    let r = http
        .post(format!("{base}/api/promote"))
        .header("X-CSRF-Token", csrf)
        .json(&json!({"override_not_of_record": a.override_not_of_record}))
        .send()
        .with_context(|| format!("cannot reach the standby at {base}"))?;
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("not promoted: {}", message(&v));
    }
    if v["overridden"] == true {
        eprintln!(
            "{}",
            v["message_ja"]
                .as_str()
                .unwrap_or("【強制昇格】登録外の予備機を昇格しました")
        );
    }
    println!("promoted: {base} is now the primary and accepts commands");
    println!(
        "point kiosks, staff stations and displays at it (or move the address: deploy/README.md)"
    );
    Ok(())
}
