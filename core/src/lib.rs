//! madoguchi-core
pub mod config;
pub mod model;
pub mod refusal;
pub mod state;
pub mod log;
pub mod engine;
pub mod store;
