//! The allowlist decision: what the proxy does with a destination, decided from the host name and
//! port alone, before any DNS lookup or dial.
//!
//! Pure: `decide(host, port)` never resolves, connects or reads a file. It must never allow a
//! host that no `allow` entry or credential names.

use sealpod_resources::proxy_config::HostPattern;

/// What to do with a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A credential host: terminate TLS, swap tokens for these credentials (indices).
    Intercept(Vec<usize>),
    /// An allowlisted host without credentials: a plain tunnel.
    Tunnel,
    /// Not on the allowlist.
    Deny,
}

/// The allowlist: `allow` entries plus every credential's hosts.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    allow: Vec<HostPattern>,
    credential_hosts: Vec<Vec<HostPattern>>,
}

impl Allowlist {
    /// Builds the allowlist; `credential_hosts[i]` are the hosts of credential `i`.
    pub fn new(allow: Vec<HostPattern>, credential_hosts: Vec<Vec<HostPattern>>) -> Self {
        Self {
            allow,
            credential_hosts,
        }
    }

    /// Decides for `host` (any case, optional trailing dot or IPv6 brackets) and `port`.
    pub fn decide(&self, host: &str, port: u16) -> Decision {
        let host = normalize_host(host);
        let creds: Vec<usize> = self
            .credential_hosts
            .iter()
            .enumerate()
            .filter(|(_, hosts)| hosts.iter().any(|p| p.matches(&host, port)))
            .map(|(i, _)| i)
            .collect();
        if !creds.is_empty() {
            Decision::Intercept(creds)
        } else if self.allow.iter().any(|p| p.matches(&host, port)) {
            Decision::Tunnel
        } else {
            Decision::Deny
        }
    }

    /// True when credential `index` may be sent to `host:port`.
    pub fn credential_bound(&self, index: usize, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        self.credential_hosts
            .get(index)
            .is_some_and(|hosts| hosts.iter().any(|p| p.matches(&host, port)))
    }
}

/// Lowercase, without a trailing dot or IPv6 brackets.
pub fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Allowlist {
        let p = |s: &str| HostPattern::parse(s).expect("pattern");
        Allowlist::new(
            vec![p("github.com"), p("*.pypi.org"), p("example.com:8080")],
            vec![vec![p("api.anthropic.com")], vec![p("*.openai.com:443")]],
        )
    }

    #[test]
    fn decisions_table() {
        let l = list();
        let cases: &[(&str, u16, Decision)] = &[
            ("api.anthropic.com", 443, Decision::Intercept(vec![0])),
            ("API.Anthropic.COM.", 443, Decision::Intercept(vec![0])),
            ("api.anthropic.com", 80, Decision::Intercept(vec![0])),
            ("api.anthropic.com", 8443, Decision::Deny),
            ("api.openai.com", 443, Decision::Intercept(vec![1])),
            ("api.openai.com", 80, Decision::Deny),
            ("openai.com", 443, Decision::Deny),
            ("github.com", 443, Decision::Tunnel),
            ("github.com", 80, Decision::Tunnel),
            ("github.com", 22, Decision::Deny),
            ("gist.github.com", 443, Decision::Deny),
            ("files.pypi.org", 443, Decision::Tunnel),
            ("pypi.org", 443, Decision::Deny),
            ("example.com", 8080, Decision::Tunnel),
            ("example.com", 443, Decision::Deny),
            ("evil.com", 443, Decision::Deny),
            ("169.254.169.254", 80, Decision::Deny),
            ("[::1]", 443, Decision::Deny),
            ("", 443, Decision::Deny),
        ];
        for (host, port, want) in cases {
            assert_eq!(&l.decide(host, *port), want, "{host}:{port}");
        }
        assert!(l.credential_bound(0, "api.anthropic.com", 443));
        assert!(!l.credential_bound(0, "github.com", 443));
        assert!(!l.credential_bound(7, "api.anthropic.com", 443));
    }
}
