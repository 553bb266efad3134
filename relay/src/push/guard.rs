//! No request forgery through push endpoints (R11). A subscription's
//! endpoint is a URL a stranger hands us, and the relay will later send to
//! it: it must be `https`, its host (and port) on the allow-list of push
//! services, carry no user-info, and every address it resolves to must be a
//! public one — private, loopback, link-local and the like are refused
//! unless `push.private_ok` names the address (tests do, for their own
//! push service). The outbound client resolves through [`Resolver`], which
//! applies the same rule at send time, so a name that later resolves
//! somewhere else (DNS rebinding) is refused then too; it connects to the
//! addresses it checked, follows no redirects and uses no proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("not an https URL")]
    NotHttps,
    #[error("host not on the push services allow-list")]
    NotAllowed,
    #[error("resolves to a private, loopback or link-local address")]
    Private,
    #[error("does not resolve")]
    Unresolved,
}

/// The allow-list: hosts (`fcm.googleapis.com`), suffixes
/// (`*.notify.windows.com`), each optionally with a port (default 443).
#[derive(Debug, Clone)]
pub struct Guard {
    services: Vec<(String, u16)>,
    private_ok: Vec<IpAddr>,
}

impl Guard {
    pub fn new(services: &[String], private_ok: &[IpAddr]) -> Guard {
        let services = services
            .iter()
            .map(|s| {
                let s = s.trim().to_ascii_lowercase();
                match s.rsplit_once(':') {
                    Some((h, p)) if !h.contains(']') || h.ends_with(']') => match p.parse() {
                        Ok(port) => (h.to_string(), port),
                        Err(_) => (s.clone(), 443),
                    },
                    _ => (s, 443),
                }
            })
            .collect();
        Guard {
            services,
            private_ok: private_ok.iter().map(|a| a.to_canonical()).collect(),
        }
    }

    fn host_allowed(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.services.iter().any(|(pattern, p)| {
            *p == port
                && match pattern.strip_prefix("*.") {
                    Some(suffix) => host
                        .strip_suffix(suffix)
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                    None => *pattern == host,
                }
        })
    }

    /// Whether the relay may connect to `ip`.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_global(ip) || self.private_ok.contains(&ip)
    }

    /// The form checks on an endpoint (no network).
    pub fn check_url(&self, endpoint: &str) -> Result<Url, EndpointError> {
        let url = Url::parse(endpoint).map_err(|_| EndpointError::NotHttps)?;
        if url.scheme() != "https"
            || !url.username().is_empty()
            || url.password().is_some()
            || url.fragment().is_some()
        {
            return Err(EndpointError::NotHttps);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let host = url.host_str().ok_or(EndpointError::NotHttps)?;
        if !self.host_allowed(host, port) {
            return Err(EndpointError::NotAllowed);
        }
        // An address written in the URL is never looked up: check it here.
        if literal(&url).is_some_and(|a| !self.address_allowed(a)) {
            return Err(EndpointError::Private);
        }
        Ok(url)
    }

    /// [`Self::check_url`], then resolves the host and checks every address.
    pub async fn check(&self, endpoint: &str) -> Result<Url, EndpointError> {
        let url = self.check_url(endpoint)?;
        if literal(&url).is_none() {
            resolve(self, url.host_str().unwrap_or("")).await?;
        }
        Ok(url)
    }
}

/// The address a URL names literally (the URL parser has normalised it).
fn literal(url: &Url) -> Option<IpAddr> {
    let h = url.host_str()?;
    h.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The host's addresses, if every one is allowed (one bad address refuses
/// the name: a round-robin that mixes in an internal one is an attack).
async fn resolve(guard: &Guard, host: &str) -> Result<Vec<SocketAddr>, EndpointError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| EndpointError::Unresolved)?
        .collect();
    if addrs.is_empty() {
        return Err(EndpointError::Unresolved);
    }
    if addrs.iter().any(|a| !guard.address_allowed(a.ip())) {
        return Err(EndpointError::Private);
    }
    Ok(addrs)
}

/// The outbound client's resolver: the guard's rule at connect time.
#[derive(Debug, Clone)]
pub struct Resolver(pub Arc<Guard>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = resolve(&guard, name.as_str())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is an ordinary internet address (not private, loopback,
/// link-local, shared, documentation, benchmarking, multicast, reserved or
/// unspecified). Conservative: anything special is refused.
pub fn is_global(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_unspecified()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 to anywhere
                || (s[0] == 0x2002) // 6to4 to anywhere
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(
            &[
                "fcm.googleapis.com".into(),
                "*.notify.windows.com".into(),
                "localhost:8443".into(),
            ],
            &["127.0.0.1".parse().expect("ip")],
        )
    }

    #[test]
    fn only_https_endpoints_of_listed_services_pass_the_form_check() {
        let g = guard();
        assert!(g
            .check_url("https://fcm.googleapis.com/fcm/send/abc")
            .is_ok());
        assert!(g
            .check_url("https://wns2-by3p.notify.windows.com/w/?token=x")
            .is_ok());
        assert!(g.check_url("https://localhost:8443/push/1").is_ok());
        for (bad, why) in [
            ("http://fcm.googleapis.com/x", EndpointError::NotHttps),
            ("https://user@fcm.googleapis.com/x", EndpointError::NotHttps),
            ("ftp://fcm.googleapis.com/x", EndpointError::NotHttps),
            ("not a url", EndpointError::NotHttps),
            (
                "https://fcm.googleapis.com:8080/x",
                EndpointError::NotAllowed,
            ),
            (
                "https://fcm.googleapis.com.evil.example/x",
                EndpointError::NotAllowed,
            ),
            ("https://notify.windows.com/x", EndpointError::NotAllowed),
            (
                "https://evilnotify.windows.com/x",
                EndpointError::NotAllowed,
            ),
            ("https://localhost/x", EndpointError::NotAllowed),
            ("https://127.0.0.1:8443/x", EndpointError::NotAllowed),
            ("https://169.254.169.254/latest", EndpointError::NotAllowed),
        ] {
            assert_eq!(g.check_url(bad).err(), Some(why), "{bad}");
        }
    }

    #[test]
    fn special_addresses_are_refused_unless_named() {
        let g = Guard::new(&["10.0.0.5:443".into(), "[::1]:443".into()], &[]);
        assert_eq!(
            g.check_url("https://10.0.0.5/x").err(),
            Some(EndpointError::Private),
            "listed, but a private address needs private_ok too"
        );
        assert_eq!(
            g.check_url("https://[::1]/x").err(),
            Some(EndpointError::Private)
        );
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_global(a.parse().expect("ip")), "{a}");
        }
        for a in ["142.250.196.10", "2404:6800:4004:81b::200a"] {
            assert!(is_global(a.parse().expect("ip")), "{a}");
        }
        assert!(guard().address_allowed("127.0.0.1".parse().expect("ip")));
        assert!(!guard().address_allowed("127.0.0.2".parse().expect("ip")));
    }

    #[tokio::test]
    async fn a_listed_name_that_resolves_to_loopback_is_refused() {
        let g = Guard::new(&["localhost:8443".into()], &[]);
        assert_eq!(
            g.check("https://localhost:8443/x").await.err(),
            Some(EndpointError::Private)
        );
    }
}
