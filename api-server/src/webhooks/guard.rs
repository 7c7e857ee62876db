//! Outbound safety of webhook URLs: HTTPS only, no non-public address (the sidecar's
//! classification: private, loopback, link-local, metadata, CGNAT, NAT64/6to4 …) and none of the
//! platform's own listeners on any address the host resolves to. The dialler connects to the
//! address checked here, never to a second lookup. `allow_insecure` (local mode, tests) admits
//! `http://` and loopback addresses only; every other non-public range stays refused, and the
//! platform's listeners stay refused in every mode (a delivery's status code would otherwise
//! tell what listens there). Never dial an address this module did not pass.

use std::net::{IpAddr, SocketAddr};

use url::Url;

use super::Config;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a URL, or no host.
    #[error("url is not a valid absolute URL")]
    Invalid,
    /// Credentials in the URL.
    #[error("url must not carry a user or password")]
    UserInfo,
    /// Not `https` (or `http` with the insecure switch).
    #[error("url must use https")]
    Scheme,
    /// The host does not resolve.
    #[error("url host does not resolve")]
    Unresolved,
    /// A non-public address.
    #[error("url resolves to a non-public address ({0})")]
    NonPublic(&'static str),
    /// One of the platform's own listeners.
    #[error("url points at one of the platform's own listeners")]
    PlatformListener,
}

/// Parses and checks the static parts of a destination URL.
pub fn parse(raw: &str, allow_insecure: bool) -> Result<Url, Refused> {
    let url = Url::parse(raw).map_err(|_| Refused::Invalid)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(Refused::Scheme),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused::Invalid);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::UserInfo);
    }
    Ok(url)
}

/// True when dialling `dest` reaches a server listening on `listener`: the same port, and the
/// same address, or any loopback address when the listener is bound to the unspecified one
/// (`0.0.0.0`, `::`). Dialling the unspecified address reaches the local host. IPv4-mapped IPv6
/// addresses count as their IPv4 address.
pub fn reaches(listener: SocketAddr, dest: SocketAddr) -> bool {
    if listener.port() != dest.port() {
        return false;
    }
    let (l, d) = (listener.ip().to_canonical(), dest.ip().to_canonical());
    l == d || d.is_unspecified() || (l.is_unspecified() && d.is_loopback())
}

/// Whether one address may be dialled.
pub fn check_addr(addr: SocketAddr, config: &Config) -> Result<(), Refused> {
    if config.deny.iter().any(|listener| reaches(*listener, addr)) {
        return Err(Refused::PlatformListener);
    }
    check_ip(addr.ip(), config.allow_insecure)
}

fn check_ip(ip: IpAddr, allow_insecure: bool) -> Result<(), Refused> {
    if allow_insecure && ip.is_loopback() {
        return Ok(());
    }
    match sealpod_resources::address::classify(ip) {
        None => Ok(()),
        Some(range) => Err(Refused::NonPublic(range)),
    }
}

/// Resolves the URL's host and checks every address; returns the first one, the one to dial.
/// A host with any refused address is refused (a name must not mix public and private answers).
pub async fn resolve(url: &Url, config: &Config) -> Result<SocketAddr, Refused> {
    let port = url.port_or_known_default().ok_or(Refused::Invalid)?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| Refused::Unresolved)?
            .collect(),
        None => return Err(Refused::Invalid),
    };
    let first = *addrs.first().ok_or(Refused::Unresolved)?;
    for a in &addrs {
        check_addr(*a, config)?;
    }
    Ok(first)
}

