//! Issuing rate limits (issue 23, R11): one kiosk, one staff account, or
//! one stolen kiosk token or staff session, cannot use up a category's
//! numbers for the day. Token buckets per issuer and per category (over
//! every issuer), checked before the command reaches the engine, so a
//! refused request burns no number. A kiosk may issue a queue's worth at
//! once ([`ISSUER_BURST`]); a person issuing for a visitor at the counter
//! a few a minute ([`PERSON_BURST`], [`PERSON_PER_MINUTE`]) — a staff
//! session used 982 numbers of a category in 30 s before (red-team
//! finding F3). Administrators are not limited: they may widen a
//! category's numbers, close and reopen the day anyway, and the last
//! numbers of a category are theirs to give.
//!
//! The buckets slow an issuer down; they do not stop it using a category
//! up over an hour (red-team finding F11). So one issuer also holds at
//! most a share of a category's numbers for the day ([`share_allows`]):
//! it may take a number only while what it took stays below what is left
//! for everybody else — at most half of the category, however long it
//! tries. Near the end of a category the device that took more than
//! twice what any other took ([`share_allows`]) is refused first, so kiosks used evenly
//! on a busy day carry on to the last number (the first rule alone
//! refused two kiosks sharing 999 numbers at 666 tickets); a kiosk with
//! history goes on while its share of the day stays near its usual share
//! ([`usual_share_allows`]: the busy door kiosk). The counts live in
//! memory, read back from the day's records at start-up (`issued_log.rs`):
//! a restart or a crash changes nothing (outside tester insider-rt5 F4).
//!
//! A kiosk also has a day's budget per category learned from its own past
//! days ([`budget_of`], [`History`]): past it, it is held as below (F2:
//! two stolen tokens pacing under the rate hold used a category up).
//!
//! A device that issues far above what people at a kiosk can — more than
//! [`HoldRule::count`] tickets within [`HoldRule::window_ms`], 80 in ten
//! minutes unless `MADOGUCHI_KIOSK_HOLD` (`COUNT/SECONDS`) says otherwise —
//! is held (red-team finding F11, "one device takes what belongs to
//! everyone"): its issuing is refused in Japanese until an administrator
//! releases it with one action on /admin/devices (audited), and the hold
//! is a fault on /admin. Holds are kept in `<data>/issuing-holds.json`, so
//! a restart releases none; a file that cannot be read stops the server
//! with its name (deleting it releases every hold). A real kiosk stays far below it: on the busiest
//! simulated March days a kiosk issues at most a few dozen in ten minutes
//! (test `busy_march_days_hold_no_kiosk_and_refuse_no_share`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The held kiosks, by name, in the data folder.
pub const HOLDS_FILE: &str = "issuing-holds.json";

/// Tickets one kiosk may take at once, and how fast that refills.
pub const ISSUER_BURST: f64 = 10.0;
pub const ISSUER_PER_MINUTE: f64 = 15.0;
/// Tickets one person (a staff account) may issue at once, and how fast
/// that refills: a clerk issues for the visitor in front of them.
pub const PERSON_BURST: f64 = 5.0;
pub const PERSON_PER_MINUTE: f64 = 4.0;
/// Tickets of one category across every kiosk.
pub const CATEGORY_BURST: f64 = 60.0;
pub const CATEGORY_PER_MINUTE: f64 = 40.0;
/// Buckets kept at most (names come from the configuration and accounts,
/// but a bound costs nothing).
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, burst: f64, per_minute: f64) {
        let secs = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * per_minute / 60.0).min(burst);
        self.at = now;
    }

    /// Seconds until one token is there.
    fn wait(&self, per_minute: f64) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        (missing * 60.0 / per_minute).ceil().max(1.0) as u64
    }
}

#[derive(Debug, Default)]
struct Buckets {
    issuers: HashMap<String, Bucket>,
    people: HashMap<String, Bucket>,
    categories: HashMap<String, Bucket>,
}

/// Who takes a number: a device or a person, by name (a device and an
/// account may share a name; their allowances are apart).
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    pub name: &'a str,
    pub person: bool,
}

impl Issuer<'_> {
    fn key(&self) -> String {
        let kind = if self.person { "account" } else { "device" };
        format!("{kind}:{}", self.name)
    }
}

/// Numbers each issuer took today, per category.
#[derive(Debug, Default)]
struct Shares {
    date: Option<chrono::NaiveDate>,
    taken: HashMap<(String, String), u32>,
    /// What a released device had taken when an administrator released
    /// it (its budget starts again from there).
    forgiven: HashMap<(String, String), u32>,
    /// Each device's budget for today, per category, once worked out.
    budgets: HashMap<(String, String), Option<Learned>>,
}

