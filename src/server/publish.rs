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
//!
//! Every push opens its own connection, whose TLS ClientHello offers the
//! office's hello token ([`hello`]: signed, fresh, a new nonce each time),
//! so the relay gives it one of the office's own slots, which no one
//! without the key can take — not even a process on the office's own
//! address completing TLS handshakes as fast as it likes (issue 22,
//! relay-rt2 F1). Every request carries the office's signed head ([`auth`]) and every
//! bundle names the relay it is for (its pinned `name` in `[[relays]]`):
//! a relay refuses a request without the head before reading its body, and
//! a bundle signed for another relay, so nothing the office sends one
//! relay can be passed on to another.
//!
//! The office does not trust what a relay answers (R11; the protocol is
//! `madoguchi_wire`): it reads at most [`MAX_REPLY_BYTES`] of a reply within
//! the push timeout, and counts a bundle delivered only when the reply
//! parses as the typed accepted outcome for that very sequence — a 2xx
//! status alone is not success. Relay text reaches a fault record only
//! capped and escaped. Its sequence comes from its own clock
//! ([`rules::next_sequence`], checked arithmetic) and no reply raises it.
//! When a relay says it holds a sequence ahead of what the office sent,
//! the office judges that sequence by its own clock and bound
//! ([`rules::held_is_impossible`] with the default skew), never by what the
//! reply calls it: within the bound it raises that relay's floor, beyond
//! it it sends that relay a signed reset naming the relay and the held
//! sequence. Either way only that relay's bundles change, and each change
//! is a fault record (R18), as is every change in the kind of failure —
//! coalesced per relay, at most one record a window ([`Notes`]), so that
//! one relay's answers cannot flush the admin page's list (relay-rt9 F2).
//! A push whose connection fails before its request went out is tried
//! again at once on a new connection (relay-rt9 F1).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use madoguchi_core::config::RelayTarget;
use madoguchi_wire::bundle::{pack, Header, Kind, Reset};
use madoguchi_wire::reply::{Clocks, MAX_REPLY_BYTES};
use madoguchi_wire::time::{EXPIRES_AFTER, KEEPALIVE};
use madoguchi_wire::{auth, hello, rules};
use madoguchi_wire::{Code, Reply, UnixMillis};
use sha2::{Digest, Sha256};

use super::App;
use crate::cmd::keys::SigningKey;

const FULL_EVERY: Duration = Duration::from_secs(60);
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most relay text a fault record or log line quotes.
const QUOTE_MAX: usize = 120;

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

/// The office's sequence numbers: its wall clock in milliseconds, or one
/// more than the last; shared by every relay task and raised by nothing
/// but the clock.
#[derive(Debug)]
struct Sequence(AtomicU64);

impl Sequence {
    /// The next number, or `None` at the end of the range (no clock gets
    /// there; a relay's answer cannot put it there).
    fn next(&self) -> Option<u64> {
        let now = UnixMillis::now();
        let mut prev = self.0.load(Ordering::SeqCst);
        loop {
            let n = rules::next_sequence(prev, now)?;
            match self
                .0
                .compare_exchange(prev, n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(n),
                Err(p) => prev = p,
            }
        }
    }
}

/// At most [`QUOTE_MAX`] characters of relay text, escaped, for a log line
/// or fault record.
fn quote(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(4 * QUOTE_MAX)];
    let mut out = String::new();
    for (i, c) in String::from_utf8_lossy(head).chars().enumerate() {
        if i == QUOTE_MAX {
            out.push('…');
            return out;
        }
        out.extend(c.escape_default());
    }
    if bytes.len() > head.len() {
        out.push('…');
    }
    out
}

