//! Damaged storage (R10, R19): what the office's evidence says the log
//! should hold, and the refusal to start when the log holds less.
//!
//! The promise to a visitor is that the number in their hand is theirs. A
//! log that lost records it had acknowledged (a torn or deleted segment, a
//! restore of an older copy) would give those numbers again, so the engine
//! compares the log on open with every piece of evidence it has: the
//! snapshot's position in sled (written only after the log was synced, so
//! a snapshot ahead of the log proves lost records), and each closed
//! segment's seal (`crate::log::seals`). When the log is shorter than the
//! evidence or broken, opening stops with [`Damage`]: the file and record,
//! what may be lost (the last acknowledged record and the highest numbers
//! the evidence shows were issued), and the way out, in Japanese and
//! English.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::NaiveDate;

use crate::model::Number;
use crate::state::State;
use crate::store::{SnapshotMeta, Store};

/// What the snapshot store still says about the office, read without
/// trusting it (a damaged store gives what it can, or nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The last record the snapshot saw acknowledged.
    pub seq: u64,
    /// The business day then, and each category's highest number issued.
    pub day: Option<NaiveDate>,
    pub highest: BTreeMap<String, Number>,
    /// Kiosk request ids of that day and the numbers they got.
    pub requests: BTreeMap<String, Number>,
    /// Each of that day's tickets' category.
    pub categories: BTreeMap<Number, String>,
    /// That day's tickets no longer waiting (called, served, done …): one
    /// waiting again after the repair is named for staff (outside tester
    /// storage-rt11 F-O: ticket 83, its call and completion unreadable,
    /// was back in the queue unannounced).
    pub served: std::collections::BTreeSet<Number>,
    /// Witnesses outside the log that saw it further than it now goes
    /// (`witness.rs`), one line each.
    pub seen_by: Vec<String>,
    /// Request ids of that day issued in lost records whose numbers are
    /// not known (a damaged journal line), by category: answered "lost —
    /// ask staff" under a number the accepted loss raises anyway
    /// (storage-rt14 N4').
    pub unnumbered: BTreeMap<String, String>,
}

impl Evidence {
    pub(crate) fn from_snapshot(meta: &SnapshotMeta, state: Option<&State>) -> Evidence {
        let mut e = Evidence {
            seq: meta.seq,
            ..Evidence::default()
        };
        if let Some(s) = state {
            e.day = s.meta.day.as_ref().map(|d| d.date);
            for t in s.tickets.values() {
                let h = e.highest.entry(t.category.clone()).or_insert(t.number);
                *h = (*h).max(t.number);
                e.categories.insert(t.number, t.category.clone());
                if !matches!(t.status, crate::model::Status::Waiting { .. }) {
                    e.served.insert(t.number);
                }
            }
            e.requests = s.requests.clone();
        }
        e
    }

    /// Reads what it can from a store, never failing.
    pub(crate) fn read(store: &Store) -> Option<Evidence> {
        match store.load() {
            Ok(Some((meta, state))) => Some(Evidence::from_snapshot(&meta, Some(&state))),
            _ => store
                .meta()
                .ok()
                .flatten()
                .map(|m| Evidence::from_snapshot(&m, None)),
        }
    }
}

/// Why the engine refused to start on a data folder, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// The file at fault (a log segment, the log folder).
    pub file: PathBuf,
    /// The first record missing or damaged.
    pub record: u64,
    pub problem: String,
    /// The last record the log still holds intact, when known.
    pub log_ends_at: Option<u64>,
    pub evidence: Option<Evidence>,
}

impl Damage {
    /// Records that may be lost: from the damaged one to the last the
    /// evidence shows.
    pub fn lost_range(&self) -> Option<(u64, u64)> {
        let last = self.evidence.as_ref()?.seq;
        // Record 0 is no record (a file of the folder, the seals): nothing
        // is named lost from it (storage-rt12 F-G'': "0–2838").
        (self.record > 0 && last >= self.record).then_some((self.record, last))
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "記録が壊れているか欠けているため、起動を中止しました（同じ番号を二度お渡ししないため）。"
        )?;
        writeln!(
            f,
            "The office's records are damaged or incomplete: the server did not start, so that no number is given twice."
        )?;
        writeln!(f, "  ファイル / file:     {}", self.file.display())?;
        if self.record > 0 {
            writeln!(f, "  記録 / record:       {}", self.record)?;
        }
        writeln!(f, "  内容 / problem:      {}", self.problem)?;
        if let Some(n) = self.log_ends_at {
            writeln!(f, "  ログの最後 / the log ends at record {n}")?;
        }
        match &self.evidence {
            Some(e) => {
                if e.seen_by.is_empty() {
                    writeln!(
                        f,
                        "  スナップショット (state.sled) では記録 {} まで受付済み / the snapshot shows record {} acknowledged",
                        e.seq, e.seq
                    )?;
                }
                for w in &e.seen_by {
                    writeln!(f, "  {w}")?;
                }
                if let Some(day) = e.day {
                    let numbers: Vec<String> =
                        e.highest.iter().map(|(c, n)| format!("{c} {n}")).collect();
                    writeln!(
                        f,
                        "  業務日 {day} に発行済みの最大番号 / highest numbers issued on {day}: {}",
                        if numbers.is_empty() {
                            "なし / none".to_string()
                        } else {
                            numbers.join(", ")
                        }
                    )?;
                }
            }
            None => writeln!(
                f,
                "  スナップショットは読めません / no readable snapshot to compare with"
            )?,
        }
        if let Some((a, b)) = self.lost_range() {
            writeln!(
                f,
                "  失われた可能性のある記録 / records that may be lost: {a}–{b}"
            )?;
        }
        writeln!(
            f,
            "復旧の手順 / Recovery (docs/manual-ja.md「記録の破損から復旧する」):"
        )?;
        writeln!(
            f,
            "  1. 何も削除せず、データフォルダ全体を別の場所へコピーしてください (cp -a)。\n     Delete nothing; copy the whole data folder aside first (cp -a)."
        )?;
        writeln!(
            f,
            "  2. 待機系があれば、待機系を昇格して業務を続けてください (/admin の「昇格」)。\n     If a standby runs, promote it and carry on there."
        )?;
        writeln!(
            f,
            "     （待機系やバックアップの方が記録が多いときは、そちらに失われた記録があります / where the standby or a backup holds more, the lost records are there）"
        )?;
        writeln!(
            f,
            "  3. なければ: madoguchi recover --data <このフォルダ> --backup <最新のバックアップ…>\n     Otherwise: madoguchi recover with the latest backups (it keeps every intact record)."
        )?;
        write!(
            f,
            "  4. それもできなければ: madoguchi recover --accept-damage （番号は上の最大番号より後から再開、失われた発券の再送は「職員にお声がけください」）\n     Failing that: madoguchi recover --accept-damage (numbers resume above the highest shown; retries of lost tickets are told to ask staff)."
        )
    }
}
