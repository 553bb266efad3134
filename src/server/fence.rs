//! Fencing (issue 24, R9): a primary and a promoted standby never both
//! give numbers.
//!
//! - **Epochs.** A promotion records `promoted {epoch}` in the log (one
//!   more than the epoch in force), so every replica and backup knows which
//!   machine took over when. The promoted machine tells the old primary
//!   (`POST /api/fence`, with the standby device token the old primary
//!   issued) until it answers; the old primary then writes `<data>/replaced`
//!   (so it stays fenced across a restart), refuses every command with
//!   `replaced`, and says so on `/admin`.
//! - **Lease** (a partition, where the old primary cannot be told). A
//!   primary with an enabled standby device takes commands only while it
//!   holds a lease from that standby. The primary stamps each replication
//!   answer with a grant (its own monotonic clock and a per-process id);
//!   the standby echoes the last grant it received in its next request, and
//!   the primary's lease runs [`LEASE`] from that grant's time. A grant is
//!   made before the standby receives it, so the standby knows every lease
//!   the primary holds ends before (last answer received + [`LEASE`]): a
//!   promotion stops following, waits that long (plus [`MARGIN`]), and only
//!   then takes commands. A stale request delayed in the network or held by
//!   a frozen primary echoes an old grant and renews nothing. A primary
//!   whose standby is broken refuses commands until an admin disables or
//!   deletes the standby device (`/api/devices/{name}`).
//! - **Replicated before answered.** With a standby, a command is answered
//!   only once the standby has asked for the records after it (each
//!   request names the last record it holds), so a number handed to a
//!   visitor is always on the standby; a command the standby never got is
//!   answered `no_standby_lease` and stays only in the old primary's
//!   diverged tail (listed at `--rejoin`).
//! - **Devices carry the epoch, with its proof.** Every answer names the
//!   epoch in force (`Madoguchi-Epoch`); a promoted machine's answers also
//!   carry its proof (`Madoguchi-Epoch-Proof: N.MAC`, HMAC-SHA-256 of the
//!   epoch under the SHA-256 of the standby token it followed with: the
//!   old primary stores exactly that hash for its standby device, devices
//!   never see it). The kiosk, staff and display pages remember the highest
//!   epoch and its proof and send both back. A primary that gets a valid
//!   proof of a newer epoch from a device it knows has been replaced: it
//!   fences itself as `POST /api/fence` would ([`carry_epoch`]). A bare or
//!   wrong claim fences nothing for good (any enrolled device could
//!   otherwise stop the office with one header, red team F1), but it is
//!   not ignored either: a primary cannot tell a forgery from the proof of
//!   a standby it does not know (restored from an older backup, or the
//!   standby deleted; outside tester replay4 N1, e19). It holds commands
//!   (`unverified_epoch_claim`, kept in `<data>/epoch-claims`) until an
//!   admin confirms on `/admin` that no other machine serves as the
//!   primary; the fault record and the page name the caller, whose token
//!   the admin revokes if it should not have said so. Each caller holds
//!   once: a cleared caller's later claims are noted once, never held
//!   again, so a stolen token cannot stop the office after every
//!   clearance (outside tester failover-rt5 F2). A page
//!   that reaches a server older than its epoch says so and issues nothing.
//! - **A restored primary knows no standby enrolled after its backup**
//!   (outside tester replay4 N1: numbers twice). `madoguchi restore` writes
//!   `<data>/restored-backup` into the new folder before it appears; the
//!   primary takes no commands (`restored_unconfirmed`) until an admin,
//!   having switched off every other machine of the office, confirms on
//!   `/admin`. A promotion ends it (the log and accounts are then the
//!   followed primary's). Confirming it (or a claim) first raises each
//!   queue's numbers above those the devices saw given (`Madoguchi-Issued`,
//!   kept per caller in `<data>/epoch-claims` while held) or the admin
//!   entered (`resume.rs`; outside tester failover-rt5 F4).
//! - **A primary that lost records** its standby holds (`primary_behind`,
//!   noted in `<data>/behind`, kept across restarts) refuses commands with
//!   a message that says to promote the standby, and refuses to revoke the
//!   standby: revoking it would give acknowledged numbers again.
//! - **A revoked standby is not gone until known to be** (outside tester
//!   N1-a, N1-b, e4). Revoking or deleting the standby of record does not
//!   lift the lease at once: that standby may be in the middle of its
//!   promotion wait, or cut off, and promoted a moment later. The primary
//!   keeps its token hash in `<data>/revoked-standby` and takes commands
//!   only until the last lease that standby gave it runs out (at once
//!   after a restart), then refuses (`revoked_standby_unconfirmed`) until
//!   the standby asks again and is refused (it then says, with
//!   `refused=1`, that it has written the refusal down and will not be
//!   promoted), or an admin confirms on `/admin` that it is switched off.
//!   A new standby does not end it. `POST /api/fence` is taken from that
//!   token, so a revoked standby promoted after all fences this primary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::{Duration, Instant};

/// How long a grant lets the primary take commands. Longer than the
/// standby's long poll and two round trips, so a healthy pair never lapses.
pub const LEASE: Duration = Duration::from_secs(6);
/// Added to the standby's wait: clock rate differences and the scheduling
/// of the two machines.
pub const MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Fence {
    /// This process's id in grants: a grant from before a restart is void.
    boot: u64,
    started: Instant,
    /// Primary: the lease the echoed grants give.
    lease_until: Mutex<Option<Instant>>,
    /// Primary: the epoch of the machine that replaced this one.
    replaced: Mutex<Option<u64>>,
    replaced_path: PathBuf,
    /// Standby: the last grant received and when.
    last_grant: Mutex<Option<(String, Instant)>>,
    /// Primary: the last record the standby said it holds.
    acked: tokio::sync::watch::Sender<u64>,
    /// The epoch in force in this server's log (a copy, read on every
    /// answer without asking the engine).
    epoch: AtomicU64,
    /// Standby: the primary's last record, as its last answer said (kept
    /// in `<data>/primary-last`, so a restart while catching up does not
    /// forget it; 0 when never known).
    primary_last: AtomicU64,
    primary_last_path: PathBuf,
    /// Standby: the position (`after`) of its last request the primary
    /// answered: the primary has taken the acknowledgement of every record
    /// up to it; of the later ones it may not have (outside tester
    /// insider-rt10 N6). `u64::MAX` until following starts.
    answered: AtomicU64,
    /// Primary: when a request with the standby's token last came signed
    /// with another key than the one kept for it (insider-rt10 N2).
    key_refused: Mutex<Option<Instant>>,
    /// Primary: when a sniffed request of the standby's token was last
    /// seen sent again and again (outside tester insider-rt13 A2).
    replayed: Mutex<Option<Instant>>,
    /// Primary: when the standby's signed requests were last seen to keep
    /// coming without a lease echo (insider-rt13 C1: it does not receive
    /// this primary's answers).
    no_echo: Mutex<Option<Instant>>,
    /// Primary: when a request with another token than the standby's last
    /// came signed with a standby's key (insider-rt14 R2: a device in
    /// between put a kiosk's token on the standby's requests).
    token_swapped: Mutex<Option<Instant>>,
    /// Standby: what it says while the primary's signed answers are ones
    /// it cannot use (insider-rt14 R1, R2), `None` while it follows.
    link_stalled: Mutex<Option<String>>,
    /// Primary: the standby holds records this log lost (standby's last,
    /// ours), kept in `<data>/behind`.
    behind: Mutex<Option<(u64, u64)>>,
    behind_path: PathBuf,
    /// Primary: standby devices revoked or deleted while they were the
    /// standby of record, not yet known to have learned it (kept in
    /// `<data>/revoked-standby`).
    unconfirmed: Mutex<Vec<Unconfirmed>>,
    unconfirmed_path: PathBuf,
    /// A promoted machine: the proof of its epoch it hands to devices.
    proof: Mutex<Option<String>>,
    /// Unproven claims recorded (device, epoch): one fault record per
    /// claim, not one per request; bounded.
    unproven: Mutex<std::collections::HashSet<(String, u64)>>,
    /// Primary: restored from a backup (`<created> <last record>` of it),
    /// not yet confirmed free of standbys enrolled after it (kept in
    /// `<data>/restored-backup`, written by `madoguchi restore`).
    restored: Mutex<Option<String>>,
    restored_path: PathBuf,
    /// Primary: newer epochs claimed by devices or accounts without a
    /// proof this primary can check, and the epoch up to which an admin
    /// cleared each caller's claims (kept in `<data>/epoch-claims`).
    claims: Mutex<Claims>,
    claims_path: PathBuf,
    /// The hold last written to the fault records (its code), so each
    /// start and end of a hold is one record.
    noted_hold: Mutex<Option<&'static str>>,
    /// A hold ended, but no command has been answered since: 「受付を再開
    /// しました」 waits for one (outside tester insider-rt14 R3: said two
    /// seconds into a stop that went on for thirty).
    resume_unsaid: std::sync::atomic::AtomicBool,
    /// Primary: when the standby last named its position (any signed,
    /// fresh request of it), so how far behind it is, is known.
    acked_at: Mutex<Option<Instant>>,
    /// Primary: this log's last record when the standby last asked.
    served_last: AtomicU64,
    /// What this server's day has given ([`ISSUED_HEADER`]), refreshed
    /// after each command, so every answer names it without asking the
    /// engine.
    issued: Mutex<Option<String>>,
}

