//! Surfaces to files: each surface's layout from `layouts/` (minijinja)
//! gives an HTML fragment; a page wraps it for first load, and a JSON file
//! beside it carries the data and the same fragment for live updates. A
//! [`Site`] is one build of all of them in memory, diffed against the
//! previous build: unchanged files keep their bytes and ETags, and only the
//! topics whose JSON changed are pushed.
//!
//! **Architecture Invariant:** rendering is a pure function of (surface
//! data, layouts) → files; the browser swaps the server-rendered fragment and
//! never re-implements a layout.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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

macro_rules! page_layout {
    ($name:literal) => {
        (
            concat!($name, ".html"),
            include_str!(concat!("../../layouts/", $name, ".html")),
        )
    };
}

/// The office's own pages (kiosk, staff station, administration, …), in
/// the same environment as the displays' layouts (issue 16: every page the
/// project renders is rendered here). Always the built-in ones: a
/// designer's live layouts folder changes the displays, not these.
pub const PAGES: &[(&str, &str)] = &[
    page_layout!("base"),
    page_layout!("index"),
    page_layout!("login"),
    page_layout!("enrol"),
    page_layout!("kiosk"),
    page_layout!("kiosk_buttons"),
    page_layout!("staff"),
    page_layout!("staff_panel"),
    page_layout!("staff_choose"),
    page_layout!("settings"),
    page_layout!("statistics"),
    page_layout!("forecast"),
    page_layout!("preview"),
    page_layout!("audit"),
    page_layout!("admin"),
    page_layout!("menu"),
    page_layout!("admin_accounts"),
    page_layout!("admin_devices"),
    page_layout!("admin_device_table"),
    page_layout!("admin_sessions"),
];

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
        for (name, text) in PAGES {
            env.add_template(name, text)
                .map_err(|e| LayoutError::from_minijinja(&e, name))?;
        }
        Ok(Renderer {
            env,
            stale_after_s: 30,
        })
    }

    /// One of the office's pages ([`PAGES`]) with its context.
    pub fn page(&self, name: &str, ctx: minijinja::Value) -> Result<String, LayoutError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| LayoutError::from_minijinja(&e, name))
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
/// One file of the built site, with its strong ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    pub bytes: Arc<[u8]>,
    /// A quoted content hash (the first 20 hex digits of its SHA-256).
    pub etag: String,
    pub content_type: &'static str,
}

impl SiteFile {
    fn new(bytes: &[u8], content_type: &'static str) -> SiteFile {
        let hex = madoguchi_core::store::hex(&Sha256::digest(bytes).into());
        SiteFile {
            bytes: Arc::from(bytes),
            etag: format!("\"{}\"", &hex[..20]),
            content_type,
        }
    }
}

/// The generated site in memory: every surface as `<topic>.html` (the page)
/// and `<topic>.json` (`{topic, data, html}` for live updates). The server
/// serves it and the relay publisher sends it from here; nothing is written
/// to disk and read back, and no route can name anything else.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Site {
    files: BTreeMap<String, SiteFile>,
    /// Each topic's JSON, for pushing to subscribers.
    topics: BTreeMap<String, Arc<str>>,
    /// Each topic's title in the surfaces' own order, for the list of
    /// display pages (`/preview`), which is served from here rather than
    /// by rendering anew per request.
    titles: Vec<(String, String)>,
}

/// What one build changed.
#[derive(Debug, Default)]
pub struct Build {
    pub site: Site,
    /// Topics whose JSON changed, with the new JSON (to push).
    pub changed: Vec<(String, Arc<str>)>,
    /// Surfaces whose layout failed: they keep their last good files.
    pub errors: Vec<LayoutError>,
}

impl Site {
    /// Builds the site from `surfaces`, reusing `prev`'s files where nothing
    /// changed (so their ETags stay) and keeping a surface's last good files
    /// when its layout fails.
    pub fn build(renderer: &Renderer, surfaces: &[Surface], prev: &Site) -> Build {
        Site::build_with(renderer, surfaces.iter().cloned(), prev, |_, _| {})
    }

