//! madoguchi-core
pub mod config;
