//! A bound on the audit records of failed sign-ins (issue 23, R11, red-team
//! finding F9). Every failed sign-in is accounted for, but failures from
//! many addresses wrote one record each without bound. Per window
//! ([`window`], ten minutes) a failure is recorded one by one only while
//! both its account and its address (an IPv6 address by its /64) have had
//! fewer than [`ONE_BY_ONE`] recorded; the rest are counted and written as
//! one summary record per account when the window ends — 「ログイン失敗
//! ×N（M か所から: …）」, with the first addresses and the account names
//! tried — and when the server stops, so that none is lost. The office's
//! real accounts always have their own entries. Sign-ins
//! refused while an address waits (one record per wait, `throttle.rs`)
//! are counted apart. At most [`MAX_ACCOUNTS`] names (and kinds) are
//! followed per window — a spray over many invented names shares one more
//! entry, `*`, whose summary lists the first names tried — so a window
//! writes at most (`MAX_ACCOUNTS` + 1) × (`ONE_BY_ONE` + 1) records of
//! each kind, of bounded length, however many tries from however many
//! addresses. The lock-out counters (`throttle.rs`) are untouched by
//! this: they see every failure.
//!
//! The running window's tallies survive a crash or a power loss (outside
//! tester insider-rt5 F6: kill -9 lost them): while they grow they are
//! kept in `<data>/`[`PENDING_FILE`] (written at most once every
//! [`PENDING_EVERY`], replaced whole, so it stays one window's size); a
//! window written to the log removes it, and a start that finds it writes
//! its summaries then, marked as from before an unclean stop. At most the
//! last [`PENDING_EVERY`] of failures before a crash is lost.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use madoguchi_core::model::Event;

use super::App;

/// Failures of one account, or from one address, recorded one by one in a
/// window.
pub const ONE_BY_ONE: u32 = 5;
/// Account names followed one by one per window; the rest share `*`.
pub const MAX_ACCOUNTS: usize = 16;
/// Addresses and names a summary lists (it counts them all).
const LISTED: usize = 8;
/// Addresses counted per entry and window (past this "at least").
const MAX_COUNTED: usize = 100_000;
/// The running window's tallies, kept against a crash.
pub const PENDING_FILE: &str = "sign-in-pending.json";
/// How often the pending tallies are written at most.
pub const PENDING_EVERY: Duration = Duration::from_secs(1);
/// The window when `MADOGUCHI_SIGNIN_AUDIT_WINDOW_SECS` does not say
/// otherwise (tests shorten it).
const WINDOW: Duration = Duration::from_secs(10 * 60);

/// The window in force.
pub fn window() -> Duration {
    std::env::var("MADOGUCHI_SIGNIN_AUDIT_WINDOW_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(WINDOW, Duration::from_secs)
}

#[derive(Debug, Default)]
struct Tally {
    recorded: u32,
    quiet: u32,
    addresses: HashSet<IpAddr>,
    /// The first addresses of the quiet ones, in order.
    listed: Vec<IpAddr>,
    /// The first names tried (the `*` entry: each a different name).
    names: Vec<String>,
}

#[derive(Debug)]
struct Windowed {
    start: Instant,
    /// A summary grew since the pending file was last written.
    grew: bool,
    accounts: HashMap<(String, bool), Tally>,
    /// Failures (or refusals) recorded one by one per address key this
    /// window.
    by_address: HashMap<(IpAddr, bool), u32>,
}

/// One window's failures of an account not recorded one by one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub account: String,
    /// Refusals while waiting, not failed checks.
    pub refused: bool,
    pub count: u32,
    pub addresses: usize,
    /// The first few addresses.
    pub listed: Vec<IpAddr>,
    /// For `*`: the first few names tried.
    pub names: Vec<String>,
}

