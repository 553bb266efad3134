//! The server's subscribers of the commit feed that are not a surface of
//! their own: day-close reports (R7). Displays follow the feed in
//! `displays.rs`, the standby link in `replication.rs`.

use std::sync::Arc;
use std::time::Duration;

use madoguchi_core::engine::Commit;
use madoguchi_core::model::Event;

use super::App;

/// The first and the longest wait before the log is read again for reports.
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LAST_RETRY: Duration = Duration::from_secs(600);

/// The fault for a log the reports cannot be read from: the same words
/// each time (one row on /admin, with a count), Japanese first.
fn unreadable(e: &madoguchi_core::engine::EngineError) -> String {
    format!(
        "日締めの報告ファイルを作れません。記録ファイルの一部が読めません（業務は続けられます。復旧手順 docs/manual-ja.md 8 の後に作られます）/ day-close reports cannot be written: the log could not be read ({e}); retried every few minutes, written after madoguchi recover"
    )
}

fn opens_day(commits: &[Arc<Commit>]) -> bool {
    commits.iter().filter_map(|c| c.body()).any(|b| {
        b.events
            .iter()
            .any(|e| matches!(e, Event::DayOpened { .. }))
    })
}

/// Writes the reports of every day that closes, from the kept cursor on (a
/// day closed while the server was down is reported at start). Without a
/// cursor the writer starts at the end of the log: a new data folder's
/// history (a demo, an import before the first start) is not reported
/// again.
///
/// A log it cannot read (a damaged record after the cursor) is tried again
/// after 5 s, then 10 s, … up to every 10 minutes, with one fault (outside
/// tester storage-rt10 F-A: it retried at once, ~140 faults a second, until
/// the disk was full; issue 17, R18). The office runs on meanwhile; the
/// reports follow once the log is repaired (`madoguchi recover`).
pub fn reports(app: Arc<App>) {
    let start = crate::reports::cursor(&app.data).unwrap_or_else(|| app.feed.last_seq());
    let mut sub = app.feed.subscribe_after(start);
    tokio::spawn(async move {
        let mut wait = Duration::ZERO;
        while sub.changed().await.is_ok() {
            let commits = match sub.pending() {
                Ok(c) => {
                    wait = Duration::ZERO;
                    c
                }
                Err(e) => {
                    app.faults.record("reports", unreadable(&e));
                    wait = (wait * 2).clamp(FIRST_RETRY, LAST_RETRY);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            if crate::reports::closed_days(&commits).is_empty() {
                // Nothing to write. The cursor is kept when a day opens (not
                // on every command), so a restart reads at most a day back.
                if let Some(last) = commits.last().filter(|_| opens_day(&commits)) {
                    if let Err(e) = crate::reports::save_cursor(&app.data, last.seq) {
                        app.faults
                            .record("reports", format!("report cursor not kept: {e:#}"));
                    }
                }
                continue;
            }
            let data = app.data.clone();
            let result = app
                .engine
                .read_async(move |e| crate::reports::follow(e, &data, &commits))
                .await;
            match result {
                Ok(Ok(files)) => tracing::info!(files = files.len(), "reports written"),
                Ok(Err(e)) => app
                    .faults
                    .record("reports", format!("reports not written: {e:#}")),
                Err(_) => break,
            }
        }
    });
}
