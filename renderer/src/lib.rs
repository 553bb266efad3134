//! madoguchi-renderer: turns the office's snapshots into files people read.
//!
//! - [`surfaces`]: every display surface and its data, a pure function of
//!   the configuration, the state and the time (R3, R4, R5, R6).
//! - [`render`]: surfaces through the minijinja layouts in `layouts/` into
//!   HTML pages, fragments and JSON, written atomically when they change.
//! - [`export`]: statistics reports as CSV and Excel (R7).
//!
//! The template engine is this crate's alone (issue 16): the office server
//! renders its pages through [`render::Renderer::page`] and builds their
//! contexts with the re-exported [`context!`] and [`Value`].

pub mod export;
pub mod render;
pub mod sample;
pub mod surfaces;

pub use minijinja::{context, HtmlEscape, Value};
