//! The proxy configuration file the operator writes into each session's proxy Secret, in the
//! YAML form `sealpod-sidecar proxy --config FILE` reads (snake_case keys: `listen`,
//! `admin_listen`, `ca_cert_out`, `mode`, `allow`, `deny_cidrs`, `allow_cidrs`,
//! `credentials: [{sealed, value_file, hosts, headers}]`, `events: {url, token_file}`).
//!
//! The file holds the sealed token (the sidecar's one source for it) but never the real value:
//! that lives in its own entry, named by `value_file`, so rotation rewrites one file.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{SessionPlan, Settings};
use sealpod_resources::common::EgressMode;

/// Directory the proxy Secret is mounted at, in the proxy container only.
pub const PROXY_DIR: &str = "/etc/sealpod/proxy";
/// Directory of the shared CA certificate (proxy writes, runtime reads).
pub const CA_DIR: &str = "/var/run/sealpod/ca";
/// The CA certificate file.
pub const CA_FILE: &str = "/var/run/sealpod/ca/ca.pem";

/// The proxy configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfigFile {
    /// Proxy listener (loopback).
    pub listen: String,
    /// Admin listener (`/ready`, `/metrics`): all interfaces, for the kubelet's probe.
    pub admin_listen: String,
    /// Where the proxy writes its per-pod CA certificate.
    pub ca_cert_out: String,
    /// `enforce` or `report`.
    pub mode: String,
    /// Allowed destinations.
    pub allow: Vec<String>,
    /// Refused networks: the cluster's pod and Service ranges.
    pub deny_cidrs: Vec<String>,
    /// Networks exempted from the address guard: the runtime API's.
    pub allow_cidrs: Vec<String>,
    /// The bound credentials.
    pub credentials: Vec<CredentialEntry>,
    /// Egress-event sink.
    pub events: Option<EventsEntry>,
}

/// One bound credential of the proxy configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialEntry {
    /// The sealed token the sandbox holds.
    pub sealed: String,
    /// The file holding the real value.
    pub value_file: String,
    /// Hosts the value may be sent to.
    pub hosts: Vec<String>,
    /// Header slots the token is swapped in.
    pub headers: Vec<HeaderEntry>,
}

impl std::fmt::Debug for CredentialEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialEntry")
            .field("sealed", &sealpod_resources::secret::REDACTED)
            .field("value_file", &self.value_file)
            .field("hosts", &self.hosts)
            .field("headers", &self.headers)
            .finish()
    }
}

/// A header slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderEntry {
    /// Header name.
    pub name: String,
    /// Auth scheme before the token (`Bearer` for `authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// The egress-event sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsEntry {
    /// `…/runtime/v1/egress-events`.
    pub url: String,
    /// File of the proxy-scope token.
    pub token_file: String,
}

/// The proxy configuration of a session.
pub fn proxy_config(plan: &SessionPlan, settings: &Settings) -> ProxyConfigFile {
    let egress = plan.snapshot.egress.clone().unwrap_or_default();
    // A BTreeSet keeps the list sorted and free of duplicates, so the file is deterministic.
    let mut allow: BTreeSet<String> = egress.allow.iter().cloned().collect();
    allow.extend(plan.credential.hosts.iter().cloned());
    allow.insert(format!(
        "{}:{}",
        settings.runtime_api_host, settings.runtime_api_port
    ));
    let mut deny: Vec<String> = settings.pod_cidrs.iter().map(ToString::to_string).collect();
    deny.extend(settings.service_cidrs.iter().map(ToString::to_string));
    ProxyConfigFile {
        listen: format!("127.0.0.1:{}", settings.proxy_port),
        admin_listen: format!("0.0.0.0:{}", settings.proxy_admin_port),
        ca_cert_out: CA_FILE.to_owned(),
        mode: match egress.mode {
            EgressMode::Enforce => "enforce",
            EgressMode::Report => "report",
        }
        .to_owned(),
        allow: allow.into_iter().collect(),
        deny_cidrs: deny,
        allow_cidrs: settings
            .runtime_api_cidrs
            .iter()
            .map(ToString::to_string)
            .collect(),
        credentials: vec![CredentialEntry {
            sealed: plan.credential.sealed.expose().to_owned(),
            value_file: format!("{PROXY_DIR}/{}", super::PROXY_VALUE_ENTRY),
            hosts: plan.credential.hosts.clone(),
            headers: plan
                .credential
                .headers
                .iter()
                .map(|name| HeaderEntry {
                    name: name.clone(),
                    // `authorization` carries `Bearer <key>`; every other slot is the bare key.
                    scheme: (name == "authorization").then(|| "Bearer".to_owned()),
                })
                .collect(),
        }],
        events: Some(EventsEntry {
            url: format!("{}/runtime/v1/egress-events", settings.runtime_api_url),
            token_file: format!(
                "{PROXY_DIR}/{}",
                sealpod_resources::runtime_token::PROXY_SECRET_EVENTS_TOKEN_ENTRY
            ),
        }),
    }
}

/// The sealed token of the first credential of a stored configuration file, if it parses; the
/// operator re-uses it so a session's token stays stable across reconciles.
pub fn stored_sealed_token(yaml: &str) -> Option<String> {
    let file: ProxyConfigFile = serde_saphyr::from_str(yaml).ok()?;
    file.credentials.into_iter().next().map(|c| c.sealed)
}
