//! The runtime's configuration, read once from the environment (documented in `README.md`).
//!
//! Startup fails with one message naming every missing or invalid variable. This module must
//! never print a secret: the runtime token and the model key are read into [`Secret`]s.

use std::path::PathBuf;
use std::time::Duration;

use sealpod_resources::provider::{PROVIDERS, Provider};
use sealpod_resources::revision::SKILLS_DIR_ENV;
use sealpod_resources::secret::Secret;

use crate::net::{Endpoint, UrlError};

/// Default workspace directory.
pub const DEFAULT_WORKSPACE: &str = "/workspace";

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Required variables are unset or empty.
    #[error("missing required environment variable(s): {}", .0.join(", "))]
    Missing(Vec<String>),
    /// A variable holds a value that cannot be used.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Knobs with safe defaults (all optional variables).
#[derive(Debug, Clone)]
pub struct Tunables {
    /// `SEALPOD_CLAIM_WAIT_SECONDS` (default 30): long-poll of a claim.
    pub claim_wait_seconds: u32,
    /// `SEALPOD_MODEL_MAX_RETRIES` (default 4): retries of a retriable model error.
    pub model_max_retries: u32,
    /// `SEALPOD_MODEL_MAX_TOKENS` (default 8192): `max_tokens` of each model call.
    pub model_max_tokens: u32,
    /// `SEALPOD_BASH_TIMEOUT_SECONDS` (default 600): default timeout of one `bash` call.
    pub bash_timeout: Duration,
    /// Cap of one backoff pause (also caps `retry-after`), 60 s.
    pub max_backoff: Duration,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            claim_wait_seconds: 30,
            model_max_retries: 4,
            model_max_tokens: 8192,
            bash_timeout: Duration::from_secs(600),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// One provider's API as the runtime reaches it.
#[derive(Debug, Clone)]
pub struct ProviderAccess {
    /// Which provider.
    pub provider: &'static Provider,
    /// Its base URL (`ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`, or the provider's own).
    pub base: Endpoint,
    /// Its key (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`): in a sandbox, only ever the sealed token.
    pub api_key: Secret,
}

/// How the runtime reaches the model APIs.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Every provider whose key variable is set (at least one).
    pub providers: Vec<ProviderAccess>,
    /// `HTTPS_PROXY` (or `https_proxy`), unless the host matches `NO_PROXY`.
    pub proxy: Option<Endpoint>,
    /// `NO_PROXY` entries.
    pub no_proxy: Vec<String>,
    /// `SSL_CERT_FILE`: extra trusted roots (the sidecar's per-pod CA).
    pub ca_file: Option<PathBuf>,
}

/// Everything the runtime needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SEALPOD_RUNTIME_API_URL`, e.g. `http://sealpod-api:8081`.
    pub api: Endpoint,
    /// `SEALPOD_SESSION_ID`.
    pub session_id: String,
    /// Contents of `SEALPOD_RUNTIME_TOKEN_FILE`.
    pub runtime_token: Secret,
    /// `SEALPOD_WORKSPACE` (default `/workspace`).
    pub workspace: PathBuf,
    /// `SEALPOD_SKILLS_DIR`: the pinned revision's skills (read-only), if the pod has them.
    pub skills_dir: Option<PathBuf>,
    /// The model API.
    pub model: ModelSettings,
    /// Optional knobs.
    pub tunables: Tunables,
    /// `SEALPOD_POD_CREATED_AT`: when the operator created the pod (RFC 3339), if it says.
    pub pod_created_at: Option<String>,
}

fn invalid(name: &'static str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

fn url(name: &'static str, value: &str) -> Result<Endpoint, ConfigError> {
    Endpoint::parse(value).map_err(|e: UrlError| invalid(name, e))
}

fn number<T: std::str::FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(name, format!("`{v}` is not a number"))),
    }
}

/// The trimmed text of the file variable `name` names; an unreadable or empty file is refused
/// (the error names the file, never its text).
fn read_secret_file(name: &'static str, file: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| invalid(name, format!("{file}: {e}")))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid(name, format!("{file} is empty")));
    }
    Ok(Secret::new(text))
}

