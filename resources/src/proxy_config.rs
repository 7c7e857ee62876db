//! The sidecar proxy's configuration file: the contract between the operator (which writes it
//! into the per-session Secret) and `sealpod-sidecar proxy --config FILE` (which reads it).
//!
//! Pure data and validation: [`ProxyConfig`] is what the YAML file holds (snake_case keys,
//! unknown keys refused), [`ProxyConfig::validate`] turns it into a [`ValidatedProxyConfig`] or a
//! [`ConfigError`] that names the offending key. This module does no I/O (it never reads the
//! `value_file`s or `extra_roots`) and must never format a sealed token into an error or `Debug`
//! output.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::{REDACTED, SealedToken, is_sealed_token};

/// Ports an allowlist entry without an explicit `:port` covers.
pub const DEFAULT_PORTS: [u16; 2] = [443, 80];

/// The proxy configuration file, as written by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Explicit proxy listener (`HTTP CONNECT` and absolute-URI plain HTTP), e.g. `127.0.0.1:3128`.
    pub listen: String,
    /// Admin listener serving `/ready` and `/metrics`, e.g. `0.0.0.0:9901`.
    pub admin_listen: String,
    /// Where the per-pod CA certificate (PEM, certificate only) is written.
    pub ca_cert_out: PathBuf,
    /// `enforce` (default) refuses what is not allowed; `report` allows it but counts and logs it.
    #[serde(default)]
    pub mode: Mode,
    /// Allowed destinations: `host`, `*.suffix`, each with an optional `:port` (default 443 and 80).
    #[serde(default)]
    pub allow: Vec<String>,
    /// CIDRs refused in addition to the built-in non-public ranges (the cluster's pod and
    /// Service ranges).
    #[serde(default)]
    pub deny_cidrs: Vec<String>,
    /// CIDRs exempted from the non-public address check (and from `deny_cidrs`).
    #[serde(default)]
    pub allow_cidrs: Vec<String>,
    /// Credentials whose sealed token is swapped for the real value on their hosts.
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
    /// Optional sink for egress events.
    #[serde(default)]
    pub events: Option<EventsConfig>,
    /// Tests and special deployments: `host[:port]` → socket addresses (`ip:port`, or a bare `ip`
    /// meaning the requested port), used instead of DNS and still subject to the address check.
    #[serde(default)]
    pub resolve: BTreeMap<String, Vec<String>>,
    /// Extra upstream trust anchors (PEM files), added to the webpki roots.
    #[serde(default)]
    pub extra_roots: Vec<PathBuf>,
}

/// Enforcement mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse everything that is not allowed.
    #[default]
    Enforce,
    /// Allow what enforce would refuse (except non-public addresses and token misuse), counting it.
    Report,
}

impl Mode {
    /// The mode's name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Report => "report",
        }
    }
}

/// One credential binding.
///
/// `Serialize` writes the sealed token (the config file is its one sink); `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The sealed token the sandbox holds (`sp_sealed_` + 32 lowercase hex).
    pub sealed: String,
    /// File holding the real value (re-read when it changes: rotation without restart).
    pub value_file: PathBuf,
    /// Hosts the real value may be sent to (same syntax as `allow`; never empty).
    pub hosts: Vec<String>,
    /// Header slots where the sealed token is replaced.
    pub headers: Vec<HeaderSlot>,
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("sealed", &REDACTED)
            .field("value_file", &self.value_file)
            .field("hosts", &self.hosts)
            .field("headers", &self.headers)
            .finish()
    }
}

/// A header slot: `{name: x-api-key}` (the whole value is the token) or
/// `{name: authorization, scheme: Bearer}` (the value is `Bearer <token>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSlot {
    /// Header name (case-insensitive).
    pub name: String,
    /// Optional auth scheme before the token (`Bearer`), compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// Where egress events are posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `http://` or `https://` URL receiving `POST {"events":[…]}`.
    pub url: String,
    /// File holding the bearer token for the sink (trimmed).
    pub token_file: PathBuf,
    /// `http://` or `https://` URL of the session's egress gate (`POST`, same token). When set,
    /// a sealed token is swapped only while the gate is open (a turn is running, within its
    /// `turn_seconds` and the session's token budget), and the model usage metered from
    /// credential hosts' responses is reported to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_url: Option<String>,
}

