//! The proxy configuration the operator writes into each session's proxy Secret: the shared
//! [`ProxyConfig`] type `sealpod-sidecar proxy --config FILE` reads, so the two cannot drift.
//!
//! The file holds the sealed token (the sidecar's one source for it) but never the real value:
//! that lives in its own entry, named by `value_file`, so rotation rewrites one file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use sealpod_resources::common::EgressMode;
use sealpod_resources::proxy_config::{
    CredentialConfig, EventsConfig, HeaderSlot, Mode, ProxyConfig,
};

use super::bridges::{EgressBridge, egress_bridges};
use super::{SessionPlan, Settings};

/// Directory the proxy Secret is mounted at, in the proxy container only.
pub const PROXY_DIR: &str = "/etc/sealpod/proxy";
/// Directory of the shared CA certificate (proxy writes, runtime reads).
pub const CA_DIR: &str = "/var/run/sealpod/ca";
/// The CA certificate file.
pub const CA_FILE: &str = "/var/run/sealpod/ca/ca.pem";

/// The proxy configuration of a session.
pub fn proxy_config(plan: &SessionPlan, settings: &Settings) -> ProxyConfig {
    let egress = plan.snapshot.egress.clone().unwrap_or_default();
    // A BTreeSet keeps the list sorted and free of duplicates, so the file is deterministic.
    let mut allow: BTreeSet<String> = egress.allow.iter().cloned().collect();
    allow.extend(plan.credential.hosts.iter().cloned());
    allow.insert(format!(
        "{}:{}",
        settings.runtime_api_host, settings.runtime_api_port
    ));
    let bridges = egress_bridges(plan, settings);
    let mut deny: Vec<String> = settings.pod_cidrs.iter().map(ToString::to_string).collect();
    deny.extend(settings.service_cidrs.iter().map(ToString::to_string));
    ProxyConfig {
        listen: format!("127.0.0.1:{}", settings.proxy_port),
        admin_listen: format!("0.0.0.0:{}", settings.proxy_admin_port),
        ca_cert_out: CA_FILE.into(),
        mode: match egress.mode {
            EgressMode::Enforce => Mode::Enforce,
            EgressMode::Report => Mode::Report,
        },
        allow: allow.into_iter().collect(),
        deny_cidrs: deny,
        allow_cidrs: allow_cidrs(settings, &bridges),
        credentials: vec![CredentialConfig {
            sealed: plan.credential.sealed.expose().to_owned(),
            // Relative: the sidecar reads them next to the configuration, in the same Secret.
            value_file: super::PROXY_VALUE_ENTRY.into(),
            hosts: plan.credential.hosts.clone(),
            headers: plan
                .credential
                .headers
                .iter()
                .map(|name| HeaderSlot {
                    name: name.clone(),
                    // `authorization` carries `Bearer <key>`; every other slot is the bare key.
                    scheme: (name == "authorization").then(|| "Bearer".to_owned()),
                })
                .collect(),
        }],
        events: Some(EventsConfig {
            url: format!("{}/runtime/v1/egress-events", settings.runtime_api_url),
            token_file: sealpod_resources::runtime_token::PROXY_SECRET_EVENTS_TOKEN_ENTRY.into(),
            gate_url: Some(format!(
                "{}/runtime/v1/egress-gate",
                settings.runtime_api_url
            )),
        }),
        resolve: resolve(settings, &bridges),
        extra_roots: settings
            .upstream_ca
            .iter()
            .map(|_| super::UPSTREAM_CA_ENTRY.into())
            .collect(),
    }
}

/// The runtime API's networks, then a host route for each resolver override's address and each
/// egress bridge's: the proxy checks overridden addresses like any DNS answer, so a private or
/// loopback address the operator chose must be exempted or the override could never be dialled.
fn allow_cidrs(settings: &Settings, bridges: &[EgressBridge]) -> Vec<String> {
    let mut cidrs: Vec<String> = settings
        .runtime_api_cidrs
        .iter()
        .map(ToString::to_string)
        .collect();
    let overrides = settings.proxy_resolve.iter().map(|r| r.ip());
    let bridged = bridges.iter().map(|b| IpAddr::V4(*b.inside.ip()));
    for ip in overrides.chain(bridged) {
        let host = IpNet::from(ip).to_string();
        if !cidrs.contains(&host) {
            cidrs.push(host);
        }
    }
    cidrs
}

/// The resolver overrides, then each egress bridge as the address of its `host:port`: entries
/// for the same key keep the order they were given in.
fn resolve(settings: &Settings, bridges: &[EgressBridge]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let overrides = settings
        .proxy_resolve
        .iter()
        .map(|r| (r.key_text(), r.target_text()));
    let bridged = bridges
        .iter()
        .map(|b| (format!("{}:{}", b.host, b.port), b.inside.to_string()));
    for (key, target) in overrides.chain(bridged) {
        let targets = map.entry(key).or_default();
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    map
}

/// The sealed token of the first credential of a stored configuration file, if it parses; the
/// operator re-uses it so a session's token stays stable across reconciles.
pub fn stored_sealed_token(yaml: &str) -> Option<String> {
    let file: ProxyConfig = serde_saphyr::from_str(yaml).ok()?;
    file.credentials.into_iter().next().map(|c| c.sealed)
}
