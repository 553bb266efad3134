//! Witness files (`<data>/witness/*.json`: the last backup, the standby,
//! set-aside snapshot stores — `set-aside-*.json` — the carried mark and
//! seals; issue 17). The first input byte picks the file name; the rest is
//! its contents. Never a panic; a witness read describes itself.
#![no_main]

mod alloc_cap;
use libfuzzer_sys::fuzz_target;
use madoguchi_core::engine::witness;

const NAMES: [&str; 6] = [
    "backup.json",
    "standby.json",
    "set-aside.json",
    "highwater.json",
    "seals.json",
    "set-aside-state.sled.damaged-20261207T000000Z.json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[pick as usize % NAMES.len()];
    if let Ok(w) = witness::parse(name, bytes) {
        let _ = w.describe();
    }
});
