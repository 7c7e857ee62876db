//! Loading the proxy configuration file: YAML (serde-saphyr) into the shared
//! [`ProxyConfig`] contract, then validation into a [`ValidatedProxyConfig`].
//!
//! Runs before any port is bound. Every error names the key at fault; it must never echo a value
//! that could be a secret (a sealed token or a key pasted into the wrong field).

use std::path::Path;

use sealpod_resources::proxy_config::{ConfigError, ProxyConfig, ValidatedProxyConfig};
use sealpod_resources::secret::SEALED_TOKEN_PREFIX;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML.
    #[error("config file is not valid YAML: {0}")]
    Yaml(String),
    /// A key is unknown, missing or of the wrong type.
    #[error("config key `{key}`: {message}")]
    Shape {
        /// Path of the key (`credentials[0].hosts`), or `.` for the top level.
        key: String,
        /// What serde reported (names the unknown or missing key).
        message: String,
    },
    /// A value is invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Reads and validates `path`. Relative file paths in it (`ca_cert_out`, `value_file`,
/// `events.token_file`, `extra_roots`) are taken relative to the file's own directory, so a
/// configuration and the files it names can move together (a mounted Secret, for one).
pub fn load(path: &Path) -> Result<ValidatedProxyConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut config = parse(&text)?;
    if let Some(dir) = path.parent() {
        relative_to(&mut config, dir);
    }
    Ok(config)
}

fn relative_to(config: &mut ValidatedProxyConfig, dir: &Path) {
    let anchor = |p: &mut std::path::PathBuf| {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    };
    anchor(&mut config.ca_cert_out);
    for c in &mut config.credentials {
        anchor(&mut c.value_file);
    }
    if let Some(events) = &mut config.events {
        anchor(&mut events.token_file);
    }
    for root in &mut config.extra_roots {
        anchor(root);
    }
}

/// Parses and validates YAML text.
pub fn parse(text: &str) -> Result<ValidatedProxyConfig, LoadError> {
    // Two steps so that shape errors carry the key path: YAML → untyped tree → typed config.
    let tree: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| LoadError::Yaml(scrub(&e.to_string())))?;
    let config: ProxyConfig =
        serde_path_to_error::deserialize(tree).map_err(|e| LoadError::Shape {
            key: scrub(&e.path().to_string()),
            message: scrub(&e.inner().to_string()),
        })?;
    config.validate().map_err(|e| {
        LoadError::Invalid(ConfigError {
            key: scrub(&e.key),
            message: scrub(&e.message),
        })
    })
}

/// What replaces a value an error must not repeat.
const OMITTED: &str = "[value omitted]";

/// Error texts repeat what they are about: serde quotes values and unknown keys
/// (`invalid type: string "…"`, ``unknown field `…` ``), validation quotes values
/// (`` `…` is not a valid host name ``), and key paths name map keys (`resolve.<key>`). Drop every
/// quoted value longer than a key name could be, every longer run of the characters keys are
/// made of, and every sealed token, so a secret pasted in the wrong place never reaches a log.
fn scrub(message: &str) -> String {
    omit_long_runs(&omit_quoted(&omit_quoted(message, '"'), '`'))
}

/// `message` with each `quote`-delimited part longer than 24 bytes replaced by [`OMITTED`].
fn omit_quoted(message: &str, quote: char) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split(quote).enumerate() {
        if i > 0 {
            out.push(quote);
        }
        out.push_str(if i % 2 == 1 && part.len() > 24 {
            OMITTED
        } else {
            part
        });
    }
    out
}