impl Summary {
    /// The record's `by`, Japanese first, e.g. 「ログイン失敗 ×412（103
    /// か所から: 127.0.3.1, … ほか 95）」 and the same in English.
    pub fn by(&self, window: Duration) -> String {
        let shown = self
            .listed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let more = self.addresses.saturating_sub(self.listed.len());
        let more_ja = if more > 0 {
            format!(" ほか {more}")
        } else {
            String::new()
        };
        let more_en = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let (names_ja, names_en) = if self.names.is_empty() {
            (String::new(), String::new())
        } else {
            let n = self.names.join(", ");
            (
                format!("、試された ID: {n} など"),
                format!("; names tried: {n} …"),
            )
        };
        let (what_ja, what_en) = if self.refused {
            ("待機中のログイン拒否", "sign-ins refused while waiting")
        } else {
            ("ログイン失敗", "failed sign-ins")
        };
        format!(
            "{what_ja} ×{}（{} 秒間に {} か所から: {shown}{more_ja}{names_ja}。まとめて 1 件に記録） / {} ×{} from {} addresses ({shown}{more_en}{names_en}) ({what_en} within {} s, recorded as one)",
            self.count,
            window.as_secs(),
            self.addresses,
            self.account,
            self.count,
            self.addresses,
            window.as_secs()
        )
    }
}

#[derive(Debug)]
pub struct SignInAudit {
    window: Duration,
    state: Mutex<Windowed>,
}

impl Default for SignInAudit {
    fn default() -> Self {
        SignInAudit::new(window())
    }
}

impl SignInAudit {
    pub fn new(window: Duration) -> SignInAudit {
        SignInAudit {
            window,
            state: Mutex::new(Windowed {
                start: Instant::now(),
                grew: false,
                accounts: HashMap::new(),
                by_address: HashMap::new(),
            }),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// A failed sign-in to `account` from `addr` (`refused` while the
    /// address waits, else a failed check; `real`: the account exists):
    /// whether to record it one by one (otherwise it is in the window's
    /// summary). A real account always has its own entry — the office's
    /// accounts are few — so a spray of invented names cannot fold an
    /// attack on a real one into `*` (outside tester insider-rt5 F1: 40
    /// failures on `admin` left no record naming it).
    pub fn failed(&self, account: &str, addr: IpAddr, refused: bool, real: bool) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        let name = account.to_lowercase();
        let key = (name.clone(), refused);
        let key = if real || s.accounts.contains_key(&key) || s.accounts.len() < MAX_ACCOUNTS {
            key
        } else {
            ("*".to_string(), refused)
        };
        let shared = key.0 == "*";
        let addr = super::throttle::address_key(addr);
        let t = s.accounts.entry(key).or_default();
        // An address not yet counted this window may record while the
        // window is young; past the bound, it counts as having recorded.
        if s.by_address.len() < MAX_COUNTED {
            s.by_address.entry((addr, refused)).or_insert(0);
        }
        let Some(from_addr) = s.by_address.get_mut(&(addr, refused)) else {
            s.grew = true;
            return quiet(t, addr, shared, &name);
        };
        if t.recorded < ONE_BY_ONE && *from_addr < ONE_BY_ONE {
            t.recorded += 1;
            *from_addr += 1;
            return true;
        }
        s.grew = true;
        quiet(t, addr, shared, &name)
    }

    /// The summaries of a window that has ended (and a new window), or
    /// nothing while it runs; `now` takes them whether or not it ended
    /// (the server is stopping).
    pub fn due(&self, now: bool) -> Vec<Summary> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !now && s.start.elapsed() < self.window {
            return Vec::new();
        }
        s.start = Instant::now();
        s.grew = false;
        s.by_address.clear();
        let mut out: Vec<Summary> = s
            .accounts
            .drain()
            .filter(|(_, t)| t.quiet > 0)
            .map(|((account, refused), t)| Summary {
                account,
                refused,
                count: t.quiet,
                addresses: t.addresses.len(),
                listed: t.listed,
                names: t.names,
            })
            .collect();
        out.sort_by(|a, b| (&a.account, a.refused).cmp(&(&b.account, b.refused)));
        out
    }

