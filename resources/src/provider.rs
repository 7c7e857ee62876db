//! The model providers sealpod knows, as one table: the hosts a provider's key is bound to, the
//! header slots it fills, the runtime that speaks to it and the environment variables a sandbox
//! gets for it. The API server, the operator, local mode and the runtime read these facts only
//! from here, so a further provider is one more entry (and one client in the runtime).

/// What every part needs to know about one model provider.
#[derive(Debug, PartialEq, Eq)]
pub struct Provider {
    /// The name in `provider/model` and in a Credential's `spec.provider`.
    pub name: &'static str,
    /// The agent runtime that drives this provider's API.
    pub runtime: &'static str,
    /// The API hosts its key is bound to by default.
    pub hosts: &'static [&'static str],
    /// The request headers (lowercase) the proxy may fill with its key by default.
    pub headers: &'static [&'static str],
    /// The variable a sandbox's runtime reads its (sealed) key from.
    pub key_env: &'static str,
    /// The variable that overrides the runtime's API base URL.
    pub base_url_env: &'static str,
    /// The API base URL.
    pub base_url: &'static str,
}

/// Every provider sealpod knows.
pub static PROVIDERS: [Provider; 2] = [
    Provider {
        name: "anthropic",
        runtime: "claude",
        hosts: &["api.anthropic.com"],
        headers: &["x-api-key", "authorization"],
        key_env: "ANTHROPIC_API_KEY",
        base_url_env: "ANTHROPIC_BASE_URL",
        base_url: "https://api.anthropic.com",
    },
    Provider {
        name: "openai",
        runtime: "codex",
        hosts: &["api.openai.com"],
        headers: &["authorization"],
        key_env: "OPENAI_API_KEY",
        base_url_env: "OPENAI_BASE_URL",
        base_url: "https://api.openai.com",
    },
];

/// The provider called `name`.
pub fn named(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// The provider `runtime` speaks to.
pub fn of_runtime(runtime: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.runtime == runtime)
}

/// Every provider's API hosts.
pub fn hosts() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().flat_map(|p| p.hosts.iter().copied())
}

/// The names of every provider, for messages (`anthropic, openai`).
pub fn names() -> String {
    PROVIDERS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_runtimes_and_variables_are_unique() {
        for (i, a) in PROVIDERS.iter().enumerate() {
            for b in &PROVIDERS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.runtime, b.runtime);
                assert_ne!(a.key_env, b.key_env);
                assert_ne!(a.base_url_env, b.base_url_env);
            }
            assert!(a.base_url.starts_with("https://"), "{}", a.name);
            assert!(a.headers.iter().all(|h| *h == h.to_ascii_lowercase()));
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(of_runtime("codex").map(|p| p.name), Some("openai"));
        assert_eq!(named("anthropic").map(|p| p.runtime), Some("claude"));
        assert_eq!(named("other"), None);
        assert_eq!(names(), "anthropic, openai");
        assert_eq!(
            hosts().collect::<Vec<_>>(),
            ["api.anthropic.com", "api.openai.com"]
        );
    }
}
