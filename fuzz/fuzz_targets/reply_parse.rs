//! The office's reading of a relay's reply (a hostile relay chooses every
//! byte): never a panic, and a relay name only in its narrow form.
#![no_main]

mod alloc_cap;

use libfuzzer_sys::fuzz_target;
use madoguchi_wire::reply::{valid_relay_name, Reply};

fuzz_target!(|data: &[u8]| {
    if let Some(Reply::Refused {
        relay: Some(name), ..
    }) = Reply::parse(data)
    {
        assert!(valid_relay_name(&name));
    }
});
