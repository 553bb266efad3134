//! madoguchi-renderer: turns the office's snapshots into files people read.
//!
//! Today: statistics exports ([`export`]) — CSV in UTF-8 with BOM (or
//! Shift_JIS) and Excel workbooks with one sheet per granularity (R7).
//! The static pages for every display surface (layouts/ through minijinja,
//! regenerated on every change) are the renderer issue's, still to come.

pub mod export;
