//! What an admin's confirmation of a restored, claim or behind hold does
//! before issuing resumes (issue 24, R10; outside tester failover-rt5 F4,
//! insider-rt9 F7).
//!
//! A primary restored from a backup, or told by devices of a newer
//! machine it cannot verify, does not hold the numbers given after its
//! backup: by itself after the backup, or by a promoted standby that has
//! since died. Confirming that no other machine runs is not enough: those
//! tickets are in visitors' hands. So each queue's next number is raised
//! above the highest number the admin read on tickets (or a margin), the
//! way `recover --accept-damage` raises them, before the hold ends, and
//! the answer says in Japanese from which number issuing resumes and that
//! such tickets may be in visitors' hands. The numbers devices reported
//! ([`super::fence::Issued`]) are shown beside the boxes as hints with
//! who sent them, never filled in and never raised to by themselves: one
//! forged report from a stolen display used a category up for the day
//! (F7). Without entered numbers the confirmation is refused: it never
//! resumes silently.

use std::collections::BTreeMap;

use axum::http::StatusCode;

use super::error::ApiError;
use super::App;

/// The `by` of the record that raises the numbers.
pub const RAISED_BY: &str = "hold-confirmed";

/// What the raise did: each queue's first number from now, and the words.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resumed {
    pub resume_from: BTreeMap<String, u32>,
    pub message_ja: String,
    pub message_en: String,
}

/// The refusal of a confirmation the evidence cannot bound.
pub fn needed() -> ApiError {
    ApiError::Plain {
        status: StatusCode::CONFLICT,
        code: "highest_number_needed",
        ja: "止まった機械が出したかもしれない番号を、この主機は確かめられません（端末からの知らせは参考で、そのままは使いません）。来庁者の番号札で見た最も大きい番号を受付区分ごとに入力してください（わからなければ、余裕をみて大きめの番号を）。その番号より後から発券を再開します。".into(),
        en: "this primary cannot tell which numbers the stopped machine gave (devices' reports are hints only): enter, for each queue, the highest number seen on a visitor's ticket (or one with a safe margin); issuing resumes above it".into(),
    }
}

/// Raises the numbers above the evidence and what the admin `entered`
/// (queue → highest number seen today) before `hold` ends: the caller
/// ends the hold only after this succeeded.
pub async fn raise_before_resuming(
    app: &App,
    entered: Option<&BTreeMap<String, u32>>,
) -> Result<Resumed, ApiError> {
    // Only what the admin entered raises the numbers (outside tester
    // insider-rt9 F7): a device's report cannot be checked here, and one
    // forged report of 998 used a category up for the day. Reports are
    // shown on /admin as hints, with who sent them.
    let Some(entered) = entered.filter(|m| !m.is_empty()) else {
        return Err(needed());
    };
    let evidence = app.fence.seen_evidence();
    let internal = |e: madoguchi_core::engine::ExecError| ApiError::Internal(e.to_string());
    let today = app
        .engine
        .read_async(|e| e.office_date())
        .await
        .map_err(internal)?;
    let highest: BTreeMap<String, u32> = entered.clone();
    // Today by the office's own clock: a reported later day is not opened
    // (a forged date would stop every day before it, F1).
    let day = today;
    let who = evidence
        .filter(|(seen, _)| seen.date == today)
        .map(|(_, names)| names)
        .unwrap_or_default();
    let raise = highest.clone();
    let next = app
        .engine
        .write_async(move |e| e.raise_numbers(day, &raise, RAISED_BY))
        .await
        .map_err(internal)?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let names = app
        .engine
        .read_async(|e| {
            e.config()
                .categories()
                .map(|q| (q.id.clone(), q.name.ja.clone()))
                .collect::<BTreeMap<String, String>>()
        })
        .await
        .map_err(internal)?;
    let from_ja: Vec<String> = next
        .iter()
        .map(|(q, n)| format!("{} {n}番", names.get(q).map_or(q.as_str(), |s| s.as_str())))
        .collect();
    let from_en: Vec<String> = next.iter().map(|(q, n)| format!("{q} {n}")).collect();
    let basis_ja = "管理者が入力した番号";
    let hint_ja = if who.is_empty() {
        String::new()
    } else {
        format!(
            "端末（{}）からの番号の知らせは参考として表示しただけです。",
            who.join("、")
        )
    };
    let message_ja = if from_ja.is_empty() {
        format!("{basis_ja}より後に出す番号はありません。発券を再開します。{hint_ja}止まった機械が出した番号札を持つ来庁者がいるかもしれません。同じ番号の札を持つ方が二人いたら、窓口で順番を確かめてください（docs/manual-ja.md「バックアップから主機を戻すとき」）。")
    } else {
        format!(
            "{}以降から発券を再開します（{basis_ja}より後）。{hint_ja}止まった機械が出した番号札を持つ来庁者がいるかもしれません。その番号札の方は、呼ばれていなければ窓口で受け付けてください（docs/manual-ja.md「バックアップから主機を戻すとき」）。",
            from_ja.join("、")
        )
    };
    let message_en = format!(
        "issuing resumes from {} (above the numbers {}); visitors may hold tickets the stopped machine gave: serve them at the counter",
        if from_en.is_empty() {
            "the next numbers".to_string()
        } else {
            from_en.join(", ")
        },
        if who.is_empty() {
            "the admin entered".to_string()
        } else {
            format!("the admin entered; reports from {} were hints", who.join(", "))
        }
    );
    app.faults.record(
        "failover",
        format!("{message_ja} / {message_en} ({day}; highest seen: {highest:?})"),
    );
    Ok(Resumed {
        resume_from: next,
        message_ja,
        message_en,
    })
}

/// One queue's box on `/admin`'s confirmation (`admin.html`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueBox {
    pub id: String,
    pub name: String,
    /// The highest number devices reported today, if any: shown beside
    /// the box as a hint, never filled in (F7).
    pub reported: Option<u32>,
}

/// What `/admin` shows beside a restored or claim hold's button: each
/// queue with the highest number devices saw given today (the admin may
/// raise it), and who saw them. `None` when no such hold stands.
pub async fn page(app: &App) -> Option<(Vec<QueueBox>, String)> {
    if app.is_standby()
        || app.fence.replaced().is_some()
        || (app.fence.restored_holding().is_none()
            && app.fence.claims_holding().is_empty()
            && app.fence.behind().is_none())
    {
        return None;
    }
    let evidence = app.fence.seen_evidence();
    let today = app.engine.read_async(|e| e.office_date()).await.ok()?;
    let (seen, who) = match evidence {
        Some((i, who)) if i.date == today => (i.highest, who.join("、")),
        _ => (BTreeMap::new(), String::new()),
    };
    let boxes = app
        .engine
        .read_async(move |e| {
            e.config()
                .categories()
                .filter(|q| q.numbers.is_some())
                .map(|q| QueueBox {
                    id: q.id.clone(),
                    name: q.name.ja.clone(),
                    reported: seen.get(&q.id).copied(),
                })
                .collect::<Vec<_>>()
        })
        .await
        .ok()?;
    Some((boxes, who))
}
