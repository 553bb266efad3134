//! The high-water mark file (`<data>/HIGHWATER`, issue 17): two slots, each
//! magic, write counter, length, JSON mark and CRC. Whatever the bytes, the
//! reader returns a mark or none, never panics, never allocates past the
//! cap; a mark read back encodes to a slot that reads as the same mark.
#![no_main]

mod alloc_cap;
use libfuzzer_sys::fuzz_target;
use madoguchi_core::engine::highwater;

fuzz_target!(|data: &[u8]| {
    if let Some((counter, mark)) = highwater::decode_file(data) {
        if let Some(again) = highwater::encode_file(counter, &mark) {
            let (c, m) = highwater::decode_file(&again).expect("a written slot reads");
            assert_eq!(c, counter);
            // Request ids may be dropped to fit the slot, nothing else.
            assert_eq!((m.seq, &m.hash, m.day, &m.highest), (mark.seq, &mark.hash, mark.day, &mark.highest));
        }
    }
});
