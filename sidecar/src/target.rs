//! The destination a request names: host and port, parsed from an authority (`CONNECT` target,
//! absolute URI, `Host`) and normalized exactly once.
//!
//! A [`Target`] can only be built by [`Target::parse`], which runs the one host normalization
//! ([`normalize_host`]); the allowlist, the credential binding, the resolver and the dialler all
//! take a `Target`, so they see the same name. [`request_names`] is the one check that a request's
//! `Host` and URI authority name the target, and [`Target::write_host`] the one place the `Host`
//! sent upstream is written. Nothing here resolves, dials or logs.

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri, Version};
use sealpod_resources::proxy_config::normalize_host;

/// A destination named by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Normalized ([`normalize_host`]) host, without IPv6 brackets.
    host: String,
    port: u16,
}

impl Target {
    /// Parses `host[:port]` (an authority), with `default_port` when none is given. `None` for
    /// userinfo (`user@host`), for a port that is not a number of 0-65535, for brackets around
    /// anything but an IPv6 address (or anywhere else), and for a host [`normalize_host`] refuses
    /// (`a..`, `a..b`, `.a`).
    pub fn parse(authority: &str, default_port: u16) -> Option<Self> {
        let authority: http::uri::Authority = authority.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host();
        // `http` accepts what follows the host loosely (`a[::1]x`, `host:99999`) and reports a
        // port it cannot read as no port: refused here, or the default port would be dialled.
        let port = match &authority.as_str()[host.len()..] {
            "" | ":" => default_port,
            rest => {
                let digits = rest.strip_prefix(':')?;
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok()?
            }
        };
        // Brackets are authority syntax around an IPv6 literal, not part of the name; nothing
        // else may stand in them, and they stand nowhere else.
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(literal) => {
                literal.parse::<std::net::Ipv6Addr>().ok()?;
                literal
            }
            None if host.contains(['[', ']']) => return None,
            None => host,
        };
        Some(Self {
            host: normalize_host(host)?,
            port,
        })
    }

    /// The normalized host name or IP literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True when `name` (an SNI, say) normalizes to this target's host.
    pub fn is_named_by(&self, name: &str) -> bool {
        normalize_host(name).is_some_and(|n| n == self.host)
    }

    /// `host[:port]` as written in a `Host` header or HTTP/2 `:authority`: IPv6 in brackets, the
    /// port left out when it is `default_port`.
    pub fn authority(&self, default_port: u16) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Replaces every `Host` in `headers` with one naming this target. The upstream only ever
    /// sees a `Host` the proxy wrote: relaying the client's would let a second `Host`, or a
    /// spelling the upstream reads differently, choose where a swapped-in key goes.
    pub fn write_host(&self, headers: &mut HeaderMap, default_port: u16) {
        headers.remove(HOST);
        // A normalized host and a port always form a valid header value; if one ever did not,
        // sending no Host makes the upstream refuse the request instead of routing it elsewhere.
        if let Ok(value) = HeaderValue::from_str(&self.authority(default_port)) {
            headers.insert(HOST, value);
        }
    }
}

