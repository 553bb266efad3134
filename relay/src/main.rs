//! `madoguchi-relay`: the internet-facing relay. Reads its configuration,
//! serves the last accepted bundle at once, and takes new ones on the
//! ingest listener.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use madoguchi_relay::config::{Config, EXAMPLE};
use madoguchi_relay::serve::{self, Relay};

#[derive(Parser, Debug)]
#[command(
    name = "madoguchi-relay",
    about = "Madoguchi internet relay: serves the public status site and pushes every change"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve, with the configuration in FILE.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and its certificates, then exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print an example configuration.
    ExampleConfig,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .json()
        .init();
    match Cli::parse().command {
        Command::ExampleConfig => {
            print!("{EXAMPLE}");
            Ok(())
        }
        Command::Check { config } => {
            let cfg = Config::load(&config)?;
            madoguchi_relay::tls::server_config(&cfg.public.tls).context("public TLS")?;
            madoguchi_relay::tls::server_config(&cfg.ingest.tls).context("ingest TLS")?;
            let aside = madoguchi_relay::store::would_set_aside(&cfg.state_dir, &cfg.office_keys());
            for (path, why) in &aside {
                println!(
                    "起動時に退避します / start-up will set aside: {}: {why} \
                     (no current data is served until the office's next full bundle)",
                    path.display()
                );
            }
            println!("{}: OK", config.display());
            Ok(())
        }
        Command::Serve { config } => {
            let cfg = Config::load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let relay = Relay::open(cfg)?;
                serve::run(relay, |b| {
                    // Tests and scripts read these lines.
                    println!("public listening on {}", b.public);
                    println!("ingest listening on {}", b.ingest);
                    let _ = std::io::stdout().flush();
                })
                .await
            })
        }
    }
}
