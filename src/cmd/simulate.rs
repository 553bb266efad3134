//! `madoguchi simulate`: simulated days as an import file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use madoguchi_core::config::Config;
use madoguchi_core::simulate::{SimOptions, Simulator};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Business days to simulate (closed days are skipped).
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// First day to consider (YYYY-MM-DD); default: today.
    #[arg(long)]
    pub start: Option<NaiveDate>,
    /// Random seed: the same seed gives the same days.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scale the number of visitors (1.0: about 600–1,200 a day).
    #[arg(long, default_value_t = 1.0)]
    pub volume: f64,
    /// Where to write; default: standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The office's date now (`MADOGUCHI_CLOCK` moves it).
pub fn today(config: &Config) -> Result<NaiveDate> {
    let clock = madoguchi_core::clock::Clock::from_env()?;
    Ok(madoguchi_core::clock::office_date(
        clock.read(),
        config.office.utc_offset,
    ))
}

pub fn run(config: Option<&Path>, args: Args) -> Result<()> {
    let config = super::load_config(config)?.unwrap_or_else(Config::embedded_default);
    anyhow::ensure!(
        args.volume > 0.0 && args.volume <= 10.0,
        "--volume must be between 0 and 10"
    );
    let opts = SimOptions {
        start: match args.start {
            Some(d) => d,
            None => today(&config)?,
        },
        days: args.days,
        seed: args.seed,
        volume: args.volume,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let bar = ProgressBar::new(u64::from(args.days));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} 日")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("simulating");
    let mut commands = 0usize;
    for day in Simulator::new(&config, opts) {
        for c in &day {
            writeln!(out, "{}", c.to_json_line(&config)).context("cannot write the output")?;
        }
        commands += day.len();
        bar.inc(1);
    }
    out.flush().context("cannot write the output")?;
    bar.finish_and_clear();
    eprintln!("simulated {} business days: {commands} commands", args.days);
    Ok(())
}