/// Reads at most `cap` bytes of a reply's body, within the push timeout.
async fn read_capped(mut r: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = r.chunk().await {
            let room = cap - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(PUSH_TIMEOUT, read).await;
    out
}

#[derive(Debug)]
struct Target {
    url: String,
    /// The relay's pinned name: bundles and heads are addressed to it.
    name: String,
    /// TLS to this relay; each push's client adds its own hello token.
    tls: rustls::ClientConfig,
    /// What the relay holds: its sequence and the hash of each file.
    base: Option<u64>,
    sent: HashMap<String, [u8; 32]>,
    last_full: Instant,
    last_push: Instant,
    /// The kind of the current failure (`None`: delivering); a fault record
    /// is written whenever it changes.
    down: Option<String>,
    /// This relay's sequences stay above this: the last one sent to it, or
    /// what it says it holds when that is plausible.
    floor: u64,
    /// A signed reset to send with the next full bundle: the relay holds a
    /// sequence the office judges impossible.
    reset: Option<Reset>,
    /// The held sequence the last reset was recorded for: a relay that
    /// refuses resets over and over makes one record, not one a push.
    reset_noted: Option<u64>,
    /// When the last "relay holds a sequence ahead" record was written.
    ahead_noted: Option<Instant>,
    /// This relay's fault records, coalesced ([`Notes`]).
    notes: Notes,
}

/// One relay's fault records (R18), at most one a window (relay-rt9 F2
/// generalised: a hostile relay alternating its refusals, `busy` then
/// `too_slow` …, wrote a record every 3 s and pushed every other fault off
/// the admin page's list of 200). The first change is recorded at once;
/// the changes after it within the window are held, and the latest of them
/// is recorded when the window ends, with how many there were. A window
/// that ended with changes held makes the next one twice as long (up to
/// [`NOTE_MOST`]), a quiet one brings it back to [`note_every`]: a relay
/// that changes without end writes a few records an hour. One exception,
/// so that the page does not show a relay failing for a minute after it
/// recovered: a recovery (or an accepted reset) when the last record
/// written was a failure is written at once, without restarting the
/// window — at most one such a window.
#[derive(Debug)]
struct Notes {
    /// When the last record was written (other than a recovery at once).
    at: Option<Instant>,
    /// The first window, and the one in force.
    base: Duration,
    window: Duration,
    /// Changes since then, not recorded, and the latest of them.
    held: u32,
    latest: Option<(String, Good)>,
    /// The last record written says the relay is failing.
    failing: bool,
}

/// Whether a record says the relay delivers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Good {
    Yes,
    No,
}

/// The longest window between one relay's fault records.
const NOTE_MOST: Duration = Duration::from_secs(16 * 60);

