//! `serve --standby-of URL --enrol-link LINK --rejoin` (issue 24): the old
//! primary, repaired, becomes the standby of the machine promoted in its
//! place. Its log may hold records the new primary never saw (the diverged
//! tail: written after the last record the standby copied). Those records
//! are never served: the whole data folder is moved aside, kept whole as
//! `<data>.diverged-<time>`, the tickets of the tail are listed for staff
//! (printed, and in `diverged-tickets.txt` and the fault records of the new
//! folder), and the server starts as an empty standby that copies the new
//! primary's log from record 1. Its host settings (`host.toml`) go with it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_core::log;
use madoguchi_core::store::hex;
use serde_json::Value;

/// Whether the new primary's record `seq` has this hash. The new primary
/// always holds records after any it shares with us (its `promoted` record
/// at least), so an empty answer means `seq` is beyond its log. Each answer's
/// lease grant is echoed in the next question, so the new primary keeps
/// taking commands while its new standby enrols and searches.
#[allow(clippy::too_many_arguments)] // one request of the search, with its link state
async fn same_at(
    http: &reqwest::Client,
    primary: &str,
    token: &str,
    seq: u64,
    hash: &str,
    grant: &mut Option<String>,
    key: &ed25519_dalek::SigningKey,
    nonce: &mut String,
    primary_key: &str,
    seal: &str,
) -> Result<bool> {
    use super::replication::{checked, Got};
    // A request without the new primary's nonce is answered with one only
    // (insider-rt11 M1); while an unused one is fresh, with none
    // (insider-rt13 A2): asked again a second later, a few times.
    for _ in 0..6 {
        let lease = grant.clone().unwrap_or_default();
        // Signed with the new standby's link key, as every request of a
        // standby is (`link_key.rs`), with the nonce of the last answer.
        // With the new standby's sealing key: the new primary sends its
        // accounts sealed for it, never in clear (issue 23/24 D1, R11);
        // the search takes none of them.
        let msg = super::link_key::message(nonce, seq, hash, &lease, "");
        let (k, sig) = super::link_key::sign_text(key, &super::link_key::with_seal(msg, seal));
        let url = format!(
            "{primary}/api/replication?after={seq}&hash={hash}&lease={lease}&key={k}&sig={sig}&nonce={nonce}&seal={seal}"
        );
        let sent = http.get(&url).bearer_auth(token).send().await;
        // Which tail is listed as diverged is decided only on the new
        // primary's signed answers (outside tester insider-rt12 A1).
        let token_sha256 = super::link_key::token_sha256(token);
        let to = super::link_key::AnswerFor {
            kind: super::link_key::AnswerKind::Records,
            token_sha256: &token_sha256,
            key: &k,
            request_sig: &sig,
        };
        let r = match checked(sent, primary_key, to).await {
            Got::Signed(r) => r,
            // Without the request's URL: it carries the key and the
            // signature (outside tester insider-rt13 C3).
            Got::Failed(e) => anyhow::bail!(
                "新しい主機と連絡が取れません。新しい主機の電源とケーブル、アドレス（--standby-of）を確かめて、同じコマンドをもう一度実行してください。この機械の記録はまだ動かしていません / cannot reach the new primary ({}): check it and run the same command again; nothing was moved",
                e.without_url()
            ),
            Got::Forged(s) | Got::Plain(s) => anyhow::bail!(
                "the new primary's answer ({s}) is not signed by its answer key: it may have been changed on the way; check the cable and try again / 新しい主機の答えに主機の鍵の署名がありません（途中で書き換えられた恐れがあります）。ケーブルを確かめてやり直してください"
            ),
        };
        // A request is never sent twice as it was: one answered before
        // gets only the nonce it got then (insider-rt14 R1).
        *nonce = r
            .nonce
            .as_deref()
            .filter(|n| !n.is_empty())
            .map_or_else(super::link_key::own_nonce, str::to_string);
        match r.status {
            reqwest::StatusCode::PRECONDITION_REQUIRED => {
                if r.nonce.is_none() {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                continue;
            }
            s if s.is_success() => {
                let v: Value =
                    serde_json::from_slice(&r.body).context("the new primary's answer")?;
                if let Some(g) = v["grant"].as_str() {
                    *grant = Some(g.to_string());
                }
                return Ok(v["records"].as_array().is_some_and(|a| !a.is_empty()));
            }
            reqwest::StatusCode::CONFLICT => return Ok(false),
            // Beyond the new primary's end: not held there.
            reqwest::StatusCode::BAD_REQUEST => return Ok(false),
            s if s == reqwest::StatusCode::UNAUTHORIZED || s == reqwest::StatusCode::FORBIDDEN => {
                return Err(Refused(format!(
                    "新しい主機がこの機械を予備機として受け付けませんでした（{s}）。新しい主機の管理画面「端末」でこの機械の予備機を取り消し、予備機の登録用リンクを作り直して、新しいリンクで同じコマンドをもう一度実行してください。この機械の記録は動かしていません / the new primary refused this machine as its standby ({s}): revoke it there (管理 → 端末), make a new standby link and run the same command again with it; nothing was moved"
                ))
                .into())
            }
            s => anyhow::bail!(
                "新しい主機が {s} と答えました。しばらくして同じコマンドをもう一度実行してください。この機械の記録はまだ動かしていません / the new primary answered {s}: run the same command again later; nothing was moved"
            ),
        }
    }
    anyhow::bail!("{NO_USABLE_NONCE}")
}

/// The search got no answer it could use, six times over (outside tester
/// insider-rt14 R5: said in English only, with no next step).
const NO_USABLE_NONCE: &str = "新しい主機から要求の番号（nonce）を受け取れませんでした（途中の機器が答えを止めている恐れがあります）。主機と予備機の間の機器を確かめて、同じコマンドをもう一度実行してください。この機械の記録はまだ動かしていません / the new primary gave no usable nonce (something between the two machines may be stopping its answers): check the devices between them and run the same command again; nothing was moved";

/// The new primary's signed refusal of this machine's token (C3): the
/// token it enrolled with is dropped, so the next run takes a new link.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The folder's `LOCK`, taken: refused in plain words when a running
/// server holds it (not a disk failure: the operator skipped 「元の主機の
/// サーバーを止めます」).
fn folder_free(data: &Path) -> Result<Option<std::fs::File>> {
    let path = data.join("LOCK");
    let lock = match std::fs::File::options()
        .create(false)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        // No lock file: no server has run on it; the log read below says
        // what is missing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "このデータフォルダ（{}）は、いま動いているサーバーが使っています。元の主機のサーバーを止めてから（docs/manual-ja.md「元の主機の復帰」の手順2）、同じコマンドをもう一度実行してください。登録用リンクは使っておらず、フォルダも動かしていません / {} is in use by a running server: stop the old primary's server first (manual step 2), then run the same command again; the link was not used and nothing was moved",
            data.display(),
            data.display()
        );
    }
    Ok(Some(lock))
}

