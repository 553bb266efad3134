//! One unit per quantity. Points in time are Unix seconds (bundle times,
//! which a relay compares with its own clock) or Unix milliseconds (the
//! sequence bound and the push heartbeat); spans are [`Duration`]. The
//! office's publishing rhythm lives here so the relay's defaults can be
//! checked against it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch (a bundle's `created` and `expires`).
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixSeconds(pub i64);

/// Milliseconds since the Unix epoch (the office's sequence follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixSeconds {
    pub fn now() -> UnixSeconds {
        UnixMillis::now().seconds()
    }

    /// `self + d`, saturating (a header field can be any i64).
    pub fn plus(self, d: Duration) -> UnixSeconds {
        let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        UnixSeconds(self.0.saturating_add(s))
    }
}

impl UnixMillis {
    pub fn now() -> UnixMillis {
        UnixMillis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    pub fn seconds(self) -> UnixSeconds {
        UnixSeconds(i64::try_from(self.0 / 1000).unwrap_or(i64::MAX))
    }

    pub fn plus(self, d: Duration) -> UnixMillis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        UnixMillis(self.0.saturating_add(ms))
    }
}

/// The office sends at least this often (an empty delta when nothing
/// changed), so a relay's data never expires while the office is up.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// How long a relay may show a bundle as live without hearing more: four
/// keep-alives, so one or two lost pushes do not mark the data stale.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(60);

/// The slowest office line a bundle is expected over (bytes a second): a
/// relay gives a body its declared length at this rate (plus a grace)
/// before it answers `too_slow`, and the office waits as long for the
/// answer. 8 KiB/s carries the demo office's 148 KB full bundle in 18 s.
pub const MIN_LINE_BYTES_PER_S: u64 = 8 * 1024;

/// How long `len` bytes take at [`MIN_LINE_BYTES_PER_S`], rounded up.
pub fn transfer_allowance(len: u64) -> Duration {
    Duration::from_secs(len.div_ceil(MIN_LINE_BYTES_PER_S))
}

/// The push heartbeat a display or subscriber receives when nothing
/// changed: `{"heartbeat":<Unix ms>}` from the office and from a relay alike.
pub fn heartbeat(now: UnixMillis) -> String {
    format!("{{\"heartbeat\":{}}}", now.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_and_saturate() {
        assert_eq!(UnixMillis(61_999).seconds(), UnixSeconds(61));
        assert_eq!(
            UnixSeconds(i64::MAX - 1).plus(Duration::from_secs(9)),
            UnixSeconds(i64::MAX)
        );
        assert_eq!(
            UnixMillis(u64::MAX - 1).plus(Duration::from_secs(1)),
            UnixMillis(u64::MAX)
        );
        assert_eq!(heartbeat(UnixMillis(5)), "{\"heartbeat\":5}");
        assert!(EXPIRES_AFTER > KEEPALIVE * 2);
        // relay-rt2 F6: a full bundle of the demo office over a 20 KB/s
        // line (7.4 s) is within the allowance.
        assert!(transfer_allowance(148_090) >= Duration::from_millis(148_090 * 1000 / 20_000));
        assert_eq!(transfer_allowance(0), Duration::ZERO);
    }
}
