//! A ticket's secret tag and the check of it the office publishes (issue
//! 20; R11). The mobile page's URL names a ticket by its date and number —
//! which anyone can guess — plus a tag of 64 random bits chosen when the
//! ticket was issued and printed only in its QR code. The office never
//! publishes the tag: the `ticket` topic carries, for each live ticket,
//! [`check`] of it (a truncated SHA-256 over the date, number and tag),
//! which lets a relay recognise the right tag without being able to
//! produce one. Knowing the public data is then no way to subscribe to
//! someone else's ticket or to use up its subscription slots.

use sha2::{Digest, Sha256};

/// Hex digits in a tag (64 bits) and in its check.
pub const TAG_HEX: usize = 16;

/// A tag's form: exactly [`TAG_HEX`] lowercase hex digits.
pub fn valid_tag(tag: &str) -> bool {
    tag.len() == TAG_HEX && tag.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The tag from 64 random bits.
pub fn tag_from(bits: u64) -> String {
    format!("{bits:016x}")
}

/// The public check of a ticket's tag: the first 64 bits of
/// SHA-256("madoguchi-ticket-tag\0" date "/" number "/" tag), in hex. The
/// date and number are in it so that one check never fits another ticket.
pub fn check(date: &str, number: u32, tag: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"madoguchi-ticket-tag\0");
    h.update(format!("{date}/{number}/{tag}").as_bytes());
    hex::encode(&h.finalize()[..TAG_HEX / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_depends_on_every_part_and_does_not_show_the_tag() {
        let tag = tag_from(0x0123_4567_89ab_cdef);
        assert_eq!(tag, "0123456789abcdef");
        assert!(valid_tag(&tag));
        let c = check("2026-12-06", 105, &tag);
        assert_eq!(c.len(), TAG_HEX);
        assert_ne!(c, tag);
        assert_ne!(c, check("2026-12-06", 106, &tag));
        assert_ne!(c, check("2026-12-07", 105, &tag));
        assert_ne!(
            c,
            check("2026-12-06", 105, &tag_from(0x0123_4567_89ab_cdee))
        );
        // Fixed (computed independently with Python's hashlib), so the
        // office and a relay of another version agree.
        assert_eq!(c, "2dd01ba7a51878be");
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdefa",
            "0123456789abcdeg",
        ] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }
}
