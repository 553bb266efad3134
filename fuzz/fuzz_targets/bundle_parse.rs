//! The bundle parser on any bytes: the structure behind the signature
//! (`parse`, which the relay reaches only after a signature verified).
//! It may not panic, hang or allocate beyond the input. (`verify` on
//! unsigned bytes, and on signed ones, is the `ingest` target's.)
#![no_main]

mod alloc_cap;

use libfuzzer_sys::fuzz_target;
use madoguchi_wire::bundle;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::parse(data);
});
