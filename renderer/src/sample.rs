//! A small fixed office morning, for the preview page's sample data and the
//! golden tests: every surface has something to show.

use madoguchi_core::config::Config;
use madoguchi_core::model::{Command, Millis};
use madoguchi_core::state::State;

/// 2026-11-26 (Thu) 05:40 JST.
pub const T0: i64 = 1_795_650_000_000;

/// The sample state and the moment to render it at.
pub fn sample(config: &Config) -> (State, Millis) {
    let mut st = State::new(config);
    let mut run = |min: i64, c: Command| {
        let at = Millis(T0 + min * 60_000);
        if let Ok(events) = st.decide(config, at, &c) {
            for e in &events {
                let _ = st.apply(config, at, e);
            }
        }
    };
    use Command::*;
    run(
        0,
        OpenDay {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap_or_default(),
        },
    );
    let first_counters: Vec<u16> = config.counters.iter().map(|c| c.number).collect();
    for &counter in &first_counters {
        run(
            1,
            OpenCounter {
                counter,
                staff: None,
            },
        );
    }
    let categories: Vec<String> = config.categories().map(|q| q.id.clone()).collect();
    for i in 0..12 {
        if let Some(cat) = categories.get(i % categories.len().max(1)) {
            run(
                2 + i as i64,
                IssueTicket {
                    category: cat.clone(),
                    kiosk: None,
                    request_id: None,
                },
            );
        }
    }
    // One call in every category, so every guidance display shows one.
    for (i, q) in categories.iter().enumerate() {
        let counter = config
            .counters
            .iter()
            .find(|c| c.serves.first() == Some(q))
            .map(|c| c.number);
        if let Some(counter) = counter {
            run(20 + i as i64, CallNext { counter });
        }
    }
    (st, Millis(T0 + 30 * 60_000))
}
