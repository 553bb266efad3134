//! Surfaces to files: each surface's layout from `layouts/` (minijinja)
//! gives an HTML fragment; a page wraps it for first load, and a JSON file
//! beside it carries the data and the same fragment for live updates. Only
//! surfaces whose JSON changed are written, each atomically (temp file,
//! then rename).
//!
//! **Architecture Invariant:** rendering is a pure function of (surface
//! data, layouts) → files; the browser swaps the server-rendered fragment and
//! never re-implements a layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use minijinja::{context, Environment};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::surfaces::Surface;

/// The display layouts built into the binary (used when no layouts folder
/// is being edited live).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "display_page.html",
        include_str!("../../layouts/display_page.html"),
    ),
    (
        "display_counter.html",
        include_str!("../../layouts/display_counter.html"),
    ),
    (
        "display_guidance.html",
        include_str!("../../layouts/display_guidance.html"),
    ),
    (
        "display_board.html",
        include_str!("../../layouts/display_board.html"),
    ),
    (
        "display_status.html",
        include_str!("../../layouts/display_status.html"),
    ),
    (
        "display_ticket.html",
        include_str!("../../layouts/display_ticket.html"),
    ),
];

/// A layout that failed to load or render: shown on the preview page only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LayoutError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl LayoutError {
    fn from_minijinja(e: &minijinja::Error, fallback: &str) -> LayoutError {
        LayoutError {
            file: e.name().unwrap_or(fallback).to_string(),
            line: e.line().unwrap_or(0),
            message: e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_string),
        }
    }
}

/// One surface, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub topic: String,
    pub page: String,
    pub fragment: String,
    /// `{"topic", "data", "html"}`: what displays poll and what is pushed.
    pub json: String,
}

#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    /// Seconds without fresh data after which a display shows that it lost
    /// the connection.
    pub stale_after_s: u32,
}

impl Renderer {
    /// Layouts from `dir` when given (designers editing live), else the
    /// built-in ones.
    pub fn new(dir: Option<&Path>) -> Result<Renderer, LayoutError> {
        let mut env = Environment::new();
        for (name, text) in EMBEDDED {
            let text = match dir {
                Some(d) => std::fs::read_to_string(d.join(name)).map_err(|e| LayoutError {
                    file: d.join(name).display().to_string(),
                    line: 0,
                    message: e.to_string(),
                })?,
                None => (*text).to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| LayoutError::from_minijinja(&e, name))?;
        }
        Ok(Renderer {
            env,
            stale_after_s: 30,
        })
    }

    pub fn render(&self, s: &Surface) -> Result<Rendered, LayoutError> {
        let fragment = self
            .env
            .get_template(s.layout)
            .and_then(|t| t.render(context! { d => s.data }))
            .map_err(|e| LayoutError::from_minijinja(&e, s.layout))?;
        let page = self
            .env
            .get_template("display_page.html")
            .and_then(|t| {
                t.render(context! {
                    title => s.title, topic => s.topic, fragment => fragment,
                    stale_after => self.stale_after_s,
                    kind => s.topic.split('/').next().unwrap_or_default(),
                })
            })
            .map_err(|e| LayoutError::from_minijinja(&e, "display_page.html"))?;
        let json = json!({"topic": s.topic, "data": s.data, "html": fragment}).to_string();
        Ok(Rendered {
            topic: s.topic.clone(),
            page,
            fragment,
            json,
        })
    }
}

/// Writes rendered surfaces into a folder, skipping unchanged ones.
#[derive(Debug)]
pub struct Output {
    dir: PathBuf,
    written: HashMap<String, [u8; 32]>,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Output {
    pub fn new(dir: &Path) -> Output {
        Output {
            dir: dir.to_path_buf(),
            written: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Forgets what was written, so the next round writes everything (after
    /// the layouts changed).
    pub fn invalidate(&mut self) {
        self.written.clear();
    }

    /// Writes `r` if its JSON changed; returns whether it did.
    pub fn write(&mut self, r: &Rendered) -> std::io::Result<bool> {
        let hash: [u8; 32] = Sha256::digest(r.json.as_bytes()).into();
        if self.written.get(&r.topic) == Some(&hash) {
            return Ok(false);
        }
        write_atomically(
            &self.dir.join(format!("{}.json", r.topic)),
            r.json.as_bytes(),
        )?;
        write_atomically(
            &self.dir.join(format!("{}.html", r.topic)),
            r.page.as_bytes(),
        )?;
        self.written.insert(r.topic.clone(), hash);
        Ok(true)
    }
}