/// A configuration error naming the key at fault (`credentials[0].hosts[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Path of the offending key.
    pub key: String,
    /// What is wrong with it (never contains a secret).
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A host pattern from `allow` or a credential's `hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// What the host must be.
    pub host: HostMatch,
    /// The one port it covers, or `None` for [`DEFAULT_PORTS`].
    pub port: Option<u16>,
}

/// The host part of a [`HostPattern`] (lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Exactly this name or IP literal.
    Exact(String),
    /// Any name strictly below this suffix (`*.example.com` → `example.com`).
    Suffix(String),
}

impl HostPattern {
    /// Parses `host`, `*.suffix`, `host:port`, `[v6]:port`; a bare `*` is refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("empty host pattern".into());
        }
        let (host, port) = split_host_port(raw)?;
        let host =
            normalize_host(host).ok_or_else(|| format!("`{host}` is not a valid host name"))?;
        if host == "*" {
            return Err("a bare `*` would allow every host; list the hosts instead".into());
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            validate_dns_name(suffix)?;
            return Ok(Self {
                host: HostMatch::Suffix(suffix.to_owned()),
                port,
            });
        }
        if host.contains('*') {
            return Err("`*` is only allowed as a leading `*.` label".into());
        }
        if host.parse::<IpAddr>().is_err() {
            validate_dns_name(&host)?;
        }
        Ok(Self {
            host: HostMatch::Exact(host),
            port,
        })
    }

    /// True when `host` (as returned by [`normalize_host`]) and `port` are covered.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => DEFAULT_PORTS.contains(&port),
        };
        port_ok
            && match &self.host {
                HostMatch::Exact(h) => h == host,
                HostMatch::Suffix(s) => {
                    host.len() > s.len() + 1
                        && host.ends_with(s.as_str())
                        && host.as_bytes()[host.len() - s.len() - 1] == b'.'
                }
            }
    }
}

/// The one normalization of a host name: ASCII lowercase, and at most one trailing dot, which is
/// removed (`Api.Example.com.` → `api.example.com`). An empty name, an empty label (`a..b`,
/// `.a`) or more than one trailing dot (`a..`) is `None`: refused, never repaired.
///
/// Allowlist patterns, `resolve` keys and every name the proxy matches, binds to a credential,
/// resolves and dials go through this function and nothing else, so the name that was matched is
/// the name that is resolved. A second normalization elsewhere (say, one that strips every
/// trailing dot) would let `api.example.com..` match a pattern yet miss its `resolve` override.
pub fn normalize_host(raw: &str) -> Option<String> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

fn split_host_port(raw: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = raw.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in IPv6 literal")?;
        let port = match after {
            "" => None,
            p => Some(parse_port(
                p.strip_prefix(':').ok_or("expected `:port` after `]`")?,
            )?),
        };
        return Ok((host, port));
    }
    match raw.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Ok((raw, None)), // bare IPv6 literal
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((raw, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

fn validate_dns_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("host name must have 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("`{name}` is not a valid host name"));
        }
    }
    Ok(())
}

/// An IP network, `addr/prefix` (host bits must be zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a host route).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{raw}` is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{raw}` has a bad prefix length (0-{max})"))?,
        };
        let cidr = Self { addr, prefix };
        if cidr.network_bits(addr) != to_bits(addr) {
            return Err(format!("`{raw}` has host bits set"));
        }
        Ok(cidr)
    }

    /// True when `ip` lies in this network (an IPv4 network never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addr.is_ipv4() == ip.is_ipv4() && self.network_bits(ip) == to_bits(self.addr)
    }

    fn network_bits(&self, ip: IpAddr) -> u128 {
        let width: u32 = if ip.is_ipv4() { 32 } else { 128 };
        let host_bits = width - u32::from(self.prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            u128::MAX << host_bits
        };
        to_bits(ip) & mask
    }
}

fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A `resolve` key: a host and the port it applies to (`None`: every port).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolveKey {
    /// Lowercase host name.
    pub host: String,
    /// The port, or every port.
    pub port: Option<u16>,
}

