//! The site a relay serves, held in memory: every file with its content
//! type, strong ETag and gzip/brotli versions made once when the bundle
//! arrives (R6). A new site is built beside the old one and swapped in
//! whole, so a request never sees half of a bundle.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::bundle::{content_type, Bundle, Kind};

/// Smaller files are not worth compressing.
const COMPRESS_ABOVE: usize = 256;

#[derive(Debug, Clone)]
pub struct Entry {
    pub content_type: &'static str,
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    /// Quoted; the encodings append `-gz`/`-br` inside the quotes.
    pub etag: String,
}

impl Entry {
    pub fn new(path: &str, body: Vec<u8>) -> Entry {
        let ctype = content_type(path).unwrap_or("application/octet-stream");
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", crate::bundle::to_hex(&digest[..12]));
        let compressible = !matches!(ctype, "image/png" | "font/woff2" | "image/x-icon");
        let (gzip, brotli) = if compressible && body.len() > COMPRESS_ABOVE {
            (gzip(&body), brotli(&body))
        } else {
            (None, None)
        };
        Entry {
            content_type: ctype,
            identity: Bytes::from(body),
            gzip,
            brotli,
            etag,
        }
    }
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(body).ok()?;
    let out = e.finish().ok()?;
    (out.len() < body.len()).then(|| Bytes::from(out))
}

fn brotli(body: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        w.write_all(body).ok()?;
    }
    (out.len() < body.len()).then(|| Bytes::from(out))
}

/// One version of the site.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub seq: u64,
    /// After this the data is shown as stale.
    pub expires: madoguchi_wire::UnixSeconds,
    pub files: HashMap<String, Arc<Entry>>,
}

/// The push topic a site file is published under: `displays/<topic>.json`.
pub fn topic_of(path: &str) -> Option<&str> {
    path.strip_prefix("displays/")?.strip_suffix(".json")
}

/// Why a bundle could not be applied to the current site.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("delta on top of {base}, but this relay holds {held}: waiting for a full bundle")]
    WrongBase { base: u64, held: u64 },
}