/// Epoch claims a primary could not verify (outside tester replay4 N1,
/// e19): held until an admin clears them, per caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Claims {
    /// (caller, epoch) claims that hold commands now.
    held: Vec<(String, u64)>,
    /// Per caller: its claims up to this epoch were cleared by an admin.
    cleared: std::collections::BTreeMap<String, u64>,
    /// Per caller, while a restored or claim hold stands: the highest
    /// numbers it saw given on a day (its `Madoguchi-Issued`), by any
    /// machine: the evidence the numbers are raised above before issuing
    /// resumes (outside tester failover-rt5 F4).
    seen: std::collections::BTreeMap<String, Issued>,
}

/// The highest number given in each queue on a business day, as a server
/// says it (`Madoguchi-Issued: 2026-12-07 idou=1004,koseki=12`) and the
/// devices remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub date: chrono::NaiveDate,
    pub highest: std::collections::BTreeMap<String, u32>,
}

impl Issued {
    /// Reads the header's value; `None` for anything else (at most 64
    /// queues with short plain names: a device's header is outside data).
    pub fn parse(v: &str) -> Option<Issued> {
        let (date, rest) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
        let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        let mut highest = std::collections::BTreeMap::new();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (q, n) = part.split_once('=')?;
            let plain = !q.is_empty()
                && q.len() <= 64
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !plain || highest.len() >= 64 {
                return None;
            }
            highest.insert(q.to_string(), n.parse().ok()?);
        }
        Some(Issued { date, highest })
    }

    pub fn text(&self) -> String {
        let q: Vec<String> = self
            .highest
            .iter()
            .map(|(q, n)| format!("{q}={n}"))
            .collect();
        format!("{} {}", self.date, q.join(","))
    }

    /// Both: the later day's, or on the same day the higher of each.
    fn merge(&mut self, other: &Issued) {
        if other.date > self.date {
            *self = other.clone();
        } else if other.date == self.date {
            for (q, &n) in &other.highest {
                let m = self.highest.entry(q.clone()).or_insert(0);
                *m = (*m).max(n);
            }
        }
    }
}

impl Claims {
    fn parse(text: &str) -> Claims {
        let mut c = Claims::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("seen ") {
                // `seen <date> <queue=n,…> <caller>`.
                let mut p = rest.splitn(3, ' ');
                if let (Some(d), Some(q), Some(who)) = (p.next(), p.next(), p.next()) {
                    if let Some(i) = Issued::parse(&format!("{d} {q}")) {
                        c.seen.insert(who.to_string(), i);
                    }
                }
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(kind), Some(n), Some(who)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // An epoch that cannot be read still holds: never "no claim".
            let n = n.parse().unwrap_or(u64::MAX);
            match kind {
                "cleared" => {
                    c.cleared.insert(who.to_string(), n);
                }
                _ => c.held.push((who.to_string(), n)),
            }
        }
        c
    }

    fn text(&self) -> String {
        let held = self.held.iter().map(|(w, n)| format!("held {n} {w}\n"));
        let cleared = self
            .cleared
            .iter()
            .map(|(w, n)| format!("cleared {n} {w}\n"));
        let seen = self.seen.iter().map(|(w, i)| {
            let q: Vec<String> = i.highest.iter().map(|(q, n)| format!("{q}={n}")).collect();
            format!("seen {} {} {w}\n", i.date, q.join(","))
        });
        held.chain(cleared).chain(seen).collect()
    }
}

/// The header a server names the highest numbers of its day in, and a
/// device sends back the highest it has seen ([`Issued`]).
pub const ISSUED_HEADER: &str = "madoguchi-issued";

/// What this engine's day has given so far, as [`ISSUED_HEADER`] says it
/// (`None` with no business day).
pub fn issued_now(e: &madoguchi_core::engine::Engine) -> Option<String> {
    let s = e.state();
    let date = s.meta.day.as_ref()?.date;
    let highest = e
        .config()
        .categories()
        .filter_map(|q| {
            let from = q.numbers?.from;
            let next = s.meta.next_number.get(&q.id).copied()?;
            (next > from).then(|| (q.id.clone(), next - 1))
        })
        .collect();
    Some(Issued { date, highest }.text())
}

/// The fault kind of a hold that took effect in memory but could not be
/// written down (a full or failing disk): a restart would forget it.
pub const HOLD_NOT_WRITTEN: &str = "hold_not_written";

/// What a primary restored from a backup says while it holds: what
/// happened and what to do (`/admin` says the same, with the button).
/// Written for staff and the admin, as every hold message here: the kiosk
/// adds the visitors' 「職員に声をおかけください」 itself.
pub const RESTORED_JA: &str = "バックアップから復元したこの主機は、バックアップの後に登録された予備機を知りません。その予備機が主機に昇格していると同じ番号が二度出るため、受付を止めています。元の主機の予備機（ほかの機械）の電源がすべて切れていることを確かめてから、管理者が管理画面で「予備機の停止を確認」を押すと再開します。";

/// The refusal of a command by a primary restored from a backup.
pub fn restored_error() -> super::error::ApiError {
    super::error::ApiError::Plain {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "restored_unconfirmed",
        ja: RESTORED_JA.into(),
        en: "this primary was restored from a backup and does not know a standby enrolled after it: one promoted meanwhile would give the same numbers. Commands are held until every other machine of the office is switched off and an admin presses 予備機の停止を確認 on /admin".into(),
    }
}

/// What a primary held by unverifiable epoch claims says.
pub fn claim_ja(claims: &[(String, u64)]) -> String {
    let who: Vec<String> = claims
        .iter()
        .map(|(w, n)| format!("{w}：第{n}期"))
        .collect();
    format!("この主機が確かめられない新しい主機（{}）を見たと端末が伝えてきたため、番号の二重発行を防ぐために受付を止めています（別の機械が主機に昇格している可能性があります）。ほかに主機として動いている機械がないことを確かめてから、管理者が管理画面で「ほかの主機がないことを確認」を押すと再開します（心当たりのない端末は「端末」で取り消してください）。", who.join("、"))
}

/// The refusal of a command while an unverifiable claim holds.
pub fn claim_error(claims: &[(String, u64)]) -> super::error::ApiError {
    let who: Vec<String> = claims
        .iter()
        .map(|(w, n)| format!("{w}: epoch {n}"))
        .collect();
    super::error::ApiError::Plain {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "unverified_epoch_claim",
        ja: claim_ja(claims),
        en: format!("a device has seen a newer primary this server cannot verify ({}): another machine may have been promoted. Commands are held until an admin checks that no other machine serves as the primary and confirms on /admin (revoke the device if it should not say so)", who.join(", ")),
    }
}

/// A revoked standby of record that may not know it yet.
#[derive(Debug, Clone)]
struct Unconfirmed {
    /// The SHA-256 (hex) of its token, as the account store kept it.
    hash: String,
    name: String,
    /// Commands are taken until then: the end of the last lease it gave
    /// (it can renew none since). `None`: not at all (no lease was held,
    /// or this process started after the revocation).
    until: Option<Instant>,
}

/// The file that keeps the revoked standbys not yet confirmed gone.
const UNCONFIRMED: &str = "revoked-standby";
/// The file that keeps the unverifiable epoch claims.
const CLAIMS: &str = "epoch-claims";

