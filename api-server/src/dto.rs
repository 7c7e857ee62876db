//! Wire types of `/v3` requests (snake_case, as the SDK sends them; decoded by `input`). Opaque
//! subtrees (`metadata`, `input`, `envelope`) stay `serde_json::Value` and are kept verbatim.
//! Validation lives here too, so the handlers only translate; every user-given name, key or
//! label also passes `input::check_label`.

use sealpod_resources::agent::{DEFAULT_RUNTIME, MAX_PROMPT_BYTES, check_model_runtime};
use sealpod_resources::common::Limits;
use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::session::MAX_METADATA_BYTES;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ApiError;
use crate::input::{check_idempotency_key, check_label};

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `limits` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct LimitsDto {
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
    pub(crate) fn validate(&self) -> Result<Limits, ApiError> {
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
pub(crate) struct CreateAgent {
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

/// A `POST /v3/agents` body whose fields passed every check that needs no lookup.
#[derive(Debug, Clone)]
pub(crate) struct ValidAgent {
    /// Unique per tenant.
    pub name: String,
    /// System prompt (empty when not given).
    pub prompt: String,
    /// `provider/model`, valid for the runtime.
    pub model: String,
    /// Runtime.
    pub runtime: String,
    /// Inline provider key (never together with `credential`).
    pub key: Option<String>,
    /// `managed` or `cred_…`, not yet resolved.
    pub credential: Option<String>,
    /// Default limits.
    pub limits: Option<Limits>,
}

impl CreateAgent {
    /// Checks what needs no lookup: required fields, names, prompt size, model and runtime.
    pub(crate) fn validate(self) -> Result<ValidAgent, ApiError> {
        let name = self
            .name
            .ok_or_else(|| ApiError::invalid("name", "name is required"))?;
        check_name("name", &name)?;
        let prompt = self.prompt.unwrap_or_default();
        check_prompt(&prompt)?;
        let model = self
            .model
            .ok_or_else(|| ApiError::invalid("model", "model is required"))?;
        check_model(&model)?;
        let runtime = self.runtime.unwrap_or_else(|| DEFAULT_RUNTIME.to_owned());
        check_runtime(&runtime)?;
        check_model_runtime(&model, &runtime).map_err(|m| ApiError::invalid("model", m))?;
        if self.key.is_some() && self.credential.is_some() {
            return Err(ApiError::invalid(
                "credential",
                "key and credential are mutually exclusive",
            ));
        }
        let limits = self.limits.as_ref().map(LimitsDto::validate).transpose()?;
        if let Some(key) = &self.key {
            check_key("key", key)?;
        }
        Ok(ValidAgent {
            name,
            prompt,
            model,
            runtime,
            key: self.key,
            credential: self.credential,
            limits,
        })
    }
}

/// `PATCH /v3/agents/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct UpdateAgent {
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
pub(crate) struct CreateSession {
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

/// A `POST /v3/sessions` body whose fields passed every check that needs no lookup.
#[derive(Debug, Clone)]
pub(crate) struct ValidSession {
    /// `agt_…` (a well-formed id; the agent may still not exist).
    pub agent: String,
    /// A string or an envelope object (`session_input::input_to_body` checks its shape).
    pub input: Value,
    /// Per-session model override, not yet checked against the agent.
    pub model: Option<String>,
    /// Get-or-create routing key.
    pub key: Option<String>,
    /// Limits over the agent's.
    pub limits: Option<Limits>,
    /// An object of at most `MAX_METADATA_BYTES`, or `None`.
    pub metadata: Option<Value>,
    /// Revision pin, not yet checked against the agent.
    pub revision: Option<Value>,
    /// Webhook URL.
    pub webhook: Option<Value>,
    /// Inline destinations.
    pub destinations: Option<Value>,
}

impl CreateSession {
    /// Checks what needs no lookup: required fields, id shape, metadata, key and limits.
    pub(crate) fn validate(self) -> Result<ValidSession, ApiError> {
        let agent = self
            .agent
            .ok_or_else(|| ApiError::invalid("agent", "agent is required"))?;
        if Id::parse_kind(&agent, IdKind::Agent).is_err() {
            return Err(ApiError::invalid("agent", "agent must be an `agt_…` id"));
        }
        let input = self
            .input
            .ok_or_else(|| ApiError::invalid("input", "input is required"))?;
        if self.sources.as_ref().is_some_and(|s| !s.is_null()) {
            return Err(ApiError::unprocessable(
                "sources_not_supported",
                "sources are not supported",
            ));
        }
        let metadata = self.metadata.filter(|m| !m.is_null());
        if let Some(m) = &metadata {
            if !m.is_object() {
                return Err(ApiError::invalid("metadata", "metadata must be an object"));
            }
            if m.to_string().len() > MAX_METADATA_BYTES {
                return Err(ApiError::invalid(
                    "metadata",
                    "metadata must be at most 16 KiB",
                ));
            }
        }
        if let Some(k) = &self.key {
            check_idempotency_key("key", k)?;
        }
        Ok(ValidSession {
            agent,
            input,
            model: self.model,
            key: self.key,
            limits: self.limits.as_ref().map(LimitsDto::validate).transpose()?,
            metadata,
            revision: self.revision.filter(|r| !r.is_null()),
            webhook: self.webhook,
            destinations: self.destinations,
        })
    }
}

/// `POST /v3/sessions/{id}/messages`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Steer {
    /// The text.
    pub text: Option<String>,
    /// Per-session idempotency key.
    pub idempotency_key: Option<String>,
    /// Or an envelope.
    pub envelope: Option<Value>,
}

/// `POST /v3/sessions/{id}/client-tokens`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct MintToken {
    /// `read`, `steer`.
    pub scopes: Option<Vec<String>>,
    /// Seconds (60-86400).
    pub ttl: Option<i64>,
}

/// `POST /v3/credentials`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CreateCredential {
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
pub(crate) struct RotateCredential {
    /// The new key.
    pub key: Option<String>,
}

/// `PUT /v3/credentials/default`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SetDefault {
    /// `cred_…`
    pub credential: Option<String>,
    /// Must match the credential's provider when given.
    pub provider: Option<String>,
}

/// Query of list routes.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PageQuery {
    /// Page size.
    pub limit: Option<String>,
    /// Opaque cursor.
    pub cursor: Option<String>,
}