/// [`parse`] then [`resolve`].
pub async fn check(raw: &str, config: &Config) -> Result<(Url, SocketAddr), Refused> {
    let url = parse(raw, config.allow_insecure)?;
    let addr = resolve(&url, config).await?;
    Ok((url, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(allow_insecure: bool, deny: &[&str]) -> Config {
        Config {
            allow_insecure,
            deny: deny.iter().map(|a| a.parse().expect("addr")).collect(),
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn refuses_non_public_literals_and_names() {
        let secure = mode(false, &[]);
        for url in [
            "https://127.0.0.1/h",
            "https://[::1]/h",
            "https://10.1.2.3/h",
            "https://192.168.0.1/h",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/h",
            "https://[fd00::1]/h",
            "https://[::ffff:127.0.0.1]/h",
            "https://localhost/h",
        ] {
            assert!(
                matches!(check(url, &secure).await, Err(Refused::NonPublic(_))),
                "{url}"
            );
        }
        assert_eq!(
            check("http://8.8.8.8/", &secure).await,
            Err(Refused::Scheme)
        );
        assert_eq!(
            check("ftp://8.8.8.8/", &mode(true, &[])).await,
            Err(Refused::Scheme)
        );
        assert_eq!(
            check("https://u:p@8.8.8.8/", &secure).await,
            Err(Refused::UserInfo)
        );
        assert_eq!(check("not a url", &secure).await, Err(Refused::Invalid));
        assert!(check("https://8.8.8.8/hook", &secure).await.is_ok());
    }

    #[tokio::test]
    async fn insecure_admits_http_and_loopback_only() {
        let insecure = mode(true, &[]);
        assert!(check("http://127.0.0.1:9/h", &insecure).await.is_ok());
        assert!(check("http://localhost:9/h", &insecure).await.is_ok());
        assert!(matches!(
            check("http://10.0.0.1/h", &insecure).await,
            Err(Refused::NonPublic(_))
        ));
        assert!(matches!(
            check("http://169.254.169.254/h", &insecure).await,
            Err(Refused::NonPublic(_))
        ));
    }

    #[test]
    fn which_destinations_reach_a_listener() {
        let table = [
            ("127.0.0.1:9090", "127.0.0.1:9090", true),
            ("127.0.0.1:9090", "127.0.0.1:9091", false),
            ("127.0.0.1:9090", "127.0.0.2:9090", false),
            ("127.0.0.1:9090", "[::ffff:127.0.0.1]:9090", true),
            ("127.0.0.1:9090", "0.0.0.0:9090", true),
            ("127.0.0.1:9090", "[::]:9090", true),
            ("0.0.0.0:8080", "127.0.0.1:8080", true),
            ("0.0.0.0:8080", "127.9.9.9:8080", true),
            ("0.0.0.0:8080", "[::1]:8080", true),
            ("[::]:8080", "127.0.0.1:8080", true),
            ("0.0.0.0:8080", "8.8.8.8:8080", false),
            ("[::1]:8081", "[::1]:8081", true),
            ("[::1]:8081", "127.0.0.1:8081", false),
            ("203.0.113.5:443", "203.0.113.5:443", true),
            ("203.0.113.5:443", "203.0.113.6:443", false),
        ];
        for (listener, dest, want) in table {
            let (l, d) = (listener.parse().expect("l"), dest.parse().expect("d"));
            assert_eq!(reaches(l, d), want, "{listener} <- {dest}");
        }
    }

    #[tokio::test]
    async fn the_platform_listeners_are_refused_in_every_mode() {
        let config = mode(true, &["127.0.0.1:9090", "0.0.0.0:8080", "8.8.8.8:8443"]);
        for url in [
            "http://127.0.0.1:9090/metrics",
            "http://localhost:9090/metrics",
            "http://127.0.0.1:8080/v3/agents",
            "http://[::1]:8080/v3/agents",
            "https://8.8.8.8:8443/h",
        ] {
            assert_eq!(
                check(url, &config).await,
                Err(Refused::PlatformListener),
                "{url}"
            );
        }
        assert!(check("http://127.0.0.1:9091/h", &config).await.is_ok());
        assert!(check("https://8.8.8.8/h", &config).await.is_ok());
        let secure = mode(false, &["8.8.8.8:443"]);
        assert_eq!(
            check("https://8.8.8.8/h", &secure).await,
            Err(Refused::PlatformListener)
        );
    }
}