impl Site {
    /// `(topic, payload)` of the given files that are push topics.
    pub fn topic_payloads<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a String>,
    ) -> Vec<(String, std::sync::Arc<str>)> {
        paths
            .into_iter()
            .filter_map(|p| {
                let t = topic_of(p)?;
                let body = std::str::from_utf8(&self.files.get(p)?.identity).ok()?;
                Some((t.to_string(), std::sync::Arc::from(body)))
            })
            .collect()
    }

    /// Whether `body` is new or different at `path`.
    fn differs(&self, path: &str, body: &[u8]) -> bool {
        self.files
            .get(path)
            .is_none_or(|e| e.identity.as_ref() != body)
    }

    /// `(topic, payload)` of the push topics whose bytes `bundle` changes,
    /// found without building the new site (no hashing or compression) so
    /// that subscribers can have them before the site is made and stored.
    pub fn changes(
        &self,
        bundle: &Bundle,
    ) -> Result<Vec<(String, std::sync::Arc<str>)>, ApplyError> {
        let h = &bundle.header;
        if h.kind == Kind::Delta && h.base != self.seq {
            return Err(ApplyError::WrongBase {
                base: h.base,
                held: self.seq,
            });
        }
        Ok(bundle
            .files
            .iter()
            .filter(|(path, body)| self.differs(path, body))
            .filter_map(|(path, body)| {
                let t = topic_of(path)?;
                let body = std::str::from_utf8(body).ok()?;
                Some((t.to_string(), std::sync::Arc::from(body)))
            })
            .collect())
    }

    /// The site after `bundle`, and the paths whose bytes changed.
    pub fn apply(&self, bundle: &Bundle) -> Result<(Site, Vec<String>), ApplyError> {
        let h = &bundle.header;
        let mut files = match h.kind {
            Kind::Full => HashMap::new(),
            Kind::Delta => {
                if h.base != self.seq {
                    return Err(ApplyError::WrongBase {
                        base: h.base,
                        held: self.seq,
                    });
                }
                let mut f = self.files.clone();
                for p in &h.removed {
                    f.remove(p);
                }
                f
            }
        };
        let mut changed = Vec::new();
        for (path, body) in &bundle.files {
            let entry = match self.files.get(path) {
                Some(e) if !self.differs(path, body) => e.clone(),
                _ => {
                    changed.push(path.clone());
                    Arc::new(Entry::new(path, body.clone()))
                }
            };
            files.insert(path.clone(), entry);
        }
        Ok((
            Site {
                seq: h.seq,
                expires: h.expires,
                files,
            },
            changed,
        ))
    }

    /// The file a request path names: exact match, `/`, `/dir` and `/dir/`
    /// map to their `index.html`. Nothing else: no listing, no path
    /// outside, and a file is not a folder (`/index.html/` is not found).
    pub fn lookup(&self, url_path: &str) -> Option<&Arc<Entry>> {
        let p = url_path.strip_prefix('/')?;
        let (p, folder) = match p.strip_suffix('/') {
            Some(p) => (p, true),
            None => (p, false),
        };
        if p.is_empty() {
            return self.files.get("index.html");
        }
        if !crate::bundle::valid_path(p) {
            return None;
        }
        let index = self.files.get(&format!("{p}/index.html"));
        match folder {
            true => index,
            false => self.files.get(p).or(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{FileEntry, Header};

    fn bundle(seq: u64, kind: Kind, base: u64, files: &[(&str, &str)], removed: &[&str]) -> Bundle {
        Bundle {
            header: Header {
                relay: "r".into(),
                seq,
                created: madoguchi_wire::UnixSeconds(1),
                expires: madoguchi_wire::UnixSeconds(2),
                kind,
                base,
                files: files
                    .iter()
                    .map(|(p, b)| FileEntry {
                        path: p.to_string(),
                        len: b.len() as u64,
                    })
                    .collect(),
                removed: removed.iter().map(|s| s.to_string()).collect(),
                reset: None,
            },
            files: files
                .iter()
                .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn full_then_delta_changes_only_what_it_names() {
        let s0 = Site::default();
        let (s1, changed) = s0
            .apply(&bundle(
                1,
                Kind::Full,
                0,
                &[("index.html", "a"), ("m/index.html", "m")],
                &[],
            ))
            .expect("full");
        assert_eq!(changed.len(), 2);
        let (s2, changed) = s1
            .apply(&bundle(
                2,
                Kind::Delta,
                1,
                &[("index.html", "b"), ("m/index.html", "m")],
                &[],
            ))
            .expect("delta");
        assert_eq!(changed, vec!["index.html".to_string()]);
        assert_eq!(
            s2.lookup("/").map(|e| e.identity.clone()),
            Some(Bytes::from("b"))
        );
        assert_eq!(
            s2.lookup("/m").map(|e| e.identity.clone()),
            Some(Bytes::from("m"))
        );
        let (s3, _) = s2
            .apply(&bundle(3, Kind::Delta, 2, &[], &["m/index.html"]))
            .expect("removal");
        assert!(s3.lookup("/m").is_none());
        assert_eq!(
            s3.apply(&bundle(5, Kind::Delta, 4, &[], &[])).err(),
            Some(ApplyError::WrongBase { base: 4, held: 3 })
        );
    }

    #[test]
    fn lookups_never_leave_the_bundle() {
        let (s, _) = Site::default()
            .apply(&bundle(
                1,
                Kind::Full,
                0,
                &[("index.html", "a"), ("site/x.js", "x")],
                &[],
            ))
            .expect("full");
        for bad in [
            "/../index.html",
            "/site/../index.html",
            "//index.html",
            "/SITE/x.js",
            "site/x.js",
            "/site",
            "/index.html/",
            "/site/x.js/",
        ] {
            assert!(s.lookup(bad).is_none(), "{bad}");
        }
        assert!(s.lookup("/site/x.js").is_some());
    }

    #[test]
    fn large_text_is_precompressed_and_round_trips() {
        let body = "状況 ".repeat(500).into_bytes();
        let e = Entry::new("displays/status.json", body.clone());
        let gz = e.gzip.clone().expect("gzip");
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back)
            .expect("gunzip");
        assert_eq!(back, body);
        let br = e.brotli.clone().expect("brotli");
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut brotli::Decompressor::new(&br[..], 4096), &mut back)
            .expect("unbrotli");
        assert_eq!(back, body);
        assert!(Entry::new("a.json", b"{}".to_vec()).gzip.is_none());
    }
}
