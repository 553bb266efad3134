//! madoguchi-renderer: turns the office's snapshots into static HTML and
//! JSON for every display surface, through the minijinja layouts in
//! `layouts/`, and exports statistics (CSV, Excel).
//!
//! Not built yet: this crate is the place the renderer and displays issue
//! and the statistics issue fill. It is in the workspace now so that the
//! layout ARCHITECTURE.md describes is the layout of the code.