/// `message` with each run of key characters (`[A-Za-z0-9_+/=-]`, what API keys and sealed tokens
/// are made of) longer than 24 bytes, or holding a sealed token's prefix and more, replaced by
/// [`OMITTED`]. Key paths and the messages' own words are made of shorter runs.
fn omit_long_runs(message: &str) -> String {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || "_+/=-".contains(c);
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while !rest.is_empty() {
        let run = rest.find(|c| !is_key_char(c)).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(run);
        let token = word.len() > SEALED_TOKEN_PREFIX.len() && word.contains(SEALED_TOKEN_PREFIX);
        out.push_str(if word.len() > 24 || token {
            OMITTED
        } else {
            word
        });
        let gap = tail.find(is_key_char).unwrap_or(tail.len());
        out.push_str(&tail[..gap]);
        rest = &tail[gap..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen: 127.0.0.1:3128
admin_listen: 127.0.0.1:9901
ca_cert_out: /tmp/ca.pem
mode: report
allow: [github.com, "*.pypi.org:443"]
deny_cidrs: [10.96.0.0/12]
credentials:
  - sealed: sp_sealed_0123456789abcdef0123456789abcdef
    value_file: /run/sealpod/key
    hosts: [api.anthropic.com]
    headers:
      - name: x-api-key
      - name: authorization
        scheme: Bearer
events:
  url: http://api:8081/runtime/v1/egress
  token_file: /run/sealpod/token
resolve:
  api.fake:443: [127.0.0.1:18443]
extra_roots: [/tmp/up.pem]
"#;

    #[test]
    fn relative_paths_are_taken_from_the_file_directory() {
        let dir = std::env::temp_dir().join(format!("sidecar-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let text = GOOD
            .replace("/run/sealpod/key", "credential")
            .replace("/run/sealpod/token", "events-token")
            .replace("[/tmp/up.pem]", "[upstream-ca.pem, /abs/root.pem]");
        let file = dir.join("config.yaml");
        std::fs::write(&file, text).expect("write");
        let c = load(&file).expect("load");
        assert_eq!(c.credentials[0].value_file, dir.join("credential"));
        assert_eq!(
            c.events.as_ref().map(|e| e.token_file.clone()),
            Some(dir.join("events-token"))
        );
        assert_eq!(
            c.extra_roots,
            vec![dir.join("upstream-ca.pem"), "/abs/root.pem".into()]
        );
        assert_eq!(c.ca_cert_out, std::path::PathBuf::from("/tmp/ca.pem"));
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn parses_the_documented_shape() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.mode.as_str(), "report");
        assert_eq!(c.credentials.len(), 1);
        assert_eq!(c.resolve.len(), 1);
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("```yaml\nlisten:")
            .expect("README has the example")
            + "```yaml\n".len();
        let end = start + readme[start..].find("```").expect("closed block");
        let c = parse(&readme[start..end]).expect("the README example validates");
        assert_eq!(c.credentials[0].headers.len(), 2);
        assert_eq!(c.resolve.len(), 2);
    }

    #[test]
    fn what_the_operator_serializes_parses_back() {
        use sealpod_resources::proxy_config::{CredentialConfig, HeaderSlot, Mode};
        let config = ProxyConfig {
            listen: "127.0.0.1:3128".into(),
            admin_listen: "0.0.0.0:9901".into(),
            ca_cert_out: "/run/ca/ca.pem".into(),
            mode: Mode::Report,
            allow: vec!["github.com".into()],
            deny_cidrs: vec!["10.96.0.0/12".into()],
            allow_cidrs: vec![],
            credentials: vec![CredentialConfig {
                sealed: "sp_sealed_0123456789abcdef0123456789abcdef".into(),
                value_file: "/run/secret/k".into(),
                hosts: vec!["api.anthropic.com".into()],
                headers: vec![HeaderSlot {
                    name: "authorization".into(),
                    scheme: Some("Bearer".into()),
                }],
            }],
            events: None,
            resolve: Default::default(),
            extra_roots: vec![],
        };
        let yaml = serde_saphyr::to_string(&config).expect("serialize");
        let back = parse(&yaml).expect("parses back");
        assert_eq!(back, config.validate().expect("valid"));
    }

    fn key_of(text: &str) -> String {
        match parse(text).expect_err("must fail") {
            LoadError::Shape { key, message } => format!("{key}: {message}"),
            LoadError::Invalid(e) => e.key,
            other => other.to_string(),
        }
    }

    #[test]
    fn errors_never_repeat_a_secret() {
        const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";
        const KEY: &str = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz";
        let cases = [
            // Found by the `proxy_config` fuzz target: validation quoted the value.
            GOOD.replace("listen: 127.0.0.1:3128", &format!("listen: {SEALED}")),
            GOOD.replace("mode: report", &format!("mode: report\n{KEY}: 1")),
            GOOD.replace("api.fake:443:", &format!("{KEY}..:")),
            GOOD.replace("api.fake:443:", &format!("\"{KEY}:0\":")),
            GOOD.replace("github.com,", &format!("\"{KEY}..\",")),
            GOOD.replace("10.96.0.0/12", SEALED),
            GOOD.replace("[/tmp/up.pem]", &format!("{{{SEALED}: 1}}")),
        ];
        for text in cases {
            let err = parse(&text).expect_err("invalid").to_string();
            assert!(!err.contains(SEALED) && !err.contains(KEY), "{err}");
        }
        let bad = parse(&GOOD.replace("api.fake:443:", "api..fake:443:"))
            .expect_err("invalid")
            .to_string();
        assert!(bad.contains("resolve.api..fake:443"), "{bad}");
        let sealed = parse(&GOOD.replace(SEALED, "sp_sealed_x"))
            .expect_err("invalid")
            .to_string();
        assert!(
            sealed.contains("expected `sp_sealed_` followed by"),
            "{sealed}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let unknown = key_of(&GOOD.replace("mode: report", "mode: report\nlisten_port: 1"));
        assert!(unknown.contains("listen_port"), "{unknown}");
        let nested = key_of(&GOOD.replace("token_file:", "tokenfile:"));
        assert!(
            nested.contains("events") && nested.contains("tokenfile"),
            "{nested}"
        );
        let mode = key_of(&GOOD.replace("mode: report", "mode: audit"));
        assert!(mode.starts_with("mode"), "{mode}");
        let missing = key_of(&GOOD.replace("admin_listen: 127.0.0.1:9901\n", ""));
        assert!(missing.contains("admin_listen"), "{missing}");
        let star = key_of(&GOOD.replace("github.com,", "\"*\","));
        assert_eq!(star, "allow[0]");
        let slot = key_of(&GOOD.replace("scheme: Bearer", "schema: Bearer"));
        assert!(
            slot.contains("credentials[0].headers[1]") && slot.contains("schema"),
            "{slot}"
        );
        let sealed = parse(&GOOD.replace(
            "sp_sealed_0123456789abcdef0123456789abcdef",
            "sk-ant-api03-realkeyrealkeyrealkey",
        ))
        .expect_err("bad sealed")
        .to_string();
        assert!(sealed.contains("credentials[0].sealed"), "{sealed}");
        assert!(!sealed.contains("realkey"), "{sealed}");
        let typed = parse(&GOOD.replace(
            "hosts: [api.anthropic.com]",
            "hosts: sp_sealed_0123456789abcdef0123456789abcdef",
        ))
        .expect_err("bad type")
        .to_string();
        assert!(typed.contains("credentials[0].hosts"), "{typed}");
        assert!(!typed.contains("sp_sealed_0123"), "{typed}");
    }
}
