//! `madoguchi export`: the complete event log — configuration records
//! included — as JSON Lines, for migration and audit (R14). It reads the
//! log alone: no snapshot store is opened (a damaged one cannot stop it)
//! and nothing in the folder is changed, so it also runs beside the server.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use madoguchi_core::config::Config;
use madoguchi_core::engine::RecordBody;
use madoguchi_core::log;
use madoguchi_core::model::Event;
use madoguchi_core::store::hex;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write; default: standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(data: &Path, _config: Option<&Path>, args: Args) -> Result<()> {
    let log_dir = data.join("log");
    anyhow::ensure!(
        log_dir.is_dir(),
        "ログのフォルダがありません、またはフォルダではありません: {} — データフォルダの指定 (--data) を確かめてください。別の場所へ移したのなら戻してください。\n{} holds no event log (no folder {}): check --data, or put the log folder back.",
        log_dir.display(),
        data.display(),
        log_dir.display()
    );
    // Times are shown in the office's zone as configured at each record.
    let mut offset = match log::anchor::read(&log_dir)?.and_then(|a| a.config_source) {
        Some(src) => {
            Config::parse_recorded(&src, "the archive anchor")?
                .office
                .utc_offset
        }
        None => Config::embedded_default().office.utc_offset,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    const WAY_OUT: &str = "ログが壊れています。データフォルダをコピーしてから docs/manual-ja.md「記録の破損から復旧する」の手順で madoguchi recover を実行してください / the event log is damaged: copy the data folder aside, then follow docs/manual-ja.md (madoguchi recover)";
    let mut count = 0u64;
    let mut last_seq = 0u64;
    let mut end: Option<log::Pos> = None;
    for r in log::read_live(&log_dir).context(WAY_OUT)? {
        let (pos, record) = r
            .with_context(|| format!("exported {count} records, then stopped"))
            .context(WAY_OUT)?;
        last_seq = record.seq;
        end = Some(log::Pos {
            segment: pos.segment,
            offset: pos.offset + record.framed_len(),
        });
        let body = RecordBody::decode(&record)?;
        for e in &body.events {
            if let Event::ConfigApplied { source } = e {
                if let Ok(c) = Config::parse_recorded(source, "the event log") {
                    offset = c.office.utc_offset;
                }
            }
        }
        let line = json!({
            "seq": record.seq,
            "time": body.at.to_datetime(offset).to_rfc3339(),
            "at_ms": body.at.0,
            "by": body.by,
            "events": body.events,
            "prev": hex(&record.prev),
            "hash": hex(&record.hash()),
        });
        writeln!(out, "{line}").context("cannot write the export")?;
        count += 1;
    }
    out.flush().context("cannot write the export")?;
    eprintln!("exported {count} records");
    // The log's end is checked against the high-water mark (storage-rt6
    // F5: the newest segment missing exported "successfully").
    let mark = madoguchi_core::engine::highwater::read(data);
    if !matches!(mark, Ok(Some(_))) {
        // Nothing vouches for the end, and bytes follow the last whole
        // record: a torn tail, which may hold acknowledged records the
        // snapshot saw (outside tester storage-rt10 F-C: rc 0, silent).
        if let Some(end) = end {
            let newest = log::segment_path(&log_dir, end.segment);
            let len = std::fs::metadata(&newest).map(|m| m.len()).unwrap_or(0);
            let next = log::segment_path(&log_dir, last_seq + 1);
            anyhow::ensure!(
                len <= end.offset || next.is_file(),
                "書き出しは記録 {last_seq} までです。ログの最後 ({}) に読めない {} バイトが続き、記録の到達点 (HIGHWATER) がないため、その先に受付済みの記録があったか確かめられません。サーバーを止めて madoguchi audit verify を実行してください / the export ends at record {last_seq}, but {} bytes that do not read follow it in {} and there is no high-water mark to tell whether acknowledged records were lost; stop the server and run madoguchi audit verify. {WAY_OUT}",
                newest.display(),
                len - end.offset,
                len - end.offset,
                newest.display()
            );
        }
        // The log ends at a whole record: nothing here tells whether
        // records after it were acknowledged and lost. Said, not silent
        // (outside tester storage-rt12 F-C': a log cut at a record
        // boundary with HIGHWATER gone exported with rc 0 and no word).
        eprintln!(
            "注意: 記録の到達点 (HIGHWATER) がないため、記録 {last_seq} より後に受付済みの記録があって失われていないかは確かめられませんでした（書き出しはログだけを読みます）。確かめるには、サーバーを止めて madoguchi audit verify を実行してください / note: there is no high-water mark (HIGHWATER), so the export could not check that no acknowledged records after record {last_seq} were lost (it reads the log alone); to check, stop the server and run madoguchi audit verify"
        );
    }
    if let Ok(Some(mark)) = mark {
        anyhow::ensure!(
            mark.seq <= last_seq,
            "書き出しは記録 {last_seq} までです。記録の到達点 (HIGHWATER) は記録 {} まで書かれたことを示しています。ログの最後が失われています / the export ends at record {last_seq}, but the high-water mark shows records up to {}: the end of the log is missing. {WAY_OUT}",
            mark.seq,
            mark.seq
        );
    }
    // So is it against the log's own seals: a closed segment is followed
    // by the next one, so a sealed segment whose successor is missing, or a
    // seal past the log's end, shows the newest records gone, with or
    // without HIGHWATER (outside tester storage-rt8 F3: silent, rc 0).
    if let Some(seal) = log::seals::read(&log_dir)
        .ok()
        .and_then(|s| s.into_iter().max_by_key(|s| s.last))
    {
        let next = log::segment_path(&log_dir, seal.last + 1);
        anyhow::ensure!(
            seal.last <= last_seq && (seal.last < last_seq || next.is_file()),
            "書き出しは記録 {last_seq} までです。ログの封印 (SEALS.json) は記録 {} までのセグメントが閉じられ、次のセグメント {} が続いたことを示しています。ログの最後が失われています / the export ends at record {last_seq}, but the log's seals show a segment closed at record {} and the next one ({}) is missing: the end of the log is missing. {WAY_OUT}",
            seal.last,
            next.display(),
            seal.last,
            next.display()
        );
    }
    Ok(())
}
