//! The server's subscribers of the commit feed that are not a surface of
//! their own: day-close reports (R7). Displays follow the feed in
//! `displays.rs`, the standby link in `replication.rs`.

use std::sync::Arc;

use madoguchi_core::engine::Commit;
use madoguchi_core::model::Event;

use super::App;

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
pub fn reports(app: Arc<App>) {
    let start = crate::reports::cursor(&app.data).unwrap_or_else(|| app.feed.last_seq());
    let mut sub = app.feed.subscribe_after(start);
    tokio::spawn(async move {
        while sub.changed().await.is_ok() {
            let commits = match sub.pending() {
                Ok(c) => c,
                Err(e) => {
                    app.faults.record(
                        "reports",
                        format!("the log could not be read for reports: {e}"),
                    );
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
