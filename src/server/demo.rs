//! `serve --demo`: fills a new data folder with the past four weeks of
//! simulated business days and opens today with a few counters and
//! visitors, so every screen has something to show.

use anyhow::{Context, Result};
use chrono::Days;
use madoguchi_core::engine::{Engine, ImportLine};
use madoguchi_core::model::Command;
use madoguchi_core::simulate::{SimOptions, Simulator};

/// Does nothing unless the folder is new (only its configuration record).
pub fn seed(engine: &mut Engine) -> Result<()> {
    if engine.seq() > 1 {
        return Ok(());
    }
    let config = engine.config().clone();
    let today = engine.office_date();
    let start = today.checked_sub_days(Days::new(28)).context("date")?;
    let days = config
        .calendar
        .open_days_from(start)
        .take_while(|d| d.date < today)
        .count() as u32;
    let lines: Vec<String> = Simulator::new(
        &config,
        SimOptions {
            start,
            days,
            seed: 2025,
            volume: 1.0,
        },
    )
    .flatten()
    .map(|c| c.to_json_line(&config))
    .collect();
    eprintln!("demo: recording {days} simulated business days of history…");
    engine
        .import(
            || {
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| ImportLine::parse(i + 1, l))
            },
            &mut |_, _| {},
        )
        .context("demo history")?;
    let at = engine.now();
    let mut run = |c: Command| -> Result<()> {
        engine
            .execute(at, &c)?
            .map_err(|r| anyhow::anyhow!("demo: {} refused: {r}", c.name()))?;
        Ok(())
    };
    run(Command::OpenDay { date: today })?;
    for counter in [1, 4, 10, 11, 12, 24] {
        run(Command::OpenCounter {
            counter,
            staff: Some(format!("staff-{counter:02}")),
        })?;
    }
    for category in [
        "idou", "koseki", "idou", "idou", "koseki", "idou", "idou", "koseki", "idou", "idou",
        "idou", "koseki",
    ] {
        run(Command::IssueTicket {
            category: category.into(),
            kiosk: Some("kiosk-1".into()),
            request_id: None,
        })?;
    }
    for counter in [1, 10, 11] {
        run(Command::CallNext { counter })?;
    }
    eprintln!(
        "demo: today ({today}) is open with counters 1, 4, 10, 11, 12 and 24 and visitors waiting"
    );
    Ok(())
}
