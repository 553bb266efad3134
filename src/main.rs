//! `madoguchi`: the office binary. Subcommands run the queue engine on a
//! data folder; everything of substance lives in `madoguchi-core`.

mod cmd;
mod output;
mod reports;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Madoguchi (窓口) — counter reception and queue system for public offices.
///
/// Every subcommand works on one data folder (the event log and its
/// snapshots). Only one process can use a data folder at a time.
#[derive(Debug, Parser)]
#[command(name = "madoguchi", version, about, long_about)]
struct Cli {
    /// The data folder; created on first use. Default: `[server] data` of
    /// --config, else ./madoguchi-data.
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,

    /// Office configuration (TOML). Without it: the one recorded in the data
    /// folder, or for a new folder the embedded default office.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// This machine's own settings (`[server]`, `[[printers]]`,
    /// `[[relays]]`), never recorded in the office's log. Default: the host
    /// sections of --config, else `host.toml` in the data folder.
    #[arg(long, global = true, value_name = "FILE")]
    host: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the office server on the LAN: JSON API, kiosk, staff call
    /// stations, settings. Prints the URL of every surface.
    Serve(server::Args),
    /// Run one simulated business day of the office through the engine and
    /// show how it went (a demo until the office server lands).
    Demo(cmd::demo::Args),
    /// Write simulated days of arrivals and service as an import file.
    Simulate(cmd::simulate::Args),
    /// Apply a file of timestamped commands (JSON Lines) to the data folder:
    /// all of it, or — on the first bad line — none of it.
    Import(cmd::import::Args),
    /// Write the complete event log, configuration included, as JSON Lines.
    Export(cmd::export::Args),
    /// Execute commands read from standard input, one JSON object a line,
    /// answering each on standard output once it is durable.
    Apply(cmd::apply::Args),
    /// Show the business day, the counters and the queues with their waits.
    Status(cmd::status::Args),
    /// Write a statistics report (hour, day, month) as CSV or Excel.
    Stats(cmd::stats::Args),
    /// Replay the recorded history through the wait estimator: its error,
    /// bias and range coverage per queue (and hour).
    EstimateEval(cmd::estimate_eval::Args),
    /// Show a ticket's whole path through the office.
    History(cmd::history::Args),
    /// Write a checksummed backup of the event log (configuration included);
    /// safe while the server runs. `--after` makes it incremental.
    Backup(cmd::backup::BackupArgs),
    /// Rebuild a new data folder from backups (a full one, then incremental
    /// ones in order); a damaged or broken chain is refused, nothing is
    /// half-written.
    Restore(cmd::backup::RestoreArgs),
    /// Repair a damaged data folder (the server stopped) from the latest
    /// backups and every intact record, without giving a number twice.
    Recover(cmd::recover::Args),
    /// Move closed event-log segments older than the retention period to an
    /// archive folder, keeping the hash chain verifiable (the server must be
    /// stopped).
    Archive(cmd::archive::Args),
    /// Audit the data folder.
    #[command(subcommand)]
    Audit(cmd::audit::Audit),
    /// Make a standby the primary (the same as the button on its admin page).
    Promote(cmd::promote::Args),
    /// The key that signs what the office sends to its internet relays.
    #[command(subcommand)]
    Keys(cmd::keys::Keys),
    /// Print the embedded default configuration (a starting point for --config).
    DefaultConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_init();
    let data = match resolve_data(&cli) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("madoguchi: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(a) => cmd::load_host(cli.host.as_deref(), cli.config.as_deref(), &data)
            .and_then(|host| server::run(&data, cli.config.as_deref(), host, a)),
        Command::Demo(a) => cmd::demo::run(&data, cli.config.as_deref(), a),
        Command::Simulate(a) => cmd::simulate::run(cli.config.as_deref(), a),
        Command::Import(a) => cmd::import::run(&data, cli.config.as_deref(), a),
        Command::Export(a) => cmd::export::run(&data, cli.config.as_deref(), a),
        Command::Apply(a) => cmd::apply::run(&data, cli.config.as_deref(), a),
        Command::Status(a) => cmd::status::run(&data, cli.config.as_deref(), a),
        Command::Stats(a) => cmd::stats::run(&data, cli.config.as_deref(), a),
        Command::EstimateEval(a) => cmd::estimate_eval::run(&data, cli.config.as_deref(), a),
        Command::History(a) => cmd::history::run(&data, cli.config.as_deref(), a),
        Command::Backup(a) => cmd::backup::run_backup(&data, a),
        Command::Restore(a) => cmd::backup::run_restore(&data, a),
        Command::Recover(a) => cmd::recover::run(&data, a),
        Command::Audit(a) => cmd::audit::run(&data, cli.config.as_deref(), a),
        Command::Archive(a) => cmd::archive::run(&data, cli.config.as_deref(), a),
        Command::Keys(k) => cmd::keys::run(&data, k),
        Command::Promote(a) => cmd::promote::run(a),
        Command::DefaultConfig => {
            print!("{}", madoguchi_core::config::DEFAULT_OFFICE_TOML);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A storage fault: Japanese first, the file and the steps
            // (issue 17), then the error as it came.
            if let Some(advice) = cmd::storage_advice(&e, &data) {
                eprintln!("{advice}");
            }
            eprintln!("madoguchi: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--data`, else the configuration's `[server] data`, else the default.
fn resolve_data(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(d) = &cli.data {
        return Ok(d.clone());
    }
    let file = cli.host.as_deref().or(cli.config.as_deref());
    let from_host = match file {
        Some(f) => {
            madoguchi_core::config::HostSettings::from_file(f)
                .map_err(anyhow::Error::new)?
                .server
                .data
        }
        None => None,
    };
    Ok(from_host.unwrap_or_else(|| PathBuf::from("./madoguchi-data")))
}

fn tracing_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MADOGUCHI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