/// What a primary held back by revoked standbys (`names`) says: what
/// happened and what to do, for staff and the admin (`/admin` says the
/// same, with the button).
pub fn unconfirmed_ja(names: &[String]) -> String {
    format!("取り消した予備機（{}）が止まったことを確認できていないため、番号の二重発行を防ぐために受付を止めています（その予備機が主機に昇格していると、同じ番号が二度出ます）。その予備機の電源を切ってから、管理者が管理画面で「予備機の停止を確認」を押すと再開します（その予備機がこの主機とつながれば、取り消しを知らせて自動で再開します）。", names.join("、"))
}

/// The refusal of a command while revoked standbys may not know it
/// (`App::may_command`).
pub fn unconfirmed_error(names: &[String]) -> super::error::ApiError {
    super::error::ApiError::Plain {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "revoked_standby_unconfirmed",
        ja: unconfirmed_ja(names),
        en: format!("the revoked standby ({}) is not known to be stopped: commands are held so that no number is given twice (it may have been promoted). Switch it off, then an admin presses 予備機の停止を確認 on /admin (it also resumes by itself once that standby reaches this primary and learns it was revoked)", names.join(", ")),
    }
}

/// The standing banner of the staff station while this server takes no
/// commands (`staff_panel.html`): what happened, that numbers are paused,
/// and who can resume them, in plain words for counter staff.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StaffHold {
    pub code: &'static str,
    pub why: String,
    pub resume: String,
}

/// The banner for the hold `e` (`App::may_command`'s refusal).
pub fn staff_hold(fence: &Fence, e: &super::error::ApiError) -> StaffHold {
    use super::error::ApiError as E;
    const ADMIN: &str = "再開できるのは管理者だけです。管理者に連絡してください。";
    let (code, why, resume) = match e {
        E::Replaced(n) => (
            "replaced",
            format!("この機械は主機ではなくなりました（予備機が主機に昇格しました・第{n}期）。ここでは番号を出せません。"),
            "新しい主機のアドレスで呼出端末を開き直してください（管理者が案内します）。".to_string(),
        ),
        E::PrimaryBehind { .. } => (
            "primary_behind",
            "この主機は記録の一部を失ったため、番号の発行と窓口の操作を止めています。".to_string(),
            format!("{ADMIN}管理者が予備機の管理画面で「主機に昇格」を押し、呼出端末を予備機のアドレスで開き直します。"),
        ),
        E::Standby => (
            "standby",
            "この機械は予備機です。ここでは番号の発行と窓口の操作はできません。".to_string(),
            "主機のアドレスで呼出端末を開いてください。主機が故障したときは、管理者が予備機の管理画面で「主機に昇格」を押します。".to_string(),
        ),
        E::Plain { code: "revoked_standby_unconfirmed", .. } => (
            "revoked_standby_unconfirmed",
            format!("取り消した予備機（{}）が止まったことを、この主機はまだ確かめられていません。その予備機が主機に切り替わっていると同じ番号が二度出るため、番号の発行と窓口の操作を止めています。", fence.unconfirmed_holding().join("、")),
            format!("{ADMIN}管理者がその予備機の電源が切れていることを確かめ、管理画面（/admin）で「予備機の停止を確認」を押すと再開します。"),
        ),
        E::Plain { code: "restored_unconfirmed", .. } => (
            "restored_unconfirmed",
            "この主機はバックアップから戻したばかりで、バックアップの後に登録された予備機を知りません。その予備機が主機に切り替わっていると同じ番号が二度出るため、番号の発行と窓口の操作を止めています。".to_string(),
            format!("{ADMIN}管理者が元の主機の予備機（ほかの機械）の電源が切れていることを確かめ、管理画面（/admin）で「予備機の停止を確認」を押すと再開します。"),
        ),
        E::Plain { code: "unverified_epoch_claim", .. } => (
            "unverified_epoch_claim",
            format!("端末（{}）が、この主機の知らない新しい主機を見たと伝えてきました。別の機械が主機に切り替わっていると同じ番号が二度出るため、番号の発行と窓口の操作を止めています。", fence.claims_holding().iter().map(|c| c.0.clone()).collect::<Vec<_>>().join("、")),
            format!("{ADMIN}管理者がほかに主機として動いている機械がないことを確かめ、管理画面（/admin）で「ほかの主機がないことを確認」を押すと再開します。"),
        ),
        E::Plain { code, ja, .. } => (*code, ja.clone(), ADMIN.to_string()),
        _ => (
            "no_standby_lease",
            "予備機と連絡が取れません。予備機が主機に切り替わっていると同じ番号が二度出るため、番号の発行と窓口の操作を止めています。".to_string(),
            "予備機の電源とケーブルが直れば自動で再開します。予備機が故障しているときは、管理者が管理画面（/admin）で予備機を外すと再開します（管理者に連絡してください）。".to_string(),
        ),
    };
    StaffHold { code, why, resume }
}

/// Whether the moment kept in `at` was within three leases.
fn lately(at: &Mutex<Option<Instant>>) -> bool {
    at.lock()
        .ok()
        .and_then(|k| *k)
        .is_some_and(|t| t.elapsed() < 3 * LEASE)
}

/// A sniffed request of the standby's token sent again and again
/// (outside tester insider-rt13 A2): said instead of power and cable.
pub const REPLAYED_JA: &str = "予備機のトークンで古い要求が繰り返し送られています（写された恐れ）。この要求では番号の発行は許されず、予備機の記録も渡していません。予備機が主機と連絡できていれば受付は続きます。止まっているときは、主機と予備機の間につながった機器（ほかの機械、ハブ）を確かめてください。管理者に連絡してください（管理画面の記録に詳しい内容があります）。";
pub const REPLAYED_EN: &str = "an old request of the standby's token is being sent again and again (it was copied on the way): it gets nothing and renews no lease. If commands are stopped, check what is connected between the primary and the standby (see /admin)";
/// The standby asks, signed, but never echoes a grant in time
/// (insider-rt13 C1: answers edited on the way; insider-rt14 R2: answers
/// stopped, or held back longer than the lease).
pub const NO_ECHO_JA: &str = "予備機は主機の答えを受け取れていません（途中の機器が答えを止めているか、遅らせているか、書き換えている恐れ）。予備機は要求を送ってきていますが、受付の許可が間に合うように届いていません。番号の二重発行を防ぐために受付を止めています。予備機の管理画面の記録と、主機と予備機の間の機器を確かめてください。";
pub const NO_ECHO_EN: &str = "the standby does not receive this primary's answers in time (something between the two machines stops, delays or changes them): its signed requests keep coming without a lease echo that renews, so commands are stopped. Check the standby's /admin records and the devices between the two machines";
/// A request with another token than the standby's (a kiosk's) came
/// signed with a standby's key (insider-rt14 R2).
pub const TOKEN_SWAPPED_JA: &str = "予備機の鍵で署名された記録の要求が、予備機ではない端末のトークンで届きました。予備機の鍵は予備機から出ないため、主機と予備機の間につながった機器が要求を書き換えています。番号の二重発行を防ぐために、予備機と連絡できないあいだは受付を止めます。主機と予備機の間の機器（ほかの機械、ハブ）を確かめてください。管理者に連絡してください。";
pub const TOKEN_SWAPPED_EN: &str = "a replication request signed with a standby's key came with another device's token: the key never leaves the standby, so a device between the two machines is changing its requests. Check what is connected between the primary and the standby";

/// More records than one answer carries (`replication::BATCH`): the
/// standby is copying a long log (R3).
pub const CATCHING_UP: u64 = 2000;

/// The hold while the standby copies a long log (outside tester
/// insider-rt14 R3: the hold sent staff to the standby's power and cable,
/// and every ticket tried burnt a number).
pub fn catching_up_error(left: u64) -> super::error::ApiError {
    super::error::ApiError::Plain {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "no_standby_lease",
        ja: format!("予備機が主機の記録を受け取っている途中です（あと {left} 件）。終わると自動で再開します。番号の二重発行を防ぐため、それまで番号の発行と窓口の操作を止めています。"),
        en: format!("the standby is still copying this primary's records ({left} to go): commands resume by themselves when it is done"),
    }
}

/// The header that carries the proof of a promoted machine's epoch.
pub const EPOCH_PROOF_HEADER: &str = "madoguchi-epoch-proof";