impl Shares {
    /// Today's counts, started afresh on a new business day (the day's
    /// counts go to the history first, when `history` is given).
    fn on(&mut self, date: chrono::NaiveDate, history: Option<&Mutex<History>>) {
        if self.date == Some(date) {
            return;
        }
        if let (Some(old), Some(h)) = (self.date, history) {
            let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
            let day = h.days.entry(old).or_default();
            for ((who, c), n) in &self.taken {
                if let Some(device) = who.strip_prefix("device:") {
                    let e = day.entry((device.to_string(), c.clone())).or_insert(0);
                    *e = (*e).max(*n);
                }
            }
        }
        self.date = Some(date);
        self.taken.clear();
        self.forgiven.clear();
        self.budgets.clear();
    }
}

/// Tickets each kiosk issued on past business days, per category, read
/// from the event log at start-up (in the background) and kept up as days
/// end: what a device's daily budget is learned from.
#[derive(Debug, Default)]
pub struct History {
    /// Whether the log has been read (until then no budget holds).
    ready: bool,
    days: BTreeMap<chrono::NaiveDate, HashMap<(String, String), u32>>,
}

impl History {
    /// Past days held.
    pub fn days_held(&self) -> usize {
        self.days.len()
    }

    /// Counts one ticket `device` issued in `category` on `date`.
    pub fn count(&mut self, date: chrono::NaiveDate, device: &str, category: &str) {
        *self
            .days
            .entry(date)
            .or_default()
            .entry((device.to_string(), category.to_string()))
            .or_insert(0) += 1;
    }

    /// Past days like `date`: the last [`RECENT_DAYS`], and those within
    /// [`SEASON_DAYS`] of its date in earlier years (the moving season
    /// comes back each March).
    /// Each with whether it is of the season in an earlier year (not
    /// only recent).
    fn like(
        &self,
        date: chrono::NaiveDate,
    ) -> impl Iterator<Item = (bool, &HashMap<(String, String), u32>)> {
        use chrono::Datelike;
        self.days.iter().filter_map(move |(d, counts)| {
            if *d >= date {
                return None;
            }
            let recent = (date - *d).num_days() <= RECENT_DAYS;
            let apart = (i64::from(d.ordinal()) - i64::from(date.ordinal())).abs();
            let season = !recent && apart.min(365 - apart) <= SEASON_DAYS;
            (recent || season).then_some((season, counts))
        })
    }

    /// What `device` issued of `category` on past days like `date`: its
    /// busiest day and its usual share of the category; `None` with fewer
    /// than [`MIN_HISTORY_DAYS`] days on which it issued the category.
    fn learned(&self, date: chrono::NaiveDate, device: &str, category: &str) -> Option<Learned> {
        let (mut days, mut busiest, mut mine, mut all) = (0u32, 0u32, 0u64, 0u64);
        let mut seasoned = false;
        let key = (device.to_string(), category.to_string());
        for (season, counts) in self.like(date) {
            let n = counts.get(&key).copied().unwrap_or(0);
            if n > 0 {
                days += 1;
                busiest = busiest.max(n);
                seasoned |= season;
            }
            mine += u64::from(n);
            all += counts
                .iter()
                .filter(|((_, c), _)| c == category)
                .map(|(_, n)| u64::from(*n))
                .sum::<u64>();
        }
        (days >= MIN_HISTORY_DAYS && all > 0).then(|| Learned {
            budget: if seasoned {
                budget_of(busiest)
            } else {
                unseasoned_budget_of(busiest)
            },
            share: mine as f64 / all as f64,
        })
    }
}

/// A device's budget for a category today, and its usual share of it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Learned {
    budget: u32,
    share: f64,
}

/// Past days read for a budget: the last six weeks…
pub const RECENT_DAYS: i64 = 42;
/// …and a month either side of the date in earlier years.
pub const SEASON_DAYS: i64 = 30;
/// Days a device must have issued a category on before it has a budget
/// there (a new kiosk, a new office: none, the rate hold and the share
/// rule alone).
pub const MIN_HISTORY_DAYS: u32 = 3;

/// A device's daily budget in a category from its busiest past day like
/// today: half again, and at least ten more (a day half again as busy as
/// any before is still not held).
pub fn budget_of(busiest: u32) -> u32 {
    busiest.saturating_add((busiest / 2).max(10))
}

/// The budget when no earlier year's days of the season are known (an
/// office's first year): the last six weeks may be far quieter than the
/// moving season's peak, so twice the busiest, and ten more.
pub fn unseasoned_budget_of(busiest: u32) -> u32 {
    busiest.saturating_mul(2).saturating_add(10)
}

/// When a device is held: more than `count` tickets within `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRule {
    pub count: u32,
    pub window_ms: i64,
}

impl Default for HoldRule {
    /// Eight a minute for ten minutes: a visitor at a kiosk reads the
    /// screen, chooses, waits for the print and takes the ticket. On the
    /// busiest simulated March day (702 住民異動 tickets, the real peak
    /// is 600–700 from 2–3 kiosks) one kiosk issued at most 35 within ten
    /// minutes (the opening rush); a thief at the rate limit reaches 80 in
    /// under five minutes.
    fn default() -> Self {
        HoldRule {
            count: 80,
            window_ms: 600_000,
        }
    }
}

