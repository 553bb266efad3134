//! madoguchi-relay: serves a site from memory and pushes its changes to
//! subscribers (WebSocket, SSE fallback); used in-process by the office for
//! LAN displays and as the standalone internet-facing relay.
//!
//! **Architecture Invariant:** this crate never depends on `madoguchi-core`
//! or sled, and has no code path that connects to the office.
//!
//! Not built yet: the renderer issue and the relay issue fill it.
