//! Wire types of `/v3` requests (snake_case, as the SDK sends them; decoded by `input`). Opaque
//! subtrees (`metadata`, `input`, `envelope`) stay `serde_json::Value` and are kept verbatim.
//! Validation lives here too, so the handlers only translate; every user-given name, key or
//! label also passes `input::check_label`.

use sealpod_resources::common::Limits;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ApiError;
use crate::input::check_label;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `limits` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LimitsDto {
    /// Token budget.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Seconds per turn.
    #[serde(default)]
    pub turn_seconds: Option<u32>,
    /// Turns per session.
    #[serde(default)]
    pub turns: Option<u32>,
}

impl LimitsDto {
    /// Checks the ranges and converts.
    pub fn validate(&self) -> Result<Limits, ApiError> {
        if self.tokens == Some(0) {
            return Err(ApiError::invalid(
                "limits.tokens",
                "limits.tokens must be at least 1",
            ));
        }
        if let Some(t) = self.turn_seconds
            && !(1..=86_400).contains(&t)
        {
            return Err(ApiError::invalid(
                "limits.turn_seconds",
                "limits.turn_seconds must be 1-86400",
            ));
        }
        if let Some(t) = self.turns
            && !(1..=100_000).contains(&t)
        {
            return Err(ApiError::invalid(
                "limits.turns",
                "limits.turns must be 1-100000",
            ));
        }
        Ok(Limits {
            tokens: self.tokens,
            turn_seconds: self.turn_seconds,
            turns: self.turns,
        })
    }
}

/// `POST /v3/agents`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateAgent {
    /// Unique per tenant.
    pub name: Option<String>,
    /// System prompt.
    pub prompt: Option<String>,
    /// `provider/model`.
    pub model: Option<String>,
    /// Runtime (default `claude`).
    pub runtime: Option<String>,
    /// Inline provider key (becomes a credential).
    pub key: Option<String>,
    /// `managed` or `cred_…`.
    pub credential: Option<String>,
    /// Default limits.
    pub limits: Option<LimitsDto>,
}

/// `PATCH /v3/agents/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateAgent {
    /// New prompt (new revision).
    pub prompt: Option<String>,
    /// New model (new revision).
    pub model: Option<String>,
    /// Rotates (or creates) the attached credential.
    pub key: Option<String>,
    /// `managed`, `cred_…`, or null for the org default.
    #[serde(default, deserialize_with = "double_option")]
    pub credential: Option<Option<String>>,
    /// New default limits.
    pub limits: Option<LimitsDto>,
    /// Immutable: refused when present.
    pub runtime: Option<Value>,
    /// Renames are not supported: refused when different.
    pub name: Option<String>,
}

/// `POST /v3/sessions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateSession {
    /// `agt_…`
    pub agent: Option<String>,
    /// A string or an envelope object.
    pub input: Option<Value>,
    /// Per-session model override (same provider).
    pub model: Option<String>,
    /// Get-or-create routing key.
    pub key: Option<String>,
    /// Limits over the agent's.
    pub limits: Option<LimitsDto>,
    /// Opaque object.
    pub metadata: Option<Value>,
    /// Revision pin (only the active revision exists).
    pub revision: Option<Value>,
    /// Webhook URL (an inline destination; `routes::destinations::parse_inline`).
    pub webhook: Option<Value>,
    /// Inline destinations (no secret).
    pub destinations: Option<Value>,
    /// Repository sources (not supported).
    pub sources: Option<Value>,
}

/// `POST /v3/sessions/{id}/messages`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Steer {
    /// The text.
    pub text: Option<String>,
    /// Per-session idempotency key.
    pub idempotency_key: Option<String>,
    /// Or an envelope.
    pub envelope: Option<Value>,
}

/// `POST /v3/sessions/{id}/client-tokens`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MintToken {
    /// `read`, `steer`.
    pub scopes: Option<Vec<String>>,
    /// Seconds (60-86400).
    pub ttl: Option<i64>,
}