/// Moves `data` aside and prepares an empty standby folder in its place
/// with the standby token; returns the lines listing the diverged tail.
/// Also returns the last lease grant received, for the follower to echo.
pub async fn prepare(
    data: &Path,
    primary: &str,
    enrol_link: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    // Before the link is used or anything moves (outside tester
    // insider-rt10 N7): a server still running on this folder keeps
    // serving from it wherever it is moved. Held until the folder is
    // moved aside.
    let _held = folder_free(data)?;
    let records: Vec<log::Record> = log::read_live(&data.join("log"))
        .with_context(|| format!("cannot read the log in {}", data.display()))?
        .map(|r| r.map(|(_, rec)| rec))
        .collect::<Result<_, _>>()
        .context("the log cannot be read whole")?;
    // Enrol first into a temporary folder: the token must not be lost.
    let parked = PathBuf::from(format!(
        "{}.diverged-{}",
        data.display(),
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    ));
    let fresh = PathBuf::from(format!("{}.rejoining", data.display()));
    std::fs::create_dir_all(&fresh)
        .with_context(|| format!("cannot create {}", fresh.display()))?;
    let token = match super::replication::token(&fresh, enrol_link).await {
        Ok(t) => t,
        Err(e) => {
            // Nothing of a refused link stays behind (N2).
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
    };
    let key = super::link_key::own(&fresh)
        .with_context(|| format!("cannot make the link key in {}", fresh.display()))?;
    let primary_key = super::link_key::primary_answer_key(&fresh)
        .context("the new primary's answer key was not kept at the enrolment")?;
    let seal = super::link_key::own_seal_secret(&fresh)
        .map(|s| super::link_key::seal_public_hex(&s))
        .with_context(|| format!("cannot make the sealing key in {}", fresh.display()))?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    // The last record both logs share: a binary search on the hash chain
    // (if two logs agree at a record they agree on everything before it).
    let mut grant = None;
    let mut nonce = super::link_key::own_nonce();
    let (mut lo, mut hi) = (0usize, records.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let r = &records[mid - 1];
        if same_at(
            &http,
            primary,
            &token,
            r.seq,
            &hex(&r.hash()),
            &mut grant,
            &key,
            &mut nonce,
            &primary_key,
            &seal,
        )
        .await
        .inspect_err(|e| {
            if e.is::<Refused>() {
                // The refused token is not kept for the next run.
                let _ = std::fs::remove_dir_all(&fresh);
            }
        })? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let shared = if lo == 0 { 0 } else { records[lo - 1].seq };
    let refused = refused_seqs(data);
    let mut lines = Vec::new();
    for r in &records[lo..] {
        let body: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
        for e in body["events"].as_array().into_iter().flatten() {
            if e["type"] == "ticket_issued" {
                lines.push(tail_line(r.seq, e, &body["at"], refused.contains(&r.seq)));
            }
        }
    }
    let summary = format!(
        "rejoined as standby of {primary}: the logs agree up to record {shared}; {} later record(s) of the old log are kept in {} and never served; {} ticket(s) among them",
        records.len() - lo,
        parked.display(),
        lines.len()
    );
    // Records both logs hold that this machine answered `no_standby_lease`
    // (outside tester insider-rt11 M3): the new primary shows them waiting,
    // yet no kiosk printed them. Certain here, so said as such: cancel them
    // there.
    for r in records[..lo].iter().filter(|r| refused.contains(&r.seq)) {
        let body: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
        for e in body["events"].as_array().into_iter().flatten() {
            if e["type"] == "ticket_issued" {
                lines.push(held_line(r.seq, e, &body["at"]));
            }
        }
    }
    if let Ok(host) = std::fs::read(data.join("host.toml")) {
        std::fs::write(fresh.join("host.toml"), host).context("cannot copy host.toml")?;
    }
    // The relay signing key stays with the machine (outside tester
    // insider-rt9 F9: it went aside with the old log, and the rejoined
    // standby had none to publish with once promoted).
    let relay_key = crate::cmd::keys::key_path(data);
    if let Ok(k) = std::fs::read_to_string(&relay_key) {
        let to = crate::cmd::keys::key_path(&fresh);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).context("cannot keep the relay signing key")?;
        }
        super::link_key::write_private(&to, &k).context("cannot keep the relay signing key")?;
    }
    let mut text = format!("{summary}\n");
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(fresh.join("diverged-tickets.txt"), &text)
        .context("cannot write diverged-tickets.txt")?;
    std::fs::rename(data, &parked)
        .with_context(|| format!("cannot move {} aside", data.display()))?;
    std::fs::rename(&fresh, data)
        .with_context(|| format!("cannot put the new folder at {}", data.display()))?;
    crate::cmd::record_fault(data, "rejoin", &summary);
    for l in &lines {
        crate::cmd::record_fault(data, "rejoin-ticket", l);
    }
    let mut out = vec![summary];
    out.extend(lines);
    Ok((out, grant))
}