/// Query of `GET /v3/sessions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SessionsQuery {
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
pub(crate) struct EventsQuery {
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
pub(crate) struct DeliveriesQuery {
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
pub(crate) fn check_name(param: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be 1-128 characters"),
        ));
    }
    check_label(param, name)
}

/// Checks a prompt's size.
pub(crate) fn check_prompt(prompt: &str) -> Result<(), ApiError> {
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(ApiError::invalid(
            "prompt",
            "prompt must be at most 100 KiB",
        ));
    }
    Ok(())
}

/// Checks `provider/model`.
pub(crate) fn check_model(model: &str) -> Result<(), ApiError> {
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
pub(crate) fn check_runtime(runtime: &str) -> Result<(), ApiError> {
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
pub(crate) fn check_provider(provider: &str) -> Result<(), ApiError> {
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
pub(crate) fn check_key(param: &str, key: &str) -> Result<(), ApiError> {
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

/// Most bytes of a schedule's input.
pub(crate) const MAX_SCHEDULE_INPUT_BYTES: usize = 100 * 1024;

/// `POST /v3/agents/{id}/schedules`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CreateSchedule {
    /// Unique among the agent's schedules.
    pub name: Option<String>,
    /// Five-field cron expression.
    pub cron: Option<String>,
    /// IANA time zone (null: UTC).
    pub tz: Option<String>,
    /// Each session's input.
    pub input: Option<String>,
    /// `skip` (default) or `allow`.
    pub overlap: Option<String>,
}

/// `PATCH /v3/agents/{id}/schedules/{sid}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct UpdateSchedule {
    /// New cron expression.
    pub cron: Option<String>,
    /// New time zone, or null for UTC.
    #[serde(default, deserialize_with = "double_option")]
    pub tz: Option<Option<String>>,
    /// New input.
    pub input: Option<String>,
    /// `skip` or `allow`.
    pub overlap: Option<String>,
    /// Pauses or resumes (either clears an automatic pause).
    pub paused: Option<bool>,
    /// Renames are not supported: refused when different.
    pub name: Option<String>,
}

/// Checks a schedule's input.
pub(crate) fn check_schedule_input(input: &str) -> Result<(), ApiError> {
    if input.trim().is_empty() || input.len() > MAX_SCHEDULE_INPUT_BYTES {
        return Err(ApiError::invalid(
            "input",
            "input must be 1 character to 100 KiB",
        ));
    }
    Ok(())
}

/// Parses `overlap`.
pub(crate) fn overlap_of(value: &str) -> Result<sealpod_resources::schedule::Overlap, ApiError> {
    use sealpod_resources::schedule::Overlap;
    match value {
        "skip" => Ok(Overlap::Skip),
        "allow" => Ok(Overlap::Allow),
        _ => Err(ApiError::invalid(
            "overlap",
            "overlap must be skip or allow",
        )),
    }
}
