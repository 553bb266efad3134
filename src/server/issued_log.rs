//! The issuing limits' memory read back from the event log (issue 23,
//! outside tester insider-rt5 F4 and F2). The log is the truth: every
//! `ticket_issued` carries the issuing kiosk (or the record's `by`, the
//! staff account), and a release or deletion of a device is an audit
//! record. So at start-up the day's shares, each kiosk's ten-minute window
//! and its day's budget are rebuilt from the day's records before the
//! first request (a thief gains nothing by a restart or a crash), and the
//! past days a kiosk's budget is learned from are read in the background
//! (a year of log; until then no budget holds, the rate hold and the share
//! rule do).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use madoguchi_core::log;
use madoguchi_core::model::Millis;
use serde::Deserialize;

use super::auth::Role;
use super::limits::{History, IssueLimits, Issuer};
use super::App;

/// What this module reads of a record (`RecordBody`, without building
/// every event: a day's read at start-up is on the start's path).
#[derive(Deserialize)]
struct Light {
    at: Millis,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    events: Vec<LightEvent>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LightEvent {
    TicketIssued {
        category: String,
        #[serde(default)]
        kiosk: Option<String>,
    },
    AccountChanged {
        account: String,
        role: String,
    },
    #[serde(other)]
    Other,
}

fn light(rec: &log::Record) -> anyhow::Result<Light> {
    serde_json::from_slice(&rec.payload)
        .with_context(|| format!("record {} cannot be read", rec.seq))
}

/// A record's time from the start of its payload (`{"at":…`, as the
/// engine writes it), without parsing the rest; `None`: decode it.
fn quick_at(payload: &[u8]) -> Option<i64> {
    let rest = payload.strip_prefix(b"{\"at\":")?;
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

fn at_of(rec: &log::Record) -> anyhow::Result<i64> {
    match quick_at(&rec.payload) {
        Some(at) => Ok(at),
        None => Ok(light(rec)?.at.0),
    }
}

/// Whether `hay` holds `needle` (a record worth decoding).
fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What the start-up read needs from the engine.
struct Day {
    dir: PathBuf,
    segments: Vec<u64>,
    date: chrono::NaiveDate,
    opened_at: i64,
    last_seq: u64,
    /// Wall clock minus office clock (ms).
    shift: i64,
}

/// Rebuilds today's shares, windows and budgets' counts from the day's
/// records (only the segments that hold them are read). Returns the
/// tickets read back. A log that cannot be read here is a fault on /admin:
/// the engine itself just read it, so this is the limits' loss alone.
pub async fn rebuild_today(app: &Arc<App>) -> anyhow::Result<usize> {
    let day = app
        .engine
        .read_async(|e| {
            // The limits count on the wall clock; the records on the
            // office's (a test or a drill may move it).
            let shift = chrono::Utc::now().timestamp_millis() - e.now().0;
            e.state().meta.day.as_ref().map(|d| Day {
                shift,
                dir: e.log().dir().to_path_buf(),
                segments: e.log().segments().to_vec(),
                date: d.date,
                opened_at: d.opened_at.0,
                last_seq: e.seq(),
            })
        })
        .await?;
    let Some(day) = day else {
        return Ok(0);
    };
    let admins: Vec<String> = app
        .auth
        .people()
        .into_iter()
        .filter(|p| p.role == Role::Admin)
        .map(|p| p.username)
        .collect();
    let a = app.clone();
    tokio::task::spawn_blocking(move || read_day(&a.issue_limits, &day, &admins))
        .await
        .context("the day's read stopped")?
}

/// The first record's time in the segment starting at `first` (`None`:
/// it has none).
fn first_at(dir: &Path, first: u64) -> anyhow::Result<Option<i64>> {
    match log::read_live_near(dir, first)?.next() {
        Some(r) => {
            let (_, rec) = r?;
            Ok(Some(at_of(&rec)?))
        }
        None => Ok(None),
    }
}

fn read_day(limits: &IssueLimits, day: &Day, admins: &[String]) -> anyhow::Result<usize> {
    // The last segment that starts before the day opened holds its first
    // record; read from there.
    let mut from = day.segments.first().copied().unwrap_or(1);
    for &first in day.segments.iter().rev() {
        if first_at(&day.dir, first)?.is_some_and(|at| at < day.opened_at) {
            from = first;
            break;
        }
    }
    let mut tickets = 0;
    for r in log::read_live_near(&day.dir, from)? {
        let (_, rec) = r?;
        if rec.seq > day.last_seq {
            break;
        }
        if at_of(&rec)? < day.opened_at {
            continue;
        }
        let body = light(&rec)?;
        for e in &body.events {
            match e {
                LightEvent::TicketIssued { category, kiosk } => {
                    let issuer = match (kiosk, &body.by) {
                        (Some(k), _) => Issuer {
                            name: k,
                            person: false,
                        },
                        (None, Some(by)) if !admins.contains(by) => Issuer {
                            name: by,
                            person: true,
                        },
                        _ => continue,
                    };
                    limits.took(day.date, issuer, category, body.at.0 + day.shift);
                    tickets += 1;
                }
                LightEvent::AccountChanged { account, role }
                    if role == "issuing-released" || role == "deleted" =>
                {
                    limits.forgive(account);
                }
                _ => {}
            }
        }
    }
    Ok(tickets)
}

/// Reads every past day's kiosk tickets in the background and hands them
/// to the limits (budgets hold from then on). A log that cannot be read
/// is a fault on /admin; budgets then stay off.
pub fn spawn_history(app: Arc<App>) {
    tokio::spawn(async move {
        let info = app
            .engine
            .read_async(|e| {
                (
                    e.log().dir().to_path_buf(),
                    e.seq(),
                    e.config().office.utc_offset,
                    e.state().meta.day.as_ref().map(|d| d.date),
                )
            })
            .await;
        let Ok((dir, last_seq, offset, today)) = info else {
            return;
        };
        let a = app.clone();
        let reading = std::time::Instant::now();
        let read = tokio::task::spawn_blocking(move || -> anyhow::Result<History> {
            let mut h = History::default();
            for r in log::read_live(&dir)? {
                let (_, rec) = r?;
                if rec.seq > last_seq {
                    break;
                }
                // Only records with a kiosk's ticket are decoded.
                if !holds(&rec.payload, b"\"kiosk\":") {
                    continue;
                }
                let body = light(&rec)?;
                let date = madoguchi_core::clock::office_date(body.at, offset);
                if Some(date) == today {
                    continue;
                }
                for e in &body.events {
                    if let LightEvent::TicketIssued {
                        category,
                        kiosk: Some(k),
                    } = e
                    {
                        h.count(date, k, category);
                    }
                }
            }
            Ok(h)
        })
        .await;
        match read {
            Ok(Ok(h)) => {
                let days = h.days_held();
                a.issue_limits.learn(h);
                eprintln!(
                    "madoguchi: issuing budgets learned from {days} past days of the log in {} ms",
                    reading.elapsed().as_millis()
                );
            }
            Ok(Err(e)) => a.faults.record(
                "issuing-history",
                format!("発券機ごとの 1 日の上限を記録から求められませんでした（発券の速さの上限と配分は働いています）/ the kiosks' daily budgets could not be learned from the log: {e:#}"),
            ),
            Err(e) => tracing::warn!(error = %e, "the issuing history read stopped"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_time_is_read_from_its_start_or_by_decoding() {
        let body = madoguchi_core::engine::RecordBody {
            at: Millis(1_765_000_000_123),
            by: Some("kiosk-1".into()),
            events: Vec::new(),
        };
        let payload = serde_json::to_vec(&body).unwrap_or_default();
        assert_eq!(quick_at(&payload), Some(1_765_000_000_123));
        assert_eq!(quick_at(b"{\"by\":\"x\",\"at\":5}"), None);
        assert!(holds(b"{\"kiosk\":\"k\"}", b"\"kiosk\":"));
        assert!(!holds(b"{}", b"\"kiosk\":"));
    }
}
