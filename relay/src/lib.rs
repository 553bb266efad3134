//! madoguchi-relay: serves a site and pushes its changes to subscribers.
//! The office uses the [`hub::Hub`] in-process for the displays on its LAN;
//! the internet relay (its own issue) will reuse the same hub.
//!
//! **Architecture Invariant:** this crate never depends on `madoguchi-core`
//! or sled, and has no code path that connects to the office.

pub mod hub;
