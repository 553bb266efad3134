//! Host settings (issue 16): what belongs to one machine, not to the office
//! — where the server listens and keeps its data (`[server]`), the network
//! printers of its kiosks (`[[printers]]`) and the internet relays it
//! publishes to (`[[relays]]`).
//!
//! They never enter the hash-chained office configuration in the event log,
//! so a standby following the log or a spare restored from a backup keeps
//! its own. They are read from `--host FILE`, else `<data>/host.toml`, else
//! the host sections of `--config FILE` (which are split off before the
//! office part is recorded).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::raw::Ctx;
use super::ConfigError;

/// The top-level sections that are host settings.
pub const HOST_SECTIONS: [&str; 3] = ["server", "printers", "relays"];

/// A network thermal printer (ESC/POS on raw TCP, usually port 9100) that
/// prints a kiosk's tickets instead of the browser (R1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printer {
    /// The kiosk device's name.
    pub kiosk: String,
    pub address: std::net::SocketAddr,
}

/// An internet relay the office pushes its signed public bundle to
/// (R6, R11): outbound HTTPS only; the relay never connects back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// The relay's ingest address, e.g. `https://relay1.example.lg.jp:8443`.
    pub url: String,
    /// The relay's name, as its `ingest.name` says: every bundle and every
    /// request head the office sends names the relay it is for, and a
    /// relay refuses what was signed for another, so a hostile relay
    /// cannot pass on what the office sent it. `name = "..."`; by default
    /// the host of `url` (`relay1.example.lg.jp`).
    pub name: String,
    /// A PEM file of the certificate authority that signed the relay's
    /// ingest certificate, when it is not a public one.
    pub ca: Option<PathBuf>,
}

/// Where the office server listens and keeps its data. Command-line flags
/// win.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerSettings {
    pub listen: Option<std::net::SocketAddr>,
    pub data: Option<PathBuf>,
}

/// One machine's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSettings {
    pub server: ServerSettings,
    pub printers: Vec<Printer>,
    pub relays: Vec<RelayTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    printers: Vec<RawPrinter>,
    #[serde(default)]
    relays: Vec<RawRelay>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    data: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrinter {
    kiosk: String,
    address: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    url: Spanned<String>,
    name: Option<Spanned<String>>,
    ca: Option<String>,
}

/// A relay name as the relay's `ingest.name` allows it: 1–64 of
/// `a-z 0-9 . _ -` (the wire crate's `valid_relay_name`).
fn valid_relay_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

/// Reads a file for the configuration loaders, naming it in errors.
pub(super) fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read the file: {e}"),
    })?;
    Ok((text, file))
}

/// The name of the top-level table a header line opens, if it is one.
fn header(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let inner = t
        .strip_prefix("[[")
        .and_then(|r| r.split_once("]]"))
        .or_else(|| t.strip_prefix('[').and_then(|r| r.split_once(']')))?
        .0
        .trim();
    let top = inner.split('.').next()?.trim().trim_matches('"');
    (!top.is_empty()
        && top
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some(top)
}

/// Splits configuration text into its office part and its host part, line
/// by line at table headers, and checks the cut: the two parts read
/// together must be exactly the whole (so a header-looking line inside a
/// multi-line value cannot mislead it).
pub fn split(text: &str, file: &str) -> Result<(String, String), ConfigError> {
    let mut office = String::new();
    let mut host = String::new();
    let mut in_host = false;
    for line in text.split_inclusive('\n') {
        if let Some(name) = header(line) {
            in_host = HOST_SECTIONS.contains(&name);
        }
        if in_host {
            host.push_str(line);
        } else {
            office.push_str(line);
        }
    }
    let whole: Result<toml::Table, _> = text.parse();
    let parts = (office.parse::<toml::Table>(), host.parse::<toml::Table>());
    let cut_ok = match (whole, parts) {
        (Ok(w), (Ok(o), Ok(h))) => {
            let mut joined = o;
            joined.extend(h);
            joined == w && !HOST_SECTIONS.iter().any(|k| office_has(&office, k))
        }
        // A file that is not TOML: the full parse names the line.
        (Err(_), _) => true,
        _ => false,
    };
    if !cut_ok {
        return Err(ConfigError {
            file: file.to_string(),
            line: 0,
            message: "the host sections ([server], [[printers]], [[relays]]) could not be told apart from the office's: write each as its own table at the top level".into(),
        });
    }
    Ok((office, host))
}

fn office_has(office: &str, key: &str) -> bool {
    office
        .parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key(key))
}

