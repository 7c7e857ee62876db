//! Spec pieces shared by `Agent` and `Session`: limits, the egress policy, and the schema helper
//! for opaque JSON fields. Allowlist entries are parsed by `proxy_config::HostPattern`, the one
//! parser the operator and the sidecar share.

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