/// `POST /v3/credentials`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateCredential {
    /// `anthropic` (default) or `openai`, ….
    pub provider: Option<String>,
    /// The key (write-only).
    pub key: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Make it the provider's default.
    pub is_default: Option<bool>,
}

/// `PATCH /v3/credentials/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RotateCredential {
    /// The new key.
    pub key: Option<String>,
}

/// `PUT /v3/credentials/default`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SetDefault {
    /// `cred_…`
    pub credential: Option<String>,
    /// Must match the credential's provider when given.
    pub provider: Option<String>,
}

/// Query of list routes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    /// Page size.
    pub limit: Option<String>,
    /// Opaque cursor.
    pub cursor: Option<String>,
}

/// Query of `GET /v3/sessions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionsQuery {
    /// Agent id.
    pub agent: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Routing key.
    pub key: Option<String>,
    /// RFC 3339 lower bound on `created_at`.
    pub after: Option<String>,
    /// RFC 3339 upper bound on `created_at`.
    pub before: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Opaque cursor.
    pub cursor: Option<String>,
}

/// Query of the event routes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventsQuery {
    /// Seq cursor.
    pub after: Option<String>,
    /// Alias of `after`.
    pub cursor: Option<String>,
    /// Level threshold.
    pub level: Option<String>,
    /// Exact type or `prefix.*`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Turn filter.
    pub turn_id: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// `sse` for a stream.
    pub stream: Option<String>,
}

/// Query of `GET /v3/sessions/{id}/deliveries`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeliveriesQuery {
    /// Destination id.
    pub destination: Option<String>,
    /// Delivery status.
    pub status: Option<String>,
    /// Delivery id cursor.
    pub after: Option<String>,
    /// Alias of `after`.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<String>,
}

/// Checks a display name.
pub fn check_name(param: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be 1-128 characters"),
        ));
    }
    check_label(param, name)
}

/// Checks `provider/model`.
pub fn check_model(model: &str) -> Result<(), ApiError> {
    let ok = model.split_once('/').is_some_and(|(p, m)| {
        !p.is_empty()
            && p.len() <= 63
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !m.is_empty()
            && m.len() <= 200
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "model",
            "model must be `provider/model`, e.g. `anthropic/claude-sonnet-4-5`",
        ))
    }
}

/// Checks a runtime name.
pub fn check_runtime(runtime: &str) -> Result<(), ApiError> {
    let ok = !runtime.is_empty()
        && runtime.len() <= 32
        && runtime.as_bytes()[0].is_ascii_lowercase()
        && runtime
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "runtime",
            "runtime must be a lowercase name such as `claude`",
        ))
    }
}

/// Checks a provider name.
pub fn check_provider(provider: &str) -> Result<(), ApiError> {
    if check_runtime(provider).is_ok() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "provider",
            "provider must be a lowercase name such as `anthropic`",
        ))
    }
}

/// Checks a provider key (or a webhook secret). A control character in a key (a trailing NUL
/// or newline) would break the header it is sent in, or be cut there.
pub fn check_key(param: &str, key: &str) -> Result<(), ApiError> {
    if key.trim().is_empty() || key.len() > 4096 {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be a non-empty key"),
        ));
    }
    check_label(param, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rules() {
        assert!(check_model("anthropic/claude-sonnet-4-5").is_ok());
        assert!(check_model("claude").is_err());
        assert!(check_model("Anthropic/x").is_err());
        assert!(check_runtime("claude").is_ok());
        assert!(check_runtime("Claude").is_err());
        assert!(check_name("name", "reviewer").is_ok());
        assert!(check_name("name", "review\u{202e}er").is_err());
        assert!(check_key("key", "sk-ant-0000\0").is_err());
        assert!(
            LimitsDto {
                turns: Some(0),
                ..LimitsDto::default()
            }
            .validate()
            .is_err()
        );
        let patch: UpdateAgent = serde_json::from_str(r#"{"credential":null}"#).expect("json");
        assert_eq!(patch.credential, Some(None));
        let patch: UpdateAgent = serde_json::from_str("{}").expect("json");
        assert_eq!(patch.credential, None);
    }
}