/// HMAC-SHA-256 (RFC 2104): no extra dependency for 20 lines.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The key of a promoted machine's epoch proofs: the SHA-256 (hex) of the
/// standby token it followed with, as its old primary stores it.
pub fn proof_key(standby_token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(standby_token.trim().as_bytes()))
}

/// `N.MAC`: the proof that epoch `n` was taken by the standby whose token
/// hash is `key`.
pub fn epoch_proof(key: &str, n: u64) -> String {
    let mac = hmac_sha256(key.as_bytes(), format!("madoguchi-epoch:{n}").as_bytes());
    format!("{n}.{}", hex::encode(mac))
}

/// The epoch a proof proves under one of `keys` (this primary's standby
/// devices' token hashes), if it does.
pub fn verify_proof(proof: &str, keys: &[String]) -> Option<u64> {
    let (n, _) = proof.trim().split_once('.')?;
    let n: u64 = n.parse().ok()?;
    let want = proof.trim().as_bytes();
    keys.iter().find_map(|k| {
        let good = epoch_proof(k, n);
        // Constant time: the MAC is compared whole, byte by byte.
        let same = good.len() == want.len()
            && good
                .as_bytes()
                .iter()
                .zip(want)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then_some(n)
    })
}

/// The header that carries the epoch both ways.
pub const EPOCH_HEADER: &str = "madoguchi-epoch";

