//! Standby servers (R9): the primary serves its log to a standby over the
//! LAN (`GET /api/replication`, standby devices only, read-only); a server
//! started with `--standby-of URL` follows it continuously, renders the
//! same displays, refuses commands, and is promoted with one button on its
//! admin page. A standby never takes a log that does not continue its own:
//! each request carries its last sequence number and hash, and the primary
//! refuses (409) if its record there differs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use madoguchi_core::engine::{witness, EngineHandle};
use madoguchi_core::log::{self, Record};
use madoguchi_core::model::Event;
use madoguchi_core::store::{hex, parse_hex};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Role, Standing};
use super::error::ApiError;
use super::App;

/// Records per answer.
const BATCH: usize = 2000;
/// How long a caught-up standby's request waits for something new: well
/// inside the lease (`fence::LEASE`), which each answer renews.
const LONG_POLL: Duration = Duration::from_secs(3);

/// Beside the log of a promoted standby: restarted with `--standby-of`
/// still in its service line, it serves as the primary all the same
/// (`--rejoin` moves the whole folder aside, this file with it).
const PROMOTED: &str = "promoted";
/// Beside it: the address of the primary it replaced, told again after a
/// restart until it answers (red team F5).
const OLD_PRIMARY: &str = "old-primary";

/// Beside the log of a standby whose primary refused its token (its
/// standby device was revoked or deleted there, or the token is not a
/// standby's): it takes nothing from the primary any more and is not
/// promoted without an override, also after a restart, until it is
/// enrolled again with a new link or the primary knows its token again
/// (the device enabled again; asked every [`REFUSED_ASK_EVERY`]).
/// Outside tester N1: such a standby, left running, was promoted beside
/// the new standby and gave the same numbers.
const REFUSED: &str = "standby-refused";
/// How often a refused standby asks whether its primary knows its token
/// again.
const REFUSED_ASK_EVERY: Duration = Duration::from_secs(10);

/// Why the primary refused this standby, as written down when it did.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Refusal {
    /// The HTTP status the primary answered (401, 403).
    pub status: u16,
    /// The primary's error code (`unauthenticated`, `forbidden`).
    pub code: String,
    pub primary: String,
    pub at: String,
}

impl Refusal {
    /// What a person is told, Japanese first: the cause and the way out.
    pub fn message(&self) -> (String, String) {
        let Refusal {
            status,
            primary,
            at,
            ..
        } = self;
        (
            format!("主機（{primary}）がこの予備機の登録を受け付けませんでした（{at}、{status}）。主機の管理画面で予備機の登録が取り消されたか削除されたためです。この予備機は主機の記録を受け取るのをやめました。この予備機は主機に昇格できません（昇格すると、主機やほかの予備機と同じ番号を出すおそれがあります）。予備機として使い続けるときは、主機の管理画面「端末」で予備機の登録用リンクを作り直し、この機械を --enrol-link 新しいリンク を付けて起動し直してください（docs/manual-ja.md「予備機への切替え」）"),
            format!("the primary {primary} refused this standby's token ({status} at {at}): its standby device was revoked or deleted there. This standby has stopped following and cannot be promoted (it could give numbers the primary or another standby also gives). To use it as the standby again, make a new standby link on the primary (管理 → 端末) and start this server again with --enrol-link NEW_LINK"),
        )
    }
}

/// The primary's refusal of this standby, if one was written down.
pub fn refused_here(data: &std::path::Path) -> Option<Refusal> {
    let text = std::fs::read_to_string(data.join(REFUSED)).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|_| Refusal {
        status: 0,
        code: "unknown".into(),
        primary: "?".into(),
        at: text.trim().to_string(),
    }))
}