/// The records this primary wrote but answered `no_standby_lease`
/// (`App::replicated`): one number a line.
const REFUSED: &str = "refused-after-write";

/// Notes that record `seq` was answered as refused (best effort: a failure
/// only makes the rejoin's listing more cautious).
pub fn note_refused(data: &Path, seq: u64) {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join(REFUSED))
        // One write of the whole line: `writeln!` wrote the number and the
        // newline apart, and two refusals at the same moment interleaved
        // into one garbled line, so the rejoin listed neither (outside
        // tester insider-rt12 B1). An appended write this small is whole.
        .and_then(|mut f| f.write_all(format!("{seq}\n").as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, seq, "a refused record could not be noted");
    }
}

fn refused_seqs(data: &Path) -> std::collections::BTreeSet<u64> {
    std::fs::read_to_string(data.join(REFUSED))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A ticket both logs hold that this machine answered `no_standby_lease`:
/// never handed out, but waiting on the new primary (insider-rt11 M3).
fn held_line(seq: u64, e: &Value, at: &Value) -> String {
    let when = at
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "時刻不明".to_string());
    let category = e["category"].as_str().unwrap_or("?");
    let number = &e["number"];
    format!(
        "記録 {seq}: {category} {number}番（{when}）— 発券機には「受付を止めています」と答えたため、この番号札は渡っていません。新しい主機では待っている番号として残っているので、新しい主機で取消しにしてください / record {seq}: ticket {number} ({category}) was answered no_standby_lease and never handed out, but the new primary holds it as waiting: cancel it there"
    )
}

/// One ticket of the diverged tail, in Japanese with the time by this
/// machine's clock (outside tester insider-rt9 F2: English and epoch
/// milliseconds on the Japanese admin page), and whether a visitor can
/// hold it.
fn tail_line(seq: u64, e: &Value, at: &Value, refused: bool) -> String {
    let when = at
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "時刻不明".to_string());
    let category = e["category"].as_str().unwrap_or("?");
    let number = &e["number"];
    if refused {
        format!(
            "記録 {seq}: {category} {number}番（{when}）— 発券機には「受付を止めています」と答えたため、この番号札は渡っていません（対応は不要です） / record {seq}: ticket {number} ({category}) was answered no_standby_lease: never handed out"
        )
    } else {
        format!(
            "記録 {seq}: {category} {number}番（{when} 発券）— 新しい主機の記録にありません。この番号札を持つ来庁者がいるかもしれません / record {seq}: ticket {number} ({category}), issued at {when} — not in the new primary's log"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside tester insider-rt12 B1: refusals noted at the same moment
    /// from many threads each stay one whole line.
    #[test]
    fn refusals_noted_at_once_are_each_kept_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().to_path_buf();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let data = data.clone();
                std::thread::spawn(move || {
                    for i in 0..300u64 {
                        note_refused(&data, 1_000_000 + t * 1_000 + i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let seqs = refused_seqs(&data);
        let want: std::collections::BTreeSet<u64> = (0..8u64)
            .flat_map(|t| (0..300u64).map(move |i| 1_000_000 + t * 1_000 + i))
            .collect();
        assert_eq!(seqs, want);
    }
}
