//! Keeping every record that can be trusted after damage in the middle of
//! the log (R10, R19; issue 17, outside tester storage-rt6 F3: one flipped
//! byte in an older segment made `recover --accept-damage` drop the 125,094
//! records after it, sealed segments included).
//!
//! `backup::recover` reads the damaged log on past a record it cannot read:
//! from the next well-formed record on, every CRC, number and link is
//! checked again, and a closed segment's seal (`log::seals`) confirms the
//! chain up to its end. The repaired log keeps the record numbers: each
//! record that cannot be read is replaced by a record of its own
//! (`by: "damaged-record"`, no events), and the records after it are
//! written again with the same contents, chained anew from there (their
//! hashes differ from the damaged folder's, which is kept whole). A later
//! record that does not apply without the lost one (a call of a ticket
//! issued in it) is set aside the same way and named: it is no state the
//! office can trust. The start that follows raises every queue's numbers
//! above the evidence (`--accept-damage`), so nothing lost is given twice.

use super::{encode_body, Engine, EngineError, RecordBody};
use crate::config::Config;
use crate::log::Record;
use crate::model::Event;

/// The `by` of a record that stands in for one set aside.
pub const SET_ASIDE_BY: &str = "damaged-record";

/// A piece of a damaged log, in record order.
#[derive(Debug, Clone)]
pub enum Piece {
    /// A record read and checked (its link to the one before it only when
    /// it did not follow a lost one).
    Kept(Record),
    /// A record that could not be read: its number and why.
    Lost { seq: u64, why: String },
}

/// A record the repaired log holds no state of, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub seq: u64,
    pub why: String,
}

/// How many records are appended at once (one write, one sync).
const BATCH: usize = 512;

impl Engine {
    /// Appends `pieces` (numbered from the log's next record on): kept
    /// records with their contents, each lost one and each that does not
    /// apply as a `damaged-record` record with no events. Returns the
    /// records set aside. Nothing that does not apply reaches the log: each
    /// record is checked on a copy of the state first.
    pub fn append_salvaged(&mut self, pieces: &[Piece]) -> Result<Vec<SetAside>, EngineError> {
        let mut set_aside = Vec::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut shadow: Option<(crate::state::State, Config)> = None;
        for piece in pieces {
            let due = self.log.tail().next_seq + pending.len() as u64;
            let (state, config) =
                shadow.get_or_insert_with(|| (self.state.clone(), self.config.clone()));
            let placeholder = |state: &crate::state::State| {
                encode_body(&RecordBody {
                    at: state.meta.last_at,
                    by: Some(SET_ASIDE_BY.to_string()),
                    events: Vec::new(),
                })
            };
            let (seq, outcome) = match piece {
                Piece::Lost { seq, why } => (*seq, Err(why.clone())),
                Piece::Kept(r) => (r.seq, check(state, config, r).map(|()| r.payload.clone())),
            };
            if seq != due {
                return Err(EngineError::Corrupt {
                    seq: due,
                    reason: format!("record {seq} came where {due} was due while salvaging"),
                });
            }
            match outcome {
                Ok(payload) => pending.push(payload),
                Err(why) => {
                    pending.push(placeholder(state));
                    set_aside.push(SetAside { seq, why });
                    // The copy may hold half of a record that did not apply.
                    shadow = None;
                }
            }
            if pending.len() >= BATCH || shadow.is_none() {
                self.append_new(&mut pending)?;
            }
        }
        self.append_new(&mut pending)?;
        self.flush_store()?;
        Ok(set_aside)
    }

    /// Appends `payloads` as new records (chained from the log's end) and
    /// applies them.
    fn append_new(&mut self, payloads: &mut Vec<Vec<u8>>) -> Result<(), EngineError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let tail = self.log.tail();
        let mut pos = self.log.append(payloads)?;
        self.feed.publish(tail.next_seq, payloads);
        let mut prev = tail.last_hash;
        for (i, payload) in payloads.drain(..).enumerate() {
            let r = Record {
                seq: tail.next_seq + i as u64,
                prev,
                payload,
            };
            self.apply_record(pos, &r)?;
            prev = r.hash();
            pos.offset += r.framed_len();
        }
        self.mark_appended();
        self.write_high_water()
    }
}

/// Whether record `r` applies to `state` (changed as it would be).
fn check(state: &mut crate::state::State, config: &mut Config, r: &Record) -> Result<(), String> {
    let body = RecordBody::decode(r).map_err(|e| e.to_string())?;
    for event in &body.events {
        if let Event::ConfigApplied { source } = event {
            *config = Config::parse_recorded(source, &format!("event log record {}", r.seq))
                .map_err(|e| e.to_string())?;
        }
        state
            .apply(config, body.at, event)
            .map_err(|x| format!("does not apply without the records set aside before it: {x}"))?;
    }
    Ok(())
}

/// What the bytes of a record that cannot be read may still tell: the
/// ticket numbers and request ids that look intact in them (never trusted
/// for state; named in the report so that staff can look for them).
pub fn hints(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for key in ["\"number\":", "\"request_id\":\""] {
        let mut rest = text.as_ref();
        while let Some(i) = rest.find(key) {
            rest = &rest[i + key.len()..];
            let value: String = if key.ends_with('"') {
                rest.chars().take_while(|c| *c != '"').take(64).collect()
            } else {
                rest.chars()
                    .take_while(|c| c.is_ascii_digit())
                    .take(10)
                    .collect()
            };
            if value.is_empty() {
                continue;
            }
            let item = if key.ends_with('"') {
                format!("request {value}")
            } else {
                format!("ticket {value}")
            };
            if !out.contains(&item) {
                out.push(item);
            }
            if out.len() >= 16 {
                return out;
            }
        }
    }
    out
}