impl Fence {
    pub fn open(data: &Path) -> Fence {
        let replaced_path = data.join("replaced");
        let replaced = std::fs::read_to_string(&replaced_path)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let primary_last_path = data.join("primary-last");
        let primary_last = std::fs::read_to_string(&primary_last_path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let behind_path = data.join("behind");
        let behind = std::fs::read_to_string(&behind_path).ok().and_then(|t| {
            let (s, o) = t.trim().split_once(' ')?;
            Some((s.parse().ok()?, o.parse().ok()?))
        });
        let unconfirmed_path = data.join(UNCONFIRMED);
        let unconfirmed = std::fs::read_to_string(&unconfirmed_path)
            .map(|t| {
                t.lines()
                    .filter_map(|l| {
                        let (hash, name) = l.trim().split_once(' ').unwrap_or((l.trim(), "?"));
                        (!hash.is_empty()).then(|| Unconfirmed {
                            hash: hash.to_string(),
                            name: name.to_string(),
                            until: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let restored_path = data.join(madoguchi_core::backup::RESTORED_HOLD);
        let restored = match std::fs::read_to_string(&restored_path) {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            // A hold that cannot be read still holds.
            Err(e) => Some(format!("? ({e})")),
        };
        let claims_path = data.join(CLAIMS);
        let claims = match std::fs::read_to_string(&claims_path) {
            Ok(t) => Claims::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Claims::default(),
            Err(e) => Claims {
                held: vec![(format!("? ({e})"), u64::MAX)],
                ..Claims::default()
            },
        };
        Fence {
            restored: Mutex::new(restored),
            restored_path,
            claims: Mutex::new(claims),
            claims_path,
            noted_hold: Mutex::new(None),
            resume_unsaid: std::sync::atomic::AtomicBool::new(false),
            acked_at: Mutex::new(None),
            served_last: AtomicU64::new(0),
            issued: Mutex::new(None),
            boot: rand::random(),
            started: Instant::now(),
            lease_until: Mutex::new(None),
            replaced: Mutex::new(replaced),
            replaced_path,
            last_grant: Mutex::new(None),
            acked: tokio::sync::watch::Sender::new(0),
            epoch: AtomicU64::new(0),
            primary_last: AtomicU64::new(primary_last),
            primary_last_path,
            answered: AtomicU64::new(u64::MAX),
            key_refused: Mutex::new(None),
            replayed: Mutex::new(None),
            no_echo: Mutex::new(None),
            token_swapped: Mutex::new(None),
            link_stalled: Mutex::new(None),
            behind: Mutex::new(behind),
            behind_path,
            unconfirmed: Mutex::new(unconfirmed),
            unconfirmed_path,
            proof: Mutex::new(None),
            unproven: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Standby: the primary said its log ends at record `n`. Written down
    /// when it rises, so that a restart while still catching up keeps
    /// refusing the promotion (red team F4: otherwise an old business day
    /// is served).
    pub fn note_primary_last(&self, n: u64) -> std::io::Result<()> {
        let old = self.primary_last.fetch_max(n, Ordering::SeqCst);
        if n > old {
            let tmp = self.primary_last_path.with_extension("tmp");
            std::fs::write(&tmp, format!("{n}\n"))?;
            std::fs::rename(&tmp, &self.primary_last_path)?;
        }
        Ok(())
    }

    /// Primary: the standby holds records up to `standby`, this log ends at
    /// `ours`; kept across restarts.
    pub fn set_behind(&self, standby: u64, ours: u64) -> std::io::Result<()> {
        let mut b = self
            .behind
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        if *b != Some((standby, ours)) {
            // Held in memory even when it cannot be written down.
            *b = Some((standby, ours));
            std::fs::write(&self.behind_path, format!("{standby} {ours}\n"))?;
        }
        Ok(())
    }

    /// Primary: a standby's position was found in this log again (it was
    /// restored or rejoined): this log is no longer known to be behind.
    pub fn clear_behind(&self) -> std::io::Result<()> {
        let Ok(mut b) = self.behind.lock() else {
            return Ok(());
        };
        if b.take().is_some() {
            match std::fs::remove_file(&self.behind_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Primary: (the standby's last record, ours) when this log is known
    /// to have lost records the standby holds.
    pub fn behind(&self) -> Option<(u64, u64)> {
        self.behind.lock().ok().and_then(|b| *b)
    }

    /// Primary: the standby of record `name` (token hash `hash`) is being
    /// revoked or deleted. Until it is known to have learned it, commands
    /// are taken only while the lease it last gave lasts. Written (fsync,
    /// rename) before the revocation takes effect.
    pub fn note_revoked(&self, hash: &str, name: &str) -> std::io::Result<()> {
        let until = self
            .lease_until
            .lock()
            .ok()
            .and_then(|l| *l)
            .filter(|&u| Instant::now() < u);
        let mut list = self
            .unconfirmed
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        if list.iter().any(|u| u.hash == hash) {
            return Ok(());
        }
        let mut next = list.clone();
        next.push(Unconfirmed {
            hash: hash.to_string(),
            name: name.to_string(),
            until,
        });
        self.write_unconfirmed(&next)?;
        *list = next;
        Ok(())
    }

    /// Primary: the revoked standby with token hash `hash` learned it (or
    /// was enabled again): it no longer holds commands back. Its name, if
    /// it was waited for.
    pub fn revoked_gone(&self, hash: &str) -> std::io::Result<Option<String>> {
        let mut list = self
            .unconfirmed
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        let Some(gone) = list.iter().find(|u| u.hash == hash).cloned() else {
            return Ok(None);
        };
        let next: Vec<Unconfirmed> = list.iter().filter(|u| u.hash != hash).cloned().collect();
        self.write_unconfirmed(&next)?;
        *list = next;
        Ok(Some(gone.name))
    }

    /// Primary: an admin confirmed every revoked standby switched off; their
    /// names.
    pub fn confirm_revoked_off(&self) -> std::io::Result<Vec<String>> {
        let mut list = self
            .unconfirmed
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        self.write_unconfirmed(&[])?;
        Ok(list.drain(..).map(|u| u.name).collect())
    }

    fn write_unconfirmed(&self, list: &[Unconfirmed]) -> std::io::Result<()> {
        use std::io::Write;
        if list.is_empty() {
            return match std::fs::remove_file(&self.unconfirmed_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let text: String = list
            .iter()
            .map(|u| format!("{} {}\n", u.hash, u.name))
            .collect();
        let tmp = self.unconfirmed_path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.unconfirmed_path)
    }

    /// Primary: the names of the revoked standbys not yet known to have
    /// learned it.
    pub fn unconfirmed(&self) -> Vec<String> {
        self.unconfirmed
            .lock()
            .map(|l| l.iter().map(|u| u.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Primary: whether `hash` is the token hash of such a standby.
    pub fn is_unconfirmed(&self, hash: &str) -> bool {
        self.unconfirmed
            .lock()
            .is_ok_and(|l| l.iter().any(|u| u.hash == hash))
    }

    /// Primary: the revoked standbys whose last lease has run out while
    /// they may not know they were revoked: commands wait for them.
    pub fn unconfirmed_holding(&self) -> Vec<String> {
        let now = Instant::now();
        self.unconfirmed
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|u| u.until.is_none_or(|t| now >= t))
                    .map(|u| u.name.clone())
                    .collect()
            })
            .unwrap_or_else(|_| vec!["?".into()])
    }

    /// Primary: restored from a backup and not yet confirmed: what the
    /// hold file says (the backup's time and last record).
    pub fn restored_holding(&self) -> Option<String> {
        self.restored
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|_| Some("?".into()))
    }

    /// An admin confirmed no standby enrolled after the backup runs (or
    /// this machine was promoted: its log and accounts are its primary's
    /// then). What the hold said, if there was one.
    pub fn confirm_restored(&self) -> std::io::Result<Option<String>> {
        let mut r = self
            .restored
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        match std::fs::remove_file(&self.restored_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(r.take())
    }

    /// Primary: `who` claims epoch `n` (newer than this log's) without a
    /// proof this primary can check. A caller holds commands once: while
    /// its hold stands, newer claims only raise it (no new fault record),
    /// and once an admin has cleared its claims, it never holds again —
    /// a stolen kiosk, display or staff session could otherwise stop the
    /// office again after every clearance and bury /admin's fault list
    /// under one record per epoch (outside tester failover-rt5 F2). Other
    /// callers that saw a promoted machine still hold. Written before it
    /// is answered.
    pub fn note_claim(&self, who: &str, n: u64) -> std::io::Result<Noted> {
        let mut c = self
            .claims
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        if c.cleared.contains_key(who) {
            // One fault record per caller and process, not one per claim.
            return Ok(Noted::Ignored {
                first: self.first_unproven(who, 0),
            });
        }
        let standing = c.held.iter().any(|(w, _)| w == who);
        if c.held.iter().any(|(w, m)| w == who && *m >= n) {
            return Ok(Noted::Standing);
        }
        let mut next = c.clone();
        next.held.retain(|(w, _)| w != who);
        // Bounded: one entry per caller, callers are enrolled names.
        next.held.push((who.to_string(), n));
        // Held in memory even when it cannot be written down.
        let written = self.write_claims(&next);
        *c = next;
        written.map(|()| {
            if standing {
                Noted::Standing
            } else {
                Noted::NewHold
            }
        })
    }

    /// Primary: the claims holding commands now.
    pub fn claims_holding(&self) -> Vec<(String, u64)> {
        self.claims
            .lock()
            .map(|c| c.held.clone())
            .unwrap_or_else(|_| vec![("?".into(), u64::MAX)])
    }

    /// An admin checked that no other machine serves as the primary: the
    /// claims held now are cleared, and those callers hold no more (see
    /// [`Fence::note_claim`]). The claims cleared.
    pub fn confirm_claims(&self) -> std::io::Result<Vec<(String, u64)>> {
        let mut c = self
            .claims
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        let mut next = c.clone();
        let cleared: Vec<(String, u64)> = next.held.drain(..).collect();
        for (w, n) in &cleared {
            let m = next.cleared.entry(w.clone()).or_insert(0);
            *m = (*m).max(*n);
        }
        self.write_claims(&next)?;
        *c = next;
        Ok(cleared)
    }

    /// Primary, while a restored or claim hold stands: `who` has seen
    /// these numbers given ([`Issued`]). Kept with the claims (written
    /// down; in memory even when the disk refuses it). Whether it raised
    /// the evidence.
    pub fn note_seen(&self, who: &str, seen: &Issued) -> std::io::Result<bool> {
        let mut c = self
            .claims
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        let mut next = c.clone();
        match next.seen.get_mut(who) {
            Some(old) => old.merge(seen),
            None => {
                next.seen.insert(who.to_string(), seen.clone());
            }
        }
        if next == *c {
            return Ok(false);
        }
        let written = self.write_claims(&next);
        *c = next;
        written.map(|()| true)
    }

    /// The evidence of numbers given that this log may not hold: the
    /// latest day any caller saw, the highest number of each queue on it,
    /// and who saw them.
    pub fn seen_evidence(&self) -> Option<(Issued, Vec<String>)> {
        let c = self.claims.lock().ok()?;
        let date = c.seen.values().map(|i| i.date).max()?;
        let mut all = Issued {
            date,
            highest: Default::default(),
        };
        let mut who = Vec::new();
        for (w, i) in c.seen.iter().filter(|(_, i)| i.date == date) {
            all.merge(i);
            who.push(w.clone());
        }
        Some((all, who))
    }

    /// The numbers were raised above the evidence and no hold it was kept
    /// for stands: forgotten.
    pub fn clear_seen(&self) -> std::io::Result<()> {
        let mut c = self
            .claims
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        if c.seen.is_empty() {
            return Ok(());
        }
        let mut next = c.clone();
        next.seen.clear();
        let written = self.write_claims(&next);
        *c = next;
        written
    }

    /// This server's day gives `issued` now ([`issued_now`]).
    pub fn set_issued(&self, issued: Option<String>) {
        if let Ok(mut i) = self.issued.lock() {
            *i = issued;
        }
    }

    pub fn issued(&self) -> Option<String> {
        self.issued.lock().ok().and_then(|i| i.clone())
    }

    fn write_claims(&self, c: &Claims) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.claims_path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(c.text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.claims_path)
    }

    /// The hold (its code) now in force, compared with the last one noted:
    /// `Some(Some(code))` when a hold began, `Some(None)` when holding
    /// ended, `None` when nothing changed.
    pub fn hold_changed(&self, now: Option<&'static str>) -> Option<Option<&'static str>> {
        let mut noted = self.noted_hold.lock().ok()?;
        if *noted == now {
            return None;
        }
        *noted = now;
        Some(now)
    }

    /// A promoted machine hands devices this proof of its epoch.
    pub fn set_proof(&self, proof: String) {
        if let Ok(mut p) = self.proof.lock() {
            *p = Some(proof);
        }
    }

    pub fn proof(&self) -> Option<String> {
        self.proof.lock().ok().and_then(|p| p.clone())
    }

    /// Whether this unproven claim is new (worth one fault record).
    pub fn first_unproven(&self, device: &str, n: u64) -> bool {
        let Ok(mut seen) = self.unproven.lock() else {
            return false;
        };
        if seen.len() >= 1024 {
            return false;
        }
        seen.insert((device.to_string(), n))
    }

    /// Primary: a request with the standby's token came signed with
    /// another key than the one kept for it.
    pub fn note_key_refused(&self) {
        if let Ok(mut k) = self.key_refused.lock() {
            *k = Some(Instant::now());
        }
    }

    /// Primary: one request of the standby's token, validly signed but
    /// stale, keeps being sent again (insider-rt13 A2).
    pub fn note_replayed(&self) {
        if let Ok(mut k) = self.replayed.lock() {
            *k = Some(Instant::now());
        }
    }

    /// Primary: whether [`Fence::note_replayed`] was lately.
    pub fn replayed_lately(&self) -> bool {
        lately(&self.replayed)
    }

    /// Primary: the standby's signed requests keep coming without a lease
    /// echo (insider-rt13 C1).
    pub fn note_no_echo(&self) {
        if let Ok(mut k) = self.no_echo.lock() {
            *k = Some(Instant::now());
        }
    }

    /// Primary: another token than the standby's came on a request signed
    /// with a standby's key (insider-rt14 R2).
    pub fn note_token_swapped(&self) {
        if let Ok(mut k) = self.token_swapped.lock() {
            *k = Some(Instant::now());
        }
    }

    /// Standby: the link gives nothing it can use (`Some`: what to say on
    /// /admin instead of "every record received"), or follows again.
    pub fn note_link_stalled(&self, words: Option<String>) {
        if let Ok(mut k) = self.link_stalled.lock() {
            *k = words;
        }
    }

    /// Standby: what [`Fence::note_link_stalled`] last said.
    pub fn link_stalled(&self) -> Option<String> {
        self.link_stalled.lock().ok().and_then(|k| k.clone())
    }

    /// Primary: how many records the standby still has to copy when it is
    /// known to be more than one answer behind this log's last record
    /// when it last asked: it named its position lately and is copying (outside
    /// tester insider-rt14 R3). A command written now would wait for the
    /// standby longer than the lease and be refused after its number was
    /// taken, so it is refused before anything is written.
    pub fn catching_up(&self) -> Option<u64> {
        let lately = self
            .acked_at
            .lock()
            .ok()
            .and_then(|a| *a)
            .is_some_and(|a| a.elapsed() < 2 * LEASE);
        let tail = self.served_last.load(Ordering::SeqCst);
        let left = tail.saturating_sub(*self.acked.borrow());
        (lately && left > CATCHING_UP).then_some(left)
    }

    /// Primary: this log's last record when the standby last asked.
    pub fn note_served_last(&self, last: u64) {
        self.served_last.store(last, Ordering::SeqCst);
    }

    /// A hold ended (`may_command`); 「受付を再開しました」 is said once a
    /// command is answered ([`Fence::resume_said`]).
    pub fn resume_pending(&self) {
        self.resume_unsaid.store(true, Ordering::SeqCst);
    }

    /// A command was answered: whether 「受付を再開しました」 is to be said now.
    pub fn resume_said(&self) -> bool {
        self.resume_unsaid.swap(false, Ordering::SeqCst)
    }

    /// A command written was refused after all (the standby did not take
    /// it in time): the hold goes on. Whether it is to be said again (a
    /// resumption was said since it was last said).
    pub fn held_again(&self, code: &'static str) -> bool {
        let unsaid = self.resume_unsaid.swap(false, Ordering::SeqCst);
        if let Ok(mut noted) = self.noted_hold.lock() {
            let was = *noted;
            *noted = Some(code);
            return was.is_none() && !unsaid;
        }
        false
    }

    /// Primary: the refusal of commands for want of a lease. When a
    /// request signed with another key than the standby's came lately,
    /// it does not send staff to the standby's power and cable (outside
    /// tester insider-rt10 N2: the standby was up and following): the
    /// code stays `no_standby_lease`, the words name the key. Likewise a
    /// request sent again and again (insider-rt13 A2) and a standby that
    /// asks but never echoes a grant (C1: it does not receive the answers).
    pub fn no_lease_error(&self) -> super::error::ApiError {
        let plain = |ja: &str, en: &str| super::error::ApiError::Plain {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "no_standby_lease",
            ja: ja.into(),
            en: en.into(),
        };
        if lately(&self.key_refused) {
            return plain(
                "予備機のトークンで、登録された予備機の鍵とは違う鍵で署名された要求が届いています（別の機械が予備機のトークンを使っているおそれがあります）。番号の二重発行を防ぐために受付を止めています。電源やケーブルの問題ではありません。管理者に連絡してください（管理画面の記録に詳しい内容があります。予備機を取り消し、新しい登録用リンクで登録し直します）。",
                "requests with the standby's token come signed with another key than the standby's registered one (another machine may be using its token): commands are stopped so that no number is given twice. Not a power or cable problem: an admin revokes the standby and enrols it again with a new link (see /admin)",
            );
        }
        if lately(&self.token_swapped) {
            return plain(TOKEN_SWAPPED_JA, TOKEN_SWAPPED_EN);
        }
        if lately(&self.replayed) {
            return plain(REPLAYED_JA, REPLAYED_EN);
        }
        if lately(&self.no_echo) {
            return plain(NO_ECHO_JA, NO_ECHO_EN);
        }
        super::error::ApiError::NoLease
    }

    /// Standby: the primary answered a request that said this standby
    /// holds every record up to `after`.
    pub fn note_answered(&self, after: u64) {
        self.answered.store(after, Ordering::SeqCst);
    }

    /// Standby, starting to follow with `tail` held: records from before
    /// are taken as acknowledged (what a restart cannot know).
    pub fn start_answered(&self, tail: u64) {
        let _ = self
            .answered
            .compare_exchange(u64::MAX, tail, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Standby: the last position the primary is known to have taken
    /// (`None` before following).
    pub fn answered(&self) -> Option<u64> {
        Some(self.answered.load(Ordering::SeqCst)).filter(|&n| n != u64::MAX)
    }

    /// Standby: the primary's last record as last heard (0: not known).
    pub fn primary_last(&self) -> u64 {
        self.primary_last.load(Ordering::SeqCst)
    }

    /// The epoch in force here.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The log now holds epoch `n` (start-up, a promotion, records copied
    /// from the primary); epochs only rise.
    pub fn set_epoch(&self, n: u64) {
        self.epoch.fetch_max(n, Ordering::SeqCst);
    }

    /// Primary: the standby holds every record up to `seq`.
    pub fn ack(&self, seq: u64) {
        if let Ok(mut at) = self.acked_at.lock() {
            *at = Some(Instant::now());
        }
        self.acked.send_if_modified(|a| {
            let newer = seq > *a;
            *a = (*a).max(seq);
            newer
        });
    }

    /// Primary: waits until the standby holds record `seq`, at most while
    /// the lease lasts; `false` if it did not.
    pub async fn wait_acked(&self, seq: u64) -> bool {
        let mut rx = self.acked.subscribe();
        let until = self
            .lease_until
            .lock()
            .ok()
            .and_then(|l| *l)
            .unwrap_or_else(Instant::now);
        let wait = until.saturating_duration_since(Instant::now());
        tokio::time::timeout(wait, rx.wait_for(|a| *a >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Primary: a grant for a replication answer.
    pub fn grant(&self) -> String {
        format!("{:x}-{}", self.boot, self.started.elapsed().as_millis())
    }

    /// Primary: a standby echoed `grant`; the lease runs from its time.
    /// Whether the echo holds the lease now (a grant of this process,
    /// not yet run out).
    pub fn renew(&self, grant: &str) -> bool {
        let Some((boot, ms)) = grant.split_once('-') else {
            return false;
        };
        if u64::from_str_radix(boot, 16).ok() != Some(self.boot) {
            return false;
        }
        let Ok(ms) = ms.parse::<u64>() else {
            return false;
        };
        let Some(until) = self
            .started
            .checked_add(Duration::from_millis(ms))
            .and_then(|t| t.checked_add(LEASE))
        else {
            return false;
        };
        if until > Instant::now() + LEASE {
            // Not a grant this process made.
            return false;
        }
        if let Ok(mut l) = self.lease_until.lock() {
            if l.is_none_or(|old| until > old) {
                *l = Some(until);
            }
        }
        until > Instant::now()
    }

    /// Primary: whether the lease is held now.
    pub fn leased(&self) -> bool {
        self.lease_until
            .lock()
            .ok()
            .and_then(|l| *l)
            .is_some_and(|u| Instant::now() < u)
    }

    /// The epoch that replaced this machine, if one did.
    pub fn replaced(&self) -> Option<u64> {
        self.replaced.lock().ok().and_then(|r| *r)
    }

    /// Primary: a newer epoch exists; refuse commands from now on, also
    /// after a restart.
    pub fn mark_replaced(&self, epoch: u64) -> std::io::Result<bool> {
        let mut r = self
            .replaced
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        if r.is_some_and(|e| e >= epoch) {
            return Ok(false);
        }
        // Fenced in memory even when the disk refuses the file (full): the
        // error says a restart would forget it.
        *r = Some(epoch);
        std::fs::write(&self.replaced_path, format!("{epoch}\n"))?;
        Ok(true)
    }

    /// The machine rejoined as a standby: no longer fenced as a primary.
    pub fn clear_replaced(&self) -> std::io::Result<()> {
        if let Ok(mut r) = self.replaced.lock() {
            *r = None;
        }
        match std::fs::remove_file(&self.replaced_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Standby: an answer carrying `grant` arrived now.
    pub fn received(&self, grant: Option<&str>) {
        if let (Some(g), Ok(mut last)) = (grant, self.last_grant.lock()) {
            *last = Some((g.to_string(), Instant::now()));
        }
    }

    /// Standby: the grant to echo.
    pub fn echo(&self) -> Option<String> {
        self.last_grant
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(g, _)| g.clone()))
    }

    /// Standby: how long until every lease the primary may hold has ended.
    /// With no grant received by this process, the last one (if any) came
    /// before it started (outside tester e4: stopped, restarted a moment
    /// later and promoted at once while the primary's lease still ran).
    pub fn wait_before_promotion(&self) -> Duration {
        let last = self
            .last_grant
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|x| x.1))
            .unwrap_or(self.started);
        (last + LEASE + MARGIN).saturating_duration_since(Instant::now())
    }
}

/// What an unproven epoch claim did ([`Fence::note_claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// The caller's first: commands are held now.
    NewHold,
    /// The caller's hold already stands (raised to the newer epoch).
    Standing,
    /// An admin cleared this caller's claims before: not held. `first`:
    /// the first such claim since the start (worth one fault record).
    Ignored { first: bool },
}

/// Whether a caller of this role sends commands (and so may have seen a
/// newer primary take them): a display, an auditor or a standby only reads.
fn takes_commands(role: super::auth::Role) -> bool {
    use super::auth::Role;
    matches!(role, Role::Admin | Role::Staff | Role::Kiosk)
}

/// Every answer names this server's epoch (and a promoted machine's proof
/// of it); a request from a known device or account with a valid proof of
/// a newer one tells a primary it was replaced (the device has seen the
/// promoted machine). A claim without a valid proof fences nothing and is
/// a fault record naming the caller; an unknown caller's headers are
/// ignored.
pub async fn carry_epoch(State(app): State<Arc<super::App>>, req: Request, next: Next) -> Response {
    let proof = header(req.headers(), EPOCH_PROOF_HEADER);
    let claimed = header(req.headers(), EPOCH_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .into_iter()
        .chain(
            proof
                .as_deref()
                .and_then(|p| p.split_once('.'))
                .and_then(|(n, _)| n.parse::<u64>().ok()),
        )
        .max();
    if let Some(n) = claimed {
        note_epoch_claim(&app, req.headers(), n, proof.as_deref());
    }
    if let Some(seen) = header(req.headers(), ISSUED_HEADER).and_then(|v| Issued::parse(&v)) {
        note_numbers_seen(&app, req.headers(), &seen, claimed);
    }
    let command = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let mut res = next.run(req).await;
    if command {
        if let Ok(i) = app.engine.read_async(issued_now).await {
            app.fence.set_issued(i);
        }
    }
    if let Some(i) = app
        .fence
        .issued()
        .and_then(|i| HeaderValue::from_str(&i).ok())
    {
        res.headers_mut().insert(ISSUED_HEADER, i);
    }
    res.headers_mut()
        .insert(EPOCH_HEADER, HeaderValue::from(app.fence.epoch()));
    if let Some(p) = app
        .fence
        .proof()
        .and_then(|p| HeaderValue::from_str(&p).ok())
    {
        res.headers_mut().insert(EPOCH_PROOF_HEADER, p);
    }
    res
}

fn header(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// A caller's claim of epoch `n`: fences this primary when proven, holds
/// commands (or only notes it, for a caller that only reads) when not.
fn note_epoch_claim(
    app: &super::App,
    headers: &axum::http::HeaderMap,
    n: u64,
    proof: Option<&str>,
) {
    let ours = app.fence.epoch();
    if n <= ours || app.is_standby() || app.fence.replaced().is_some_and(|r| r >= n) {
        return;
    }
    let Some(caller) = app.auth.identify(headers) else {
        return;
    };
    let proven = proof
        .and_then(|p| verify_proof(p, &app.auth.standby_keys()))
        .filter(|&p| p > ours);
    match proven {
        Some(p) => match app.fence.mark_replaced(p) {
            Ok(true) => app.faults.record(
                "failover",
                format!(
                    "replaced: {} has seen epoch {p} with its proof (a standby was promoted); this server takes no more commands",
                    caller.name
                ),
            ),
            Ok(false) => {}
            Err(e) => app.faults.record(
                HOLD_NOT_WRITTEN,
                format!("replaced: {} has seen epoch {p} with its proof; commands are refused, but it cannot be written down ({e}) and a restart would forget it / 主機でなくなったことをディスクに書けません（受付は止めています）", caller.name),
            ),
        },
        // Not proven here: a forgery, or a machine promoted
        // from a standby this primary does not know (restored
        // from an older backup, or the standby deleted;
        // outside tester replay4 N1, e19). Which one cannot be
        // told, so commands wait for an admin, who sees the
        // caller's name (a stolen token is revoked there).
        // A caller that only reads (a display, an auditor)
        // holds nothing with a claim it cannot prove (outside
        // tester insider-rt9 F6): a display hangs where anyone
        // can take it, and one forged header from it stopped
        // all issuing. Its proven claims still fence (above).
        None if !takes_commands(caller.role) => {
            if app.fence.first_unproven(&format!("read-only {}", caller.name), 0) {
                app.faults.record(
                    "failover",
                    format!(
                        "{} ({}) claims epoch {n} without a proof this server can check: not held, since a device that only reads holds nothing; if it is not one of this office's devices, revoke it on /admin / 表示専用の{}が確かめられない第{n}期を示しました。受付は止めていません。心当たりがなければ管理画面で取り消してください",
                        caller.name, caller.role.name(), caller.name
                    ),
                );
            }
        }
        None => match app.fence.note_claim(&caller.name, n) {
            Ok(Noted::NewHold) => app.faults.record(
                "failover",
                format!(
                    "{} claims epoch {n} without a proof this server can check (this server: epoch {ours}): commands are held until an admin confirms on /admin that no other machine serves as the primary / {} がこの主機の確かめられない第{n}期を示したため、受付を止めました。管理画面で確認すると再開します",
                    caller.name, caller.name
                ),
            ),
            Ok(Noted::Ignored { first: true }) => app.faults.record(
                "failover",
                format!(
                    "{} claims epoch {n} again after an admin cleared its claims: not held; if it is not one of this office's devices or accounts, revoke it on /admin / {} が管理者の確認の後にまた第{n}期を示しました。受付は止めていません。この事務所の端末・アカウントでなければ、管理画面で取り消してください",
                    caller.name, caller.name
                ),
            ),
            Ok(Noted::Standing | Noted::Ignored { first: false }) => {}
            Err(e) => {
                if app.fence.first_unproven(&caller.name, n) {
                    app.faults.record(
                        HOLD_NOT_WRITTEN,
                        format!("{} claims epoch {n} without a proof this server can check: commands are held, but the claim cannot be written down ({e}) and a restart would forget it / {} の第{n}期の主張で受付を止めましたが、ディスクに書けません（再起動すると忘れます）", caller.name, caller.name),
                    );
                }
            }
        },
    }
}

/// The numbers a caller reports seen given (`Madoguchi-Issued`).
fn note_numbers_seen(
    app: &super::App,
    headers: &axum::http::HeaderMap,
    seen: &Issued,
    claimed: Option<u64>,
) {
    // While a restored or claim hold stands, the numbers a device saw
    // given are the evidence the numbers are raised above before issuing
    // resumes (outside tester failover-rt5 F4): only a known caller's.
    // Only a report that tells something this log does not know counts:
    // from a caller that has seen a newer machine, or numbers above this
    // log's own (its own numbers echoed back bound nothing, and must not
    // spare the admin the question).
    let held = app.fence.restored_holding().is_some() || !app.fence.claims_holding().is_empty();
    let newer = claimed.is_some_and(|n| n > app.fence.epoch());
    let own = app.fence.issued().and_then(|i| Issued::parse(&i));
    let beyond = own.is_none_or(|o| {
        seen.date > o.date
            || (seen.date == o.date
                && seen
                    .highest
                    .iter()
                    .any(|(q, n)| o.highest.get(q).is_none_or(|m| n > m)))
    });
    if held && (newer || beyond) && !app.is_standby() && app.fence.replaced().is_none() {
        // Only from a caller that takes commands (F7: a stolen display
        // reported 998 and used a category up); and a report is only
        // shown to the admin as a hint with its sender, never the
        // number issuing resumes from (`resume.rs`).
        if let Some(caller) = app
            .auth
            .identify(headers)
            .filter(|c| takes_commands(c.role))
        {
            if let Err(e) = app.fence.note_seen(&caller.name, seen) {
                if app
                    .fence
                    .first_unproven(&format!("seen {}", caller.name), 0)
                {
                    app.faults.record(
                        HOLD_NOT_WRITTEN,
                        format!("the numbers {} saw given ({}) cannot be written down ({e}): they are kept until a restart / {} が見た番号をディスクに書けません（再起動まで覚えています）", caller.name, seen.text(), caller.name),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_renews_only_in_its_own_process_and_lapses() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert!(!f.leased());
        f.renew("0-0");
        f.renew("nonsense");
        assert!(!f.leased(), "another process's grant");
        f.renew(&f.grant());
        assert!(f.leased());
        let other = Fence::open(dir.path());
        other.renew(&f.grant());
        assert!(!other.leased(), "a grant from before a restart is void");
    }

    #[test]
    fn being_replaced_survives_a_restart_and_an_older_epoch_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert_eq!(f.replaced(), None);
        assert!(f.mark_replaced(2).expect("write"));
        assert!(!f.mark_replaced(1).expect("older"));
        assert_eq!(Fence::open(dir.path()).replaced(), Some(2));
        f.clear_replaced().expect("clear");
        assert_eq!(Fence::open(dir.path()).replaced(), None);
    }

    #[test]
    fn the_standby_waits_a_lease_after_its_last_answer() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert!(
            f.wait_before_promotion() > LEASE,
            "a grant may have come just before this process started"
        );
        f.received(Some("1-2"));
        assert!(f.wait_before_promotion() > LEASE);
        assert_eq!(f.echo().as_deref(), Some("1-2"));
    }

    #[test]
    fn an_epoch_proof_holds_only_under_the_standbys_key() {
        let key = proof_key("standby-token\n");
        let p = epoch_proof(&key, 3);
        assert_eq!(verify_proof(&p, std::slice::from_ref(&key)), Some(3));
        assert_eq!(verify_proof(&p, &[proof_key("another")]), None);
        let forged = p.replacen("3.", "4.", 1);
        assert_eq!(verify_proof(&forged, std::slice::from_ref(&key)), None);
        assert_eq!(verify_proof("7", std::slice::from_ref(&key)), None);
        assert_eq!(verify_proof("7.00", std::slice::from_ref(&key)), None);
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_primarys_last_record_and_being_behind_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        f.note_primary_last(42).expect("note");
        f.note_primary_last(7).expect("lower");
        assert_eq!(Fence::open(dir.path()).primary_last(), 42);
        f.set_behind(10, 8).expect("behind");
        assert_eq!(Fence::open(dir.path()).behind(), Some((10, 8)));
        f.clear_behind().expect("clear");
        assert_eq!(Fence::open(dir.path()).behind(), None);
    }

    #[test]
    fn a_revoked_standby_holds_commands_after_its_lease_until_it_is_gone_also_after_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        f.renew(&f.grant());
        f.note_revoked("aa11", "standby-1").expect("note");
        assert!(f.unconfirmed_holding().is_empty(), "its lease still runs");
        assert!(f.is_unconfirmed("aa11"));
        let again = Fence::open(dir.path());
        assert_eq!(again.unconfirmed_holding(), vec!["standby-1".to_string()]);
        assert_eq!(again.revoked_gone("bb").expect("other"), None);
        assert_eq!(
            again.revoked_gone("aa11").expect("gone").as_deref(),
            Some("standby-1")
        );
        assert!(Fence::open(dir.path()).unconfirmed().is_empty());
        let unleased = Fence::open(dir.path());
        unleased.note_revoked("cc", "standby-2").expect("note");
        assert_eq!(
            unleased.unconfirmed_holding(),
            vec!["standby-2".to_string()]
        );
        assert_eq!(
            unleased.confirm_revoked_off().expect("confirm"),
            vec!["standby-2".to_string()]
        );
        assert!(unleased.unconfirmed_holding().is_empty());
        assert!(Fence::open(dir.path()).unconfirmed().is_empty());
    }

    #[test]
    fn an_unverified_claim_holds_until_cleared_also_after_a_restart_and_each_caller_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert!(f.claims_holding().is_empty());
        assert_eq!(f.note_claim("kiosk 1", 3).expect("note"), Noted::NewHold);
        assert_eq!(f.note_claim("kiosk 1", 2).expect("older"), Noted::Standing);
        assert_eq!(f.note_claim("kiosk 1", 5).expect("newer"), Noted::Standing);
        assert_eq!(f.claims_holding(), vec![("kiosk 1".to_string(), 5)]);
        let again = Fence::open(dir.path());
        assert_eq!(again.claims_holding(), vec![("kiosk 1".to_string(), 5)]);
        assert_eq!(
            again.confirm_claims().expect("clear"),
            vec![("kiosk 1".to_string(), 5)]
        );
        assert_eq!(
            again.note_claim("kiosk 1", 5).expect("cleared"),
            Noted::Ignored { first: true }
        );
        assert!(Fence::open(dir.path()).claims_holding().is_empty());
        // A cleared caller never holds again, even with a newer epoch, and
        // is noted once; another caller still holds.
        assert_eq!(
            again.note_claim("kiosk 1", 6).expect("newer"),
            Noted::Ignored { first: false }
        );
        assert_eq!(
            Fence::open(dir.path())
                .note_claim("kiosk 1", 7)
                .expect("after a restart"),
            Noted::Ignored { first: true }
        );
        assert_eq!(
            again.note_claim("display-1", 3).expect("another caller"),
            Noted::NewHold
        );
        assert_eq!(Fence::open(dir.path()).claims_holding().len(), 1);
    }

    #[test]
    fn a_restored_folder_holds_until_confirmed_and_an_unreadable_hold_still_holds() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(Fence::open(dir.path()).restored_holding(), None);
        let hold = dir.path().join(madoguchi_core::backup::RESTORED_HOLD);
        std::fs::write(&hold, "2026-12-06T10:00:00Z 9\n").expect("write");
        let f = Fence::open(dir.path());
        assert_eq!(
            f.restored_holding().as_deref(),
            Some("2026-12-06T10:00:00Z 9")
        );
        assert!(f.confirm_restored().expect("confirm").is_some());
        assert_eq!(f.restored_holding(), None);
        assert_eq!(Fence::open(dir.path()).restored_holding(), None);
        std::fs::create_dir(&hold).expect("a directory where the file was");
        assert!(Fence::open(dir.path()).restored_holding().is_some());
    }

    #[test]
    fn the_numbers_devices_saw_are_kept_per_caller_the_latest_day_and_survive_a_restart() {
        assert_eq!(Issued::parse("nonsense"), None);
        assert_eq!(Issued::parse("2026-12-07 idou=x"), None);
        assert_eq!(
            Issued::parse("2026-12-07 a b=1"),
            None,
            "a queue name with a space"
        );
        let day = |d: &str, q: &str| Issued::parse(&format!("{d} {q}")).expect("parse");
        assert_eq!(
            day("2026-12-07", "idou=1004,koseki=12").text(),
            "2026-12-07 idou=1004,koseki=12"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        assert!(f.seen_evidence().is_none());
        assert!(f
            .note_seen("kiosk 1", &day("2026-12-06", "idou=1050"))
            .expect("note"));
        assert!(f
            .note_seen("kiosk 1", &day("2026-12-07", "idou=1004"))
            .expect("note"));
        assert!(!f
            .note_seen("kiosk 1", &day("2026-12-06", "idou=1090"))
            .expect("older day"));
        assert!(f
            .note_seen("display-1", &day("2026-12-07", "idou=1002,koseki=12"))
            .expect("note"));
        let (seen, who) = Fence::open(dir.path()).seen_evidence().expect("kept");
        assert_eq!(seen.text(), "2026-12-07 idou=1004,koseki=12");
        assert_eq!(who, vec!["display-1".to_string(), "kiosk 1".to_string()]);
        f.clear_seen().expect("clear");
        assert!(Fence::open(dir.path()).seen_evidence().is_none());
    }

    #[test]
    fn a_claim_holds_in_memory_when_its_file_cannot_be_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        // A directory where the temporary file goes: every write fails.
        std::fs::create_dir(dir.path().join("epoch-claims.tmp")).expect("mkdir");
        assert!(f.note_claim("kiosk-1", 1).is_err());
        assert_eq!(f.claims_holding(), vec![("kiosk-1".to_string(), 1)]);
        std::fs::create_dir(dir.path().join("replaced")).expect("mkdir");
        assert!(f.mark_replaced(2).is_err());
        assert_eq!(f.replaced(), Some(2), "fenced in memory");
    }

    #[test]
    fn the_epoch_only_rises() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Fence::open(dir.path());
        f.set_epoch(2);
        f.set_epoch(1);
        assert_eq!(f.epoch(), 2);
    }
}