/// The first window: 60 s unless `MADOGUCHI_RELAY_FAULT_EVERY_SECS` says
/// otherwise (0: every change a record, as tests that read each kind of
/// failure in the fault log need).
fn note_every() -> Duration {
    std::env::var("MADOGUCHI_RELAY_FAULT_EVERY_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

impl Notes {
    fn new() -> Notes {
        Notes::every(note_every())
    }

    fn every(base: Duration) -> Notes {
        Notes {
            at: None,
            base,
            window: base,
            held: 0,
            latest: None,
            failing: false,
        }
    }

    fn due(&self) -> bool {
        self.at.is_none_or(|at| at.elapsed() >= self.window)
    }

    /// How long until the held changes are due, if any are held.
    fn flush_in(&self) -> Option<Duration> {
        let at = self.at?;
        (self.held > 0).then(|| self.window.saturating_sub(at.elapsed()))
    }

    /// `message` (with the count of the changes held before it), to be
    /// written now; with `restart`, a new window begins, sized by whether
    /// changes were held in the last.
    fn write(&mut self, message: String, good: Good, restart: bool) -> String {
        let since = self.at.map_or(0, |at| at.elapsed().as_secs());
        let more = std::mem::take(&mut self.held);
        self.latest = None;
        self.failing = good == Good::No;
        if restart {
            self.window = if more > 0 {
                (self.window * 2).clamp(self.base, NOTE_MOST.max(self.base))
            } else {
                self.base
            };
            self.at = Some(Instant::now());
        }
        if more > 1 {
            format!(
                "{message} (the latest of {more} changes in the last {since} s, not recorded one by one / この {since} 秒間の変化 {more} 件のうち最新)"
            )
        } else {
            message
        }
    }

    /// A change: the record to write now, if any (else it is held).
    fn note(&mut self, message: String, good: Good) -> Option<String> {
        if self.due() && self.held == 0 {
            Some(self.write(message, good, true))
        } else if good == Good::Yes && self.failing {
            self.held += 1;
            Some(self.write(message, good, false))
        } else {
            self.held += 1;
            self.latest = Some((message, good));
            self.flush()
        }
    }

    /// The held changes' record, once their window has ended.
    fn flush(&mut self) -> Option<String> {
        if self.held == 0 || !self.due() {
            return None;
        }
        let (m, good) = self.latest.take()?;
        Some(self.write(m, good, true))
    }
}

/// Records `message` for relay `t`: at once, or held for the end of the
/// window ([`Notes`]).
fn note(app: &App, t: &mut Target, message: String, good: Good) {
    if let Some(m) = t.notes.note(message, good) {
        app.faults.record("relay", m);
    }
}

/// Writes the held changes once their window has ended.
fn flush(app: &App, t: &mut Target) {
    if let Some(m) = t.notes.flush() {
        app.faults.record("relay", m);
    }
}

/// How often a relay that keeps holding sequences ahead of the office is
/// recorded as a fault.
const AHEAD_NOTE_EVERY: Duration = Duration::from_secs(600);

/// TLS to relay `t`: its CA (when it is not a public one) as the roots,
/// TLS 1.3 and 1.2 with ring, as the rest of the office.
fn tls_config(t: &RelayTarget, data: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &t.ca {
        let path = if ca.is_relative() {
            data.join(ca)
        } else {
            ca.clone()
        };
        let pem = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("relay CA {}: {e}", path.display()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| anyhow::anyhow!("relay CA {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("relay CA {}: {e}", path.display()))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// A client for one push: its one connection offers a new hello token for
/// this relay before `http/1.1` (a relay that does not know the token
/// ignores it), and is not kept: a pooled connection would reuse a token
/// the relay takes only once.
fn push_client(t: &Target, key: &SigningKey) -> anyhow::Result<reqwest::Client> {
    let mut tls = t.tls.clone();
    tls.alpn_protocols = vec![
        hello::token(key, &t.name, UnixMillis::now(), rand::random()),
        b"http/1.1".to_vec(),
    ];
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PUSH_TIMEOUT)
        .connect_timeout(PUSH_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()?)
}

/// Starts one pushing task per configured relay.
pub fn spawn(app: Arc<App>, relays: &[RelayTarget], key: SigningKey) -> anyhow::Result<()> {
    let key = Arc::new(key);
    let seq = Arc::new(Sequence(AtomicU64::new(0)));
    let forecast: Arc<ForecastCache> = Arc::new(tokio::sync::Mutex::new(None));
    for r in relays {
        let target = Target {
            url: r.url.clone(),
            name: r.name.clone(),
            tls: tls_config(r, &app.data)?,
            base: None,
            sent: HashMap::new(),
            last_full: Instant::now(),
            last_push: Instant::now(),
            down: None,
            floor: 0,
            reset: None,
            reset_noted: None,
            ahead_noted: None,
            notes: Notes::new(),
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
    let mut retry = RETRY_FIRST;
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
        // Not delivered (a flood at the relay's door, a dropped line): try
        // again soon, backing off to 4 s (relay-rt6 R1: the public page was
        // a whole keep-alive older after one lost push).
        // A re-render with nothing new does not restart the keep-alive
        // (relay-rt7: a bundle every 30 s instead of 15 s, half the
        // margin to the relay's expiry).
        let wait = if t.down.is_some() {
            let w = retry;
            retry = (retry * 2).min(RETRY_MOST);
            w
        } else {
            retry = RETRY_FIRST;
            KEEPALIVE
                .saturating_sub(t.last_push.elapsed())
                .max(RETRY_FIRST)
        };
        // Held fault records are written when their window ends, whether
        // or not a push is due then.
        flush(&app, &mut t);
        let wait = t
            .notes
            .flush_in()
            .map_or(wait, |f| wait.min(f.max(Duration::from_millis(100))));
        tokio::select! {
            r = wake.changed() => if r.is_err() { break },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The first wait before pushing again after a bundle was not delivered,
/// and the longest (relay-rt7: backing off to the 15 s keep-alive kept the
/// office out 11 s after a flood had ended).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MOST: Duration = Duration::from_secs(4);
/// Connections one push may open when each fails before its request went
/// out (relay-rt9 F1).
const CONNECT_TRIES: u32 = 3;

/// One push; `false` when the relay asked for a full bundle.
async fn push(
    app: &App,
    t: &mut Target,
    files: &[(String, Vec<u8>)],
    key: &SigningKey,
    seq: &Sequence,
) -> bool {
    let Some(Bundle {
        header,
        changed,
        hashes,
        full,
    }) = next_bundle(app, t, files, seq)
    else {
        return true;
    };
    let resetting = header.reset.clone();
    t.floor = header.seq;
    let bytes = pack(&header, &changed, key);
    let size = bytes.len();
    // A connection that fails before the request went out (closed in the
    // relay's lobby under a flood on an allowed address: "tls handshake
    // eof", relay-rt9 F1) is tried again at once, on a new connection
    // with a new hello token; only the last failure is a fault. Not a
    // timeout: a relay that does not answer costs one deadline, not three.
    let mut tries = 0;
    let res = loop {
        tries += 1;
        let client = match push_client(t, key) {
            Ok(c) => c,
            Err(e) => {
                t.base = None;
                fault(app, t, "client", format!("no HTTPS client: {e}"));
                return true;
            }
        };
        let res = client
            .post(format!("{}/bundle", t.url))
            // A relay gives the body its length at the slowest line's rate
            // (relay-rt2 F6); wait as long for its answer.
            .timeout(PUSH_TIMEOUT + madoguchi_wire::time::transfer_allowance(size as u64))
            .header("content-type", "application/octet-stream")
            .header(auth::HEADER, auth::head(key, &t.name, UnixMillis::now()))
            .body(bytes.clone())
            .send()
            .await;
        match res {
            Err(e) if e.is_connect() && !e.is_timeout() && tries < CONNECT_TRIES => {
                tracing::debug!(relay = %t.url, error = %without_url(&e), tries, "connection failed; trying again at once");
            }
            res => break res,
        }
    };
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            t.base = None;
            fault(
                app,
                t,
                "unreachable",
                format!("unreachable: {}", without_url(&e)),
            );
            return true;
        }
    };
    let status = res.status();
    let body = read_capped(res, MAX_REPLY_BYTES).await;
    let reply = Reply::parse(&body);
    if let Some(Reply::Accepted { seq }) = &reply {
        if status.is_success() && *seq == header.seq {
            accepted(app, t, header.seq, hashes, full, resetting);
            return true;
        }
    }
    t.base = None;
    let Some(Reply::Refused {
        code,
        last_seq,
        clocks,
        ..
    }) = reply
    else {
        // Not the typed outcome (or "accepted" for another sequence, or
        // with an error status): not delivered, whatever the status says.
        fault(
            app,
            t,
            "no-reply",
            format!(
                "answered without a valid reply ({status}) \"{}\"",
                quote(&body)
            ),
        );
        return true;
    };
    refused(app, t, &header, code, last_seq, clocks, status, size)
}

/// What one push sends: the header, the files changed since the relay's
/// base (all of them in a full bundle) and every file's hash.
struct Bundle {
    header: Header,
    changed: Vec<(String, Vec<u8>)>,
    hashes: HashMap<String, [u8; 32]>,
    full: bool,
}

/// The next bundle for relay `t`, or `None` when there is nothing to send
/// (no change and a keep-alive not due) or no sequence left (a fault).
fn next_bundle(
    app: &App,
    t: &mut Target,
    files: &[(String, Vec<u8>)],
    seq: &Sequence,
) -> Option<Bundle> {
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
        return None;
    }
    let Some(shared) = seq.next() else {
        app.faults.record(
            "relay",
            "the office's bundle sequence is exhausted; nothing is sent",
        );
        return None;
    };
    let reset = if full { t.reset.take() } else { None };
    // A reset brings the relay back to the office's clock (it replaces
    // whatever the relay holds); otherwise above this relay's floor.
    let Some(next) = (if shared > t.floor || reset.is_some() {
        Some(shared)
    } else {
        t.floor.checked_add(1)
    }) else {
        t.base = None;
        fault(
            app,
            t,
            "exhausted",
            "holds a sequence the office cannot exceed".into(),
        );
        return None;
    };
    let now = UnixMillis::now().seconds();
    let header = Header {
        relay: t.name.clone(),
        seq: next,
        created: now,
        expires: now.plus(EXPIRES_AFTER),
        kind: if full { Kind::Full } else { Kind::Delta },
        base: t.base.unwrap_or(0),
        files: vec![],
        removed,
        reset,
    };
    Some(Bundle {
        header,
        changed,
        hashes,
        full,
    })
}

/// The relay took bundle `seq`: it is the base of the next delta.
fn accepted(
    app: &App,
    t: &mut Target,
    seq: u64,
    hashes: HashMap<String, [u8; 32]>,
    full: bool,
    resetting: Option<Reset>,
) {
    t.base = Some(seq);
    t.sent = hashes;
    t.last_push = Instant::now();
    if full {
        t.last_full = Instant::now();
    }
    if let Some(r) = resetting {
        let m = format!("relay {} reset from sequence {} to {}", t.url, r.held, seq);
        note(app, t, m, Good::Yes);
    }
    if t.down.take().is_some() {
        let m = format!("relay {} is reachable again", t.url);
        note(app, t, m, Good::Yes);
    }
}

/// The relay refused the bundle with `code`: what the office does next
/// (a signed reset, continuing above a relay ahead, a fault record);
/// `false` when a full bundle should be sent at once.
#[allow(clippy::too_many_arguments)]
fn refused(
    app: &App,
    t: &mut Target,
    header: &Header,
    code: Code,
    last_seq: Option<u64>,
    clocks: Option<Clocks>,
    status: reqwest::StatusCode,
    size: usize,
) -> bool {
    let resetting = header.reset.as_ref();
    match (code, last_seq) {
        (Code::OldSequence | Code::HeldSequenceImpossible, Some(held)) if held >= header.seq => {
            if resetting.is_some() {
                fault(
                    app,
                    t,
                    "reset-refused",
                    format!("refused the signed reset ({status}, {})", code.name()),
                );
                return true;
            }
            // Judged by the office's own clock and bound, whatever the
            // reply calls it.
            if rules::held_is_impossible(held, UnixMillis::now(), &rules::Limits::default()) {
                tracing::warn!(relay = %t.url, held, "relay holds a sequence beyond the office's bound; sending a signed reset");
                if t.reset_noted.replace(held) != Some(held) {
                    let m = format!(
                        "relay {} holds sequence {held}, beyond the office's clock bound: sending it a signed reset",
                        t.url
                    );
                    note(app, t, m, Good::No);
                }
                t.reset = Some(Reset {
                    relay: t.name.clone(),
                    held,
                });
            } else {
                // Ahead of the office (a leaked key, a relay with a wider
                // skew, an office clock set back): above it, for this
                // relay only.
                tracing::warn!(relay = %t.url, held, "relay holds a sequence ahead of the office's; continuing above it");
                // One record per relay per ten minutes: a hostile relay
                // answering every push so must not push every other fault
                // off the admin page (relay-rt9 F2: 22 records a minute).
                if t.ahead_noted
                    .is_none_or(|at| at.elapsed() >= AHEAD_NOTE_EVERY)
                {
                    t.ahead_noted = Some(Instant::now());
                    let m = format!(
                        "relay {} holds sequence {held}, ahead of the office's {}: its sequences continue above it / 中継サーバーが庁舎より先の番号を持っているため、その上から送ります",
                        t.url, header.seq
                    );
                    note(app, t, m, Good::No);
                }
                t.floor = t.floor.max(held);
            }
            false
        }
        (c, _) if c.wants_full() && c != Code::OldSequence => false,
        (Code::ClockSkew, _) => {
            let why = match clocks {
                // The office's own time is the one it signed into the
                // bundle, not what the reply says it was (relay-rt9 F3:
                // a reply's office_ms of u64::MAX became the shown skew).
                Some(c) => {
                    let ours = Clocks {
                        relay_ms: c.relay_ms,
                        office_ms: u64::try_from(header.created.0)
                            .unwrap_or(0)
                            .saturating_mul(1000),
                    };
                    let d = ours.relay_ahead_s();
                    format!(
                        "refused the bundle: the relay's clock differs from this office's by {} s ({}; {status}, clock_skew) / 中継サーバーの時計が庁舎と {} 秒ずれています",
                        d.unsigned_abs(),
                        if d >= 0 { "relay ahead" } else { "relay behind" },
                        d.unsigned_abs()
                    )
                }
                None => format!("refused the bundle: the relay's clock differs from this office's ({status}, clock_skew)"),
            };
            fault(app, t, "clock_skew", why);
            true
        }
        (Code::TooSlow, _) => {
            fault(
                app,
                t,
                "too_slow",
                format!(
                    "refused the bundle as too slow: the line did not carry {size} bytes within the relay's deadline ({status}, too_slow) / 回線が遅すぎて中継サーバーに届きませんでした"
                ),
            );
            true
        }
        (c, _) => {
            fault(
                app,
                t,
                c.name(),
                format!("refused the bundle ({status}, {})", c.name()),
            );
            true
        }
    }
}

/// A relay's failure: a fault record when it starts and whenever its kind
/// changes (R18; coalesced per relay, [`Notes`]), a log line each time.
fn fault(app: &App, t: &mut Target, kind: &str, why: String) {
    if t.down.as_deref() != Some(kind) {
        t.down = Some(kind.to_string());
        let m = format!("relay {} {why}", t.url);
        note(app, t, m, Good::No);
    }
    tracing::warn!(relay = %t.url, %why, "bundle not delivered");
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
    fn sequence_numbers_only_rise_and_never_wrap() {
        let s = Sequence(AtomicU64::new(0));
        let a = s.next().expect("a");
        let b = s.next().expect("b");
        assert!(b > a);
        let end = Sequence(AtomicU64::new(u64::MAX));
        assert_eq!(end.next(), None);
    }

    /// relay-rt9 F2 generalised: a relay changing its failure at every
    /// push gets one record a window, with the count; a recovery after a
    /// recorded failure is written at once, once a window.
    #[test]
    fn one_relays_fault_records_are_coalesced() {
        let mut n = Notes::every(Duration::from_millis(500));
        let fail = |i: u32| (format!("failure {i}"), Good::No);
        let (m, g) = fail(0);
        assert_eq!(n.note(m, g).as_deref(), Some("failure 0"));
        for i in 1..10 {
            let (m, g) = fail(i);
            assert_eq!(n.note(m, g), None, "held");
        }
        assert_eq!(n.flush(), None, "not before the window ends");
        std::thread::sleep(Duration::from_millis(520));
        let summary = n.flush().expect("the latest when the window ends");
        assert!(
            summary.starts_with("failure 9 (the latest of 9 changes"),
            "{summary}"
        );
        assert_eq!(n.window, Duration::from_millis(1000), "changes went on");
        // Back again: at once (the page showed a failure), then held.
        assert_eq!(n.note("back".into(), Good::Yes).as_deref(), Some("back"));
        let (m, g) = fail(10);
        assert_eq!(n.note(m, g), None);
        assert_eq!(n.note("back".into(), Good::Yes), None);
        std::thread::sleep(Duration::from_millis(1020));
        assert!(n
            .flush()
            .is_some_and(|m| m.starts_with("back (the latest of 2")));
        // A quiet window: the next change at once, the window back to 500 ms.
        std::thread::sleep(Duration::from_millis(2020));
        let (m, g) = fail(11);
        assert_eq!(n.note(m, g).as_deref(), Some("failure 11"));
        assert_eq!(n.window, Duration::from_millis(500));
        // 0: every change a record.
        let mut all = Notes::every(Duration::ZERO);
        assert!((0..5).all(|i| all.note(format!("{i}"), Good::No).is_some()));
    }

    #[test]
    fn relay_text_is_capped_and_escaped() {
        let q = quote(&[b'x'; 1 << 20]);
        assert_eq!(q.chars().count(), QUOTE_MAX + 1);
        assert_eq!(quote(b"a\n\"b\x1b"), "a\\n\\\"b\\u{1b}");
    }
}