/// A `resolve` target: a socket address, or an IP that takes the requested port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolveTarget {
    /// Exactly this address.
    Addr(SocketAddr),
    /// This IP, on the port being resolved.
    Ip(IpAddr),
}

impl ResolveTarget {
    /// The socket address to dial for a request on `port`.
    pub fn socket_addr(self, port: u16) -> SocketAddr {
        match self {
            ResolveTarget::Addr(a) => a,
            ResolveTarget::Ip(ip) => SocketAddr::new(ip, port),
        }
    }
}

/// A credential after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCredential {
    /// The sealed token (redacted when printed).
    pub sealed: SealedToken,
    /// File holding the real value.
    pub value_file: PathBuf,
    /// Hosts the real value may go to.
    pub hosts: Vec<HostPattern>,
    /// Header slots (names lowercase).
    pub headers: Vec<HeaderSlot>,
}

/// The configuration after validation: every value typed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProxyConfig {
    /// Proxy listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Where the CA certificate goes.
    pub ca_cert_out: PathBuf,
    /// Enforcement mode.
    pub mode: Mode,
    /// Allowed destinations.
    pub allow: Vec<HostPattern>,
    /// Extra refused networks.
    pub deny_cidrs: Vec<Cidr>,
    /// Exempted networks.
    pub allow_cidrs: Vec<Cidr>,
    /// Credentials.
    pub credentials: Vec<ValidatedCredential>,
    /// Event sink.
    pub events: Option<EventsConfig>,
    /// Resolver overrides.
    pub resolve: BTreeMap<ResolveKey, Vec<ResolveTarget>>,
    /// Extra upstream trust anchors.
    pub extra_roots: Vec<PathBuf>,
}

impl ProxyConfig {
    /// Checks every value and returns the typed configuration, or the first error with its key.
    pub fn validate(&self) -> Result<ValidatedProxyConfig, ConfigError> {
        let listen = parse_socket_addr("listen", &self.listen)?;
        let admin_listen = parse_socket_addr("admin_listen", &self.admin_listen)?;
        if self.ca_cert_out.as_os_str().is_empty() {
            return Err(ConfigError::new("ca_cert_out", "must be a file path"));
        }
        let allow = self
            .allow
            .iter()
            .enumerate()
            .map(|(i, a)| {
                HostPattern::parse(a).map_err(|m| ConfigError::new(format!("allow[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deny_cidrs = parse_cidrs("deny_cidrs", &self.deny_cidrs)?;
        let allow_cidrs = parse_cidrs("allow_cidrs", &self.allow_cidrs)?;
        let mut credentials = Vec::with_capacity(self.credentials.len());
        for (i, c) in self.credentials.iter().enumerate() {
            credentials.push(validate_credential(i, c)?);
        }
        for (i, c) in credentials.iter().enumerate() {
            if credentials[..i].iter().any(|o| o.sealed == c.sealed) {
                return Err(ConfigError::new(
                    format!("credentials[{i}].sealed"),
                    "the same sealed token is used by another credential",
                ));
            }
        }
        if let Some(events) = &self.events {
            check_http_url("events.url", &events.url)?;
            if let Some(gate) = &events.gate_url {
                check_http_url("events.gate_url", gate)?;
            }
            if events.token_file.as_os_str().is_empty() {
                return Err(ConfigError::new("events.token_file", "must be a file path"));
            }
        }
        let mut resolve = BTreeMap::new();
        for (key, targets) in &self.resolve {
            let path = format!("resolve.{key}");
            let (host, port) = split_host_port(key).map_err(|m| ConfigError::new(&path, m))?;
            let host = normalize_host(host).ok_or_else(|| {
                ConfigError::new(&path, format!("`{host}` is not a valid host name"))
            })?;
            if host.parse::<IpAddr>().is_err() {
                validate_dns_name(&host).map_err(|m| ConfigError::new(&path, m))?;
            }
            if targets.is_empty() {
                return Err(ConfigError::new(&path, "needs at least one address"));
            }
            let targets = targets
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    parse_resolve_target(t).map_err(|m| ConfigError::new(format!("{path}[{j}]"), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            resolve.insert(ResolveKey { host, port }, targets);
        }
        Ok(ValidatedProxyConfig {
            listen,
            admin_listen,
            ca_cert_out: self.ca_cert_out.clone(),
            mode: self.mode,
            allow,
            deny_cidrs,
            allow_cidrs,
            credentials,
            events: self.events.clone(),
            resolve,
            extra_roots: self.extra_roots.clone(),
        })
    }
}

fn parse_socket_addr(key: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse()
        .map_err(|_| ConfigError::new(key, format!("`{raw}` is not an `ip:port` socket address")))
}

fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            "must be an http:// or https:// URL with a host",
        ))
    }
}

fn parse_cidrs(key: &str, raw: &[String]) -> Result<Vec<Cidr>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, c)| Cidr::parse(c).map_err(|m| ConfigError::new(format!("{key}[{i}]"), m)))
        .collect()
}

