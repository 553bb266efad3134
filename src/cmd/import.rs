//! `madoguchi import`: a JSON Lines file of timestamped commands, all or
//! nothing.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use madoguchi_core::engine::{ImportError, ImportLine, ImportPhase};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to import ("-" for standard input).
    pub file: PathBuf,
}

/// Lines of the input with their numbers, blank lines skipped.
fn lines(reader: impl BufRead) -> impl Iterator<Item = Result<ImportLine, ImportError>> {
    reader
        .lines()
        .enumerate()
        .filter_map(|(i, line)| match line {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(ImportLine::parse(i + 1, &l)),
            Err(e) => Some(Err(ImportError::Line {
                line: i + 1,
                reason: format!("cannot be read: {e}"),
            })),
        })
}

pub fn run(data: &Path, config: Option<&Path>, args: Args) -> Result<()> {
    super::refuse_fenced_folder(data)?;
    let mut engine = super::open_engine(data, config)?;
    // Days the import closes get their reports, as if closed at a counter.
    let mut closed = engine.feed().subscribe();
    let started = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut progress = |phase: ImportPhase, n: u64| {
        let what = match phase {
            ImportPhase::Checking => "checking",
            ImportPhase::Writing => "writing",
        };
        bar.set_message(format!("{what}: {n} commands"));
        bar.tick();
    };
    let result = if args.file.as_os_str() == "-" {
        // Standard input cannot be read twice: keep it in memory.
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        engine.import(|| lines(text.as_bytes()), &mut progress)
    } else {
        let path = args.file.clone();
        let open = || -> Result<BufReader<std::fs::File>> {
            Ok(BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            ))
        };
        open()?;
        engine.import(
            || {
                let reader: Box<dyn BufRead> = match open() {
                    Ok(r) => Box::new(r),
                    Err(_) => Box::new(std::io::empty()),
                };
                lines(reader)
            },
            &mut progress,
        )
    };
    bar.finish_and_clear();
    let report = result.with_context(|| {
        format!(
            "import of {} stopped; the data folder is unchanged",
            args.file.display()
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} commands ({} log records, {} events) in {secs:.1} s — {:.0} events/s",
        report.commands,
        report.records,
        report.events,
        report.events as f64 / secs.max(1e-9)
    );
    let commits = closed
        .pending()
        .context("cannot read the imported records back")?;
    let files = crate::reports::follow(&engine, data, &commits)?;
    if !files.is_empty() {
        eprintln!("wrote {} day-close report files", files.len());
    }
    engine.close().context("cannot flush the snapshots")?;
    Ok(())
}
