//! madoguchi-relay: serves a site and pushes its changes to subscribers.
//! The office uses the [`hub::Hub`] in-process for the displays on its LAN
//! and [`madoguchi_wire`] to pack and sign what it sends to the internet; the
//! standalone `madoguchi-relay` binary ([`serve`]) is the internet-facing
//! half (R6, R11).
//!
//! **Architecture Invariant:** this crate never depends on `madoguchi-core`
//! or sled, and has no code path that connects to the office.

/// The bundle format lives in the protocol crate both ends link.
pub use madoguchi_wire::bundle;
pub mod config;
pub mod conn;
pub mod fanout;
pub mod hub;
pub mod metrics;
pub mod push;
pub mod serve;
pub mod site;
pub mod store;
pub mod tls;
pub mod ws;

#[cfg(test)]
mod tests {
    /// The Architecture Invariant, checked: the manifest names neither the
    /// core nor sled (so neither can be linked in).
    #[test]
    fn the_relay_depends_on_neither_the_core_nor_sled() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .expect("a [dependencies] table");
        for line in deps.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let name = line.split('=').next().unwrap_or("").trim();
            assert!(
                name != "madoguchi-core" && name != "sled" && name != "minijinja",
                "relay/Cargo.toml depends on {name}"
            );
        }
    }
}