    /// The running window's summaries so far, if they grew since last
    /// asked (for the pending file).
    pub fn grown(&self) -> Option<Vec<Summary>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !s.grew {
            return None;
        }
        s.grew = false;
        let mut out: Vec<Summary> = s
            .accounts
            .iter()
            .filter(|(_, t)| t.quiet > 0)
            .map(|((account, refused), t)| Summary {
                account: account.clone(),
                refused: *refused,
                count: t.quiet,
                addresses: t.addresses.len(),
                listed: t.listed.clone(),
                names: t.names.clone(),
            })
            .collect();
        out.sort_by(|a, b| (&a.account, a.refused).cmp(&(&b.account, b.refused)));
        Some(out)
    }
}

/// Counts a failure into its entry's summary; never recorded one by one.
fn quiet(t: &mut Tally, addr: IpAddr, shared: bool, name: &str) -> bool {
    t.quiet += 1;
    if t.addresses.len() < MAX_COUNTED && t.addresses.insert(addr) && t.listed.len() < LISTED {
        t.listed.push(addr);
    }
    if shared && t.names.len() < LISTED && !t.names.iter().any(|n| n == name) {
        t.names.push(super::api::audited_name(name));
    }
    false
}

/// Writes summaries as one record each (`note`: added to each, in both
/// languages), then removes the pending file they were kept in.
fn write(app: &App, summaries: Vec<Summary>, note: &str) {
    let wrote = !summaries.is_empty();
    for s in summaries {
        let by = format!("{}{note}", s.by(app.sign_in_audit.window()));
        app.audit(
            Some(by),
            Event::Login {
                account: s.account,
                ok: false,
            },
        );
    }
    let path = app.data.join(PENDING_FILE);
    if wrote || path.exists() {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove the pending sign-in tallies");
            }
        }
    }
}

/// Keeps the running window's tallies in the pending file, if they grew.
fn keep_pending(app: &App) {
    if let Some(pending) = app.sign_in_audit.grown() {
        let path = app.data.join(PENDING_FILE);
        if let Err(e) = super::auth::write_atomically(&path, &pending) {
            app.faults.record(
                "storage",
                format!("ログイン失敗の集計を保存できません（異常終了すると失われます）/ the running sign-in failure tallies cannot be kept: {e:#}"),
            );
        }
    }
}

/// At start-up: the tallies of a window that a crash or a power loss
/// ended are written now, marked so. A file that cannot be read is named
/// on /admin and left for a person to look at.
pub fn recover(app: &App) {
    // A standby writes no audit record: the file waits for a promotion's
    // restart, or for this machine as a primary.
    if app.is_standby() {
        return;
    }
    let path = app.data.join(PENDING_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            app.faults
                .record("storage", format!("{} cannot be read: {e}", path.display()));
            return;
        }
    };
    match parse_pending(&bytes) {
        Ok(pending) => write(
            app,
            pending,
            "（前回の異常終了の前の分 / from before an unclean stop）",
        ),
        Err(e) => app.faults.record(
            "storage",
            format!(
                "{} が読めません（前回の異常終了の前のログイン失敗の集計）/ {} cannot be read (sign-in failure tallies from before an unclean stop): {e}",
                path.display(),
                path.display()
            ),
        ),
    }
}

/// The pending file's summaries, from bytes never trusted (issue 17: a
/// garbled or grown file must not become an unbounded audit record): at
/// most `2 × (MAX_ACCOUNTS + 1)` summaries (the most one window keeps),
/// each listing at most [`LISTED`] addresses and names of at most 256
/// characters; the rest is cut, never an error.
pub fn parse_pending(bytes: &[u8]) -> Result<Vec<Summary>, String> {
    const MAX_NAME: usize = 256;
    if bytes.len() > 1 << 20 {
        return Err(format!("{} bytes, more than any window keeps", bytes.len()));
    }
    let mut pending: Vec<Summary> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    pending.truncate(2 * (MAX_ACCOUNTS + 1));
    let cut = |s: &mut String| {
        if let Some((i, _)) = s.char_indices().nth(MAX_NAME) {
            s.truncate(i);
        }
    };
    for p in &mut pending {
        cut(&mut p.account);
        p.listed.truncate(LISTED);
        p.names.truncate(LISTED);
        p.names.iter_mut().for_each(cut);
        p.addresses = p.addresses.max(p.listed.len()).min(MAX_COUNTED);
    }
    Ok(pending)
}

