//! Spec pieces shared by `Agent` and `Session`: limits, the egress policy and its host patterns,
//! and the schema helper for opaque JSON fields.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern of one egress allowlist entry: `host`, `*.suffix`, either with an optional `:port`.
/// A bare `*` (any host) does not match: sealpod has no "allow everything" entry.
pub const HOST_PATTERN_REGEX: &str = r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$";

/// Pattern of a credential's bound host: a host name or `*.suffix`, no port.
pub const BOUND_HOST_REGEX: &str =
    r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$";

/// Per-turn and per-session limits (`limits` in the `/v3` API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Token budget of the session, checked before each model call (`budget_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens: Option<u64>,
    /// Wall-clock limit of one turn in seconds (`deadline_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub turn_seconds: Option<u32>,
    /// Maximum number of turns of the session, steer-started ones included (`max_turns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub turns: Option<u32>,
}

impl Limits {
    /// Each field of `self` where set, else the field of `defaults`.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            tokens: self.tokens.or(defaults.tokens),
            turn_seconds: self.turn_seconds.or(defaults.turn_seconds),
            turns: self.turns.or(defaults.turns),
        }
    }
}

/// Whether the proxy refuses (`enforce`) or only reports (`report`) what is not allowlisted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EgressMode {
    /// Refuse every destination that is not allowlisted.
    #[default]
    Enforce,
    /// Allow, but log and count what enforce would refuse (for learning an allowlist). The
    /// non-public address guard still applies.
    Report,
}

/// The egress policy of an agent's sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressPolicy {
    /// Allowlisted destinations: `host`, `*.suffix`, with an optional `:port` (default ports 443
    /// and 80). A credential's bound hosts are always allowed in addition.
    #[serde(default)]
    #[schemars(length(max = 256), inner(regex(pattern = HOST_PATTERN_REGEX)))]
    pub allow: Vec<String>,
    /// `enforce` (default) or `report`.
    #[serde(default)]
    pub mode: EgressMode,
}

/// A parsed allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// `*.suffix` form: matches any host strictly under `host`.
    pub wildcard: bool,
    /// The host, or the suffix without `*.`; lowercase.
    pub host: String,
    /// The port, if one was given.
    pub port: Option<u16>,
}

/// Why an allowlist entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    /// `*` alone would allow every host.
    #[error("`*` would allow every host; list hosts or `*.suffix` entries")]
    AllowAll,
    /// Not of the form `host`, `*.suffix`, optionally with `:port`.
    #[error("`{0}` is not `host`, `*.suffix` or either with `:port` (lowercase DNS names)")]
    Syntax(String),
    /// The port is 0 or above 65535.
    #[error("`{0}` has a port outside 1-65535")]
    Port(String),
}

impl HostPattern {
    /// Parses an allowlist entry.
    pub fn parse(entry: &str) -> Result<HostPattern, HostPatternError> {
        if entry == "*" || entry.starts_with("*:") {
            return Err(HostPatternError::AllowAll);
        }
        let (host_part, port) = match entry.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| HostPatternError::Port(entry.to_owned()))?;
                if port == 0 {
                    return Err(HostPatternError::Port(entry.to_owned()));
                }
                (host, Some(port))
            }
            None => (entry, None),
        };
        let (wildcard, host) = match host_part.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host_part),
        };
        if !is_dns_name(host) {
            return Err(HostPatternError::Syntax(entry.to_owned()));
        }
        Ok(HostPattern {
            wildcard,
            host: host.to_owned(),
            port,
        })
    }

    /// True when `host` (lowercase, no trailing dot) and `port` are covered by this entry. Without
    /// an explicit port the entry covers 443 and 80.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 443 || port == 80,
        };
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        port_ok && host_ok
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// True for a lowercase DNS name of labels `[a-z0-9-]`, 1-63 chars each, no leading or trailing
/// `-`, at most 253 chars in all.
pub fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Schema of an opaque JSON object kept verbatim (`metadata`, an input envelope).
pub fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_parse_and_match() {
        let exact = HostPattern::parse("api.anthropic.com").expect("valid");
        assert!(exact.matches("api.anthropic.com", 443));
        assert!(exact.matches("api.anthropic.com", 80));
        assert!(!exact.matches("api.anthropic.com", 8443));
        assert!(!exact.matches("xapi.anthropic.com", 443));

        let wild = HostPattern::parse("*.github.com:8443").expect("valid");
        assert!(wild.matches("api.github.com", 8443));
        assert!(wild.matches("a.b.github.com", 8443));
        assert!(
            !wild.matches("github.com", 8443),
            "suffix itself is not covered"
        );
        assert!(!wild.matches("evilgithub.com", 8443));
        assert!(!wild.matches("api.github.com", 443));
        assert_eq!(wild.to_string(), "*.github.com:8443");
    }

    #[test]
    fn bad_host_patterns_are_refused_with_a_reason() {
        assert_eq!(HostPattern::parse("*"), Err(HostPatternError::AllowAll));
        assert_eq!(HostPattern::parse("*:443"), Err(HostPatternError::AllowAll));
        for bad in [
            "",
            "*.",
            "Example.com",
            "a..b",
            "-a.com",
            "a_b.com",
            "**.a.com",
            "a.*.com",
        ] {
            assert!(
                matches!(HostPattern::parse(bad), Err(HostPatternError::Syntax(_))),
                "{bad}"
            );
        }
        for bad in ["a.com:0", "a.com:65536", "a.com:x"] {
            assert!(
                matches!(HostPattern::parse(bad), Err(HostPatternError::Port(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_fall_back_field_by_field() {
        let agent = Limits {
            tokens: Some(100),
            turn_seconds: Some(60),
            turns: None,
        };
        let session = Limits {
            tokens: None,
            turn_seconds: Some(5),
            turns: Some(2),
        };
        assert_eq!(
            session.or(&agent),
            Limits {
                tokens: Some(100),
                turn_seconds: Some(5),
                turns: Some(2)
            }
        );
    }
}
