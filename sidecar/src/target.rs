//! The destination a request names: host and port, parsed from an authority (`CONNECT` target,
//! absolute URI, `Host`) and normalized exactly once.
//!
//! A [`Target`] can only be built by [`Target::parse`], which runs the one host normalization
//! ([`normalize_host`]); the allowlist, the credential binding, the resolver and the dialler all
//! take a `Target`, so they see the same name. Nothing here resolves, dials or logs.

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
    /// userinfo (`user@host`) and for a host [`normalize_host`] refuses (`a..`, `a..b`, `.a`).
    pub fn parse(authority: &str, default_port: u16) -> Option<Self> {
        let authority: http::uri::Authority = authority.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host();
        // Brackets are authority syntax around an IPv6 literal, not part of the name.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Some(Self {
            host: normalize_host(host)?,
            port: authority.port_u16().unwrap_or(default_port),
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
}
