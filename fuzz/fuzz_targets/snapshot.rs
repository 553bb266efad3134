//! The snapshot decoder: what sled hands back for `meta`, `state` and a
//! ticket, joined into a state and checked, as `Store::load` does.
#![no_main]

mod alloc_cap;
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use madoguchi_core::model::Ticket;
use madoguchi_core::state::{Meta, State};
use madoguchi_core::store::SnapshotMeta;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<SnapshotMeta>(data);
    let mut parts = data.splitn(2, |&b| b == 0);
    let meta = parts.next().unwrap_or_default();
    let tickets = parts.next().unwrap_or_default();
    let Ok(meta) = serde_json::from_slice::<Meta>(meta) else {
        return;
    };
    let tickets: BTreeMap<_, _> = serde_json::from_slice::<Vec<Ticket>>(tickets)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.number, t))
        .collect();
    let requests = BTreeMap::new();
    let state = State::from_parts(meta, tickets, requests);
    let _ = state.check_invariants();
});