impl HoldRule {
    /// The rule in force: `MADOGUCHI_KIOSK_HOLD=COUNT/SECONDS` (an office
    /// with a busier kiosk, or a test), else the default.
    pub fn from_env() -> HoldRule {
        std::env::var("MADOGUCHI_KIOSK_HOLD")
            .ok()
            .and_then(|v| HoldRule::parse(&v))
            .unwrap_or_default()
    }

    fn parse(v: &str) -> Option<HoldRule> {
        let (count, secs) = v.trim().split_once('/')?;
        let count = count.trim().parse::<u32>().ok().filter(|c| *c > 0)?;
        let secs = secs.trim().parse::<i64>().ok().filter(|s| *s > 0)?;
        Some(HoldRule {
            count,
            window_ms: secs.checked_mul(1000)?,
        })
    }
}

/// A device whose issuing is held, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Tickets it had issued within the window when it was held.
    pub count: u32,
    pub window_secs: i64,
    /// When it was held (Unix ms).
    pub at_ms: i64,
    /// Held for going past its day's budget ([`budget_of`]): the budget
    /// (absent: held by the rate rule, `count` within `window_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u32>,
}

impl Held {
    /// Why, in Japanese, for /admin (the fault and the device list).
    pub fn why_ja(&self) -> String {
        match self.budget {
            Some(b) => format!(
                "1 日に {} 枚（この発券機のこれまでの最も多い日から求めた上限 {b} 枚を超えています）",
                self.count
            ),
            None => format!("{} 秒間に {} 枚", self.window_secs, self.count),
        }
    }

    /// Why, in English.
    pub fn why_en(&self) -> String {
        match self.budget {
            Some(b) => format!(
                "{} tickets in one day (over its budget of {b}, learned from its busiest past days)",
                self.count
            ),
            None => format!("{} tickets within {} s", self.count, self.window_secs),
        }
    }
}

/// Recent issue times and holds, per device.
#[derive(Debug, Default)]
struct Holds {
    recent: HashMap<String, VecDeque<i64>>,
    held: HashMap<String, Held>,
}

#[derive(Debug)]
pub struct IssueLimits {
    buckets: Mutex<Buckets>,
    shares: Mutex<Shares>,
    history: Mutex<History>,
    holds: Mutex<Holds>,
    rule: HoldRule,
    /// Where holds are kept (`None`: in memory only, unit tests).
    file: Option<PathBuf>,
}

impl Default for IssueLimits {
    fn default() -> Self {
        IssueLimits::with_rule(HoldRule::from_env())
    }
}

/// Whether an issuer that took `taken` numbers of a category today may
/// take one more while `left` remain, when the most any other issuer took
/// is `most_by_another`: yes while afterwards it still holds no more than
/// what is left to the others; past that, only while it took no more than
/// twice what another took (so the device that took far more than its
/// share is refused first, and kiosks used alike, or one by the door used
/// twice as much, go on to the last number). `only_issuer`: whether it is
/// the one kiosk that offers the category, so nobody else is waiting for
/// what is left (outside tester insider-rt5 F3: a one-kiosk category was
/// cut off at half on a busy day); asked only when the answer turns on it
/// (it reads the device list: not on every ticket). With nothing left the
/// engine answers `numbers_exhausted`, the true reason (insider-rt5 F7).
pub fn share_allows(
    taken: u32,
    left: u32,
    most_by_another: u32,
    only_issuer: impl FnOnce() -> bool,
) -> bool {
    left == 0
        || taken.saturating_add(2) <= left
        || taken <= most_by_another.saturating_mul(2)
        || (most_by_another == 0 && only_issuer())
}

/// Near the end of a category, a device that learned its usual share of
/// it (the busy kiosk by the door: most of it) may go on while its share
/// of today's tickets stays within [`SHARE_MARGIN`] of that (outside
/// tester insider-rt5 F3: the door kiosk of three used 3:1:1 was refused
/// from the 625th of 999).
pub fn usual_share_allows(taken: u32, all_today: u32, usual: f64) -> bool {
    all_today == 0 || f64::from(taken) / f64::from(all_today) <= usual + SHARE_MARGIN
}

/// How far above its usual share of a category a device may be today.
pub const SHARE_MARGIN: f64 = 0.15;

fn take(
    map: &mut HashMap<String, Bucket>,
    key: &str,
    now: Instant,
    burst: f64,
    per_minute: f64,
) -> Result<Bucket, u64> {
    if map.len() >= MAX_BUCKETS && !map.contains_key(key) {
        // Full buckets tell nothing: drop them.
        map.retain(|_, b| {
            let mut b = *b;
            b.refill(now, burst, per_minute);
            b.tokens < burst
        });
    }
    let b = map.entry(key.to_string()).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    b.refill(now, burst, per_minute);
    if b.tokens < 1.0 {
        return Err(b.wait(per_minute));
    }
    Ok(*b)
}

impl IssueLimits {
    pub fn with_rule(rule: HoldRule) -> IssueLimits {
        IssueLimits {
            buckets: Mutex::default(),
            shares: Mutex::default(),
            history: Mutex::default(),
            holds: Mutex::default(),
            rule,
            file: None,
        }
    }