/// True when a request names `target` and nothing else: at most one `Host` header (exactly one in
/// HTTP/1.1, RFC 9112 §3.2), at least one of `Host` and the URI authority (an absolute-form
/// target, or HTTP/2's `:authority`), and each of them that is present names `target`
/// (`default_port` when it has no port). Checking only one of them is host fronting: the other
/// one is what a next hop may route by.
pub(crate) fn request_names(
    target: &Target,
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    default_port: u16,
) -> bool {
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() || (host.is_none() && version == Version::HTTP_11) {
        return false;
    }
    let names = |raw: &str| Target::parse(raw, default_port).is_some_and(|t| t == *target);
    let host_ok = host.is_none_or(|h| h.to_str().is_ok_and(names));
    let authority_ok = uri.authority().is_none_or(|a| names(a.as_str()));
    (host.is_some() || uri.authority().is_some()) && host_ok && authority_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("API.Example.com.:8443", 443).expect("t");
        assert_eq!((t.host(), t.port()), ("api.example.com", 8443));
        let t = Target::parse("[::1]", 443).expect("t");
        assert_eq!((t.host(), t.port()), ("::1", 443));
        assert_eq!(Target::parse("example.com", 80).expect("t").port(), 80);
        assert!(Target::parse("user@example.com", 80).is_none());
        assert!(Target::parse("", 80).is_none());
        for bad in [
            "example.com..",
            "example.com..:443",
            "a..example.com",
            ".example.com",
            ".:443",
        ] {
            assert!(Target::parse(bad, 443).is_none(), "{bad}");
        }
        assert!(t.is_named_by("::1"));
        let t = Target::parse("api.example.com", 443).expect("t");
        assert!(t.is_named_by("API.example.com."));
        assert!(!t.is_named_by("api.example.com.."));
        assert!(!t.is_named_by("other.example.com"));
    }

    #[test]
    fn unreadable_ports_and_stray_brackets_are_refused() {
        // Found by the `sidecar_request_head` fuzz target: `http` reads the first authority's
        // host as `connect&aap.noap[` and its port as absent, and the second's host as
        // `[r%dacted]`, which would be written back without its brackets.
        assert!(Target::parse("CONNECT&aap.noap[::1]80enai.com4", 443).is_none());
        assert!(Target::parse("[r%dacted]:", 443).is_none());
        for bad in [
            "[v1.fe]",
            "[fe80::1%25eth0]",
            "[127.0.0.1]",
            "example.com:99999",
            "example.com:+443",
            "example.com:44x",
            "a[b]",
            "a[b]:443",
            "[::1]x",
        ] {
            assert!(Target::parse(bad, 443).is_none(), "{bad}");
        }
        let t = Target::parse("example.com:", 443).expect("an empty port is the default");
        assert_eq!((t.host(), t.port()), ("example.com", 443));
        let t = Target::parse("[::1]:8443", 443).expect("IPv6 literal with a port");
        assert_eq!((t.host(), t.port()), ("::1", 8443));
    }

    #[test]
    fn authorities_are_written_back() {
        let t = |a: &str| Target::parse(a, 443).expect("target");
        assert_eq!(t("API.example.com.").authority(443), "api.example.com");
        assert_eq!(
            t("api.example.com:8443").authority(443),
            "api.example.com:8443"
        );
        assert_eq!(t("[::1]:8443").authority(443), "[::1]:8443");
        assert_eq!(t("[::1]").authority(443), "[::1]");
        assert_eq!(t("example.com:443").authority(80), "example.com:443");
        let mut headers = HeaderMap::new();
        headers.append(HOST, HeaderValue::from_static("evil.test"));
        headers.append(HOST, HeaderValue::from_static("EXAMPLE.com"));
        t("example.com:8443").write_host(&mut headers, 443);
        let hosts: Vec<_> = headers.get_all(HOST).iter().collect();
        assert_eq!(hosts, vec!["example.com:8443"]);
    }

    #[test]
    fn a_request_must_name_the_target_and_nothing_else() {
        let target = Target::parse("api.example.com", 443).expect("target");
        let origin: Uri = "/v1/x".parse().expect("uri");
        let absolute: Uri = "https://api.example.com/v1/x".parse().expect("uri");
        let other: Uri = "https://evil.test/v1/x".parse().expect("uri");
        let h1 = Version::HTTP_11;
        let h2 = Version::HTTP_2;
        let cases: &[(Version, &Uri, &[&str], bool, &str)] = &[
            (h1, &origin, &["api.example.com"], true, "origin form"),
            (
                h1,
                &origin,
                &["API.Example.com.:443"],
                true,
                "spelled differently",
            ),
            (h1, &absolute, &["api.example.com"], true, "absolute form"),
            (
                h1,
                &absolute,
                &["evil.test"],
                false,
                "absolute form, foreign Host",
            ),
            (
                h1,
                &other,
                &["api.example.com"],
                false,
                "foreign absolute form",
            ),
            (
                h1,
                &origin,
                &["api.example.com", "evil.test"],
                false,
                "two Hosts",
            ),
            (
                h1,
                &origin,
                &["api.example.com", "api.example.com"],
                false,
                "a repeated Host",
            ),
            (
                h1,
                &origin,
                &["api.example.com:8443"],
                false,
                "another port",
            ),
            (h1, &origin, &["api.example.com.."], false, "invalid name"),
            (h1, &origin, &["user@api.example.com"], false, "userinfo"),
            (h1, &origin, &[], false, "HTTP/1.1 without Host"),
            (
                h1,
                &absolute,
                &[],
                false,
                "HTTP/1.1 without Host, absolute form",
            ),
            (
                Version::HTTP_10,
                &absolute,
                &[],
                true,
                "HTTP/1.0, absolute form",
            ),
            (
                Version::HTTP_10,
                &origin,
                &[],
                false,
                "HTTP/1.0, nothing named",
            ),
            (h2, &absolute, &[], true, ":authority alone"),
            (
                h2,
                &absolute,
                &["api.example.com"],
                true,
                ":authority and Host agree",
            ),
            (
                h2,
                &absolute,
                &["evil.test"],
                false,
                ":authority and Host disagree",
            ),
            (h2, &other, &[], false, "foreign :authority"),
            (
                h2,
                &absolute,
                &["api.example.com", "api.example.com"],
                false,
                "two Hosts",
            ),
            (h2, &origin, &[], false, "HTTP/2 naming nothing"),
        ];
        for (version, uri, hosts, want, case) in cases {
            let mut headers = HeaderMap::new();
            for h in *hosts {
                headers.append(HOST, HeaderValue::from_str(h).expect("value"));
            }
            assert_eq!(
                request_names(&target, *version, uri, &headers, 443),
                *want,
                "{case}"
            );
        }
    }
}
