//! Plain-text rendering for the terminal: times in the office's zone.

use chrono::FixedOffset;
use madoguchi_core::model::Millis;

pub fn hm(t: Millis, offset: FixedOffset) -> String {
    t.to_datetime(offset).format("%H:%M:%S").to_string()
}

pub fn minutes(secs: u32) -> String {
    format!("{} 分", (secs + 30) / 60)
}