fn parse_resolve_target(raw: &str) -> Result<ResolveTarget, String> {
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(ResolveTarget::Addr(addr));
    }
    raw.parse::<IpAddr>()
        .map(ResolveTarget::Ip)
        .map_err(|_| format!("`{raw}` is neither `ip:port` nor an IP address"))
}

fn validate_credential(i: usize, c: &CredentialConfig) -> Result<ValidatedCredential, ConfigError> {
    let key = |field: &str| format!("credentials[{i}].{field}");
    if !is_sealed_token(&c.sealed) {
        // The value is never echoed: it may be a real key pasted by mistake.
        return Err(ConfigError::new(
            key("sealed"),
            "not a sealed token (expected `sp_sealed_` followed by 32 lowercase hex characters)",
        ));
    }
    let sealed = SealedToken::parse(&c.sealed)
        .map_err(|e| ConfigError::new(key("sealed"), e.to_string()))?;
    if c.value_file.as_os_str().is_empty() {
        return Err(ConfigError::new(key("value_file"), "must be a file path"));
    }
    if c.hosts.is_empty() {
        return Err(ConfigError::new(
            key("hosts"),
            "a credential must name the hosts it may be sent to",
        ));
    }
    let hosts = c
        .hosts
        .iter()
        .enumerate()
        .map(|(j, h)| {
            HostPattern::parse(h).map_err(|m| ConfigError::new(key(&format!("hosts[{j}]")), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if c.headers.is_empty() {
        return Err(ConfigError::new(
            key("headers"),
            "a credential must declare at least one header slot",
        ));
    }
    let mut headers = Vec::with_capacity(c.headers.len());
    for (j, h) in c.headers.iter().enumerate() {
        let name = h.name.trim().to_ascii_lowercase();
        let valid_token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !valid_token(&name) {
            return Err(ConfigError::new(
                key(&format!("headers[{j}].name")),
                "not a valid header name",
            ));
        }
        if let Some(scheme) = &h.scheme
            && !valid_token(scheme)
        {
            return Err(ConfigError::new(
                key(&format!("headers[{j}].scheme")),
                "not a valid auth scheme (e.g. `Bearer`)",
            ));
        }
        headers.push(HeaderSlot {
            name,
            scheme: h.scheme.clone(),
        });
    }
    Ok(ValidatedCredential {
        sealed,
        value_file: c.value_file.clone(),
        hosts,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";

    fn base() -> ProxyConfig {
        ProxyConfig {
            listen: "127.0.0.1:3128".into(),
            admin_listen: "127.0.0.1:9901".into(),
            ca_cert_out: "/tmp/ca.pem".into(),
            mode: Mode::Enforce,
            allow: vec!["example.com".into(), "*.example.org:8443".into()],
            deny_cidrs: vec!["10.96.0.0/12".into()],
            allow_cidrs: vec![],
            credentials: vec![CredentialConfig {
                sealed: SEALED.into(),
                value_file: "/run/key".into(),
                hosts: vec!["api.anthropic.com".into()],
                headers: vec![
                    HeaderSlot {
                        name: "X-Api-Key".into(),
                        scheme: None,
                    },
                    HeaderSlot {
                        name: "authorization".into(),
                        scheme: Some("Bearer".into()),
                    },
                ],
            }],
            events: None,
            resolve: BTreeMap::new(),
            extra_roots: vec![],
        }
    }

    #[test]
    fn a_good_config_validates() {
        let v = base().validate().expect("valid");
        assert_eq!(
            v.listen,
            "127.0.0.1:3128".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(v.credentials[0].headers[0].name, "x-api-key");
        assert_eq!(v.allow[1].port, Some(8443));
    }

    #[test]
    fn errors_name_the_key() {
        type Mutation = Box<dyn Fn(&mut ProxyConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.listen = "nope".into()), "listen"),
            (
                Box::new(|c| c.admin_listen = "1.2.3.4".into()),
                "admin_listen",
            ),
            (Box::new(|c| c.allow.push("*".into())), "allow[2]"),
            (Box::new(|c| c.allow.push("a.*.com".into())), "allow[2]"),
            (Box::new(|c| c.allow.push("x.com:99999".into())), "allow[2]"),
            (
                Box::new(|c| c.deny_cidrs.push("10.0.0.1/8".into())),
                "deny_cidrs[1]",
            ),
            (
                Box::new(|c| c.allow_cidrs.push("1.2.3.0/33".into())),
                "allow_cidrs[0]",
            ),
            (
                Box::new(|c| c.credentials[0].sealed = "sk-real-key".into()),
                "credentials[0].sealed",
            ),
            (
                Box::new(|c| c.credentials[0].hosts.clear()),
                "credentials[0].hosts",
            ),
            (
                Box::new(|c| c.credentials[0].hosts.push("*".into())),
                "credentials[0].hosts[1]",
            ),
            (
                Box::new(|c| c.credentials[0].headers[1].name = "bad name".into()),
                "credentials[0].headers[1].name",
            ),
            (
                Box::new(|c| c.credentials[0].headers.clear()),
                "credentials[0].headers",
            ),
            (
                Box::new(|c| {
                    let dup = c.credentials[0].clone();
                    c.credentials.push(dup);
                }),
                "credentials[1].sealed",
            ),
            (
                Box::new(|c| {
                    c.events = Some(EventsConfig {
                        url: "ftp://x".into(),
                        token_file: "/t".into(),
                        gate_url: None,
                    });
                }),
                "events.url",
            ),
            (
                Box::new(|c| {
                    c.events = Some(EventsConfig {
                        url: "http://api:8081/runtime/v1/egress-events".into(),
                        token_file: "/t".into(),
                        gate_url: Some("http:///runtime/v1/egress-gate".into()),
                    });
                }),
                "events.gate_url",
            ),
            (
                Box::new(|c| {
                    c.resolve
                        .insert("api.fake:443".into(), vec!["not-an-ip".into()]);
                }),
                "resolve.api.fake:443[0]",
            ),
        ];
        for (mutate, key) in cases {
            let mut c = base();
            mutate(&mut c);
            let err = c.validate().expect_err(key);
            assert_eq!(err.key, key, "{err}");
            assert!(!err.to_string().contains("sk-real-key"), "{err}");
        }
    }

    #[test]
    fn sealed_tokens_never_print() {
        let printed = format!("{:?}", base());
        assert!(!printed.contains(SEALED), "{printed}");
        let v = format!("{:?}", base().validate().expect("valid"));
        assert!(!v.contains(SEALED), "{v}");
    }

    #[test]
    fn host_patterns_match() {
        let exact = HostPattern::parse("Example.com").expect("p");
        assert!(exact.matches("example.com", 443));
        assert!(exact.matches("example.com", 80));
        assert!(!exact.matches("example.com", 8443));
        assert!(!exact.matches("a.example.com", 443));
        let wild = HostPattern::parse("*.example.com:8443").expect("p");
        assert!(wild.matches("a.example.com", 8443));
        assert!(wild.matches("a.b.example.com", 8443));
        assert!(!wild.matches("example.com", 8443));
        assert!(!wild.matches("badexample.com", 8443));
        assert!(!wild.matches("a.example.com", 443));
        let v6 = HostPattern::parse("[2001:db8::1]:443").expect("p");
        assert!(v6.matches("2001:db8::1", 443));
        assert!(HostPattern::parse("*").is_err());
        assert!(HostPattern::parse("*:443").is_err());
    }

    #[test]
    fn host_names_normalize_once() {
        let cases: &[(&str, Option<&str>)] = &[
            ("api.example.com", Some("api.example.com")),
            ("API.Example.COM", Some("api.example.com")),
            ("api.example.com.", Some("api.example.com")),
            ("api.example.com..", None),
            ("api.example.com...", None),
            ("api..example.com", None),
            (".api.example.com", None),
            (".", None),
            ("..", None),
            ("", None),
            ("localhost", Some("localhost")),
            ("10.0.0.1", Some("10.0.0.1")),
            ("2001:DB8::1", Some("2001:db8::1")),
            ("::ffff:10.0.0.1", Some("::ffff:10.0.0.1")),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw).as_deref(), *want, "{raw:?}");
        }
        // Patterns and `resolve` keys take the same path as the names they are compared with.
        let p = HostPattern::parse("API.example.com.:8443").expect("one trailing dot");
        assert!(p.matches("api.example.com", 8443));
        assert!(HostPattern::parse("api.example.com..").is_err());
        assert!(HostPattern::parse("*.example.com..").is_err());
        let wild = HostPattern::parse("*.Example.com.").expect("wildcard");
        assert!(wild.matches("a.example.com", 443));
        let mut c = base();
        c.resolve
            .insert("Api.Fake.:443".into(), vec!["127.0.0.1".into()]);
        let v = c.validate().expect("valid");
        assert!(v.resolve.contains_key(&ResolveKey {
            host: "api.fake".into(),
            port: Some(443),
        }));
        let mut c = base();
        c.resolve
            .insert("api.fake..:443".into(), vec!["127.0.0.1".into()]);
        assert_eq!(
            c.validate().expect_err("two dots").key,
            "resolve.api.fake..:443"
        );
    }

    mod normalize {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn is_idempotent_and_canonical(raw in "[a-zA-Z0-9.:-]{0,40}") {
                if let Some(name) = normalize_host(&raw) {
                    prop_assert_eq!(normalize_host(&name), Some(name.clone()));
                    prop_assert!(!name.ends_with('.'), "{}", name);
                    prop_assert!(!name.split('.').any(str::is_empty), "{}", name);
                    prop_assert_eq!(&name.to_ascii_lowercase(), &name);
                    prop_assert_eq!(&raw.trim_end_matches('.').to_ascii_lowercase(), &name);
                    prop_assert!(raw.len() - raw.trim_end_matches('.').len() <= 1);
                }
            }

            #[test]
            fn one_trailing_dot_is_the_same_name_two_are_refused(
                labels in prop::collection::vec("[a-zA-Z0-9-]{1,10}", 1..5),
            ) {
                let name = labels.join(".");
                let want = Some(name.to_ascii_lowercase());
                prop_assert_eq!(&normalize_host(&name), &want);
                prop_assert_eq!(&normalize_host(&format!("{name}.")), &want);
                prop_assert_eq!(normalize_host(&format!("{name}..")), None);
                prop_assert_eq!(normalize_host(&format!(".{name}")), None);
            }
        }
    }

    #[test]
    fn cidrs_contain() {
        let c = Cidr::parse("10.0.0.0/8").expect("c");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        assert!(!c.contains("::a00:1".parse().expect("ip")));
        let all = Cidr::parse("0.0.0.0/0").expect("c");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        let v6 = Cidr::parse("fd00::/8").expect("c");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(Cidr::parse("fd00::1/8").is_err());
    }

    #[test]
    fn resolve_keys_and_targets() {
        let mut c = base();
        c.resolve.insert(
            "API.fake:8443".into(),
            vec!["127.0.0.1:9443".into(), "::1".into()],
        );
        let v = c.validate().expect("valid");
        let targets = &v.resolve[&ResolveKey {
            host: "api.fake".into(),
            port: Some(8443),
        }];
        assert_eq!(
            targets[0].socket_addr(1),
            "127.0.0.1:9443".parse().expect("a")
        );
        assert_eq!(targets[1].socket_addr(7), "[::1]:7".parse().expect("a"));
    }
}