/// Writes each ended window's summaries, looking a few times a window,
/// and keeps the running one's in the pending file.
pub async fn run(app: Arc<App>) {
    let every = (app.sign_in_audit.window() / 4)
        .clamp(Duration::from_millis(250), Duration::from_secs(30))
        .min(PENDING_EVERY);
    loop {
        tokio::time::sleep(every).await;
        let a = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let due = a.sign_in_audit.due(false);
            if due.is_empty() {
                keep_pending(&a);
            } else {
                write(&a, due, "");
            }
        })
        .await;
    }
}

/// The server is stopping: the running window's summaries are written now
/// (they would be lost with the process).
pub fn flush(app: &App) {
    write(app, app.sign_in_audit.due(true), "");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smoke run in place of a fuzz target (the pending file's reader is
    /// in the office binary, which the fuzz crate cannot link; issue 17):
    /// random bytes and changed real files never panic, and whatever reads
    /// is bounded.
    #[test]
    fn random_and_changed_pending_files_never_panic_and_stay_bounded() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let one = Summary {
            account: "admin".into(),
            refused: false,
            count: 412,
            addresses: 103,
            listed: vec![IpAddr::from([127, 0, 3, 1])],
            names: vec!["a".into()],
        };
        let good = serde_json::to_vec(&vec![one.clone(); 3]).expect("json");
        assert_eq!(parse_pending(&good), Ok(vec![one.clone(); 3]));
        for _ in 0..5_000 {
            let mut x = good.clone();
            let i = rng.random_range(0..x.len());
            x[i] = rng.random();
            if let Ok(v) = parse_pending(&x) {
                for s in v {
                    let _ = s.by(Duration::from_secs(600));
                }
            }
        }
        let huge = Summary {
            account: "x".repeat(10_000),
            listed: vec![IpAddr::from([10, 0, 0, 1]); 50],
            names: vec!["y".repeat(1_000); 50],
            addresses: usize::MAX,
            ..one.clone()
        };
        let bytes = serde_json::to_vec(&vec![huge; 10]).expect("json");
        assert!(bytes.len() < 1 << 20);
        let v = parse_pending(&bytes).expect("reads");
        assert!(v.len() <= 2 * (MAX_ACCOUNTS + 1));
        for s in &v {
            assert!(s.account.chars().count() <= 256 && s.listed.len() <= LISTED);
            assert!(s.names.len() <= LISTED && s.names.iter().all(|n| n.len() <= 256));
            assert!(s.by(Duration::from_secs(600)).len() < 8_000);
        }
        assert!(parse_pending(&vec![b' '; (1 << 20) + 1]).is_err());
        let many = serde_json::to_vec(&vec![one; 100]).expect("json");
        assert_eq!(
            parse_pending(&many).expect("reads").len(),
            2 * (MAX_ACCOUNTS + 1)
        );
    }

    #[test]
    fn a_flood_is_recorded_a_few_times_and_summed_up_once() {
        let a = SignInAudit::new(Duration::ZERO);
        let mut one_by_one = 0;
        for i in 0..1000u32 {
            let addr = IpAddr::from((i % 250).to_be_bytes());
            if a.failed(
                if i % 2 == 0 { "admin" } else { "ADMIN" },
                addr,
                false,
                true,
            ) {
                one_by_one += 1;
            }
        }
        assert_eq!(one_by_one, ONE_BY_ONE);
        let due = a.due(false);
        assert_eq!(
            due,
            vec![Summary {
                account: "admin".into(),
                refused: false,
                count: 1000 - ONE_BY_ONE,
                addresses: 250,
                listed: (5..13u32).map(|i| IpAddr::from(i.to_be_bytes())).collect(),
                names: Vec::new(),
            }]
        );
        let by = due[0].by(Duration::from_secs(600));
        assert!(
            by.starts_with("ログイン失敗 ×995（600 秒間に 250 か所から: 0.0.0.5, 0.0.0.6,")
                && by.contains("ほか 242")
                && by.contains("admin ×995 from 250 addresses"),
            "{by}"
        );
        assert!(a.due(false).is_empty(), "a new window");
    }

    /// Outside tester insider-rt5 F1: invented names filling the followed
    /// entries and `*` cannot hide failures on a real account.
    #[test]
    fn a_spray_of_invented_names_cannot_fold_a_real_account_into_star() {
        let a = SignInAudit::new(Duration::ZERO);
        for i in 0..40 {
            a.failed(
                &format!("yy{i}"),
                IpAddr::from([10, 0, 0, i as u8]),
                false,
                false,
            );
        }
        for i in 0..40u8 {
            a.failed("admin", IpAddr::from([10, 0, 1, i % 10]), false, true);
        }
        let due = a.due(true);
        let admin = due
            .iter()
            .find(|s| s.account == "admin")
            .expect("admin has its own summary");
        assert_eq!(admin.count + ONE_BY_ONE, 40, "every failure on admin");
        assert!(due
            .iter()
            .filter(|s| s.account == "*")
            .all(|s| !s.names.iter().any(|n| n == "admin")));
    }

    #[test]
    fn one_address_spraying_names_records_a_few_and_lists_the_names() {
        let a = SignInAudit::new(Duration::ZERO);
        let recorded = (0..1000)
            .filter(|i| {
                a.failed(
                    &format!("nobody{i}"),
                    IpAddr::from([10, 0, 0, 1]),
                    false,
                    false,
                )
            })
            .count();
        assert_eq!(recorded, ONE_BY_ONE as usize, "the address's few");
        let due = a.due(false);
        assert!(due.len() <= MAX_ACCOUNTS + 1, "{}", due.len());
        let shared = due.iter().find(|s| s.account == "*").expect("*");
        assert_eq!(shared.names.len(), LISTED);
        assert_eq!(shared.names[0], format!("nobody{MAX_ACCOUNTS}"));
        let summed: u32 = due.iter().map(|s| s.count).sum();
        assert_eq!(recorded + summed as usize, 1000, "none is lost");
        assert!(shared
            .by(Duration::from_secs(60))
            .contains("試された ID: nobody16"));
    }

    #[test]
    fn many_addresses_and_names_write_a_bounded_number_of_records() {
        let a = SignInAudit::new(Duration::ZERO);
        let mut recorded = 0u32;
        for i in 0..20_000u32 {
            let addr = IpAddr::from((0x7f00_0000 + i % 5000).to_be_bytes());
            let refused = i.is_multiple_of(7);
            if a.failed(&format!("user{}", i % 100), addr, refused, false) {
                recorded += 1;
            }
        }
        let due = a.due(true);
        let summed: u32 = due.iter().map(|s| s.count).sum();
        assert_eq!(recorded + summed, 20_000, "none is lost");
        let bound = 2 * (MAX_ACCOUNTS as u32 + 1) * ONE_BY_ONE;
        assert!(recorded <= bound, "{recorded} one by one");
        assert!(
            due.len() <= 2 * (MAX_ACCOUNTS + 1),
            "{} summaries",
            due.len()
        );
        // Every record's text is bounded, however many addresses.
        assert!(due
            .iter()
            .all(|s| s.by(Duration::from_secs(600)).len() < 1024));
    }

    #[test]
    fn stopping_takes_the_running_window() {
        let a = SignInAudit::new(Duration::from_secs(3600));
        for i in 0..10u8 {
            a.failed("admin", IpAddr::from([127, 0, 0, i]), false, true);
        }
        assert!(a.due(false).is_empty(), "the window runs");
        let due = a.due(true);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 10 - ONE_BY_ONE);
    }
}
