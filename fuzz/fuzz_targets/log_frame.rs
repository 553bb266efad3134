//! One framed record: length, CRC, sequence number, link, payload.
#![no_main]

mod alloc_cap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = madoguchi_core::log::decode_record(data) {
        // A decoded record frames back to the same bytes.
        let mut buf = Vec::new();
        madoguchi_core::log::frame_record(&mut buf, r.seq, &r.prev, &r.payload);
        assert_eq!(&buf[..], &data[..buf.len()]);
    }
});