    /// [`Site::build`] from surfaces made as they are needed, telling
    /// `on_changed` of each changed topic as soon as it is drawn: the
    /// server pushes the displays, which come first, before the pages'
    /// data is even made (issue 16: a call waited for the phone page's
    /// list of every waiting number before any screen showed it).
    pub fn build_with(
        renderer: &Renderer,
        surfaces: impl IntoIterator<Item = Surface>,
        prev: &Site,
        mut on_changed: impl FnMut(&str, &Arc<str>),
    ) -> Build {
        let mut b = Build::default();
        for s in surfaces {
            let s = &s;
            let r = match renderer.render(s) {
                Ok(r) => r,
                Err(e) => {
                    b.errors.push(e);
                    for ext in ["html", "json"] {
                        let path = format!("{}.{ext}", s.topic);
                        if let Some(f) = prev.files.get(&path) {
                            b.site.files.insert(path, f.clone());
                        }
                    }
                    if let Some(j) = prev.topics.get(&s.topic) {
                        b.site.topics.insert(s.topic.clone(), j.clone());
                        b.site.titles.push((s.topic.clone(), s.title.clone()));
                    }
                    continue;
                }
            };
            let json_path = format!("{}.json", r.topic);
            let page_path = format!("{}.html", r.topic);
            let same_json = prev.topics.get(&r.topic).map(|j| &**j) == Some(r.json.as_str());
            let json: Arc<str> = match prev.topics.get(&r.topic) {
                Some(j) if same_json => j.clone(),
                _ => Arc::from(r.json.as_str()),
            };
            let json_file = match prev.files.get(&json_path) {
                Some(f) if same_json => f.clone(),
                _ => SiteFile::new(r.json.as_bytes(), "application/json"),
            };
            let page_file = match prev.files.get(&page_path) {
                Some(f) if *f.bytes == *r.page.as_bytes() => f.clone(),
                _ => SiteFile::new(r.page.as_bytes(), "text/html; charset=utf-8"),
            };
            if !same_json {
                on_changed(&r.topic, &json);
                b.changed.push((r.topic.clone(), json.clone()));
            }
            b.site.files.insert(json_path, json_file);
            b.site.files.insert(page_path, page_file);
            b.site.titles.push((r.topic.clone(), s.title.clone()));
            b.site.topics.insert(r.topic, json);
        }
        b
    }

    /// The file at `path` (`board.html`, `counter/10.json`), if the site
    /// has one: an exact lookup, never a file-system path.
    pub fn get(&self, path: &str) -> Option<&SiteFile> {
        self.files.get(path)
    }

    /// Every path of the site, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Every surface of the site as (topic, title), in the surfaces' order.
    pub fn titles(&self) -> impl Iterator<Item = (&str, &str)> {
        self.titles.iter().map(|(t, n)| (t.as_str(), n.as_str()))
    }

    /// Whether `topic` is one of the site's surfaces.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surfaces::surfaces;
    use madoguchi_core::config::Config;
    use madoguchi_core::model::{Command, Millis};
    use madoguchi_core::state::State;

    #[test]
    fn a_build_changes_only_what_changed_and_keeps_etags() {
        let config = Config::embedded_default();
        let mut state = State::new(&config);
        let renderer = Renderer::new(None).expect("layouts");
        let first = Site::build(
            &renderer,
            &surfaces(&config, &state, Millis(0)),
            &Site::default(),
        );
        assert!(first.errors.is_empty());
        assert!(first.site.get("board.html").is_some());
        assert!(first.site.get("status.json").is_some());
        assert!(first.site.get("../accounts.json").is_none());
        assert_eq!(first.changed.len(), first.site.topics.len(), "all new");

        let again = Site::build(
            &renderer,
            &surfaces(&config, &state, Millis(0)),
            &first.site,
        );
        assert!(again.changed.is_empty(), "nothing changed");
        assert_eq!(again.site, first.site);

        let date = "2026-11-26".parse().expect("date");
        for (at, cmd) in [
            (1, Command::OpenDay { date }),
            (
                2,
                Command::OpenCounter {
                    counter: 10,
                    staff: None,
                },
            ),
        ] {
            for e in state.decide(&config, Millis(at), &cmd).expect("accepted") {
                state.apply(&config, Millis(at), &e).expect("applies");
            }
        }
        let opened = Site::build(
            &renderer,
            &surfaces(&config, &state, Millis(3)),
            &again.site,
        );
        let changed: Vec<&str> = opened.changed.iter().map(|(t, _)| t.as_str()).collect();
        assert!(changed.contains(&"counter/10"), "{changed:?}");
        assert!(!changed.contains(&"counter/11"), "{changed:?}");
        assert_eq!(
            opened.site.get("counter/11.html").map(|f| &f.etag),
            first.site.get("counter/11.html").map(|f| &f.etag),
            "an unchanged surface keeps its ETag"
        );
    }

    /// `/preview` lists the display pages from the build (issue 16 review:
    /// a fresh render per request let one display token keep the engine
    /// thread estimating): every surface, in the surfaces' own order
    /// (counter 2 before counter 10), with its title.
    #[test]
    fn a_build_lists_every_surface_with_its_title_in_order() {
        let config = Config::embedded_default();
        let state = State::new(&config);
        let renderer = Renderer::new(None).expect("layouts");
        let list = surfaces(&config, &state, Millis(0));
        let build = Site::build(&renderer, &list, &Site::default());
        let titles: Vec<(&str, &str)> = build.site.titles().collect();
        let want: Vec<(&str, &str)> = list
            .iter()
            .map(|s| (s.topic.as_str(), s.title.as_str()))
            .collect();
        assert_eq!(titles, want);
        assert!(titles.iter().all(|(t, _)| build.site.has_topic(t)));
        assert!(titles.iter().all(|(_, n)| !n.is_empty()));
    }
}