/// Writes the refusal down (temp file, fsync, rename), says it on
/// standard error and in the fault records.
fn note_refusal(app: &App, refusal: &Refusal) {
    let (ja, en) = refusal.message();
    let written = serde_json::to_vec_pretty(refusal)
        .map_err(std::io::Error::other)
        .and_then(|text| {
            use std::io::Write;
            let tmp = app.data.join(format!("{REFUSED}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, app.data.join(REFUSED))
        });
    if let Err(e) = written {
        app.faults.record(
            "standby",
            format!("cannot write {REFUSED} in the data folder ({e}): the refusal is kept only until a restart"),
        );
    }
    eprintln!("madoguchi: 予備機の登録が主機に取り消されました / the primary refused this standby\n  {ja}\n  {en}");
    tracing::error!(status = refusal.status, code = %refusal.code, "{en}");
    app.faults.record("standby", format!("{ja} / {en}"));
}

/// Beside the log of a standby whose signed requests its primary refuses
/// as not signed with the key it keeps for this standby's token (another
/// machine registered its key first, or the standby's key file was
/// replaced): the primary may be issuing under that other machine's
/// lease, so this standby is not promoted without an override, also after
/// a restart, until the primary takes its requests again (outside tester
/// insider-rt10 N2: the real standby, promoted, gave 43 numbers twice).
const KEY_REFUSED: &str = "link-key-refused";

/// The primary refuses this standby's key, as written down.
pub fn key_refused_here(data: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(data.join(KEY_REFUSED))
        .ok()
        .map(|t| t.trim().to_string())
}

/// What a person is told when the primary refuses this standby's key.
fn key_refused_words(primary: &str) -> (String, String) {
    (
        format!("主機（{primary}）は、この予備機の鍵で署名した要求を受け付けません。主機には別の鍵がこの予備機のものとして登録されています（別の機械がこの予備機のトークンを使っているおそれがあります）。この予備機は主機の記録を受け取れず、昇格もできません（昇格すると、主機と同じ番号を出すおそれがあります）。主機の管理画面「端末」でこの予備機を取り消し、予備機の登録用リンクを作り直して、この機械を --enrol-link 新しいリンク を付けて起動し直してください"),
        format!("the primary {primary} refuses this standby's signed requests: another key is registered there for this standby's token (another machine may be using it). This standby takes nothing from the primary and cannot be promoted (it could give numbers the primary also gives). Revoke it on the primary (管理 → 端末), make a new standby link and start this server again with --enrol-link NEW_LINK"),
    )
}

/// Writes the key refusal down once and says it loudly (stderr, fault
/// records: the standby's /admin).
fn note_key_refused(app: &App, primary: &str) {
    if key_refused_here(&app.data).is_some() {
        return;
    }
    let (ja, en) = key_refused_words(primary);
    if let Err(e) = super::link_key::write_private(&app.data.join(KEY_REFUSED), primary) {
        app.faults.record(
            "standby",
            format!("cannot write {KEY_REFUSED} in the data folder ({e}): the refusal is kept only until a restart"),
        );
    }
    eprintln!("madoguchi: 主機がこの予備機の鍵を受け付けません / the primary refuses this standby's key\n  {ja}\n  {en}");
    tracing::error!("{en}");
    app.faults.record("standby", format!("{ja} / {en}"));
}

/// The epoch this machine was promoted to, if it was.
pub fn promoted_here(data: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(data.join(PROMOTED))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// The primary a promoted machine replaced.
pub fn old_primary(data: &std::path::Path) -> Option<String> {
    promoted_here(data)?;
    std::fs::read_to_string(data.join(OLD_PRIMARY))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The proof of `epoch` this machine hands devices: keyed by the standby
/// token it followed with (`fence.rs`).
fn proof_of(app: &App, epoch: u64) -> Option<String> {
    let token = std::fs::read_to_string(app.data.join("standby-token")).ok()?;
    Some(super::fence::epoch_proof(
        &super::fence::proof_key(&token),
        epoch,
    ))
}

/// A promoted machine started again: it hands devices its epoch's proof
/// and tells the old primary again until it answers.
pub fn after_restart_as_promoted(app: &Arc<App>) {
    let Some(epoch) = promoted_here(&app.data) else {
        return;
    };
    if let Some(p) = proof_of(app, epoch) {
        app.fence.set_proof(p);
    }
    if let Ok(token) = std::fs::read_to_string(app.data.join("standby-token")) {
        tell_old_primary(app.clone(), token.trim().to_string(), epoch);
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Since {
    after: u64,
    #[serde(default)]
    hash: Option<String>,
    /// The digest of the account store the standby holds: the answer
    /// carries the primary's store whenever it differs.
    #[serde(default)]
    accounts: Option<String>,
    /// The last lease grant the standby received (`fence.rs`).
    #[serde(default)]
    lease: Option<String>,
    /// A standby that has written down that this primary refused it (and
    /// so will not be promoted) says so: a refusal of this request tells
    /// the primary that the revoked standby knows (`fence.rs`).
    #[serde(default)]
    refused: bool,
    /// A standby at the end of its promotion wait asks only whether this
    /// primary still knows its token: answered at once, renewing nothing.
    #[serde(default)]
    probe: bool,
    /// The probe's challenge, made by the standby and signed with its
    /// link key (`link_key::probe_message`, outside tester insider-rt13
    /// E1): the answer is signed as a probe answer for its token and key.
    #[serde(default)]
    challenge: Option<String>,
    /// The standby's link key (hex) and its signature of `after`, `hash`
    /// and `lease` (`link_key.rs`): only a signed request renews the
    /// lease, acknowledges records or says this log is behind.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    sig: Option<String>,
    /// The single-use nonce the primary handed out in its last answer to
    /// this token, signed with the rest (outside tester insider-rt11 M1,
    /// H2: a sniffed signed request replayed read every password hash, a
    /// sniffed signed refusal lifted a later revocation).
    #[serde(default)]
    nonce: Option<String>,
    /// The standby's sealing key (X25519, hex), signed with the rest: the
    /// account store goes to it sealed for this key only, and not at all
    /// to a standby that names none (issue 23/24 D1, R11; `link_key.rs`).
    #[serde(default)]
    seal: Option<String>,
}

/// Where the last answer ended: its last record's number and hash, and the
/// position of the record after it. A standby that follows asks for the
/// records after exactly that one, so the next answer starts there instead
/// of scanning its segment from the top (found following the manual: with
/// 100,000 records in one segment each answer took seconds and the lease
/// lapsed between them).
#[derive(Debug, Default)]
pub struct Cursor(std::sync::Mutex<Option<(u64, log::Hash, log::Pos)>>);

fn records_after(app: &App, after: u64, hash: Option<&str>) -> Result<Vec<Record>, ApiError> {
    let dir = app.data.join("log");
    let resume = app.replication_cursor.0.lock().ok().and_then(|c| *c);
    if let Some((_, last_hash, pos)) = resume.filter(|c| c.0 == after) {
        if hash.is_some_and(|h| h != hex(&last_hash)) {
            return Err(ApiError::Diverged(after));
        }
        if let Ok(records) = log::read_live_from(&dir, pos, after + 1, Some(last_hash)) {
            let read: Result<Vec<(log::Pos, Record)>, _> = records.take(BATCH).collect();
            if let Ok(read) = read {
                remember(app, &read);
                return Ok(read.into_iter().map(|(_, r)| r).collect());
            }
        }
    }
    let mut out = Vec::new();
    let mut ours = 0;
    let records =
        log::read_live_near(&dir, after).map_err(|e| ApiError::Internal(e.to_string()))?;
    for r in records {
        let (pos, rec) = r.map_err(|e| ApiError::Internal(e.to_string()))?;
        ours = ours.max(rec.seq);
        if rec.seq == after {
            if let Some(h) = hash {
                if hex(&rec.hash()) != h {
                    return Err(ApiError::Diverged(after));
                }
            }
        }
        if rec.seq > after + 1 && out.is_empty() {
            // The records the standby needs next were archived (retention).
            return Err(ApiError::BadRequest(format!(
                "records {}–{} are archived here: start the standby from a full backup (madoguchi restore)",
                after + 1,
                rec.seq - 1
            )));
        }
        if rec.seq > after {
            out.push((pos, rec));
            if out.len() >= BATCH {
                break;
            }
        } else if rec.seq == after {
            // Nothing new yet: the next question starts right after it.
            remember(app, &[(pos, rec)]);
        }
    }
    if ours < after {
        // The standby holds records this log does not: they were lost here
        // (a torn or restored log). Answering would let the lease count
        // them as held and give their numbers again (issue 17).
        return Err(ApiError::PrimaryBehind {
            standby: after,
            ours,
        });
    }
    remember(app, &out);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Keeps where `read` ended for the next answer ([`Cursor`]).
fn remember(app: &App, read: &[(log::Pos, Record)]) {
    if let (Some((pos, rec)), Ok(mut c)) = (read.last(), app.replication_cursor.0.lock()) {
        let next = log::Pos {
            segment: pos.segment,
            offset: pos.offset + rec.framed_len(),
        };
        *c = Some((rec.seq, rec.hash(), next));
    }
}

/// At most this often the standby's confirmed position is written down
/// as a witness (`madoguchi_core::engine::witness`).
const WITNESS_EVERY: Duration = Duration::from_secs(2);

/// Notes in the data folder that the standby holds every record up to
/// `seq` (whose hash it sent), with the day's highest numbers, so that a
/// start on a log that lost them is refused. Paced, best effort, off the
/// async threads.
fn note_witness(app: &Arc<App>, standby: &str, seq: u64, hash: &str) {
    static LAST: std::sync::Mutex<Option<(u64, std::time::Instant)>> = std::sync::Mutex::new(None);
    {
        let Ok(mut last) = LAST.lock() else { return };
        if last.is_some_and(|(s, t)| s >= seq || t.elapsed() < WITNESS_EVERY) {
            return;
        }
        *last = Some((seq, std::time::Instant::now()));
    }
    let app = app.clone();
    let place = format!("standby device {standby}");
    let hash = hash.to_string();
    tokio::task::spawn_blocking(move || {
        let known = app.engine.read(|e| {
            let s = e.state();
            let mut highest = std::collections::BTreeMap::new();
            for t in s.tickets.values() {
                let h = highest.entry(t.category.clone()).or_insert(t.number);
                *h = (*h).max(t.number);
            }
            (s.meta.day.as_ref().map(|d| d.date), highest)
        });
        let Ok((day, highest)) = known else { return };
        let w = witness::Witness {
            source: witness::Source::Standby,
            seq,
            hash,
            at: chrono::Utc::now().to_rfc3339(),
            place,
            day,
            highest,
        };
        if let Err(e) = witness::record(&app.data, &w) {
            tracing::warn!(error = %e, "the standby's position could not be noted");
        }
    });
}

/// `GET /api/replication?after=N&hash=H`: the records after N, waiting a
/// while for new ones when there are none. Every answer to a standby's
/// token (a revoked one the primary waits for included) carries the next
/// single-use nonce (`madoguchi-link-nonce`, and `nonce` in the JSON): the
/// standby signs its next request with it, so a request or refusal sniffed
/// on the LAN and sent again reads and changes nothing (insider-rt11 M1,
/// H2).
pub async fn serve(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<Since>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = super::auth::Auth::presented_token_hash(&headers);
    // The nonce is settled before anything is answered (outside tester
    // insider-rt14 R1), and only for a request signed with the key kept
    // for its standby token (a stale nonce in it is fine: that is how a
    // standby asks for a new one): anyone holding a copy of the token
    // could otherwise ask for nonces and push the standby's out
    // (insider-rt12 A2). A request answered before gets the nonce it got
    // then, and nothing else (`link_key::nonce_turn`): one sniffed line
    // replayed once took every new nonce (insider-rt13 A2, rt14 R1).
    let turn_of = |app: &App| {
        token
            .clone()
            .filter(|t| app.auth.standby_keys().contains(t) || app.fence.is_unconfirmed(t))
            .filter(|t| signed_with_kept_key(app, t, &q))
            .map(|t| {
                let turn = super::link_key::nonce_turn(
                    &t,
                    q.sig.as_deref().unwrap_or_default(),
                    q.nonce.as_deref(),
                );
                (t, turn)
            })
    };
    let turn = turn_of(&app);
    match &turn {
        Some((t, super::link_key::Turn::Fresh { .. })) => {
            // Made in a task of its own, so that it is made and kept even
            // when the asker goes away before the long poll ends: the same
            // request sent again gets the very same answer (`again`).
            let latest = begin_latest(t, q.sig.as_deref().unwrap_or_default());
            let task = tokio::spawn(async move {
                let r = respond(app, method, headers, q, token, turn).await;
                let kept = KeptAnswer::of(r).await;
                latest.send_replace(Some(kept.clone()));
                kept
            });
            return match task.await {
                Ok(kept) => kept.response(),
                Err(e) => ApiError::Internal(e.to_string()).into_response(),
            };
        }
        Some((t, super::link_key::Turn::Stale { again: true, .. })) => {
            // The standby's latest request, sent again (a copy reached the
            // primary first, or its answer was lost on the way): the answer
            // that request got, not a 428 (outside tester insider-rt14 R1,
            // R2: a tap that sent a copy of each request first, or a man in
            // the middle who sent each twice, starved the standby). An
            // older one gets a 428 with the nonce it got then, nothing
            // else.
            watch(&app, t, Seen::Again);
            if let Some(kept) = latest_answer(t, q.sig.as_deref().unwrap_or_default()).await {
                return kept.response();
            }
        }
        Some((t, super::link_key::Turn::Stale { .. })) => watch(&app, t, Seen::Stale),
        None => {}
    }
    respond(app, method, headers, q, token, turn).await
}

/// One answer of the primary to a standby's fresh request, kept whole
/// (status, headers, the exact bytes its signature covers).
#[derive(Debug)]
struct KeptAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: axum::body::Bytes,
    made: std::time::Instant,
}

/// How long an answer is given again to its request sent again: a copy
/// and the standby's own arrive within moments of each other; a line
/// replayed later gets a 428 with its old nonce only.
const AGAIN_FOR: Duration = Duration::from_secs(5);

type Kept = Arc<KeptAnswer>;

impl KeptAnswer {
    async fn of(r: Response) -> Kept {
        let (parts, body) = r.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        Arc::new(KeptAnswer {
            status: parts.status,
            headers: parts.headers,
            body,
            made: std::time::Instant::now(),
        })
    }

    fn response(&self) -> Response {
        let mut r = Response::new(axum::body::Body::from(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// Per standby token: its latest fresh request's signature and its
/// answer, once made (one per token: an answer can be large).
type Latest = (String, tokio::sync::watch::Sender<Option<Kept>>);
static LATEST: std::sync::Mutex<std::collections::BTreeMap<String, Latest>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A fresh request of `token` signed `sig` is being answered: its answer
/// goes to the sender returned.
fn begin_latest(token: &str, sig: &str) -> tokio::sync::watch::Sender<Option<Kept>> {
    let tx = tokio::sync::watch::Sender::new(None);
    let mut all = LATEST.lock().unwrap_or_else(|p| p.into_inner());
    if all.len() > 64 && !all.contains_key(token) {
        all.clear();
    }
    all.insert(token.to_string(), (sig.to_string(), tx.clone()));
    tx
}

/// The answer to `token`'s latest fresh request, when `sig` is that
/// request's; waits for it while it is being made (a long poll).
async fn latest_answer(token: &str, sig: &str) -> Option<Kept> {
    let mut rx = {
        let all = LATEST.lock().unwrap_or_else(|p| p.into_inner());
        let (latest, tx) = all.get(token)?;
        if latest != sig {
            return None;
        }
        tx.subscribe()
    };
    let made = tokio::time::timeout(
        LONG_POLL + Duration::from_secs(10),
        rx.wait_for(Option::is_some),
    )
    .await
    .ok()?
    .ok()?
    .clone();
    made.filter(|k| k.made.elapsed() < AGAIN_FOR)
}

/// The answer to one replication request whose nonce is settled (`turn`).
async fn respond(
    app: Arc<App>,
    method: Method,
    headers: HeaderMap,
    q: Since,
    token: Option<String>,
    mut turn: Option<(String, super::link_key::Turn)>,
) -> Response {
    use axum::response::IntoResponse;
    let fresh = turn.as_ref().is_some_and(|(_, t)| t.is_fresh());
    let answer = answer(&app, &method, &headers, &q, fresh).await;
    if turn.is_none() {
        // A standby enrolled before keys were bound: its first signed
        // request registered its key just now (answered 428).
        turn = token
            .clone()
            .filter(|t| app.auth.standby_keys().contains(t))
            .filter(|t| signed_with_kept_key(&app, t, &q))
            .map(|t| {
                let turn = super::link_key::nonce_turn(
                    &t,
                    q.sig.as_deref().unwrap_or_default(),
                    q.nonce.as_deref(),
                );
                (t, turn)
            });
    }
    if let Some(t) = token.as_deref().filter(|_| turn.is_none()) {
        another_token_signed_by_a_standby(&app, t, &headers, &q);
    }
    let next = turn.map(|(_, t)| t.next().to_string());
    let mut response = match answer {
        Ok(Json(mut v)) => {
            if let Some(n) = &next {
                v["nonce"] = json!(n);
            }
            Json(v).into_response()
        }
        Err(e) => e.into_response(),
    };
    if let Some(n) = next
        .as_deref()
        .and_then(|n| axum::http::HeaderValue::from_str(n).ok())
    {
        response
            .headers_mut()
            .insert(super::link_key::NONCE_HEADER, n);
    }
    // Signed only when the request's own signature holds under the key it
    // names, over what its kind signs, and it carries a token: the signed
    // text names that token, that key and the kind (outside tester
    // insider-rt13 E1: a 401 to a request with no token at all was signed
    // over whatever `sig=` it carried, and the standby took it for its own
    // revocation). A refusal of the standby's own request stays signed:
    // the primary keeps every standby's bound key, revoked or deleted too.
    match (token.as_deref(), q.key.as_deref(), q.sig.as_deref()) {
        (Some(token), Some(key), Some(request_sig))
            if super::link_key::signed_by(Some(key), Some(request_sig), &request_text(&q)) =>
        {
            let to = super::link_key::AnswerFor {
                kind: kind_of(&q),
                token_sha256: token,
                key,
                request_sig,
            };
            sign_answer(&app, response, to, next.as_deref()).await
        }
        _ => response,
    }
}

/// A request whose token is not a standby's (a kiosk's, a display's, an
/// admin's) but that carries a valid signature of a standby's key (outside
/// tester insider-rt14 R2, `mitm_tok.py`): the key never leaves the
/// standby, so something between the two machines put another token on
/// the standby's request. Said on /admin and in the hold.
fn another_token_signed_by_a_standby(app: &App, token: &str, headers: &HeaderMap, q: &Since) {
    let (Some(key), Some(sig)) = (q.key.as_deref(), q.sig.as_deref()) else {
        return;
    };
    if !super::link_key::signed_by(Some(key), Some(sig), &request_text(q))
        || !super::link_key::is_key_of_another(&app.data, key, token)
    {
        return;
    }
    let who = app
        .auth
        .identify(headers)
        .map(|c| c.name)
        .unwrap_or_else(|| "?".to_string());
    app.fence.note_token_swapped();
    app.faults.record(
        "failover",
        format!(
            "{}（届いたトークン：{who}） / {}",
            super::fence::TOKEN_SWAPPED_JA,
            super::fence::TOKEN_SWAPPED_EN
        ),
    );
}

/// Which kind of answer a request gets (`link_key::AnswerKind`).
fn kind_of(q: &Since) -> super::link_key::AnswerKind {
    if q.probe {
        super::link_key::AnswerKind::Probe
    } else {
        super::link_key::AnswerKind::Records
    }
}

/// What the request of `q`'s kind signs: the probe its challenge, a
/// replication request its position ([`signed_text`]).
fn request_text(q: &Since) -> String {
    if q.probe {
        super::link_key::probe_message(q.challenge.as_deref().unwrap_or_default())
    } else {
        signed_text(q)
    }
}

/// Signs an answer to a signed request (outside tester insider-rt12 A1)
/// with this primary's answer key: for whom (`to`), the status, the nonce
/// handed out with it and the body's exact bytes. The standby checks it
/// before it reads anything of the answer, so an answer edited on the
/// way, or an older one sent again, is taken for nothing.
async fn sign_answer(
    app: &App,
    response: Response,
    to: super::link_key::AnswerFor<'_>,
    nonce: Option<&str>,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    match super::link_key::answer_signer(&app.data) {
        Ok(key) => {
            let sig = super::link_key::sign_answer(
                &key,
                to,
                parts.status.as_u16(),
                nonce.unwrap_or_default(),
                &bytes,
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&sig) {
                parts.headers.insert(super::link_key::ANSWER_SIG_HEADER, v);
            }
        }
        Err(e) => app.faults.record(
            "failover",
            format!("the primary's answer key cannot be made or read ({e}): the standby takes no answer from this primary until it can / 主機の応答用の鍵を作れないか読めません。予備機は主機の記録を受け取れません"),
        ),
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Whether the request is signed, over the nonce it carries (used or
/// not), with the key kept for the token hash `token`. Registers nothing.
fn signed_with_kept_key(app: &App, token: &str, q: &Since) -> bool {
    let msg = signed_text(q);
    super::link_key::verify_kept(&app.data, token, q.key.as_deref(), q.sig.as_deref(), &msg)
        .unwrap_or(false)
}

/// What the standby signed for request `q`. A refused standby signs its
/// requests as refusals (`refused=true`); asked again once its device is
/// enabled again, it is taken as such.
fn signed_text(q: &Since) -> String {
    let sign = if q.refused {
        super::link_key::refused_message
    } else {
        super::link_key::message
    };
    super::link_key::with_seal(
        sign(
            q.nonce.as_deref().unwrap_or_default(),
            q.after,
            q.hash.as_deref().unwrap_or_default(),
            q.lease.as_deref().unwrap_or_default(),
            q.accounts.as_deref().unwrap_or_default(),
        ),
        q.seal.as_deref().unwrap_or_default(),
    )
}

/// What one signed request of the standby token came to, as the primary
/// watches it (outside tester insider-rt13 A2, C1; insider-rt14 R1, R2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Fresh, and its lease echo renewed the lease.
    Renewed,
    /// Fresh, but its lease echo renewed nothing (an old grant, or none).
    Unrenewed,
    /// A request not seen before without an unused nonce: the standby's
    /// first, or its own after an answer it could not use.
    Stale,
    /// A request answered before, sent again: a replay, or a copy of the
    /// standby's request (one of the two arrived second).
    Again,
}

/// Per standby token hash: when the window of requests sent again began
/// and how many came in it; when the run of signed requests that renewed
/// no lease began, how many it holds, whether it was said; when the last
/// came.
#[derive(Debug, Clone, Copy)]
struct Watch {
    since: std::time::Instant,
    again: u32,
    run_since: Option<std::time::Instant>,
    run: u32,
    said: bool,
    last: std::time::Instant,
}

static WATCH: std::sync::Mutex<std::collections::BTreeMap<String, Watch>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A replay is this many requests sent again to one token within
/// [`REPLAY_WINDOW`] (the standby never sends the same request twice: a
/// request it could not use an answer to is made again with a value of
/// its own).
const REPLAYS: u32 = 10;
const REPLAY_WINDOW: Duration = Duration::from_secs(5);
/// The standby does not receive the answers (or receives them too late
/// to renew anything): its signed requests keep coming, at least this
/// many, for at least [`UNRENEWED_FOR`], and none renews the lease. A
/// standby that follows renews within a long poll; one just (re)started
/// within two requests.
const UNRENEWED: u32 = 3;
const UNRENEWED_FOR: Duration = Duration::from_secs(8);
/// A standby silent this long was away (its cable, its restart): a run
/// begins anew.
const AWAY: Duration = Duration::from_secs(15);

/// Watches one signed request of the standby (`token`): requests sent
/// again and again (A2, R1) are a fault record on /admin and the hold (if
/// any) says so instead of power and cable; a run of requests that renew
/// nothing while no replay goes on is a standby that does not receive
/// this primary's answers in time (C1, R2), said likewise.
fn watch(app: &App, token: &str, seen: Seen) {
    let now = std::time::Instant::now();
    let (again, unrenewed) = {
        let mut all = WATCH.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() > 64 && !all.contains_key(token) {
            all.clear();
        }
        let w = all.entry(token.to_string()).or_insert(Watch {
            since: now,
            again: 0,
            run_since: None,
            run: 0,
            said: false,
            last: now,
        });
        if w.since.elapsed() > REPLAY_WINDOW {
            w.since = now;
            w.again = 0;
        }
        let away = w.last.elapsed() > AWAY;
        match seen {
            Seen::Again => w.again += 1,
            Seen::Renewed => {
                w.run_since = None;
                w.run = 0;
                w.said = false;
            }
            Seen::Unrenewed | Seen::Stale => {
                if away || w.run_since.is_none() {
                    w.run_since = Some(now);
                    w.run = 0;
                    w.said = false;
                }
                w.run += 1;
                w.last = now;
            }
        }
        if seen == Seen::Renewed {
            w.last = now;
        }
        let long = w.run >= UNRENEWED && w.run_since.is_some_and(|s| s.elapsed() >= UNRENEWED_FOR);
        let first = long && !w.said;
        if long {
            w.said = true;
        }
        (w.again, long.then_some(first))
    };
    if again >= REPLAYS {
        app.fence.note_replayed();
        if again == REPLAYS {
            app.faults.record(
                "failover",
                format!(
                    "{} / {}",
                    super::fence::REPLAYED_JA,
                    super::fence::REPLAYED_EN
                ),
            );
        }
        return;
    }
    let Some(first) = unrenewed else {
        return;
    };
    if app.fence.replayed_lately() {
        return;
    }
    app.fence.note_no_echo();
    if first {
        app.faults.record(
            "failover",
            format!(
                "{} / {}",
                super::fence::NO_ECHO_JA,
                super::fence::NO_ECHO_EN
            ),
        );
    }
}

/// A signed standby request without a nonce this primary handed out and
/// has not seen used: a replay, a request from before a restart, or the
/// standby's first. Answered with a new nonce only.
pub const NONCE_NEEDED: &str = "link_nonce_needed";

fn nonce_needed() -> ApiError {
    ApiError::Plain {
        status: StatusCode::PRECONDITION_REQUIRED,
        code: NONCE_NEEDED,
        ja: "この要求には主機が渡した使い捨ての番号（nonce）がないか、すでに使われています。記録は渡しません。新しい番号で要求し直してください".into(),
        en: "this request carries no unused nonce from this primary: nothing is given; ask again with the new nonce".into(),
    }
}

async fn answer(
    app: &Arc<App>,
    method: &Method,
    headers: &HeaderMap,
    q: &Since,
    fresh: bool,
) -> Result<Json<Value>, ApiError> {
    let caller = match app
        .auth
        .require(method, headers, &[Role::Standby, Role::Admin])
    {
        Ok(c) => c,
        Err(e) => {
            if q.refused {
                revoked_standby_knows(app, headers, q, fresh);
            }
            return Err(e);
        }
    };
    if q.probe {
        // The standby of record's own probe: signed with the key kept for
        // its token (another key kept there is the key refusal, signed
        // for the key that asked).
        if caller.role == Role::Standby {
            let token = super::auth::Auth::presented_token_hash(headers).unwrap_or_default();
            let msg = request_text(q);
            let kept = super::link_key::verify_kept(
                &app.data,
                &token,
                q.key.as_deref(),
                q.sig.as_deref(),
                &msg,
            )
            .unwrap_or(false);
            if !kept {
                return Err(link_key_refused("probe"));
            }
        }
        return Ok(Json(json!({"records": [], "probe": true})));
    }
    // Whether this request is the standby of record's own (F11): signed
    // with the key bound to its token at enrolment (or, for a standby
    // enrolled before keys, its token's first signed request). A stand-in
    // with a copy of the token gets nothing at all: no records, no
    // accounts (outside tester insider-rt10 N3: every password hash), no
    // lease, no acknowledgement. An admin reads records and changes
    // nothing: no lease, no acknowledgement, no behind hold (F10).
    let signed = caller.role == Role::Standby;
    if signed {
        signed_by_standby(app, headers, q, &caller.name)?;
        // Fresh, or nothing: the nonce was used up before anything is
        // read or renewed (M1, H2; `serve`).
        let token = super::auth::Auth::presented_token_hash(headers).unwrap_or_default();
        if !fresh {
            return Err(nonce_needed());
        }
        // The store the standby says it holds is one this primary sent it
        // (or one it held before): else what reached it was changed on
        // the way (outside tester insider-rt12 A1: nobody noticed the
        // standby echo a digest the primary never sent, 314 times).
        if let Some(named) = q.accounts.as_deref().filter(|d| !d.is_empty()) {
            if !accounts_named_known(&token, named) {
                app.faults.record("failover", ACCOUNTS_DIFFER);
            }
        }
    }
    let mut commits = app.feed.subscribe();
    let mut accounts_changed = app.auth.subscribe();
    for attempt in 0..2 {
        // Marked seen before reading, so a change after the read wakes us.
        accounts_changed.borrow_and_update();
        let carried = app
            .auth
            .carried()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        // Only to the standby of record's signed, fresh request: an admin
        // reads records only (insider-rt11 L4: an admin session read every
        // password hash here).
        // Sealed for the standby's own sealing key, never in clear
        // (issue 23/24 D1, R11: anyone with a tap on the LAN read every
        // password hash); none to a standby that names no sealing key.
        let accounts = if signed && q.accounts.as_deref() != Some(carried.digest().as_str()) {
            let token = super::auth::Auth::presented_token_hash(headers).unwrap_or_default();
            let sealed = sealed_accounts(app, &token, q, &carried);
            if sealed.is_some() {
                note_accounts_sent(&token, &carried.digest());
            }
            sealed
        } else {
            None
        };
        let a = app.clone();
        let hash = q.hash.clone();
        let after = q.after;
        let recs = tokio::task::spawn_blocking(move || {
            let last = a.engine.read(|e| e.log().tail().next_seq - 1)?;
            records_after(&a, after, hash.as_deref()).map(|r| (r, last))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let (recs, last) = match recs {
            Err(ApiError::PrimaryBehind { standby, ours }) if !signed => {
                // Said to the caller, held nowhere: only the standby's own
                // signed position may hold this primary (F10: one admin
                // GET with a made-up position held it for good).
                return Err(ApiError::PrimaryBehind { standby, ours });
            }
            Err(ApiError::PrimaryBehind { standby, ours }) => {
                // Kept: commands answer `primary_behind` (promote the
                // standby) and revoking the standby is refused, also after
                // a restart (red team F3).
                if let Err(e) = app.fence.set_behind(standby, ours) {
                    app.faults.record(
                        super::fence::HOLD_NOT_WRITTEN,
                        format!("cannot note that this log is behind its standby ({e}): commands are held, but a restart would forget it / 記録が予備機より少ないことをディスクに書けません（受付は止めています。再起動すると忘れます）"),
                    );
                }
                app.faults.record(
                    "damage",
                    format!("the standby holds records up to {standby}, but this log ends at {ours}: records were lost here; this server takes no commands (no standby lease) — promote the standby / 待機系の方が記録が多いため、この主機は受付を止めました。待機系を昇格してください"),
                );
                return Err(ApiError::PrimaryBehind { standby, ours });
            }
            Err(ApiError::Diverged(at)) if signed => {
                // The standby of record, signing, names a record this log
                // does not hold: what it took was changed on the way, or
                // its log is another's (outside tester insider-rt12 A1: a
                // forged record was taken for the cable).
                app.faults.record("failover", RECORDS_DIFFER);
                return Err(ApiError::Diverged(at));
            }
            other => other?,
        };
        // How far behind the standby is (insider-rt14 R3: commands are
        // refused before they are written while it copies a long log).
        if signed {
            app.fence.note_served_last(last);
        }
        // Only a standby whose position this log holds renews the lease.
        if signed && attempt == 0 {
            let renewed = q.lease.as_deref().is_some_and(|g| app.fence.renew(g));
            let token = super::auth::Auth::presented_token_hash(headers).unwrap_or_default();
            watch(
                app,
                &token,
                if renewed {
                    Seen::Renewed
                } else {
                    Seen::Unrenewed
                },
            );
        }
        // The standby holds every record up to `after`: its hash was just
        // checked against ours.
        if signed {
            if let Some(h) = &q.hash {
                if app.fence.behind().is_some() {
                    // The standby's position is in this log again (it was
                    // restored or rejoined behind us).
                    if let Err(e) = app.fence.clear_behind() {
                        app.faults
                            .record("damage", format!("cannot clear the behind note: {e}"));
                    }
                }
                app.fence.ack(q.after);
                note_witness(app, &caller.name, q.after, h);
            }
        }
        if !recs.is_empty() || accounts.is_some() || attempt == 1 {
            let records: Vec<Value> = recs
                .iter()
                .map(|r| json!({"seq": r.seq, "prev": hex(&r.prev), "payload": String::from_utf8_lossy(&r.payload)}))
                .collect();
            // Made now, before the standby can receive it (`fence.rs`).
            // `last`: how far the standby is behind (a promotion of a
            // standby still catching up would lose the difference).
            let mut answer = json!({"records": records, "grant": app.fence.grant(), "last": last});
            if let Some(a) = accounts {
                answer["sealed_accounts"] = a;
            }
            return Ok(Json(answer));
        }
        let _ = tokio::time::timeout(LONG_POLL, async {
            tokio::select! {
                _ = commits.changed() => {}
                _ = accounts_changed.changed() => {}
            }
        })
        .await;
    }
    Ok(Json(json!({"records": [], "grant": app.fence.grant()})))
}

/// Primary: what a standby without a sealing key is not sent (issue 23/24
/// D1): said on /admin once per standby token and process.
pub const NO_SEAL_KEY: &str = "予備機の暗号鍵がないため、アカウントを送っていません。予備機を新しい版にしてください / the standby names no sealing key (an older version): the accounts (password hashes) are not sent to it, only the log. Upgrade the standby";

static NO_SEAL_SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Primary: the account store sealed for the standby's sealing key named
/// in its signed request `q`, bound to its token hash `token`, the request's
/// position and nonce; `None` (and said once) when it names no usable key.
fn sealed_accounts(
    app: &App,
    token: &str,
    q: &Since,
    carried: &super::auth::Carried,
) -> Option<Value> {
    let seal = q.seal.as_deref().filter(|s| !s.is_empty());
    let aad = super::link_key::accounts_aad(token, q.after, q.nonce.as_deref().unwrap_or_default());
    let sealed = seal.and_then(|to| {
        let plain = serde_json::to_vec(carried).ok()?;
        super::link_key::seal_accounts(to, &aad, &plain)
    });
    match sealed {
        Some((eph, sealed)) => Some(json!({"eph": eph, "box": sealed})),
        None => {
            let first = NO_SEAL_SAID
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(token.to_string());
            if first {
                app.faults.record("failover", NO_SEAL_KEY);
            }
            None
        }
    }
}

/// Primary: a standby's signed request names an account store this
/// primary never sent it.
const ACCOUNTS_DIFFER: &str = "the standby says it holds an account store this primary never sent it: what reached it may have been changed on the way (someone on the standby's cable?). Check the cable between the two machines; do not promote the standby until it is checked / 予備機に届いた登録情報（アカウント）が、主機の送ったものと違います（途中で書き換えられた恐れがあります）。主機と予備機の間のケーブルを確かめてください。確かめるまで予備機を昇格しないでください";

/// Primary: a standby's signed request names a record this log does not
/// hold.
const RECORDS_DIFFER: &str = "the standby's record does not match this primary's (it was changed on the way, or the standby's log is another office's): it gets nothing more from here and renews no lease. Check the cable between the two machines / 予備機の記録が主機と一致しません（途中で書き換えられた恐れがあります。または予備機の記録が別の窓口のものです）。主機と予備機の間のケーブルを確かめてください";

/// Per standby token hash: the account store digests this primary sent
/// it, or that it named before (its own store from before this process).
static ACCOUNTS_SEEN: std::sync::Mutex<
    std::collections::BTreeMap<String, std::collections::VecDeque<String>>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());
/// How many digests are kept per token.
const ACCOUNTS_KEPT: usize = 16;

fn keep_digest(kept: &mut std::collections::VecDeque<String>, digest: &str) {
    if !kept.iter().any(|d| d == digest) {
        kept.push_back(digest.to_string());
        while kept.len() > ACCOUNTS_KEPT {
            kept.pop_front();
        }
    }
}

/// Primary: the account store with `digest` went to the token `token`.
fn note_accounts_sent(token: &str, digest: &str) {
    let mut all = ACCOUNTS_SEEN.lock().unwrap_or_else(|p| p.into_inner());
    keep_digest(all.entry(token.to_string()).or_default(), digest);
}

/// Primary: whether the digest a standby's signed request names is one
/// it was sent, or named before (its first named is taken as its own);
/// kept either way, so a changed store is said once.
fn accounts_named_known(token: &str, named: &str) -> bool {
    let mut all = ACCOUNTS_SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let kept = all.entry(token.to_string()).or_default();
    let known = kept.is_empty() || kept.iter().any(|d| d == named);
    keep_digest(kept, named);
    known
}

/// The refusal of a standby's request that is not signed with its
/// token's key: the standby says so loudly and is not promoted without an
/// override (outside tester insider-rt10 N2, N3).
pub const LINK_KEY_REFUSED: &str = "link_key_refused";

fn link_key_refused(why: &str) -> ApiError {
    ApiError::Plain {
        status: StatusCode::FORBIDDEN,
        code: LINK_KEY_REFUSED,
        ja: format!("この予備機の要求は、主機に登録された予備機の鍵で署名されていません（{why}）。主機の記録は渡しません。別の機械がこの予備機のトークンを使っているおそれがあります"),
        en: format!("this request is not signed with the standby's registered key ({why}): no records are given; another machine may be using this standby's token"),
    }
}

/// Whether a standby's replication request is signed with its token's
/// link key (`link_key.rs`, outside tester insider-rt9 F11): `Err` is the
/// answer when it is not (nothing of the log or the accounts). A request
/// that is not is a fault record once per reason and process.
fn signed_by_standby(
    app: &App,
    headers: &HeaderMap,
    q: &Since,
    name: &str,
) -> Result<(), ApiError> {
    use super::link_key::{check, Checked};
    let Some(token) = super::auth::Auth::presented_token_hash(headers) else {
        return Err(link_key_refused("unsigned"));
    };
    let msg = signed_text(q);
    match check(&app.data, &token, q.key.as_deref(), q.sig.as_deref(), &msg) {
        Ok(Checked::Signed) => Ok(()),
        Ok(Checked::Registered) => {
            // Only a standby enrolled before keys were bound at enrolment
            // gets here: said on /admin, with the way to bind it.
            app.faults.record(
                "failover",
                format!("no key was kept here for the standby {name} (it was enrolled before keys were bound, or this data folder was restored from a backup taken before backups carried {keys}): the first key that signed for its token is now its key (only its signed requests get records and renew the lease). If that was not this standby (its /admin says its key is refused), revoke it and enrol it again with a new link / 予備機 {name} の鍵がこの主機に保存されていなかったため（鍵のない版で登録されたか、このデータフォルダを鍵を含まない古いバックアップから戻したため）、最初に署名した鍵をこの予備機の鍵として登録しました。予備機の管理画面に「鍵が受け付けられません」と出るときは、取り消して新しい登録用リンクで登録し直してください", keys = super::link_key::KEYS_FILE),
            );
            Ok(())
        }
        Ok(Checked::Unsigned(why)) => {
            if why == "other_key" {
                app.fence.note_key_refused();
            }
            if app.fence.first_unproven(&format!("link {why}"), 0) {
                app.faults.record(
                    "failover",
                    format!("a replication request with the standby {name}'s token is not signed with its key ({why}): it gets no records, renews no lease and acknowledges nothing; if the standby itself was not changed, its token may be copied — revoke it on /admin and enrol the standby again / 予備機 {name} の鍵で署名されていない記録の要求がありました（{why}）。記録は渡さず、受付の許可にも数えません。予備機を替えていなければトークンが写された恐れがあります。管理画面で取り消し、予備機を登録し直してください"),
                );
            }
            Err(link_key_refused(why))
        }
        Err(e) => {
            app.faults.record(
                "failover",
                format!("the standby's link key cannot be kept or read ({e}): its requests renew no lease / 予備機の鍵を保存・読み取りできません"),
            );
            Err(ApiError::Internal(e.to_string()))
        }
    }
}

/// A revoked standby was refused and has said that it wrote the refusal
/// down: it will not be promoted, so this primary stops waiting for it.
/// Only its own word counts: the request signed with the key kept for its
/// token (outside tester insider-rt10 N1: one unsigned request with a
/// copy of the token lifted the hold, and the cut-off standby, promoted,
/// gave the same numbers).
fn revoked_standby_knows(app: &App, headers: &HeaderMap, q: &Since, fresh: bool) {
    let Some(hash) = super::auth::Auth::presented_token_hash(headers) else {
        return;
    };
    if !app.fence.is_unconfirmed(&hash) {
        return;
    }
    // With the sealing key it names, as it signs every request (issue
    // 23/24 D1).
    let msg = super::link_key::with_seal(
        super::link_key::refused_message(
            q.nonce.as_deref().unwrap_or_default(),
            q.after,
            q.hash.as_deref().unwrap_or_default(),
            q.lease.as_deref().unwrap_or_default(),
            q.accounts.as_deref().unwrap_or_default(),
        ),
        q.seal.as_deref().unwrap_or_default(),
    );
    match super::link_key::verify_kept(&app.data, &hash, q.key.as_deref(), q.sig.as_deref(), &msg) {
        // Fresh too: the nonce handed out with an answer to this token
        // since the revocation (outside tester insider-rt11 H2: a refusal
        // sniffed at an earlier revocation, replayed, lifted this one).
        Ok(true) if fresh => {}
        Ok(true) => {
            if app.fence.first_unproven("revoked standby stale refusal", 0) {
                app.faults.record(
                    "failover",
                    "a revoked standby's signed refusal came without a fresh nonce (sent again from an earlier one?): it does not count, commands stay held until the standby itself says so or an admin confirms it is off / 取り消した予備機の「取り消しを知った」という要求が、使い捨ての番号なし（以前の要求の再送の恐れ）で届いたため数えません",
                );
            }
            return;
        }
        Ok(false) => {
            if app
                .fence
                .first_unproven("revoked standby unsigned refusal", 0)
            {
                app.faults.record(
                    "failover",
                    "a request with a revoked standby's token said it knows it was revoked, but it is not signed with that standby's key: it does not count, commands stay held until the standby itself says so or an admin confirms it is off / 取り消した予備機のトークンで「取り消しを知った」という要求がありましたが、その予備機の鍵で署名されていないため数えません。トークンが写された恐れがあります",
                );
            }
            return;
        }
        Err(e) => {
            app.faults.record(
                "failover",
                format!("the standby's link key cannot be read ({e}): the revoked standby's word is not taken / 予備機の鍵を読み取れません"),
            );
            return;
        }
    }
    match app.fence.revoked_gone(&hash) {
        Ok(Some(name)) => app.faults.record(
            "failover",
            format!("the revoked standby {name} reached this primary and knows it was revoked (it will not be promoted) / 取り消した予備機 {name} が取り消しを知りました"),
        ),
        Ok(None) => {}
        Err(e) => app.faults.record(
            "failover",
            format!("cannot note that the revoked standby knows it ({e}): still holding commands"),
        ),
    }
}

/// How long a standby at the end of its promotion wait waits for the
/// primary's answer: a primary that does not answer is taken for dead.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Standby, at the end of the promotion wait: the primary's refusal of
/// this standby's token, if it answers with one (revoked or deleted
/// meanwhile: outside tester N1-a, N1-b). A primary out of reach, or one
/// that still knows the token, is no refusal.
async fn primary_refuses_now(app: &App) -> Option<Refusal> {
    let primary = app.primary_url.clone()?;
    let token = std::fs::read_to_string(app.data.join("standby-token")).ok()?;
    let http = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .ok()?;
    // The answer is signed over a fresh challenge (outside tester
    // insider-rt12 A1), signed with this standby's link key and answered
    // as a probe for its token and key only (insider-rt13 E1): a refusal
    // made up on the way, or asked of the primary by someone else, stops
    // no promotion.
    let primary_key = super::link_key::primary_answer_key(&app.data)?;
    let link = super::link_key::own(&app.data).ok()?;
    let challenge = format!("{:032x}", rand::random::<u128>());
    let (key, sig) = super::link_key::sign_text(&link, &super::link_key::probe_message(&challenge));
    let token = token.trim();
    let sent = http
        .get(format!(
            "{primary}/api/replication?after=0&probe=true&challenge={challenge}&key={key}&sig={sig}"
        ))
        .bearer_auth(token)
        .send()
        .await;
    let token_sha256 = super::link_key::token_sha256(token);
    let to = super::link_key::AnswerFor {
        kind: super::link_key::AnswerKind::Probe,
        token_sha256: &token_sha256,
        key: &key,
        request_sig: &sig,
    };
    let r = match checked(sent, &primary_key, to).await {
        Got::Signed(r) => r,
        Got::Forged(status) => {
            // The primary signs its refusal of this standby's own probe:
            // an unsigned one is no refusal (said on /admin).
            app.faults.record(
                "standby",
                if is_refusal(status) {
                    UNSIGNED_REFUSAL
                } else {
                    ANSWER_NOT_SIGNED
                },
            );
            return None;
        }
        Got::Plain(_) | Got::Failed(_) => return None,
    };
    let status = r.status;
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return None;
    }
    let code = error_code_of(&r.body);
    Some(Refusal {
        status: status.as_u16(),
        code,
        primary,
        at: chrono::Utc::now().to_rfc3339(),
    })
}

/// A promotion that did not happen: this machine is a standby again and
/// follows (a refused one only asks now and then).
fn follow_again(app: &Arc<App>) {
    app.promoting.store(false, Ordering::SeqCst);
    app.standby.store(true, Ordering::SeqCst);
    let token = std::fs::read_to_string(app.data.join("standby-token"));
    if let (Some(primary), Ok(token)) = (app.primary_url.clone(), token) {
        follow(app.clone(), primary, token.trim().to_string());
    }
}

/// The refusal of a promotion for `code`: the cause and the way out.
fn refuse_promotion(code: &str, ja: &str, en: &str) -> Response {
    (StatusCode::CONFLICT, Json(json!({"error": {"code": code,
        "message_ja": format!("昇格できません：{ja}。主機もほかの予備機も二度と動かさないと確かめたときに限り、madoguchi promote --override-not-of-record で昇格できます"),
        "message_en": format!("not promoted: {en}. Only if the primary and every other standby are off for good: madoguchi promote --override-not-of-record")}}))).into_response()
}

/// The body of `POST /api/promote` (optional; `{}` and none are the same).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// Promote although this standby is not the primary's enabled standby
    /// of record (refused, revoked, deleted, or replaced by another): only
    /// when the primary and every other standby are off for good. Loud:
    /// stderr, the fault records, the answer.
    #[serde(default)]
    override_not_of_record: bool,
}

/// Why this standby is not the primary's enabled standby of record, as far
/// as its last contact with the primary shows: (code, Japanese, English).
/// Such a standby is not promoted without an override (N1): the primary
/// may be issuing under another standby's lease, and that standby may be
/// promoted too.
fn not_of_record(app: &App) -> Option<(&'static str, String, String)> {
    if let Some(r) = refused_here(&app.data) {
        let (ja, en) = r.message();
        return Some(("standby_refused", ja, en));
    }
    if let Some(primary) = key_refused_here(&app.data) {
        let (ja, en) = key_refused_words(&primary);
        return Some((LINK_KEY_REFUSED, ja, en));
    }
    let token = std::fs::read_to_string(app.data.join("standby-token")).unwrap_or_default();
    let (ja, en) = match app.auth.standing(&token) {
        Standing::OfRecord => return None,
        Standing::Revoked(name) => (
            format!("主機から最後に受け取った登録では、この予備機（{name}）の登録は取り消されています。"),
            format!("in the primary's store as last received, this standby ({name}) is revoked."),
        ),
        Standing::Replaced(by) => (
            format!("主機から最後に受け取った登録では、別の予備機「{by}」が主機の予備機です。"),
            format!("in the primary's store as last received, another standby (\"{by}\") is the primary's standby."),
        ),
        Standing::Missing => (
            "主機から最後に受け取った登録に、この予備機はありません（削除されたか、まだ主機から登録の情報を受け取っていません）。".to_string(),
            "this standby is not in the primary's store as last received (deleted, or the store has not arrived yet).".to_string(),
        ),
    };
    Some((
        "not_standby_of_record",
        format!("{ja}この予備機を昇格すると、主機やほかの予備機と同じ番号を出すおそれがあるため、昇格できません。予備機として使い続けるときは、主機の管理画面「端末」で予備機の登録用リンクを作り直し、この機械を --enrol-link 新しいリンク を付けて起動し直してください（docs/manual-ja.md「予備機への切替え」）"),
        format!("{en} Promoting it could give numbers the primary or another standby also gives: refused. To use it as the standby again, make a new standby link on the primary (管理 → 端末) and start this server again with --enrol-link NEW_LINK"),
    ))
}

/// `POST /api/promote` (admin, on the standby): stop following, take
/// commands from now on. A standby that is not the primary's standby of
/// record is refused unless the body says `override_not_of_record`.
pub async fn promote(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = app.auth.require(&method, &headers, &[Role::Admin])?;
    let asked: PromoteBody = if body.iter().all(u8::is_ascii_whitespace) {
        PromoteBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    let overridden = match may_promote(&app, &asked, &caller.name).await? {
        Ok(overridden) => overridden,
        Err(refused) => return Ok(refused),
    };
    if !app.standby.swap(false, Ordering::SeqCst) {
        return Ok((StatusCode::CONFLICT, Json(json!({"error": {"code": "not_standby", "message_ja": "この機械は予備機ではありません", "message_en": "this server is not a standby"}}))).into_response());
    }
    // Following has stopped; commands wait until every lease the old
    // primary may hold has ended (`fence.rs`).
    app.promoting.store(true, Ordering::SeqCst);
    loop {
        let wait = app.fence.wait_before_promotion();
        if wait.is_zero() {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    // The primary may have revoked this standby during the wait (outside
    // tester N1-a, N1-b): if it answers, it is asked once. A refusal
    // stops the promotion, written down as any refusal; a primary out of
    // reach is taken for dead (it holds its own commands back until the
    // revoked standby is known to be gone, `fence.rs`).
    if !asked.override_not_of_record {
        if let Some(refusal) = primary_refuses_now(&app).await {
            follow_again(&app);
            if refusal.code == LINK_KEY_REFUSED {
                note_key_refused(&app, &refusal.primary);
                let (ja, en) = key_refused_words(&refusal.primary);
                return Ok(refuse_promotion(LINK_KEY_REFUSED, &ja, &en));
            }
            note_refusal(&app, &refusal);
            let (ja, en) = refusal.message();
            return Ok(refuse_promotion("standby_refused", &ja, &en));
        }
    }
    // Whether this standby's log is its primary's (it followed it to the
    // end), not a restored backup's that never followed (outside tester
    // failover-rt5 F3): only then does the promotion end the restored
    // hold.
    let ours = app.engine.read(|e| e.seq())?;
    let followed = app.fence.primary_last() > 0 && ours <= app.fence.primary_last();
    let epoch = match record_promotion(&app, caller.name.clone()).await {
        Ok(n) => n,
        Err(e) => {
            // Not promoted after all: follow again.
            follow_again(&app);
            return Err(e);
        }
    };
    note_promotion(&app, epoch, followed, &caller.name);
    let unsure = unsure_tickets(&app).await;
    let (accepting, ja, en, forced) = promotion_words(&app, epoch, overridden);
    Ok(Json(json!({"ok": true, "promoted": true, "epoch": epoch, "accepting": accepting, "overridden": forced, "message_ja": ja, "message_en": en, "unsure_tickets": unsure})).into_response())
}

/// Whether this standby may be promoted now: `Ok(Err(answer))` refuses
/// (not the standby of record without override, or still behind its
/// primary); `Ok(Ok(why))` goes on, `why` the override's reason if any.
async fn may_promote(
    app: &Arc<App>,
    asked: &PromoteBody,
    by: &str,
) -> Result<Result<Option<String>, Response>, ApiError> {
    let mut overridden = None;
    if app.is_standby() {
        if let Some((code, ja, en)) = not_of_record(app) {
            if !asked.override_not_of_record {
                return Ok(Err(refuse_promotion(code, &ja, &en)));
            }
            let said = format!("{} promoted this standby although it is not the primary's standby of record ({code}), by override: numbers may be given twice if the primary or another standby still runs / 登録外の予備機を強制的に昇格しました: {ja}", by);
            eprintln!("madoguchi: {said}");
            tracing::error!("{said}");
            app.faults.record("failover", said);
            overridden = Some(ja);
        }
    }
    // A standby still catching up (started after the primary had a
    // history, and the primary failed before it got it all) would lose the
    // difference, today's numbers among it: refused, with the way out
    // (found following the manual with a demo office of 100,000 records).
    let held = app
        .engine
        .read_async(|e| e.log().tail().next_seq - 1)
        .await?;
    let primary_last = app.fence.primary_last();
    if app.is_standby() && primary_last > held {
        return Ok(Err((StatusCode::CONFLICT, Json(json!({"error": {"code": "standby_behind",
            "message_ja": format!("この予備機は主機の記録をまだ受け取りきっていません（主機の記録 {primary_last} 件のうち {held} 件）。いま昇格すると残りの記録（発行済みの番号を含みます）が失われ、同じ番号が二度出るおそれがあります。主機が動いていれば受け取り終わるまで待ってください。主機が壊れているときは、最新のバックアップから予備機に復旧してください（マニュアル「記録の破損から復旧する」）"),
            "message_en": format!("this standby holds {held} of the primary's {primary_last} records: promoting it now would lose the rest, issued numbers among them; wait until it has caught up, or restore the latest backup onto it")}}))).into_response()));
    }
    Ok(Ok(overridden))
}

/// Writes the promotion (a new epoch) to the log; returns the epoch.
async fn record_promotion(app: &Arc<App>, by: String) -> Result<u64, ApiError> {
    let a = app.clone();
    tokio::task::spawn_blocking(move || -> Result<u64, ApiError> {
        let epoch = a.engine.read(|e| e.state().meta.epoch)? + 1;
        match a
            .engine
            .write(move |e| e.record_audit(Some(by), Event::Promoted { epoch }))
        {
            Ok(Ok(_)) => Ok(epoch),
            Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// After the promotion is in the log: the fence's epoch and proof, the
/// files that survive a restart, the standby device gone, the old primary
/// told, a restored hold ended when this log is the primary's, a fault
/// record and the displays.
fn note_promotion(app: &Arc<App>, epoch: u64, followed: bool, by: &str) {
    app.fence.set_epoch(epoch);
    if let Err(e) = std::fs::write(app.data.join(PROMOTED), format!("{epoch}\n")) {
        app.faults.record(
            "failover",
            format!("cannot note the promotion beside the log ({e}): after a restart, start without --standby-of"),
        );
    }
    if let Some(url) = &app.primary_url {
        if let Err(e) = std::fs::write(app.data.join(OLD_PRIMARY), format!("{url}\n")) {
            app.faults.record(
                "failover",
                format!("cannot note the old primary's address ({e}): after a restart it is not told again"),
            );
        }
    }
    if let Some(p) = proof_of(app, epoch) {
        app.fence.set_proof(p);
    }
    app.promoting.store(false, Ordering::SeqCst);
    // The link key signs for no primary any more: a copy of this folder
    // taken from now on cannot keep the old primary's lease (F11).
    if let Err(e) = super::link_key::forget(&app.data) {
        app.faults.record(
            "failover",
            format!(
                "cannot remove the standby's link key ({e}): remove {} by hand",
                super::link_key::KEY_FILE
            ),
        );
    }
    // This machine has no standby of its own yet: its standby device (the
    // one it followed with) goes, so no lease is asked of anyone.
    if let Ok(token) = std::fs::read_to_string(app.data.join("standby-token")) {
        if let Err(e) = app.auth.delete_device_by_token(token.trim()) {
            app.faults.record(
                "failover",
                format!("the standby device stays listed: {e:#}"),
            );
        }
        tell_old_primary(app.clone(), token.trim().to_string(), epoch);
    }
    let _ = app.fence.clear_replaced();
    // A standby folder restored from a backup that has followed its
    // primary since: its log and accounts are the primary's, not the
    // backup's. One that never followed keeps the hold.
    if let Err(e) = followed.then(|| app.fence.confirm_restored()).transpose() {
        app.faults.record(
            "failover",
            format!("cannot remove the restored-backup hold ({e}): an admin confirms it on /admin"),
        );
    }
    app.faults.record(
        "failover",
        format!("promoted to primary by {} (epoch {epoch})", by),
    );
    app.displays.poke();
}

/// At the promotion: the tickets in the records after the last position
/// the old primary is known to have taken from this standby. Their
/// acknowledgement may never have reached it, so it may have answered the
/// kiosk 「受付を止めています」 and printed nothing, while here they are
/// issued and waiting (outside tester insider-rt10 N6: 1725, 1726 and 1965
/// waited for visitors who did not exist). Listed for staff in a fault
/// record each (/admin) and in `<data>/unsure-tickets.txt`; best effort.
async fn unsure_tickets(app: &Arc<App>) -> Vec<String> {
    let Some(answered) = app.fence.answered() else {
        return Vec::new();
    };
    let dir = app.data.join("log");
    let read = tokio::task::spawn_blocking(move || -> Vec<(u64, Value)> {
        let Ok(records) = log::read_live_near(&dir, answered + 1) else {
            return Vec::new();
        };
        records
            .filter_map(Result::ok)
            .map(|(_, r)| r)
            .filter(|r| r.seq > answered)
            .map(|r| {
                let body = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
                (r.seq, body)
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    let mut lines = Vec::new();
    for (seq, body) in read {
        for e in body["events"].as_array().into_iter().flatten() {
            if e["type"] != "ticket_issued" {
                continue;
            }
            let category = e["category"].as_str().unwrap_or("?");
            let number = &e["number"];
            let when = body["at"]
                .as_i64()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| {
                    t.with_timezone(
                        &chrono::FixedOffset::east_opt(9 * 3600)
                            .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc)),
                    )
                    .format("%H:%M:%S")
                    .to_string()
                })
                .unwrap_or_default();
            lines.push(format!("渡っていない可能性がある番号札：{category} {number}番（記録 {seq}、{when} 発券）— この予備機が受け取ったことを元の主機が知る前に連絡が途絶えた可能性があり、そのときは発券機に「受付を止めています」と答えて番号札を渡していません（渡している場合もあります）。呼び出しても来庁者がいないときは、取消しにしてください / possibly not handed out: ticket {number} ({category}, record {seq}): the old primary may have answered the kiosk no_standby_lease"));
        }
    }
    if lines.is_empty() {
        return lines;
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Err(e) = std::fs::write(app.data.join("unsure-tickets.txt"), text) {
        tracing::warn!(error = %e, "unsure-tickets.txt could not be written");
    }
    for l in &lines {
        app.faults.record("failover", l.clone());
    }
    lines
}

/// What the admin is told: whether this machine takes commands now (a
/// second standby of the old primary can keep it from it), and the
/// override's warning; returns (accepting, ja, en, overridden).
fn promotion_words(
    app: &Arc<App>,
    epoch: u64,
    overridden: Option<String>,
) -> (bool, String, String, bool) {
    // Say only what is true: a standby of the old primary still enrolled
    // here (a second standby, red team F2) keeps this machine from taking
    // commands until it is revoked or follows this machine.
    let others: Vec<String> = app
        .auth
        .devices()
        .into_iter()
        .filter(|d| d.role == Role::Standby && !d.disabled)
        .map(|d| d.name)
        .collect();
    let (accepting, ja, en) = match app.may_command() {
        Ok(()) => (
            true,
            format!("主機に昇格しました（第{epoch}期）。ここで受付を続けられます。"),
            format!("promoted to primary (epoch {epoch}); this server takes commands"),
        ),
        Err(ApiError::NoLease) => (
            false,
            format!("主機に昇格しました（第{epoch}期）が、まだ受付を始められません。元の主機の予備機（{}）もこの機械に登録されているため、その予備機がこの機械に従うまで番号を出しません。その予備機を使わないときは「端末」でその予備機の「取り消す」を押すと受付を始めます。", others.join("、")),
            format!("promoted (epoch {epoch}), but this server takes no commands yet: the old primary's other standby ({}) is enrolled here and does not follow this machine; revoke it under 管理 → 端末 to start", others.join(", ")),
        ),
        Err(e) => {
            let (_, _, why_ja, why_en) = e.parts();
            (
                false,
                format!("主機に昇格しました（第{epoch}期）が、まだ受付を始められません：{why_ja}"),
                format!("promoted (epoch {epoch}), but this server takes no commands yet: {why_en}"),
            )
        }
    };
    let forced = overridden.is_some();
    let (ja, en) = match overridden {
        Some(why) => (
            format!("【強制昇格】登録外の予備機を昇格しました（{why}）。元の主機とほかの予備機を止めたままにしてください。{ja}"),
            format!("[override] promoted although not the standby of record; keep the old primary and every other standby off. {en}"),
        ),
        None => (ja, en),
    };
    (accepting, ja, en, forced)
}

/// Primary, at start (outside tester insider-rt13 C4): standby keys are
/// bound here but the answer key is gone (a damaged or hand-copied data
/// folder). A new one would be made at the first answer, and the standby,
/// holding the old key's public half, would refuse every answer while
/// both machines blamed the cable: said loudly (stderr, /admin) first.
pub fn check_answer_key(app: &App) {
    if !super::link_key::answer_key_lost(&app.data) {
        return;
    }
    // An upgrade from a version before answer keys: no backup holds one
    // (outside tester insider-rt14 R4: told to restore a backup, which
    // would have held a working primary as `restored_unconfirmed`).
    let said = if super::link_key::answer_key_ever_made(&app.data) {
        format!(
            "{} / {}",
            ANSWER_KEY_LOST_JA, "the primary's answer key (link-answer-key) is missing although standby keys are bound: restore it from a backup, or revoke the standby and enrol it again (its answers will not be taken until then)"
        )
    } else {
        format!(
            "{} / {}",
            ANSWER_KEY_UPGRADE_JA, "the standby was enrolled by a version before answer keys (an upgrade): revoke it on 管理 → 端末, press 「予備機の停止を確認」 on /admin, make a new standby link and start the standby with --enrol-link NEW_LINK (its answers will not be taken until then)"
        )
    };
    eprintln!("madoguchi: {said}");
    tracing::error!("{said}");
    app.faults.record("failover", said);
}

/// What staff are told when the answer key is gone (C4).
pub const ANSWER_KEY_LOST_JA: &str = "主機の答えの鍵（link-answer-key）がありません。バックアップから戻すか、予備機を取り消して登録し直してください（それまで予備機は主機の答えを受け取れず、受付は止まります）";

/// What staff are told on an upgrade from a version before answer keys
/// (outside tester insider-rt14 R4): no backup holds one.
pub const ANSWER_KEY_UPGRADE_JA: &str = "予備機は、主機の答えの鍵（link-answer-key）がなかった以前の版で登録されています。版を上げたときは、予備機を取り消して登録し直してください：1. 主機の管理画面「端末」で予備機を取り消す。2. 主機の管理画面で「予備機の停止を確認」を押す。3. 予備機の登録用リンクを作り直し、予備機を --enrol-link 新しいリンク を付けて起動し直す（docs/manual-ja.md「予備機への切替え」）。それまで予備機は主機の答えを受け取れず、受付は止まります";

/// Tells the old primary that it was replaced, again every few seconds
/// until it answers (it may be frozen, or cut off).
fn tell_old_primary(app: Arc<App>, token: String, epoch: u64) {
    let Some(primary) = app.primary_url.clone() else {
        return;
    };
    tokio::spawn(async move {
        let Ok(http) = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
        else {
            return;
        };
        loop {
            let sent = http
                .post(format!("{primary}/api/fence"))
                .bearer_auth(&token)
                .json(&json!({"epoch": epoch}))
                .send()
                .await;
            if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                app.faults.record(
                    "failover",
                    format!("the old primary {primary} knows it was replaced"),
                );
                return;
            }
            // A standby promoted by override: the old primary does not
            // know its token, and never will.
            if sent.is_ok_and(|r| {
                r.status() == StatusCode::UNAUTHORIZED || r.status() == StatusCode::FORBIDDEN
            }) {
                app.faults.record(
                    "failover",
                    format!("the old primary {primary} refuses this machine's standby token: it cannot be told that it was replaced; keep it off"),
                );
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceBody {
    epoch: u64,
}

/// `POST /api/fence {"epoch": N}` (its standby, or an admin): a standby
/// was promoted to epoch N. If that is newer than this server's, this
/// server is the old primary: it refuses commands from now on.
pub async fn fence(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    axum::Json(body): axum::Json<FenceBody>,
) -> Result<Json<Value>, ApiError> {
    // A standby revoked here but not known to have learned it may have
    // been promoted all the same (cut off, or in the middle of its
    // promotion wait): its word fences this primary.
    let caller = match app
        .auth
        .require(&method, &headers, &[Role::Standby, Role::Admin])
    {
        Ok(c) => c.name,
        Err(e) => match super::auth::Auth::presented_token_hash(&headers)
            .filter(|h| app.fence.is_unconfirmed(h))
        {
            Some(_) => "the revoked standby".to_string(),
            None => return Err(e),
        },
    };
    let ours = app.engine.read_async(|e| e.state().meta.epoch).await?;
    if body.epoch > ours && !app.is_standby() {
        // Fenced in memory even when the file cannot be written; the
        // error makes the promoted machine tell again (a restart here
        // would forget it).
        let newly = app.fence.mark_replaced(body.epoch).map_err(|e| {
            app.faults.record(
                super::fence::HOLD_NOT_WRITTEN,
                format!("replaced by epoch {} (commands refused), but it cannot be written down ({e}): a restart would forget it / 主機でなくなったことをディスクに書けません（受付は止めています）", body.epoch),
            );
            ApiError::Internal(e.to_string())
        })?;
        if newly {
            app.faults.record(
                "failover",
                format!(
                    "replaced: {} was promoted (epoch {}); this server takes no more commands",
                    caller, body.epoch
                ),
            );
        }
    }
    Ok(Json(json!({"ok": true, "replaced": app.fence.replaced()})))
}

/// Follows the primary until promoted.
pub fn follow(app: Arc<App>, primary: String, token: String) {
    if app.following.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        follow_loop(&app, &primary, &token).await;
    });
}

/// How the link stopped.
enum Stopped {
    /// This machine is being promoted.
    Promoting,
    /// For good: the logs differ, or the engine is gone.
    ForGood,
}

/// The standby link: it pauses while a promotion runs, and follows
/// again if that promotion is refused at its end ([`follow_again`]);
/// [`App::following`] keeps it to one loop.
async fn follow_loop(app: &Arc<App>, primary: &str, token: &str) {
    while let Stopped::Promoting = follow_while_standby(app, primary, token).await {
        app.following.store(false, Ordering::SeqCst);
        // A refused promotion set `standby` before asking for the loop:
        // either it sees the flag clear and starts one, or this sees
        // `standby` again and goes on.
        if !app.standby.load(Ordering::SeqCst) || app.following.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

/// Follows while this machine is a standby.
async fn follow_while_standby(app: &Arc<App>, primary: &str, token: &str) -> Stopped {
    let http = reqwest::Client::builder()
        .timeout(LONG_POLL + Duration::from_secs(10))
        .build();
    let Ok(http) = http else {
        return Stopped::ForGood;
    };
    let link = match super::link_key::own(&app.data) {
        Ok(k) => k,
        Err(e) => {
            app.faults.record(
                "standby",
                format!("the standby's link key cannot be made or read in the data folder ({e}): not following / 予備機の鍵をデータフォルダに作れません。主機に従えません"),
            );
            return Stopped::ForGood;
        }
    };
    // What every answer of the primary is checked with (outside tester
    // insider-rt12 A1), taken at enrolment. A standby enrolled before
    // answers were signed has none: it follows nothing unchecked.
    let Some(primary_key) = super::link_key::primary_answer_key(&app.data) else {
        let (ja, en) = no_answer_key_words();
        eprintln!("madoguchi: {ja}\n  {en}");
        app.faults.record("standby", format!("{ja} / {en}"));
        return Stopped::ForGood;
    };
    let mut reachable = true;
    // What the primary's signed answers name (insider-rt13 E1).
    let token_sha256 = super::link_key::token_sha256(token);
    // Handed out by the primary with each answer (insider-rt11 M1, H2);
    // none yet: the first request, with a value of its own, is answered
    // with one (insider-rt14 R1).
    let mut nonce = super::link_key::own_nonce();
    // Signed answers it could not use, in a row (insider-rt14 R1, R2).
    let mut stall = Stall::default();
    let mut refused = refused_here(&app.data).is_some();
    // Its sealing key: the primary seals its accounts for it (issue 23/24
    // D1, R11).
    let seal_secret = match super::link_key::own_seal_secret(&app.data) {
        Ok(s) => s,
        Err(e) => {
            app.faults.record(
                "standby",
                format!("the standby's sealing key cannot be made or read in the data folder ({e}): not following / 予備機の暗号鍵をデータフォルダに作れません。主機に従えません"),
            );
            return Stopped::ForGood;
        }
    };
    let seal = super::link_key::seal_public_hex(&seal_secret);
    if let Ok(tail) = app.engine.read(|e| e.log().tail().next_seq - 1) {
        app.fence.start_answered(tail);
    }
    while app.standby.load(Ordering::SeqCst) {
        let handle = app.engine.clone();
        let Ok((after, hash)) = handle.read(|e| {
            let t = e.log().tail();
            (t.next_seq - 1, hex(&t.last_hash))
        }) else {
            return Stopped::ForGood;
        };
        let held = app.auth.received_digest();
        let lease = app.fence.echo().unwrap_or_default();
        let n = nonce.as_str();
        // Signed with this standby's own key: what renews the lease is
        // something a copy of the token cannot make (`link_key.rs`).
        // A refused standby's `refused=true` is its own statement, signed
        // as such (outside tester insider-rt10 N1).
        let msg = if refused {
            super::link_key::refused_message(n, after, &hash, &lease, &held)
        } else {
            super::link_key::message(n, after, &hash, &lease, &held)
        };
        let (key, sig) = super::link_key::sign_text(&link, &super::link_key::with_seal(msg, &seal));
        // What a sealed account store in the answer is bound to.
        let aad = super::link_key::accounts_aad(&token_sha256, after, n);
        // `refused`: this standby has written the refusal down, so the
        // primary stops waiting for it (`fence.rs`).
        let url = format!(
            "{primary}/api/replication?after={after}&hash={hash}&accounts={held}&lease={lease}&refused={refused}&key={key}&sig={sig}&nonce={n}&seal={seal}"
        );
        let asked = std::time::Instant::now();
        let sent = http.get(&url).bearer_auth(token).send().await;
        // Checked before anything of it is read (outside tester
        // insider-rt12 A1): an answer not signed by the primary's answer
        // key over this request is taken for nothing.
        let answer = checked(
            sent,
            &primary_key,
            super::link_key::AnswerFor {
                kind: super::link_key::AnswerKind::Records,
                token_sha256: &token_sha256,
                key: &key,
                request_sig: &sig,
            },
        )
        .await;
        // The next request's nonce, from any signed answer that has one
        // (a 401 or 403 too: a refused standby signs its refusal with it);
        // else a value of its own, so that no request of this standby is
        // ever sent twice as it was (insider-rt14 R1: the primary answers
        // a request it has seen only with the nonce it got then).
        nonce = match &answer {
            Got::Signed(a) => a.nonce.as_deref().filter(|v| {
                !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
            }),
            _ => None,
        }
        .map_or_else(super::link_key::own_nonce, str::to_string);
        stall.note(app, &answer, asked.elapsed());
        let answer =
            match read_answer(app, answer, primary, after, &mut refused, &mut reachable).await {
                Asked::Answer(v) => {
                    app.fence.note_answered(after);
                    v
                }
                Asked::Again => continue,
                Asked::Unanswered => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Asked::Stop => return Stopped::ForGood,
            };
        reachable = true;
        if let Some(stopped) = take_answer(app, &handle, answer, &mut refused, (&seal_secret, &aad))
        {
            return stopped;
        }
    }
    Stopped::Promoting
}

/// Standby: a run of signed answers of the primary that it could not use
/// (outside tester insider-rt14 R1, R2): a 428 (no unused nonce in its
/// request: a copy of it reached the primary first, or a replay took the
/// nonce), or records that came later than the lease (held back on the
/// way). For a few seconds it is a restart of either machine; longer, it
/// is said on /admin and in the fault records, and /admin no longer says
/// that every record was received.
#[derive(Debug, Default)]
struct Stall {
    since: Option<std::time::Instant>,
    said: bool,
}

/// How long a run of unusable answers lasts before it is said.
const STALL_SAID_AFTER: Duration = Duration::from_secs(5);

impl Stall {
    fn note(&mut self, app: &App, answer: &Got, took: Duration) {
        let late = took > super::fence::LEASE;
        let what = match answer {
            Got::Signed(a) if a.status == StatusCode::PRECONDITION_REQUIRED => Some(false),
            Got::Signed(a) if a.status.is_success() => late.then_some(true),
            // Said by its own fault record (unreachable, not signed…).
            _ => return,
        };
        let Some(late) = what else {
            self.since = None;
            self.said = false;
            app.fence.note_link_stalled(None);
            return;
        };
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < STALL_SAID_AFTER {
            return;
        }
        let words = if late {
            late_answers_words(took)
        } else {
            NO_NONCE_ARRIVES.to_string()
        };
        app.fence.note_link_stalled(Some(words.clone()));
        if !self.said {
            self.said = true;
            app.faults.record("standby", words);
        }
    }
}

/// Standby: its signed requests keep being answered 428 (insider-rt14 R1,
/// R2).
pub const NO_NONCE_ARRIVES: &str = "主機から要求の番号（nonce）が届きません（途中の機器が答えを止めているか、古い要求が繰り返し送られている恐れ）。主機と予備機の間の機器を確かめてください。主機は、この予備機から受付の許可が届かないため受付を止めています / no usable nonce arrives from the primary (something between the two machines stops its answers, or old requests are being sent again): check the devices between the primary and this standby; the primary holds its commands meanwhile";

/// Standby: the primary's answers arrive later than the lease (R2).
fn late_answers_words(took: Duration) -> String {
    format!("主機の答えが遅れて届いています（約 {} 秒）。受付の許可が間に合わないため、主機は受付を止めています（途中の機器が答えを遅らせている恐れ）。主機と予備機の間の機器を確かめてください / the primary's answers arrive late ({:.1} s, more than the lease): the primary holds its commands; check the devices between the two machines", took.as_secs(), took.as_secs_f64())
}

/// What one replication request came to.
enum Asked {
    /// Records, accounts and the lease grant to take.
    Answer(Value),
    /// Ask again at once (a refusal was just written down, or after the
    /// pause a refused standby keeps).
    Again,
    /// No usable answer: wait a second and ask again.
    Unanswered,
    /// Never follow this primary again (its log differs from ours).
    Stop,
}

/// Reads the primary's answer to one replication request: a log that
/// differs stops following for good, a refused token is written down
/// once and then only asked about now and then, a failure is a fault
/// record once until the primary answers again.
async fn read_answer(
    app: &Arc<App>,
    answer: Got,
    primary: &str,
    after: u64,
    refused: &mut bool,
    reachable: &mut bool,
) -> Asked {
    let r = match answer {
        Got::Signed(r) => r,
        Got::Forged(status) => {
            // Applied to nothing; said on /admin; still following (no
            // promotion without staff). Repeats are one row with a count.
            // An unsigned refusal is written down nowhere (insider-rt13 E1).
            tracing::error!(%status, "an answer from the primary is not signed by its answer key");
            let said = if is_refusal(status) {
                UNSIGNED_REFUSAL
            } else {
                ANSWER_NOT_SIGNED
            };
            app.faults.record("standby", said);
            return Asked::Unanswered;
        }
        Got::Plain(status) => {
            if *reachable {
                app.faults.record("standby", plain_answer_words(status));
            }
            *reachable = false;
            return Asked::Unanswered;
        }
        Got::Failed(e) => {
            if *reachable {
                app.faults.record("standby", unreachable_words(&e));
            }
            *reachable = false;
            return Asked::Unanswered;
        }
    };
    match r {
        // A new nonce only (the first request, or one from before the
        // primary's restart): asked again at once with it.
        r if r.status == StatusCode::PRECONDITION_REQUIRED => {
            // No nonce with it: the primary withholds new ones while an
            // unused one is fresh (insider-rt13 A2); asked again slowly.
            let pause = if r.nonce.is_some() { 100 } else { 1000 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            Asked::Again
        }
        r if r.status == StatusCode::CONFLICT => {
            let code = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
            let why = if code.as_deref() == Some("primary_behind") {
                format!("the primary's log ends before our record {after}: it lost records we hold; not following it — promote this standby / 主機の記録が失われています。この待機系を昇格してください")
            } else {
                format!(
                    "the primary's log differs from ours after record {after}: not following it"
                )
            };
            app.faults.record("standby", why);
            Asked::Stop
        }
        r if r.status.is_success() => match serde_json::from_slice::<Value>(&r.body) {
            Ok(v) => Asked::Answer(v),
            Err(_) => Asked::Unanswered,
        },
        r if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN => {
            // The primary does not know this token as a standby's
            // (revoked, deleted, expired, or a kiosk's): it is not
            // the standby of record any more. Written down, so
            // neither a restart nor a promotion forgets it.
            let status = r.status.as_u16();
            let code = error_code_of(&r.body);
            if code == LINK_KEY_REFUSED {
                // The primary keeps another key for this token: another
                // machine signed for it (outside tester insider-rt10 N2).
                note_key_refused(app, primary);
                tokio::time::sleep(REFUSED_ASK_EVERY / 5).await;
                return Asked::Again;
            }
            if !*refused {
                let refusal = Refusal {
                    status,
                    code,
                    primary: primary.to_string(),
                    at: chrono::Utc::now().to_rfc3339(),
                };
                note_refusal(app, &refusal);
                *refused = true;
                // Said at once: the primary holds its commands
                // until it knows this standby knows.
                return Asked::Again;
            }
            // Nothing is taken from the primary from now on; it is
            // only asked, now and then, whether it knows this token
            // again (an admin enabled the revoked device again:
            // without this standby that primary takes no commands).
            tokio::time::sleep(REFUSED_ASK_EVERY).await;
            Asked::Again
        }
        r => {
            if *reachable {
                app.faults.record("standby", plain_answer_words(r.status));
            }
            *reachable = false;
            Asked::Unanswered
        }
    }
}

/// Standby: the primary cannot be reached (outside tester insider-rt13
/// C3: said in English only, with the request's URL, which carries the
/// standby's key and signature). Japanese first, with what to do; the
/// error without its URL.
fn unreachable_words(e: &reqwest::Error) -> String {
    let why = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "no connection".to_string()
    } else {
        let mut text = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = s.to_string();
            source = s.source();
        }
        if text.is_empty() {
            "no answer".to_string()
        } else {
            text
        }
    };
    format!("主機と連絡が取れません。主機の電源とケーブルを確かめてください。主機が本当に止まっているときは、この予備機の管理画面で「主機に昇格」を押してください（docs/manual-ja.md「予備機への切替え」） / the primary cannot be reached ({why}): check its power and cable; if it is really down, promote this standby")
}

/// Standby: an unsigned answer with nothing to act on (a 5xx of the
/// primary or of something on the path, a limit): Japanese first (C3).
fn plain_answer_words(status: StatusCode) -> String {
    format!("主機（または主機と予備機の間の機器）が {status} と答え、記録を受け取れませんでした。しばらくして自動でやり直します。続くときは主機の管理画面の記録と、主機と予備機の間の機器を確かめてください / the primary (or something between) answered {status}: nothing was taken; asking again")
}

/// Standby: an answer of the primary that is not signed by the answer key
/// taken at enrolment, over the request it answers (outside tester
/// insider-rt12 A1).
const ANSWER_NOT_SIGNED: &str = "an answer from the primary is not signed by its answer key for this request (it was changed on the way, or an older answer was sent again): nothing of it was taken; this standby keeps following. Check the cable between the two machines; do not promote this standby unless the primary is really down / 主機からの答えに主機の鍵の署名がないか、署名が合いません（途中で書き換えられたか、以前の答えが送り直された恐れがあります）。何も取り込まずに主機に従い続けます。主機と予備機の間のケーブルを確かめてください。主機が本当に止まっているとき以外は昇格しないでください";

/// What a standby enrolled before answers were signed is told: it holds
/// no answer key of its primary, so it takes nothing (outside tester
/// insider-rt12 A1).
fn no_answer_key_words() -> (String, String) {
    (
        "この予備機は、主機の答えを確かめる鍵を持っていません（以前の版で登録されたため）。確かめられない記録は受け取りません。次の順に進めてください：1. 主機の管理画面「端末」でこの予備機を取り消す。2. 主機の管理画面で「予備機の停止を確認」を押す（この機械はいま主機に従っていません。押さないと、主機は取り消した予備機が止まったことを確かめられず、受付を止めたままになります）。3. 予備機の登録用リンクを作り直し、この機械を --enrol-link 新しいリンク を付けて起動し直す（docs/manual-ja.md「予備機への切替え」）".to_string(),
        "this standby holds no key to check its primary's answers (it was enrolled by an older version): it takes nothing it cannot check. 1. Revoke it on the primary (管理 → 端末). 2. Press 「予備機の停止を確認」 on the primary's /admin (this machine follows nothing now; without it the primary keeps commands stopped, waiting to learn that the revoked standby stopped). 3. Make a new standby link and start this server again with --enrol-link NEW_LINK".to_string(),
    )
}

/// One answer of the primary whose signature held.
#[derive(Debug)]
pub(super) struct Answered {
    pub status: StatusCode,
    /// The nonce handed out with it (`madoguchi-link-nonce`), if any.
    pub nonce: Option<String>,
    pub body: Vec<u8>,
}

/// What one request to the primary brought.
#[derive(Debug)]
pub(super) enum Got {
    /// Signed by the primary's answer key over this request.
    Signed(Answered),
    /// Not signed so, although the standby would act on it: taken for
    /// nothing.
    Forged(StatusCode),
    /// Unsigned and nothing to act on (a 5xx of a proxy, a limit): only
    /// "unanswered".
    Plain(StatusCode),
    /// No answer.
    Failed(reqwest::Error),
}

/// Standby: reads one answer whole and checks its signature under the
/// primary's answer key `primary_key` for its own request `to` (its kind,
/// this standby's token and key, the request's signature:
/// [`super::link_key::answer_message`]): the status, the nonce handed out
/// and the body's exact bytes.
pub(super) async fn checked(
    sent: reqwest::Result<reqwest::Response>,
    primary_key: &str,
    to: super::link_key::AnswerFor<'_>,
) -> Got {
    let r = match sent {
        Ok(r) => r,
        Err(e) => return Got::Failed(e),
    };
    let status = r.status();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let nonce = header(super::link_key::NONCE_HEADER);
    let sig = header(super::link_key::ANSWER_SIG_HEADER);
    let body = match r.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => return Got::Failed(e),
    };
    let acted_on = status.is_success()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::CONFLICT
                | StatusCode::PRECONDITION_REQUIRED
                | StatusCode::BAD_REQUEST
        );
    match sig {
        Some(sig)
            if super::link_key::answer_holds(
                primary_key,
                to,
                status.as_u16(),
                nonce.as_deref().unwrap_or_default(),
                &body,
                &sig,
            ) =>
        {
            Got::Signed(Answered {
                status,
                nonce,
                body,
            })
        }
        None if !acted_on => Got::Plain(status),
        _ => Got::Forged(status),
    }
}

/// Whether a status not signed for this standby's request would have been
/// a refusal of it (revoked, or its key refused) had it been signed.
fn is_refusal(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// Standby: a refusal (401, 403) that is not signed by the primary for
/// this standby's own request (outside tester insider-rt13 E1). The
/// primary signs every refusal of this standby's own request (it keeps
/// the key bound at enrolment, for a revoked or deleted standby too), so
/// this one was made on the way, or asked of the primary by someone else:
/// it is never taken as a revocation (nothing is written down), and the
/// standby keeps asking.
const UNSIGNED_REFUSAL: &str = "主機からの答えに署名がありません（登録の取消しや鍵の拒否を示す答えですが、主機がこの予備機の要求に署名した答えではありません）。主機と予備機の間で作られた答えの恐れがあるため、取消しとしては扱わず、主機に従い続けます。途中の機器（ハブ、ケーブル、主機と予備機の間につながったほかの機械）を確かめてください / an answer refusing this standby (revoked, or its key refused) is not signed by the primary for this standby's own request: it may have been made on the way. It is not taken as a revocation; this standby keeps following. Check the devices between the two machines";

/// Takes one answer of the primary: a refusal lifted, the lease grant,
/// the primary's last record, its accounts and the records to append
/// (they reach the feed like any commit). `Some` stops following.
fn take_answer(
    app: &Arc<App>,
    handle: &EngineHandle,
    answer: Value,
    refused: &mut bool,
    (seal_secret, aad): (&[u8; 32], &str),
) -> Option<Stopped> {
    if *refused {
        if let Err(e) = std::fs::remove_file(app.data.join(REFUSED)) {
            app.faults.record(
                "standby",
                format!("cannot remove {REFUSED} ({e}): still refusing promotion"),
            );
        } else {
            *refused = false;
            app.faults.record(
                "standby",
                "the primary knows this standby's token again (its device was enabled again): following it again / 主機がこの予備機の登録を再び受け付けました。主機の記録の受け取りを再開します",
            );
        }
    }
    if key_refused_here(&app.data).is_some() {
        match std::fs::remove_file(app.data.join(KEY_REFUSED)) {
            Ok(()) => app.faults.record(
                "standby",
                "the primary takes this standby's signed requests again: following it again / 主機がこの予備機の鍵を再び受け付けました",
            ),
            Err(e) => app.faults.record(
                "standby",
                format!("cannot remove {KEY_REFUSED} ({e}): still refusing promotion"),
            ),
        }
    }
    if !app.standby.load(Ordering::SeqCst) {
        return Some(Stopped::Promoting);
    }
    app.fence.received(answer["grant"].as_str());
    if let Some(last) = answer["last"].as_u64() {
        if let Err(e) = app.fence.note_primary_last(last) {
            app.faults.record(
                "standby",
                format!("cannot note the primary's last record ({last}) in the data folder: {e}"),
            );
        }
    }
    // Only sealed for this standby's key (issue 23/24 D1): an account
    // store in clear is taken for nothing.
    if let Some(a) = answer.get("sealed_accounts") {
        let taken = super::link_key::open_accounts(
            seal_secret,
            a["eph"].as_str().unwrap_or_default(),
            a["box"].as_str().unwrap_or_default(),
            aad,
        )
        .ok_or_else(|| anyhow::anyhow!("the sealed account store does not open with this standby's sealing key / 主機のアカウントを予備機の暗号鍵で開けません"))
        .and_then(|plain| {
            serde_json::from_slice::<super::auth::Carried>(&plain).map_err(anyhow::Error::from)
        })
        .and_then(|c| app.auth.replace(c));
        if let Err(e) = taken {
            app.faults.record(
                "standby",
                format!("the primary's accounts could not be taken: {e:#}"),
            );
        }
    }
    let records: Vec<Record> = answer["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(Record {
                seq: r["seq"].as_u64()?,
                prev: parse_hex(r["prev"].as_str()?)?,
                payload: r["payload"].as_str()?.as_bytes().to_vec(),
            })
        })
        .collect();
    if records.is_empty() || !app.standby.load(Ordering::SeqCst) {
        return None;
    }
    match handle.write(move |e| e.append_replicated(&records).map(|_| e.state().meta.epoch)) {
        // The records reach the feed: displays, reports and the
        // relay publisher follow from there.
        Ok(Ok(epoch)) => app.fence.set_epoch(epoch),
        Ok(Err(e)) => {
            app.faults
                .record("standby", format!("records from the primary refused: {e}"));
            return Some(Stopped::ForGood);
        }
        Err(_) => return Some(Stopped::ForGood),
    }
    None
}

/// Enrols this standby with the primary (once); the token is kept in the
/// data folder for restarts.
pub async fn token(data: &std::path::Path, enrol_link: Option<&str>) -> anyhow::Result<String> {
    use anyhow::Context;
    if let Ok(t) = std::fs::read_to_string(data.join("standby-token")) {
        // Made 0600 in a folder from before (F8).
        if let Err(e) = super::link_key::make_private(&data.join("standby-token")) {
            eprintln!("madoguchi: cannot make standby-token readable by this user only: {e}");
        }
        return Ok(t.trim().to_string());
    }
    // Said in both languages, and true for a folder restored from a
    // backup too (a backup carries no standby token: outside tester
    // insider-rt11 L5).
    let link = enrol_link.context("この予備機のデータフォルダには主機への登録がありません（初めての起動か、バックアップから戻したフォルダです）。主機の管理画面の「端末」で予備機の登録用リンクを作り、--enrol-link で指定して起動してください / this standby's data folder holds no enrolment with a primary (a first start, or a folder restored from a backup): make a standby link on the primary's admin (端末) and start with --enrol-link LINK")?;
    enrol(data, link).await
}

/// What `serve --standby-of` follows with. A standby its primary refused
/// and started with a new standby link is enrolled again with it (the way
/// out the refusal names); else it keeps its token, says loudly that it is
/// refused, and [`follow`] takes nothing until the primary knows the token
/// again.
pub async fn standby_start(
    data: &std::path::Path,
    enrol_link: Option<&str>,
) -> anyhow::Result<String> {
    let Some(refusal) = refused_here(data) else {
        // Enrolled before answers were signed (outside tester insider-rt12
        // A1): nothing is followed unchecked. A new link enrols again; the
        // old one in the service line is refused by the primary, and the
        // refusal says what to do.
        if data.join("standby-token").exists()
            && super::link_key::primary_answer_key(data).is_none()
        {
            let (ja, en) = no_answer_key_words();
            if let Some(link) = enrol_link {
                match enrol(data, link).await {
                    Ok(token) => {
                        println!("enrolled again with the new standby link: the primary's answers are checked from now on / 新しい登録用リンクで予備機として登録し直しました");
                        return Ok(token);
                    }
                    Err(e) => anyhow::bail!("{ja}\n  {en}\n  ({e:#})"),
                }
            }
            anyhow::bail!("{ja}\n  {en}");
        }
        return token(data, enrol_link).await;
    };
    let (ja, en) = refusal.message();
    if let Some(link) = enrol_link {
        match enrol(data, link).await {
            Ok(token) => {
                std::fs::remove_file(data.join(REFUSED))?;
                println!("enrolled again with the new standby link: following the primary again / 新しい登録用リンクで予備機として登録し直しました");
                return Ok(token);
            }
            // The service line's old, used link: still refused, said below.
            Err(e) => eprintln!("madoguchi: {e:#}"),
        }
    }
    eprintln!("madoguchi: この予備機は主機に登録を取り消されています。主機の記録を受け取らず、昇格もできません / this standby was refused by its primary: it takes nothing from it and cannot be promoted\n  {ja}\n  {en}");
    token(data, None).await
}

/// Uses a standby enrolment link (the link's button, as a standby:
/// `?as=standby`, so a kiosk's or display's link is refused unused) and
/// keeps the token in the data folder. Nothing is written unless the
/// primary enrolled this machine as its standby.
async fn enrol(data: &std::path::Path, link: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut url = reqwest::Url::parse(link.trim())
        .with_context(|| format!("--enrol-link is not a link: {link}"))?;
    // The link key is made first and its public half goes with the
    // one-time link: the primary binds it to the token it gives, so no
    // stand-in holding a copy of the token (it crosses the LAN in the
    // answer) can sign first (outside tester insider-rt10 N2).
    let key = super::link_key::generate();
    let public = super::link_key::public_hex(&key);
    // The code never crosses the LAN (outside tester insider-rt11 H1: a
    // man in the middle read it and bound his own key): the link is named
    // by its id, and the key comes with a proof only the code's holder
    // can make for it.
    let code = url
        .path_segments()
        .and_then(|mut p| p.next_back())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .with_context(|| format!("--enrol-link is not an enrolment link (…/enrol/CODE): {link}"))?;
    let proof = super::link_key::link_proof(&code, &public);
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--enrol-link is not an enrolment link: {link}"))?
        .pop()
        .push(&super::link_key::link_id(&code));
    url.query_pairs_mut()
        .append_pair("as", "standby")
        .append_pair("key", &public)
        .append_pair("proof", &proof);
    let tls = url.scheme() == "https";
    let r = http.post(url).send().await.with_context(|| {
        if tls {
            "cannot reach the primary over TLS: a standby cannot follow a primary that speaks TLS yet; run the primary's standby link without --tls-cert (deploy/README.md) / 主機に TLS でつながりません。予備機はまだ TLS の主機に従えません（deploy/README.md）".to_string()
        } else {
            "cannot reach the primary / 主機につながりません".to_string()
        }
    })?;
    if r.status() != StatusCode::SEE_OTHER {
        let status = r.status();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        let e = &v["error"];
        // Not signed (this standby has no key of the primary's yet): a
        // man in the middle may have made it up and sent the request on
        // himself (outside tester insider-rt12 A3). Said plainly.
        let taken = "この答えは確かめられません。主機の管理画面「端末」でこの予備機が登録済みになっていたら、登録の要求が途中で横取りされた恐れがあります：その予備機を取り消し、配線を確かめてから新しい登録用リンクで登録し直してください / this refusal cannot be checked: if the primary's devices page lists this standby as enrolled, the request was taken on the way; revoke it there, check the cable and enrol again with a new link";
        match (e["message_ja"].as_str(), e["message_en"].as_str()) {
            (Some(ja), Some(en)) => {
                anyhow::bail!("the enrolment link was refused: {ja} / {en}\n  {taken}")
            }
            _ => anyhow::bail!(
                "the enrolment link was refused (the primary answered {status})\n  {taken}"
            ),
        }
    }
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{}=", super::auth::DEVICE_COOKIE)))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .context("the primary enrolled nothing (no device token in its answer)")?;
    // The primary's answer key, which signs every later answer: taken
    // only when its tag under the link's code holds, and with its
    // signature of this enrolment (the link, this key, the token), so a
    // man in the middle, who has only the link's id, can put in neither
    // his own key nor another token (outside tester insider-rt12 A1).
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let answer_key = header(super::link_key::ANSWER_KEY_HEADER).unwrap_or_default();
    let tag = header(super::link_key::ANSWER_TAG_HEADER).unwrap_or_default();
    let enrolled = header(super::link_key::ENROLLED_SIG_HEADER).unwrap_or_default();
    let id = super::link_key::link_id(&code);
    if !super::link_key::answer_tag_holds(&code, &answer_key, &tag)
        || !super::link_key::enrolled_holds(&answer_key, &id, &public, &cookie, &enrolled)
    {
        anyhow::bail!(
            "主機の登録の答えを確かめられませんでした（主機の鍵がないか、登録用リンクと合いません。主機が古い版か、途中で答えが書き換えられた恐れがあります）。この予備機は何も保存していません。リンクは主機で使用済みになっています：主機の管理画面「端末」でこの予備機を取り消し、主機を新しい版にしてから予備機の登録用リンクを作り直して起動し直してください / the primary's enrolment answer cannot be checked (no answer key, or one the link's code does not vouch for: an older primary, or the answer was changed on the way). Nothing was kept here. The link is used up on the primary: revoke this standby there (管理 → 端末), make sure the primary runs this version, make a new standby link and start again"
        );
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    // The primary's answer key first, then the link key, the token last:
    // a token is kept only with both keys.
    super::link_key::keep_primary_answer_key(data, &answer_key).with_context(|| {
        format!(
            "cannot write the primary's answer key in {}",
            data.display()
        )
    })?;
    super::link_key::keep(data, &key)
        .with_context(|| format!("cannot write the link key in {}", data.display()))?;
    let path = data.join("standby-token");
    // Readable by the service's user only (F8).
    super::link_key::write_private(&path, &cookie)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(cookie)
}

/// The `error.code` of a refusal's JSON body ("" when there is none).
fn error_code_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}
