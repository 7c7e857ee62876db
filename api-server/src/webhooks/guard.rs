//! Outbound safety of webhook URLs: HTTPS only, and no non-public address (the sidecar's
//! classification: private, loopback, link-local, metadata, CGNAT, NAT64/6to4 …) on any address
//! the host resolves to. The dialler connects to the address checked here, never to a second
//! lookup. `allow_insecure` (local mode, tests) admits `http://` and loopback addresses only;
//! every other non-public range stays refused. Never dial an address this module did not pass.

use std::net::{IpAddr, SocketAddr};

use url::Url;

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

/// Whether one address may be dialled.
pub fn check_ip(ip: IpAddr, allow_insecure: bool) -> Result<(), Refused> {
    if allow_insecure && ip.is_loopback() {
        return Ok(());
    }
    match sealpod_sidecar::ssrf::classify(ip) {
        None => Ok(()),
        Some(range) => Err(Refused::NonPublic(range)),
    }
}

/// Resolves the URL's host and checks every address; returns the first one, the one to dial.
/// A host with any refused address is refused (a name must not mix public and private answers).
pub async fn resolve(url: &Url, allow_insecure: bool) -> Result<SocketAddr, Refused> {
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
        check_ip(a.ip(), allow_insecure)?;
    }
    Ok(first)
}

/// [`parse`] then [`resolve`].
pub async fn check(raw: &str, allow_insecure: bool) -> Result<(Url, SocketAddr), Refused> {
    let url = parse(raw, allow_insecure)?;
    let addr = resolve(&url, allow_insecure).await?;
    Ok((url, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_non_public_literals_and_names() {
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
                matches!(check(url, false).await, Err(Refused::NonPublic(_))),
                "{url}"
            );
        }
        assert_eq!(check("http://8.8.8.8/", false).await, Err(Refused::Scheme));
        assert_eq!(check("ftp://8.8.8.8/", true).await, Err(Refused::Scheme));
        assert_eq!(
            check("https://u:p@8.8.8.8/", false).await,
            Err(Refused::UserInfo)
        );
        assert_eq!(check("not a url", false).await, Err(Refused::Invalid));
        assert!(check("https://8.8.8.8/hook", false).await.is_ok());
    }

    #[tokio::test]
    async fn insecure_admits_http_and_loopback_only() {
        assert!(check("http://127.0.0.1:9/h", true).await.is_ok());
        assert!(check("http://localhost:9/h", true).await.is_ok());
        assert!(matches!(
            check("http://10.0.0.1/h", true).await,
            Err(Refused::NonPublic(_))
        ));
        assert!(matches!(
            check("http://169.254.169.254/h", true).await,
            Err(Refused::NonPublic(_))
        ));
    }
}
