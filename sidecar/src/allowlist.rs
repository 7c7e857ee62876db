//! The allowlist decision: what the proxy does with a destination, decided from the host name and
//! port alone, before any DNS lookup or dial.
//!
//! Pure: `decide(target)` never resolves, connects or reads a file. It must never allow a
//! host that no `allow` entry or credential names.

use sealpod_resources::proxy_config::HostPattern;

use crate::target::Target;

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

    /// Decides for `target` (its host is already normalized: matched exactly as it is resolved).
    pub fn decide(&self, target: &Target) -> Decision {
        let (host, port) = (target.host(), target.port());
        let creds: Vec<usize> = self
            .credential_hosts
            .iter()
            .enumerate()
            .filter(|(_, hosts)| hosts.iter().any(|p| p.matches(host, port)))
            .map(|(i, _)| i)
            .collect();
        if !creds.is_empty() {
            Decision::Intercept(creds)
        } else if self.allow.iter().any(|p| p.matches(host, port)) {
            Decision::Tunnel
        } else {
            Decision::Deny
        }
    }

    /// True when credential `index` may be sent to `target`.
    pub fn credential_bound(&self, index: usize, target: &Target) -> bool {
        self.credential_hosts.get(index).is_some_and(|hosts| {
            hosts
                .iter()
                .any(|p| p.matches(target.host(), target.port()))
        })
    }
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
            ("api.anthropic.com.", 443, Decision::Intercept(vec![0])),
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
        ];
        for (host, port, want) in cases {
            let target = Target::parse(&format!("{host}:{port}"), 443).expect("target");
            assert_eq!(&l.decide(&target), want, "{host}:{port}");
        }
        let t = |a: &str| Target::parse(a, 443).expect("target");
        assert!(l.credential_bound(0, &t("api.anthropic.com")));
        assert!(!l.credential_bound(0, &t("github.com")));
        assert!(!l.credential_bound(7, &t("api.anthropic.com")));
    }
}
