//! One module per subcommand, plus what they share: opening the engine.

pub mod apply;
pub mod archive;
pub mod audit;
pub mod backup;
pub mod demo;
pub mod estimate_eval;
pub mod export;
pub mod history;
pub mod import;
pub mod keys;
pub mod promote;
pub mod simulate;
pub mod stats;
pub mod status;

use std::path::Path;

use anyhow::{Context, Result};
use madoguchi_core::clock::Clock;
use madoguchi_core::config::Config;
use madoguchi_core::engine::{ConfigChoice, Engine, EngineOptions};

/// Reads `--config` if given.
pub fn load_config(config: Option<&Path>) -> Result<Option<Config>> {
    config
        .map(|p| Config::from_file(p).context("the configuration is not valid"))
        .transpose()
}

/// Opens the data folder, telling the user what start-up repaired.
pub fn open_engine(data: &Path, config: Option<&Path>) -> Result<Engine> {
    let choice = match load_config(config)? {
        Some(c) => ConfigChoice::Given(Box::new(c)),
        None => ConfigChoice::Stored,
    };
    open_engine_with(data, choice)
}

/// Opens the data folder with an explicit configuration choice.
pub fn open_engine_with(data: &Path, choice: ConfigChoice) -> Result<Engine> {
    let opts = EngineOptions {
        clock: Clock::from_env()?,
        ..EngineOptions::default()
    };
    let (engine, report) = Engine::open(data, choice, opts)
        .with_context(|| format!("cannot open the data folder {}", data.display()))?;
    if report.torn_bytes_cut > 0 {
        eprintln!(
            "note: cut {} bytes of an unfinished record off the end of the event log (a crash mid-write; nothing acknowledged was lost)",
            report.torn_bytes_cut
        );
    }
    if let Some(why) = &report.rebuilt {
        eprintln!("note: rebuilt the snapshots from the event log ({why})");
    }
    Ok(engine)
}
