//! madoguchi-core
pub mod config;
pub mod engine;
pub mod log;
pub mod model;
pub mod refusal;
pub mod simulate;
pub mod state;
pub mod store;