/// Whether this runtime waits for its session: it was started (in a warm pool pod) with
/// `SEALPOD_SESSION_ID_FILE` instead of `SEALPOD_SESSION_ID`, and that file or the runtime token
/// file is not written yet. The operator writes both when a session claims the pod.
pub fn awaits_claim(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if get("SEALPOD_SESSION_ID").is_some() {
        return false;
    }
    let written = |name: &str| {
        get(name).is_some_and(|file| {
            std::fs::read_to_string(file).is_ok_and(|text| !text.trim().is_empty())
        })
    };
    get("SEALPOD_SESSION_ID_FILE").is_some()
        && !(written("SEALPOD_SESSION_ID_FILE") && written("SEALPOD_RUNTIME_TOKEN_FILE"))
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (empty values count as unset).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let direct = get("SEALPOD_ALLOW_DIRECT_EGRESS").is_some_and(|v| v == "true" || v == "1");
        let proxy_value = get("HTTPS_PROXY").or_else(|| get("https_proxy"));
        let mut missing = Vec::new();
        let mut required = |name: &'static str| {
            let value = get(name);
            if value.is_none() {
                missing.push(name.to_owned());
            }
            value
        };
        let api_url = required("SEALPOD_RUNTIME_API_URL");
        let session_id = match get("SEALPOD_SESSION_ID_FILE") {
            None => required("SEALPOD_SESSION_ID"),
            Some(file) => Some(
                read_secret_file("SEALPOD_SESSION_ID_FILE", &file)?
                    .expose()
                    .to_owned(),
            ),
        };
        let token_file = required("SEALPOD_RUNTIME_TOKEN_FILE");
        let keys: Vec<(&'static Provider, String)> = PROVIDERS
            .iter()
            .filter_map(|p| Some((p, get(p.key_env)?)))
            .collect();
        if keys.is_empty() {
            let names: Vec<&str> = PROVIDERS.iter().map(|p| p.key_env).collect();
            missing.push(format!("one of {}", names.join(", ")));
        }
        if proxy_value.is_none() && !direct {
            missing.push("HTTPS_PROXY".to_owned());
        }
        let (Some(api_url), Some(session_id), Some(token_file)) = (api_url, session_id, token_file)
        else {
            return Err(ConfigError::Missing(missing));
        };
        if !missing.is_empty() {
            return Err(ConfigError::Missing(missing));
        }
        let token = read_secret_file("SEALPOD_RUNTIME_TOKEN_FILE", &token_file)?;
        let providers = keys
            .into_iter()
            .map(|(provider, key)| {
                let base = get(provider.base_url_env).unwrap_or_else(|| provider.base_url.into());
                Ok(ProviderAccess {
                    provider,
                    base: url(provider.base_url_env, &base)?,
                    api_key: Secret::new(key),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let proxy = proxy_value.map(|p| url("HTTPS_PROXY", &p)).transpose()?;
        let no_proxy = get("NO_PROXY")
            .or_else(|| get("no_proxy"))
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let defaults = Tunables::default();
        let tunables = Tunables {
            claim_wait_seconds: number(
                lookup,
                "SEALPOD_CLAIM_WAIT_SECONDS",
                defaults.claim_wait_seconds,
            )?
            .min(sealpod_resources::runtime_api::MAX_WAIT_SECONDS),
            model_max_retries: number(
                lookup,
                "SEALPOD_MODEL_MAX_RETRIES",
                defaults.model_max_retries,
            )?,
            model_max_tokens: number(
                lookup,
                "SEALPOD_MODEL_MAX_TOKENS",
                defaults.model_max_tokens,
            )?,
            bash_timeout: Duration::from_secs(number(
                lookup,
                "SEALPOD_BASH_TIMEOUT_SECONDS",
                defaults.bash_timeout.as_secs(),
            )?),
            max_backoff: defaults.max_backoff,
        };
        Ok(Config {
            api: url("SEALPOD_RUNTIME_API_URL", &api_url)?,
            session_id,
            runtime_token: token,
            workspace: PathBuf::from(
                get("SEALPOD_WORKSPACE").unwrap_or_else(|| DEFAULT_WORKSPACE.into()),
            ),
            skills_dir: get(SKILLS_DIR_ENV).map(PathBuf::from),
            model: ModelSettings {
                providers,
                proxy,
                no_proxy,
                ca_file: get("SSL_CERT_FILE").map(PathBuf::from),
            },
            tunables,
            pod_created_at: get("SEALPOD_POD_CREATED_AT"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup<'a>(map: &'a HashMap<&'a str, String>) -> impl Fn(&str) -> Option<String> + 'a {
        |name| map.get(name).cloned()
    }

    #[test]
    fn every_missing_variable_is_named() {
        let map = HashMap::new();
        let err = Config::from_lookup(&lookup(&map)).expect_err("refused");
        let text = err.to_string();
        for name in [
            "SEALPOD_RUNTIME_API_URL",
            "SEALPOD_SESSION_ID",
            "SEALPOD_RUNTIME_TOKEN_FILE",
            "one of ANTHROPIC_API_KEY, OPENAI_API_KEY",
            "HTTPS_PROXY",
        ] {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn a_full_environment_parses_and_never_prints_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "sprt_secret-token\n").expect("write");
        let sealed = "sp_sealed_0123456789abcdef0123456789abcdef";
        let map: HashMap<&str, String> = HashMap::from([
            ("SEALPOD_RUNTIME_API_URL", "http://127.0.0.1:8081".into()),
            ("SEALPOD_SESSION_ID", "ses_abc".into()),
            (
                "SEALPOD_RUNTIME_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("ANTHROPIC_API_KEY", sealed.into()),
            ("HTTPS_PROXY", "http://127.0.0.1:3128".into()),
            ("NO_PROXY", "localhost, .svc".into()),
        ]);
        let config = Config::from_lookup(&lookup(&map)).expect("config");
        assert_eq!(config.workspace, PathBuf::from("/workspace"));
        assert_eq!(config.model.providers.len(), 1);
        assert_eq!(config.model.providers[0].provider.name, "anthropic");
        assert_eq!(config.model.providers[0].base.host, "api.anthropic.com");
        assert_eq!(config.model.no_proxy, ["localhost", ".svc"]);
        assert_eq!(config.runtime_token.expose(), "sprt_secret-token");
        let printed = format!("{config:?}");
        assert!(!printed.contains(sealed) && !printed.contains("sprt_secret"));
    }

    #[test]
    fn each_provider_key_set_gives_that_provider_with_its_base_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "t").expect("write");
        let map: HashMap<&str, String> = HashMap::from([
            ("SEALPOD_RUNTIME_API_URL", "http://127.0.0.1:8081".into()),
            ("SEALPOD_SESSION_ID", "ses_abc".into()),
            (
                "SEALPOD_RUNTIME_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("OPENAI_API_KEY", "sp_sealed_x".into()),
            ("OPENAI_BASE_URL", "https://127.0.0.1:9443/proxy".into()),
            ("HTTPS_PROXY", "http://127.0.0.1:3128".into()),
        ]);
        let config = Config::from_lookup(&lookup(&map)).expect("config");
        let names: Vec<&str> = config
            .model
            .providers
            .iter()
            .map(|p| p.provider.name)
            .collect();
        assert_eq!(names, ["openai"]);
        assert_eq!(config.model.providers[0].base.port, 9443);
        assert_eq!(config.model.providers[0].base.prefix, "/proxy");

        let mut bad = map.clone();
        bad.insert("OPENAI_BASE_URL", "ftp://x".into());
        let err = Config::from_lookup(&lookup(&bad)).expect_err("refused");
        assert!(err.to_string().contains("OPENAI_BASE_URL"), "{err}");
    }

    #[test]
    fn a_pool_pod_runtime_waits_for_its_session_files_then_reads_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        let session_file = dir.path().join("session-id");
        let map: HashMap<&str, String> = HashMap::from([
            ("SEALPOD_RUNTIME_API_URL", "http://127.0.0.1:8081".into()),
            (
                "SEALPOD_SESSION_ID_FILE",
                session_file.display().to_string(),
            ),
            (
                "SEALPOD_RUNTIME_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            (
                "ANTHROPIC_API_KEY",
                "sp_sealed_0123456789abcdef0123456789abcdef".into(),
            ),
            ("HTTPS_PROXY", "http://127.0.0.1:3128".into()),
        ]);
        let env = lookup(&map);
        assert!(awaits_claim(&env), "nothing written yet");
        std::fs::write(&session_file, "ses_pooled\n").expect("write");
        assert!(awaits_claim(&env), "the token is not written yet");
        std::fs::write(&token_file, "").expect("write");
        assert!(awaits_claim(&env), "an empty token file is not written");
        std::fs::write(&token_file, "sprt_pooled-token\n").expect("write");
        assert!(!awaits_claim(&env));
        let config = Config::from_lookup(&env).expect("config");
        assert_eq!(config.session_id, "ses_pooled");
        assert_eq!(config.runtime_token.expose(), "sprt_pooled-token");

        // A runtime given its session directly never waits.
        let mut direct = map.clone();
        direct.insert("SEALPOD_SESSION_ID", "ses_direct".into());
        direct.remove("SEALPOD_SESSION_ID_FILE");
        std::fs::remove_file(&token_file).expect("remove");
        assert!(!awaits_claim(&lookup(&direct)));
    }

    #[test]
    fn direct_egress_must_be_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "t").expect("write");
        let mut map: HashMap<&str, String> = HashMap::from([
            ("SEALPOD_RUNTIME_API_URL", "http://127.0.0.1:8081".into()),
            ("SEALPOD_SESSION_ID", "ses_abc".into()),
            (
                "SEALPOD_RUNTIME_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("ANTHROPIC_API_KEY", "k".into()),
        ]);
        let err = Config::from_lookup(&lookup(&map)).expect_err("no proxy");
        assert_eq!(
            err.to_string(),
            "missing required environment variable(s): HTTPS_PROXY"
        );
        map.insert("SEALPOD_ALLOW_DIRECT_EGRESS", "true".into());
        assert!(
            Config::from_lookup(&lookup(&map))
                .expect("ok")
                .model
                .proxy
                .is_none()
        );
    }
}
