//! Publishing to the internet relays (R6, R11; DESIGN.md data flow step 3):
//! after every render, the public subset of the site — the status page, the
//! mobile ticket page, their JSON, the congestion forecast and the assets
//! they load; numbers and counts only — is packed into a bundle, signed with the office key and
//! pushed outbound over HTTPS to each relay in `[[relays]]`. Nothing here
//! listens: a relay cannot reach the office.
//!
//! Each relay gets a full bundle first and then every `FULL_EVERY`, deltas
//! of the changed files in between, and an empty delta as a keep-alive so
//! that its data does not expire while the office is quiet. A relay that
//! refuses a bundle (missed one, restarted, sequence behind) gets a full one
//! next; a relay that cannot be reached is a fault record (R18), and so is
//! its recovery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use madoguchi_core::config::RelayTarget;
use madoguchi_relay::bundle::{pack, Header, Kind};
use sha2::{Digest, Sha256};

use super::App;
use crate::cmd::keys::SigningKey;

const FULL_EVERY: Duration = Duration::from_secs(60);
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long a relay may show a bundle as live without hearing more.
const EXPIRES_AFTER_S: i64 = 60;
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The public surfaces: (rendered file, paths it is published under).
const PUBLIC: &[(&str, &[&str])] = &[
    ("status.html", &["index.html", "displays/status.html"]),
    ("status.json", &["displays/status.json"]),
    ("ticket.html", &["m/index.html", "displays/ticket.html"]),
    ("ticket.json", &["displays/ticket.json"]),
];
const ASSETS: &[&str] = &["display.js", "display.css", "style.css", "common.js"];

/// The forecast pages change once a day; made once per date in the
/// office's time zone (a UTC day would change at 09:00 in Tokyo).
type ForecastCache = tokio::sync::Mutex<Option<(chrono::NaiveDate, Vec<(String, Vec<u8>)>)>>;

/// The files of the public site, as the relay will serve them.
async fn public_files(
    app: &App,
    forecast: &ForecastCache,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    // From the renderer's last build in memory, never read back from disk.
    let site = app.displays.site();
    let mut out = Vec::new();
    for (file, paths) in PUBLIC {
        let body = site
            .get(file)
            .ok_or_else(|| anyhow::anyhow!("{file} is not built yet"))?;
        for p in *paths {
            out.push((p.to_string(), body.bytes.to_vec()));
        }
    }
    for a in ASSETS {
        let text = super::pages::asset_text(a)
            .ok_or_else(|| anyhow::anyhow!("asset {a} is not built in"))?;
        out.push((format!("site/{a}"), text.as_bytes().to_vec()));
    }
    let css = super::pages::queues_css_text(app)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    out.push(("queues.css".into(), css.into_bytes()));
    let day = super::forecast::today(app)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut cache = forecast.lock().await;
    if cache.as_ref().is_none_or(|(d, _)| *d != day) {
        match super::forecast::public_files(app).await {
            Ok(files) => *cache = Some((day, files)),
            Err(e) => tracing::warn!(error = ?e, "forecast not published"),
        }
    }
    if let Some((_, files)) = cache.as_ref() {
        out.extend(files.iter().cloned());
    }
    Ok(out)
}

/// Sequence numbers above every earlier one, across office restarts: the
/// wall clock in milliseconds, or one more than the last, or above what a
/// relay reports it has seen.
#[derive(Debug)]
struct Sequence(AtomicU64);

