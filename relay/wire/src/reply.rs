//! The relay's answer to a bundle: accepted, or refused with a stable code
//! (R11). It carries no free text — nothing from a parser, nothing an
//! attacker can learn from — and the relay's held sequence only once the
//! bundle's signature has verified (the office needs it to recover; a
//! stranger does not). The office reads at most [`MAX_REPLY_BYTES`] of it.

use serde::{Deserialize, Serialize};

/// The most of a reply the office reads; a real one is under 200 bytes.
pub const MAX_REPLY_BYTES: usize = 4096;

/// Why a bundle was refused. The names are stable: the office acts on
/// them, logs them and counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The request head lacks a valid office head ([`crate::auth`]): the
    /// body was not read.
    Unauthenticated,
    /// The office's head is signed, but its time is further from the
    /// relay's clock than `clock_skew_s` allows: the reply carries both
    /// clocks. The body was not read.
    ClockSkew,
    /// The bundles in flight already hold the relay's byte budget.
    Busy,
    /// Addressed to another relay (`Header::relay`).
    WrongRelay,
    /// Larger than the relay's `max_bundle_bytes`.
    TooLarge,
    /// The body came slower than the relay's minimum rate, or without a length.
    TooSlow,
    /// Not signed by any configured office key.
    BadSignature,
    /// Signed, but not a well-formed bundle.
    Malformed,
    /// A pushed `displays/*.json` file over the relay's push limit.
    PushTooLarge,
    /// `created` is later than the relay's clock plus the allowed skew.
    CreatedInFuture,
    /// `expires − created` is longer than the relay allows.
    LifetimeTooLong,
    /// Already expired when it arrived: never applied.
    Expired,
    /// The sequence is further ahead than the relay's clock allows.
    SequenceTooFarAhead,
    /// At or below the sequence the relay holds.
    OldSequence,
    /// At or below the held sequence, and the held one is impossible (ahead
    /// of the relay's clock): only a signed reset recovers.
    HeldSequenceImpossible,
    /// A reset that names another relay or another held sequence, or is not full.
    ResetMismatch,
    /// A delta on a base the relay does not hold.
    WrongBase,
    /// The chain of deltas since the last full bundle is at its bound.
    FullBundleNeeded,
    /// The relay could not store the bundle (its disk): try again later.
    NotStored,
    /// A code this office does not know (a newer relay).
    #[serde(other)]
    Unknown,
}

impl Code {
    pub const ALL: [Code; 20] = [
        Code::Unauthenticated,
        Code::ClockSkew,
        Code::Busy,
        Code::WrongRelay,
        Code::TooLarge,
        Code::TooSlow,
        Code::BadSignature,
        Code::Malformed,
        Code::PushTooLarge,
        Code::CreatedInFuture,
        Code::LifetimeTooLong,
        Code::Expired,
        Code::SequenceTooFarAhead,
        Code::OldSequence,
        Code::HeldSequenceImpossible,
        Code::ResetMismatch,
        Code::WrongBase,
        Code::FullBundleNeeded,
        Code::NotStored,
        Code::Unknown,
    ];

    /// The stable name (as in the JSON and in `/metrics`).
    pub fn name(self) -> &'static str {
        match self {
            Code::Unauthenticated => "unauthenticated",
            Code::ClockSkew => "clock_skew",
            Code::Busy => "busy",
            Code::WrongRelay => "wrong_relay",
            Code::TooLarge => "too_large",
            Code::TooSlow => "too_slow",
            Code::BadSignature => "bad_signature",
            Code::Malformed => "malformed",
            Code::PushTooLarge => "push_too_large",
            Code::CreatedInFuture => "created_in_future",
            Code::LifetimeTooLong => "lifetime_too_long",
            Code::Expired => "expired",
            Code::SequenceTooFarAhead => "sequence_too_far_ahead",
            Code::OldSequence => "old_sequence",
            Code::HeldSequenceImpossible => "held_sequence_impossible",
            Code::ResetMismatch => "reset_mismatch",
            Code::WrongBase => "wrong_base",
            Code::FullBundleNeeded => "full_bundle_needed",
            Code::NotStored => "not_stored",
            Code::Unknown => "unknown",
        }
    }

    /// The HTTP status the relay answers with.
    pub fn status(self) -> u16 {
        match self {
            Code::Unauthenticated => 401,
            Code::ClockSkew => 422,
            Code::Busy => 503,
            Code::WrongRelay => 421,
            Code::TooLarge => 413,
            Code::TooSlow => 408,
            Code::BadSignature => 403,
            Code::Malformed | Code::PushTooLarge => 400,
            Code::CreatedInFuture
            | Code::LifetimeTooLong
            | Code::Expired
            | Code::SequenceTooFarAhead => 422,
            Code::OldSequence
            | Code::HeldSequenceImpossible
            | Code::ResetMismatch
            | Code::WrongBase
            | Code::FullBundleNeeded => 409,
            Code::NotStored => 503,
            Code::Unknown => 500,
        }
    }

    /// Decided after the signature verified: only then may the reply
    /// carry the relay's held sequence.
    pub fn after_signature(self) -> bool {
        !matches!(
            self,
            Code::Unauthenticated
                | Code::ClockSkew
                | Code::Busy
                | Code::TooLarge
                | Code::TooSlow
                | Code::BadSignature
                | Code::Unknown
        )
    }

    /// The office answers it with a full bundle at once.
    pub fn wants_full(self) -> bool {
        matches!(
            self,
            Code::OldSequence | Code::WrongBase | Code::FullBundleNeeded | Code::ResetMismatch
        )
    }
}