/// Whether configuration text holds any host section.
pub fn has_host_sections(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| HOST_SECTIONS.iter().any(|k| t.contains_key(*k)))
}

impl HostSettings {
    /// Reads the host sections of `text` (office sections in it are
    /// ignored: a `--config` file may hold both).
    pub fn parse(text: &str, file: &str) -> Result<HostSettings, ConfigError> {
        split(text, file)?;
        // Parse the host lines in place (blank office lines) so errors name
        // the file's own line.
        let mut in_host = false;
        let placed: String = text
            .split_inclusive('\n')
            .map(|line| {
                if let Some(name) = header(line) {
                    in_host = HOST_SECTIONS.contains(&name);
                }
                if in_host {
                    line.to_string()
                } else {
                    "\n".repeat(line.ends_with('\n') as usize)
                }
            })
            .collect();
        let cx = Ctx {
            text: &placed,
            file,
            strict: super::raw::Strictness::New,
        };
        let raw: RawHost = toml::from_str(&placed).map_err(|e| ConfigError {
            file: file.to_string(),
            line: e.span().map_or(0, |s| {
                placed.as_bytes()[..s.start.min(placed.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            }),
            message: e.message().to_string(),
        })?;
        parse_raw(&cx, raw)
    }

    /// Reads a host settings file, or the host sections of a configuration
    /// file.
    pub fn from_file(path: &Path) -> Result<HostSettings, ConfigError> {
        let (text, file) = read(path)?;
        HostSettings::parse(&text, &file)
    }
}

fn parse_raw(cx: &Ctx<'_>, raw: RawHost) -> Result<HostSettings, ConfigError> {
    let mut printers = Vec::new();
    for p in raw.printers {
        let address = p.address.get_ref().parse().map_err(|_| {
            cx.err(
                &p.address.span(),
                format!(
                    "printer address {:?} must look like \"192.168.10.21:9100\"",
                    p.address.get_ref()
                ),
            )
        })?;
        printers.push(Printer {
            kiosk: p.kiosk,
            address,
        });
    }
    let server = match raw.server {
        None => ServerSettings::default(),
        Some(s) => ServerSettings {
            listen: match s.listen {
                None => None,
                Some(l) => Some(l.get_ref().parse().map_err(|_| {
                    cx.err(
                        &l.span(),
                        format!(
                            "server.listen {:?} must look like \"192.168.10.5:8080\"",
                            l.get_ref()
                        ),
                    )
                })?),
            },
            data: s.data.map(PathBuf::from),
        },
    };
    let mut relays = Vec::new();
    for r in raw.relays {
        let url = r.url.get_ref().trim_end_matches('/');
        let host = url.strip_prefix("https://").unwrap_or("");
        if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
            return Err(cx.err(
                &r.url.span(),
                format!(
                    "relay url {:?} must look like \"https://relay1.example.lg.jp:8443\" (HTTPS, no path)",
                    r.url.get_ref()
                ),
            ));
        }
        let (name, span) = match &r.name {
            Some(n) => (n.get_ref().clone(), n.span()),
            None => {
                let authority = host.rsplit_once(':').map_or(host, |(h, _)| h);
                (authority.to_ascii_lowercase(), r.url.span())
            }
        };
        if !valid_relay_name(&name) {
            return Err(cx.err(
                &span,
                format!(
                    "relay name {name:?} must be 1-64 of a-z, 0-9, '.', '_', '-' and equal the relay's ingest.name (set name = \"...\" for this relay)"
                ),
            ));
        }
        if relays.iter().any(|t: &RelayTarget| t.name == name) {
            return Err(cx.err(
                &span,
                format!("two relays named {name:?}: give each its own name = \"...\""),
            ));
        }
        relays.push(RelayTarget {
            url: url.to_string(),
            name,
            ca: r.ca.map(PathBuf::from),
        });
    }
    Ok(HostSettings {
        server,
        printers,
        relays,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DEFAULT_OFFICE_TOML};

    #[test]
    fn relays_must_be_https_without_a_path() {
        let base = DEFAULT_OFFICE_TOML;
        let ok = format!(
            "{base}\n[[relays]]\nurl = \"https://relay1.example.lg.jp:8443/\"\nca = \"relay-ca.pem\"\n"
        );
        let h = HostSettings::parse(&ok, "office.toml").expect("valid relay");
        assert_eq!(h.relays.len(), 1);
        assert_eq!(h.relays[0].url, "https://relay1.example.lg.jp:8443");
        assert_eq!(
            h.relays[0].name, "relay1.example.lg.jp",
            "the host by default"
        );
        let named =
            format!("{base}\n[[relays]]\nurl = \"https://10.0.0.1:8443\"\nname = \"relay-1\"\n");
        let h = HostSettings::parse(&named, "office.toml").expect("named relay");
        assert_eq!(h.relays[0].name, "relay-1");
        for bad in [
            format!("{base}\n[[relays]]\nurl = \"https://a:1\"\nname = \"Relay 1\"\n"),
            format!(
                "{base}\n[[relays]]\nurl = \"https://a:1\"\n[[relays]]\nurl = \"https://a:2\"\n"
            ),
        ] {
            let err = HostSettings::parse(&bad, "office.toml").expect_err("bad name");
            assert!(err.message.contains("name"), "{err}");
        }
        for bad in ["http://relay1:8443", "https://relay1/ingest", "https://"] {
            let text = format!("{base}\n[[relays]]\nurl = \"{bad}\"\n");
            let err = HostSettings::parse(&text, "office.toml").expect_err(bad);
            assert!(err.message.contains("relay url"), "{err}");
            assert_eq!(err.line, text.lines().count(), "{err}");
        }
    }

    #[test]
    fn host_sections_are_split_off_the_recorded_office_configuration() {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:9000\"\ndata = \"/var/lib/m\"\n\n{DEFAULT_OFFICE_TOML}\n[[printers]]\nkiosk = \"kiosk-1\"\naddress = \"192.168.10.21:9100\"\n\n[[relays]]\nurl = \"https://r1.example.lg.jp:8443\"\n"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("office.toml");
        std::fs::write(&path, &text).expect("write");
        let config = Config::from_file(&path).expect("office");
        assert!(!has_host_sections(&config.source), "{}", config.source);
        assert_eq!(
            Config::parse(DEFAULT_OFFICE_TOML, "x")
                .expect("default")
                .queues,
            config.queues
        );
        let host = HostSettings::from_file(&path).expect("host");
        assert_eq!(host.server.listen, "127.0.0.1:9000".parse().ok());
        assert_eq!(host.printers.len(), 1);
        assert_eq!(host.relays.len(), 1);
        // The embedded default holds none (its examples are comments).
        assert!(!has_host_sections(DEFAULT_OFFICE_TOML));
        assert_eq!(
            HostSettings::parse(DEFAULT_OFFICE_TOML, "x").expect("none"),
            HostSettings::default()
        );
    }

    #[test]
    fn a_bad_host_value_names_its_line() {
        let text = "[server]\nlisten = \"nowhere\"\n";
        let err = HostSettings::parse(text, "host.toml").expect_err("bad");
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("server.listen"), "{err}");
    }
}
