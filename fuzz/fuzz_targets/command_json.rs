//! Command JSON (a line of `apply`/`import`, a request body) and a log
//! record's payload.
#![no_main]

mod alloc_cap;
use libfuzzer_sys::fuzz_target;
use madoguchi_core::engine::{ImportLine, RecordBody};
use madoguchi_core::model::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ImportLine::parse(1, s);
    }
    let _ = serde_json::from_slice::<Command>(data);
    let _ = serde_json::from_slice::<RecordBody>(data);
});