/// The JSON body of every ingest answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Accepted {
        seq: u64,
    },
    Refused {
        code: Code,
        /// The relay's held sequence; only after a verified signature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
        /// The relay's name, for a signed reset; only with `last_seq`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<String>,
        /// With `clock_skew`: the relay's clock and the time the office's
        /// signed head gave, Unix ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clocks: Option<Clocks>,
    },
}

/// The two clocks of a `clock_skew` refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clocks {
    pub relay_ms: u64,
    pub office_ms: u64,
}

impl Clocks {
    /// How far the relay's clock is ahead of the office's, in seconds
    /// (negative: behind).
    pub fn relay_ahead_s(&self) -> i64 {
        let d = i128::from(self.relay_ms) - i128::from(self.office_ms);
        i64::try_from(d / 1000).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }
}

/// A relay name as a reset bundle names it: 1–64 of `a-z 0-9 . _ -`.
pub fn valid_relay_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

impl Reply {
    /// A refusal; `held` (the relay's sequence and name) is dropped unless
    /// the code comes after a verified signature.
    pub fn refused(code: Code, held: Option<(u64, &str)>) -> Reply {
        let held = held.filter(|_| code.after_signature());
        Reply::Refused {
            code,
            last_seq: held.map(|(s, _)| s),
            relay: held.map(|(_, n)| n.to_string()),
            clocks: None,
        }
    }

    /// A `clock_skew` refusal with both clocks.
    pub fn clock_skew(clocks: Clocks) -> Reply {
        Reply::Refused {
            code: Code::ClockSkew,
            last_seq: None,
            relay: None,
            clocks: Some(clocks),
        }
    }

    pub fn to_json(&self) -> String {
        // A tagged enum of integers, a unit enum and a short string.
        serde_json::to_string(self)
            .unwrap_or_else(|_| "{\"outcome\":\"refused\",\"code\":\"unknown\"}".into())
    }

    /// The office's reading of a reply body (already capped at
    /// [`MAX_REPLY_BYTES`]); `None` when it is not a reply. A relay name
    /// that is not [`valid_relay_name`] is dropped.
    pub fn parse(body: &[u8]) -> Option<Reply> {
        if body.len() > MAX_REPLY_BYTES {
            return None;
        }
        match serde_json::from_slice::<Reply>(body).ok()? {
            Reply::Refused {
                code,
                last_seq,
                relay,
                clocks,
            } => Some(Reply::Refused {
                code,
                last_seq,
                relay: relay.filter(|n| valid_relay_name(n)),
                clocks: clocks.filter(|_| code == Code::ClockSkew),
            }),
            r => Some(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stranger_gets_no_held_sequence() {
        let r = Reply::refused(Code::BadSignature, Some((9, "r1")));
        assert_eq!(
            r.to_json(),
            "{\"outcome\":\"refused\",\"code\":\"bad_signature\"}"
        );
        let r = Reply::refused(Code::OldSequence, Some((9, "r1")));
        assert_eq!(
            r.to_json(),
            "{\"outcome\":\"refused\",\"code\":\"old_sequence\",\"last_seq\":9,\"relay\":\"r1\"}"
        );
        assert_eq!(Reply::parse(r.to_json().as_bytes()), Some(r));
    }

    #[test]
    fn codes_round_trip_and_unknown_ones_are_named_so() {
        for c in Code::ALL {
            let j = serde_json::to_string(&c).expect("json");
            assert_eq!(j, format!("\"{}\"", c.name()));
            assert_eq!(serde_json::from_str::<Code>(&j).expect("back"), c);
        }
        let r = Reply::parse(br#"{"outcome":"refused","code":"from_the_future"}"#);
        assert!(matches!(
            r,
            Some(Reply::Refused {
                code: Code::Unknown,
                ..
            })
        ));
    }

    #[test]
    fn text_an_office_would_not_use_is_dropped() {
        assert_eq!(
            Reply::parse(br#"{"outcome":"accepted","seq":1,"detail":"x"}"#),
            None
        );
        assert_eq!(Reply::parse(&vec![b' '; MAX_REPLY_BYTES + 1]), None);
        let r = Reply::parse(
            br#"{"outcome":"refused","code":"old_sequence","last_seq":3,"relay":"A\n"}"#,
        );
        assert_eq!(
            r,
            Some(Reply::Refused {
                code: Code::OldSequence,
                last_seq: Some(3),
                relay: None,
                clocks: None,
            })
        );
    }

    #[test]
    fn a_clock_skew_refusal_carries_both_clocks() {
        let r = Reply::clock_skew(Clocks {
            relay_ms: 1_000_400_000,
            office_ms: 1_000_000_000,
        });
        let back = Reply::parse(r.to_json().as_bytes()).expect("parses");
        assert_eq!(back, r);
        let Reply::Refused {
            code,
            clocks: Some(c),
            ..
        } = back
        else {
            panic!("{back:?}")
        };
        assert_eq!((code, c.relay_ahead_s()), (Code::ClockSkew, 400));
        assert_eq!(code.status(), 422);
    }
}