impl Sequence {
    fn next(&self) -> u64 {
        let now = super::api::wall_now().0.max(0) as u64;
        let mut prev = self.0.load(Ordering::SeqCst);
        loop {
            let n = now.max(prev + 1);
            match self
                .0
                .compare_exchange(prev, n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return n,
                Err(p) => prev = p,
            }
        }
    }
    fn raise(&self, floor: u64) {
        self.0.fetch_max(floor, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Target {
    url: String,
    client: reqwest::Client,
    /// What the relay holds: its sequence and the hash of each file.
    base: Option<u64>,
    sent: HashMap<String, [u8; 32]>,
    last_full: Instant,
    last_push: Instant,
    down: bool,
}

fn client(t: &RelayTarget, data: &std::path::Path) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PUSH_TIMEOUT)
        .connect_timeout(PUSH_TIMEOUT);
    if let Some(ca) = &t.ca {
        let path = if ca.is_relative() {
            data.join(ca)
        } else {
            ca.clone()
        };
        let pem = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("relay CA {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("relay CA {}: {e}", path.display()))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    Ok(b.build()?)
}

/// Starts one pushing task per configured relay.
pub fn spawn(app: Arc<App>, relays: &[RelayTarget], key: SigningKey) -> anyhow::Result<()> {
    let key = Arc::new(key);
    let seq = Arc::new(Sequence(AtomicU64::new(0)));
    let forecast: Arc<ForecastCache> = Arc::new(tokio::sync::Mutex::new(None));
    for r in relays {
        let target = Target {
            url: r.url.clone(),
            client: client(r, &app.data)?,
            base: None,
            sent: HashMap::new(),
            last_full: Instant::now(),
            last_push: Instant::now(),
            down: false,
        };
        tokio::spawn(run(
            app.clone(),
            target,
            key.clone(),
            seq.clone(),
            forecast.clone(),
        ));
    }
    Ok(())
}

async fn run(
    app: Arc<App>,
    mut t: Target,
    key: Arc<SigningKey>,
    seq: Arc<Sequence>,
    forecast: Arc<ForecastCache>,
) {
    let mut wake = app.displays.rendered();
    loop {
        // A standby keeps quiet until promoted: the primary publishes.
        if !app.is_standby() {
            match public_files(&app, &forecast).await {
                Ok(files) => {
                    // A refusal that asks for a full bundle is answered at once.
                    for _ in 0..2 {
                        if push(&app, &mut t, &files, &key, &seq).await {
                            break;
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "public site not rendered yet"),
            }
        }
        tokio::select! {
            r = wake.changed() => if r.is_err() { break },
            () = tokio::time::sleep(KEEPALIVE) => {}
        }
    }
}

/// One push; `false` when the relay asked for a full bundle.
async fn push(
    app: &App,
    t: &mut Target,
    files: &[(String, Vec<u8>)],
    key: &SigningKey,
    seq: &Sequence,
) -> bool {
    let hashes: HashMap<String, [u8; 32]> = files
        .iter()
        .map(|(p, b)| (p.clone(), Sha256::digest(b).into()))
        .collect();
    let full = t.base.is_none() || t.last_full.elapsed() >= FULL_EVERY;
    let changed: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| full || t.sent.get(p) != hashes.get(p))
        .cloned()
        .collect();
    let removed: Vec<String> = if full {
        vec![]
    } else {
        t.sent
            .keys()
            .filter(|p| !hashes.contains_key(*p))
            .cloned()
            .collect()
    };
    if !full && changed.is_empty() && removed.is_empty() && t.last_push.elapsed() < KEEPALIVE {
        return true;
    }
    let now = super::api::wall_now().0 / 1000;
    let header = Header {
        seq: seq.next(),
        created: now,
        expires: now + EXPIRES_AFTER_S,
        kind: if full { Kind::Full } else { Kind::Delta },
        base: t.base.unwrap_or(0),
        files: vec![],
        removed,
    };
    let bytes = pack(&header, &changed, key);
    let res = t
        .client
        .post(format!("{}/bundle", t.url))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => {
            t.base = Some(header.seq);
            t.sent = hashes;
            t.last_push = Instant::now();
            if full {
                t.last_full = Instant::now();
            }
            if t.down {
                t.down = false;
                app.faults
                    .record("relay", format!("relay {} is reachable again", t.url));
            }
            true
        }
        Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
            // Behind or on another base: take its sequence, send it all.
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(last) = v.get("last_seq").and_then(|s| s.as_u64()) {
                    seq.raise(last);
                }
            }
            t.base = None;
            false
        }
        other => {
            let why = match other {
                Ok(r) => {
                    let status = r.status();
                    let detail = r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(String::from))
                        .unwrap_or_default();
                    format!("refused the bundle ({status}) {detail}")
                }
                Err(e) => format!("unreachable: {}", without_url(&e)),
            };
            t.base = None;
            if !t.down {
                t.down = true;
                app.faults.record("relay", format!("relay {} {why}", t.url));
            }
            tracing::warn!(relay = %t.url, %why, "bundle not delivered");
            true
        }
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = src {
        last = s.to_string();
        src = s.source();
    }
    if last.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_only_rise() {
        let s = Sequence(AtomicU64::new(0));
        let a = s.next();
        let b = s.next();
        assert!(b > a);
        s.raise(b + 1_000_000);
        assert!(s.next() > b + 1_000_000);
        s.raise(1);
        assert!(s.next() > b + 1_000_000);
    }
}