    /// The limits of the office in `data`, with the holds kept there. A
    /// holds file that cannot be read is an error naming it: starting
    /// without it would release a stolen kiosk unseen.
    pub fn open(data: &Path) -> anyhow::Result<IssueLimits> {
        let path = data.join(HOLDS_FILE);
        let held: BTreeMap<String, Held> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} が読めません（発券停止中の発券機の記録）。内容を直すか、削除するとすべての発券停止が解除されます / {} cannot be read (the kiosks whose issuing is held); fix it, or delete it to release every hold",
                    path.display(),
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let mut limits = IssueLimits::with_rule(HoldRule::from_env());
        limits.file = Some(path);
        if let Ok(mut h) = limits.holds.lock() {
            h.held = held.into_iter().collect();
        }
        Ok(limits)
    }

    /// Writes the holds to their file (after a hold or a release).
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let held: BTreeMap<String, Held> = {
            let h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
            h.held.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        super::auth::write_atomically(path, &held)
    }

    /// Whether `device` may issue at `now_ms` (Unix ms): `Err` with the
    /// hold if it is held, and `true` beside it if this very request held
    /// it (the caller records the fault and the audit record once).
    pub fn check_hold(&self, device: &str, now_ms: i64) -> Result<(), (Held, bool)> {
        let mut h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = h.held.get(device) {
            return Err((*held, false));
        }
        let window = self.rule.window_ms;
        let count = match h.recent.get_mut(device) {
            Some(times) => {
                while times.front().is_some_and(|t| *t <= now_ms - window) {
                    times.pop_front();
                }
                times.len()
            }
            None => 0,
        };
        if count < self.rule.count as usize {
            return Ok(());
        }
        let held = Held {
            count: count as u32,
            window_secs: window / 1000,
            at_ms: now_ms,
            budget: None,
        };
        h.held.insert(device.to_string(), held);
        h.recent.remove(device);
        Err((held, true))
    }

    /// `device` issued a ticket at `now_ms`.
    fn issued(&self, device: &str, now_ms: i64) {
        let mut h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        if h.recent.len() >= MAX_BUCKETS && !h.recent.contains_key(device) {
            let since = now_ms - self.rule.window_ms;
            h.recent
                .retain(|_, t| t.back().is_some_and(|last| *last > since));
        }
        let keep = self.rule.count as usize;
        let times = h.recent.entry(device.to_string()).or_default();
        times.push_back(now_ms);
        while times.len() > keep {
            times.pop_front();
        }
    }

    /// Releases a held device (an administrator's action); its count
    /// starts again, and so does its day's budget. `None`: it was not held.
    pub fn release(&self, device: &str) -> Option<Held> {
        self.forgive(device);
        let mut h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        h.held.remove(device)
    }

    /// `device` starts again: its ten-minute window and its day's budget
    /// count from now (a release, or the deletion of the device; the same
    /// when the day is read back from the log at start-up).
    pub fn forgive(&self, device: &str) {
        {
            let mut h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
            h.recent.remove(device);
        }
        let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        let key = Issuer {
            name: device,
            person: false,
        }
        .key();
        let taken: Vec<(String, u32)> = s
            .taken
            .iter()
            .filter(|((who, _), _)| *who == key)
            .map(|((_, c), n)| (c.clone(), *n))
            .collect();
        for (c, n) in taken {
            s.forgiven.insert((key.clone(), c), n);
        }
    }

    /// Puts back a hold whose release could not be written.
    pub fn hold_again(&self, device: &str, held: Held) {
        let mut h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        h.held.insert(device.to_string(), held);
    }

    /// The hold on `device`, if any.
    pub fn held(&self, device: &str) -> Option<Held> {
        let h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        h.held.get(device).copied()
    }

    /// Whether `issuer` may take one more number of `category` on `date`
    /// while `left` remain (`only_issuer`: see [`share_allows`]; asked only
    /// when the answer turns on it).
    pub fn share_left(
        &self,
        date: chrono::NaiveDate,
        issuer: Issuer<'_>,
        category: &str,
        left: u32,
        only_issuer: impl FnOnce() -> bool,
    ) -> bool {
        let (taken, most_by_another, all_today) = {
            let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
            s.on(date, Some(&self.history));
            let key = issuer.key();
            let (mut taken, mut most_by_another, mut all) = (0, 0, 0u32);
            for ((who, c), n) in &s.taken {
                if c != category {
                    continue;
                }
                all = all.saturating_add(*n);
                if *who == key {
                    taken = *n;
                } else {
                    most_by_another = most_by_another.max(*n);
                }
            }
            (taken, most_by_another, all)
        };
        if share_allows(taken, left, most_by_another, || false) {
            return true;
        }
        if !issuer.person {
            if let Some(l) = self.learned(date, issuer.name, category) {
                if usual_share_allows(taken, all_today, l.share) {
                    return true;
                }
            }
        }
        share_allows(taken, left, most_by_another, || {
            !issuer.person && only_issuer()
        })
    }

    /// What `device` learned of `category` for `date` (worked out once a
    /// day; nothing until the history is read).
    fn learned(&self, date: chrono::NaiveDate, device: &str, category: &str) -> Option<Learned> {
        let key = (device.to_string(), category.to_string());
        {
            let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
            s.on(date, Some(&self.history));
            if let Some(l) = s.budgets.get(&key) {
                return *l;
            }
        }
        let learned = {
            let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if !h.ready {
                return None;
            }
            h.learned(date, device, category)
        };
        let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        if s.date == Some(date) {
            s.budgets.insert(key, learned);
        }
        learned
    }

    /// Whether `device` may take one more of `category` on `date` within
    /// its day's budget ([`budget_of`], learned from its own past days): a
    /// device far above what it ever issued takes what belongs to everyone
    /// (outside tester insider-rt5 F2: two stolen tokens pacing under the
    /// rate hold used a category up) and is held as by the rate rule:
    /// `Err` with the hold, `true` beside it when this request held it.
    pub fn check_budget(
        &self,
        date: chrono::NaiveDate,
        device: &str,
        category: &str,
        now_ms: i64,
    ) -> Result<(), (Held, bool)> {
        let Some(learned) = self.learned(date, device, category) else {
            return Ok(());
        };
        let taken = {
            let s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
            let key = (
                Issuer {
                    name: device,
                    person: false,
                }
                .key(),
                category.to_string(),
            );
            let forgiven = s.forgiven.get(&key).copied().unwrap_or(0);
            s.taken
                .get(&key)
                .copied()
                .unwrap_or(0)
                .saturating_sub(forgiven)
        };
        if taken < learned.budget {
            return Ok(());
        }
        let mut h = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = h.held.get(device) {
            return Err((*held, false));
        }
        let held = Held {
            count: taken,
            window_secs: 0,
            at_ms: now_ms,
            budget: Some(learned.budget),
        };
        h.held.insert(device.to_string(), held);
        Err((held, true))
    }

    /// The past days read from the log at start-up (each ticket a kiosk
    /// issued, by date); budgets hold from now on.
    pub fn learn(&self, history: History) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for (d, counts) in history.days {
            let day = h.days.entry(d).or_default();
            for (k, n) in counts {
                let e = day.entry(k).or_insert(0);
                *e = (*e).max(n);
            }
        }
        h.ready = true;
        drop(h);
        let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        s.budgets.clear();
    }

    /// `issuer` took a number of `category` on `date`, at `now_ms`.
    pub fn took(&self, date: chrono::NaiveDate, issuer: Issuer<'_>, category: &str, now_ms: i64) {
        if !issuer.person {
            self.issued(issuer.name, now_ms);
        }
        let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        s.on(date, Some(&self.history));
        *s.taken
            .entry((issuer.key(), category.to_string()))
            .or_insert(0) += 1;
    }

    /// Takes one ticket from `issuer`'s and `category`'s allowance, or says
    /// in how many seconds to try again (taking nothing).
    pub fn take(&self, issuer: Issuer<'_>, category: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut b) = self.buckets.lock() else {
            return Err(1);
        };
        let b = &mut *b;
        let key = issuer.key();
        let (own, burst, per_minute) = if issuer.person {
            (&mut b.people, PERSON_BURST, PERSON_PER_MINUTE)
        } else {
            (&mut b.issuers, ISSUER_BURST, ISSUER_PER_MINUTE)
        };
        take(own, &key, now, burst, per_minute)?;
        take(
            &mut b.categories,
            category,
            now,
            CATEGORY_BURST,
            CATEGORY_PER_MINUTE,
        )?;
        for (map, key) in [(own, key.as_str()), (&mut b.categories, category)] {
            if let Some(x) = map.get_mut(key) {
                x.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str) -> Issuer<'_> {
        Issuer {
            name,
            person: false,
        }
    }

    fn person(name: &str) -> Issuer<'_> {
        Issuer { name, person: true }
    }

    #[test]
    fn one_issuer_is_limited_and_another_is_not() {
        let l = IssueLimits::default();
        for _ in 0..ISSUER_BURST as usize {
            assert!(l.take(device("kiosk-1"), "idou").is_ok());
        }
        let wait = l.take(device("kiosk-1"), "idou").expect_err("limited");
        assert!((1..=4).contains(&wait), "{wait}");
        assert!(l.take(device("kiosk-2"), "idou").is_ok());
        // An account of the same name has its own, smaller allowance.
        for _ in 0..PERSON_BURST as usize {
            assert!(l.take(person("kiosk-1"), "koseki").is_ok());
        }
        let wait = l.take(person("kiosk-1"), "koseki").expect_err("limited");
        assert!((1..=15).contains(&wait), "{wait}");
    }

    #[test]
    fn one_device_alone_takes_at_most_half_unless_the_only_kiosk_and_kiosks_used_alike_go_to_the_end(
    ) {
        let (mut left, mut taken) = (999u32, 0u32);
        while share_allows(taken, left, 0, || false) {
            taken += 1;
            left -= 1;
        }
        assert_eq!((taken, left), (499, 500));
        assert!(
            !share_allows(1, 2, 0, || false),
            "a device alone leaves the last number to others"
        );
        // The one kiosk that offers the category goes to the last number
        // (insider-rt5 F3), and with nothing left the engine's
        // numbers_exhausted is the answer (F7).
        let (mut left, mut taken) = (999u32, 0u32);
        while left > 0 && share_allows(taken, left, 0, || true) {
            taken += 1;
            left -= 1;
        }
        assert_eq!((taken, left), (999, 0));
        assert!(share_allows(999, 0, 0, || false));
        // Two kiosks used alike share 999 numbers to the last one (the
        // rule before refused both at 666).
        let (mut left, mut a, mut b) = (999u32, 0u32, 0u32);
        while left > 0 {
            if a <= b {
                assert!(
                    share_allows(a, left, b, || false),
                    "a at {a}, b {b}, left {left}"
                );
                a += 1;
            } else {
                assert!(
                    share_allows(b, left, a, || false),
                    "b at {b}, a {a}, left {left}"
                );
                b += 1;
            }
            left -= 1;
        }
        // A thief that took 499 is refused near the end; the kiosk beside
        // it is not.
        assert!(!share_allows(499, 300, 200, || false));
        assert!(share_allows(200, 300, 499, || false));
        let l = IssueLimits::default();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
        assert!(l.share_left(day, device("k"), "idou", 3, || false));
        l.took(day, device("k"), "idou", 0);
        assert!(!l.share_left(day, device("k"), "idou", 2, || false));
        assert!(l.share_left(day, device("other"), "idou", 2, || false));
        assert!(
            l.share_left(day, person("k"), "idou", 2, || false),
            "apart from the device"
        );
        for _ in 0..3 {
            l.took(day, person("tanaka"), "idou", 0);
        }
        assert!(
            !l.share_left(day, person("tanaka"), "idou", 2, || false),
            "more than twice what another took"
        );
        assert!(l.share_left(
            day.succ_opt().unwrap_or_default(),
            device("k"),
            "idou",
            2,
            || false
        ));
    }

    #[test]
    fn a_device_far_above_a_person_at_a_kiosk_is_held_until_released() {
        let rule = HoldRule {
            count: 5,
            window_ms: 60_000,
        };
        let l = IssueLimits::with_rule(rule);
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
        // Five a minute, spread out: never held.
        for i in 0..50 {
            let at = i * 12_001;
            assert_eq!(l.check_hold("k", at), Ok(()), "ticket {i}");
            l.took(day, device("k"), "idou", at);
        }
        // A sixth within the minute is held, and stays held.
        let t = 10_000_000;
        for i in 0..5 {
            assert_eq!(l.check_hold("thief", t + i), Ok(()));
            l.took(day, device("thief"), "idou", t + i);
        }
        let (held, newly) = l.check_hold("thief", t + 5).expect_err("held");
        assert!(newly);
        assert_eq!((held.count, held.window_secs), (5, 60));
        assert_eq!(l.check_hold("thief", t + 3_600_000), Err((held, false)));
        assert_eq!(l.held("thief"), Some(held));
        // Staff at the counter are not held (their own limits apply).
        for i in 0..20 {
            l.took(day, person("tanaka"), "idou", t + i);
        }
        assert_eq!(l.check_hold("k", t + 10), Ok(()));
        assert_eq!(l.release("thief"), Some(held));
        assert_eq!(l.release("thief"), None);
        assert_eq!(l.check_hold("thief", t + 3_600_001), Ok(()));
        assert_eq!(
            HoldRule::parse("12/30"),
            Some(HoldRule {
                count: 12,
                window_ms: 30_000
            })
        );
        assert_eq!(HoldRule::parse("0/30"), None);
        assert_eq!(HoldRule::parse("x"), None);
    }

    #[test]
    fn holds_are_kept_across_a_restart_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let l = IssueLimits::open(dir.path()).expect("no file yet");
        let t = 1_000_000;
        for i in 0..HoldRule::default().count as i64 {
            let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
            l.took(day, device("thief"), "idou", t + i);
        }
        let (held, newly) = l.check_hold("thief", t + 100).expect_err("held");
        assert!(newly);
        l.save().expect("saved");
        let again = IssueLimits::open(dir.path()).expect("read back");
        assert_eq!(again.held("thief"), Some(held));
        assert_eq!(again.check_hold("thief", t + 200), Err((held, false)));
        assert_eq!(again.release("thief"), Some(held));
        again.save().expect("saved");
        assert_eq!(
            IssueLimits::open(dir.path()).expect("read").held("thief"),
            None
        );
        std::fs::write(dir.path().join(HOLDS_FILE), b"{\"thief\": ").expect("write");
        let e = IssueLimits::open(dir.path()).expect_err("damaged");
        assert!(format!("{e:#}").contains(HOLDS_FILE), "{e:#}");
    }

    /// The office's own peak: the simulator's March days (the moving
    /// season: 住民異動 busiest) with kiosks as the simulator uses them
    /// (three) and as a smaller office would (two), through the hold and
    /// the share with the defaults: no kiosk is held or refused.
    #[test]
    fn busy_march_days_hold_no_kiosk_and_refuse_no_share() {
        use madoguchi_core::config::Config;
        use madoguchi_core::model::Command;
        use madoguchi_core::simulate::{SimOptions, Simulator};
        let config = Config::embedded_default();
        let start = chrono::NaiveDate::from_ymd_opt(2027, 3, 22).unwrap_or_default();
        let sim = Simulator::new(
            &config,
            SimOptions {
                start,
                days: 5,
                seed: 7,
                volume: 1.0,
            },
        );
        let (mut busiest, mut peak10) = (0usize, 0usize);
        for day in sim {
            for two_kiosks in [false, true] {
                let l = IssueLimits::with_rule(HoldRule::default());
                let mut issued: HashMap<String, u32> = HashMap::new();
                let mut times: HashMap<String, Vec<i64>> = HashMap::new();
                let mut n = 0u32;
                for c in &day {
                    let Command::IssueTicket {
                        category,
                        kiosk: Some(kiosk),
                        ..
                    } = &c.command
                    else {
                        continue;
                    };
                    n += 1;
                    let kiosk = match (two_kiosks, kiosk.as_str()) {
                        (true, "kiosk-3") if n.is_multiple_of(2) => "kiosk-1",
                        (true, "kiosk-3") => "kiosk-2",
                        (_, k) => k,
                    };
                    let at = c.at.0;
                    let range = config
                        .queue(category)
                        .and_then(|q| q.numbers)
                        .map_or(0, |r| r.to + 1 - r.from);
                    let count = issued.entry(category.clone()).or_default();
                    let left = range.saturating_sub(*count);
                    assert_eq!(l.check_hold(kiosk, at), Ok(()), "{kiosk} held at {at}");
                    assert!(
                        l.share_left(start, device(kiosk), category, left, || false),
                        "{kiosk} refused its share of {category} at {count}"
                    );
                    l.took(start, device(kiosk), category, at);
                    *count += 1;
                    busiest = busiest.max(*count as usize);
                    let t = times.entry(kiosk.to_string()).or_default();
                    t.push(at);
                    let recent = t.iter().filter(|x| **x > at - 600_000).count();
                    peak10 = peak10.max(recent);
                }
            }
        }
        eprintln!("busiest category-day {busiest} tickets; most from one kiosk in 10 min {peak10}");
        assert!(busiest >= 400, "a busy day was simulated: {busiest}");
        assert!(
            peak10 * 2 <= HoldRule::default().count as usize,
            "the hold is at least twice the busiest kiosk's ten minutes: {peak10}"
        );
    }

    /// Outside tester insider-rt5 F2 and F3 at the office's own scale:
    /// three weeks of simulated March days learned as history, then a
    /// simulated busy week with the kiosks used unevenly (3:1:1 with the
    /// door kiosk busiest, and 3:1 with two): no kiosk is held by its
    /// budget or by the rate, none is refused its share, the door kiosk
    /// included. Prints what a thief with a kiosk's token takes of 住民異動
    /// before its budget holds it.
    #[test]
    fn uneven_kiosks_on_busy_march_days_are_never_refused_with_their_history() {
        use madoguchi_core::config::Config;
        use madoguchi_core::model::Command;
        use madoguchi_core::simulate::{SimOptions, Simulator};
        let config = Config::embedded_default();
        let offset = config.office.utc_offset;
        let days = |start: (i32, u32, u32), n: u32, seed: u64| {
            Simulator::new(
                &config,
                SimOptions {
                    start: chrono::NaiveDate::from_ymd_opt(start.0, start.1, start.2)
                        .unwrap_or_default(),
                    days: n,
                    seed,
                    volume: 1.0,
                },
            )
        };
        let uneven = |three: bool, n: u32| match (three, n % 5, n % 4) {
            (true, 0..=2, _) => "kiosk-door",
            (true, 3, _) => "kiosk-2",
            (true, _, _) => "kiosk-3",
            (false, _, 0..=2) => "kiosk-door",
            (false, _, _) => "kiosk-2",
        };
        for three in [true, false] {
            let l = IssueLimits::with_rule(HoldRule::default());
            let mut h = History::default();
            let mut n = 0u32;
            // Last year's moving season, and this March's first weeks.
            for day in days((2026, 3, 9), 20, 3).chain(days((2027, 3, 1), 15, 11)) {
                for c in &day {
                    if let Command::IssueTicket { category, .. } = &c.command {
                        n += 1;
                        let date = madoguchi_core::clock::office_date(c.at, offset);
                        h.count(date, uneven(three, n), category);
                    }
                }
            }
            l.learn(h);
            let (mut busiest, mut door_most) = (0u32, 0u32);
            for day in days((2027, 3, 22), 5, 7) {
                let mut issued: HashMap<String, u32> = HashMap::new();
                for c in &day {
                    let Command::IssueTicket { category, .. } = &c.command else {
                        continue;
                    };
                    n += 1;
                    let kiosk = uneven(three, n);
                    let date = madoguchi_core::clock::office_date(c.at, offset);
                    let range = config
                        .queue(category)
                        .and_then(|q| q.numbers)
                        .map_or(0, |r| r.to + 1 - r.from);
                    let count = issued.entry(category.clone()).or_default();
                    let left = range.saturating_sub(*count);
                    let at = c.at.0;
                    assert_eq!(l.check_hold(kiosk, at), Ok(()), "{kiosk} held at {at}");
                    assert_eq!(
                        l.check_budget(date, kiosk, category, at),
                        Ok(()),
                        "{kiosk} over its budget of {category} at {count} on {date}"
                    );
                    assert!(
                        l.share_left(date, device(kiosk), category, left, || false),
                        "{kiosk} refused its share of {category} at {count} on {date} (three: {three})"
                    );
                    l.took(date, device(kiosk), category, at);
                    *count += 1;
                    busiest = busiest.max(*count);
                }
                let date = day
                    .first()
                    .map(|c| madoguchi_core::clock::office_date(c.at, offset))
                    .unwrap_or_default();
                let s = l.shares.lock().unwrap_or_else(|p| p.into_inner());
                let door = s
                    .taken
                    .get(&("device:kiosk-door".to_string(), "idou".to_string()))
                    .copied()
                    .unwrap_or(0);
                door_most = door_most.max(door);
                drop(s);
                let budgets: Vec<(String, u32)> = ["kiosk-door", "kiosk-2", "kiosk-3"]
                    .iter()
                    .filter_map(|k| {
                        l.learned(date, k, "idou")
                            .map(|x| (k.to_string(), x.budget))
                    })
                    .collect();
                eprintln!(
                    "three kiosks: {three}; {date}: 住民異動 budgets {budgets:?}; door kiosk issued {door}"
                );
            }
            eprintln!("busiest category-day {busiest}; the door kiosk's most 住民異動 in a day {door_most}");
            assert!(busiest >= 600, "a busy March day was simulated: {busiest}");
        }
    }

    /// A thief pacing under the rate hold is held at its day's budget
    /// (insider-rt5 F2), and a release lets it start again.
    #[test]
    fn a_device_past_its_days_budget_is_held_and_a_release_starts_it_again() {
        let l = IssueLimits::with_rule(HoldRule::default());
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2027, 3, d).unwrap_or_default();
        let mut h = History::default();
        for d in 1..=4 {
            for _ in 0..(20 + d) {
                h.count(day(d), "k", "idou");
            }
            for _ in 0..10 {
                h.count(day(d), "side", "idou");
            }
        }
        // Before the history is read, no budget.
        for _ in 0..100 {
            l.took(day(10), device("early"), "idou", 0);
        }
        assert_eq!(l.check_budget(day(10), "early", "idou", 0), Ok(()));
        l.learn(h);
        // Recent days only (no earlier March): twice the busiest, and ten.
        assert_eq!(unseasoned_budget_of(24), 58);
        assert_eq!(budget_of(24), 36);
        let mut at = 0;
        let mut taken = 0;
        while l.check_budget(day(10), "k", "idou", at).is_ok() {
            l.took(day(10), device("k"), "idou", at);
            at += 8_000; // 7.5 a minute, under the rate hold
            taken += 1;
            assert!(taken < 1000);
        }
        assert_eq!(taken, 58);
        let (held, newly) = l.check_budget(day(10), "k", "idou", at).expect_err("held");
        assert!(!newly);
        assert_eq!(held.budget, Some(58));
        assert!(held.why_ja().contains("58"), "{}", held.why_ja());
        assert_eq!(l.check_hold("k", at), Err((held, false)));
        // With last year's March known, half again and ten at least.
        let seasoned = IssueLimits::with_rule(HoldRule::default());
        let mut h = History::default();
        for d in 1..=4 {
            let last_year = chrono::NaiveDate::from_ymd_opt(2026, 3, 8 + d).unwrap_or_default();
            for _ in 0..(20 + d) {
                h.count(last_year, "k", "idou");
            }
        }
        seasoned.learn(h);
        assert_eq!(
            seasoned.learned(day(10), "k", "idou").map(|x| x.budget),
            Some(36)
        );
        // A device without three days of history has no budget.
        assert_eq!(l.check_budget(day(10), "new", "idou", at), Ok(()));
        assert_eq!(l.release("k"), Some(held));
        assert_eq!(l.check_budget(day(10), "k", "idou", at), Ok(()));
    }

    #[test]
    fn a_category_is_limited_across_issuers() {
        let l = IssueLimits::default();
        let mut ok = 0;
        for i in 0..200 {
            if l.take(device(&format!("k{}", i / 5)), "idou").is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, CATEGORY_BURST as usize);
        assert!(l.take(device("fresh"), "koseki").is_ok());
    }
}
