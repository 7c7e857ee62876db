//! Validation of what the controllers act on: pure checks that turn a spec into a verdict, with
//! a message fit for a `Degraded`/`Invalid` condition (it names the field, never a secret).

use sealpod_resources::agent::check_model_runtime;
use sealpod_resources::common::EgressPolicy;
use sealpod_resources::proxy_config::HostPattern;

/// Checks a model/runtime pairing and an egress allowlist, as an Agent and a pinned snapshot
/// both carry them.
pub fn agent_config(
    model: &str,
    runtime: &str,
    egress: Option<&EgressPolicy>,
) -> Result<(), String> {
    check_model_runtime(model, runtime)?;
    if let Some(egress) = egress {
        for (i, entry) in egress.allow.iter().enumerate() {
            HostPattern::parse(entry).map_err(|e| format!("egress.allow[{i}]: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpod_resources::common::EgressMode;

    #[test]
    fn agent_configs_are_checked() {
        let ok = EgressPolicy {
            allow: vec!["github.com".into(), "*.pypi.org:443".into()],
            mode: EgressMode::Enforce,
        };
        assert!(agent_config("anthropic/claude-x", "claude", Some(&ok)).is_ok());
        assert!(agent_config("openai/gpt", "claude", None).is_err());
        let bad = EgressPolicy {
            allow: vec!["github.com".into(), "*".into()],
            mode: EgressMode::Enforce,
        };
        let err = agent_config("anthropic/claude-x", "claude", Some(&bad)).expect_err("bad");
        assert!(err.starts_with("egress.allow[1]"), "{err}");
    }
}
