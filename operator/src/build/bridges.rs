//! Egress bridges (`--bridge-egress`): for nodes whose pods have no network but the bridges the
//! node makes (sealpod's own pod runner, in local mode). Every allowlisted `host:port` a session
//! may reach gets a loopback address inside its pod; the proxy resolves the host to it, and the
//! pod's [`sealpod_resources::labels::EGRESS_BRIDGES_ANNOTATION`] asks the node to carry that address's connections
//! to `host:port`, resolved on the node. The proxy still decides every request: the bridges are
//! only reachable by the proxy's UID (the egress lock), and only allowlisted names get one.
//!
//! Not bridged: `*.suffix` patterns (no single destination to carry), IP literals (never
//! resolved by the proxy), the runtime API (the node bridges it for every pod), and hosts with a
//! `--proxy-resolve` override (the operator already chose their address; the node must make it
//! reachable, as `sealpod up` does for the model).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use sealpod_resources::proxy_config::{DEFAULT_PORTS, HostMatch, HostPattern};

use super::{SessionPlan, Settings};

/// The first loopback address of egress bridges; hosts take consecutive addresses from it, each
/// with the ports it is allowed on. `sealpod up` keeps its own bridges below `127.0.2.0`.
const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 1);

/// One allowlisted destination and where the proxy reaches it inside the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EgressBridge {
    /// The allowlisted host name (lowercase).
    pub host: String,
    /// The allowlisted port.
    pub port: u16,
    /// The pod's end: a loopback address, on `port`.
    pub inside: SocketAddrV4,
}

/// The `n`-th host's address (`n` from 0): consecutive from [`FIRST_ADDRESS`], skipping each
/// block's network and broadcast octets.
fn address(n: u32) -> Ipv4Addr {
    let first = u32::from(FIRST_ADDRESS);
    let (block, offset) = (n / 254, n % 254);
    Ipv4Addr::from(first + block * 256 + offset)
}

/// The egress bridges of a session: none unless `--bridge-egress` is on; else one per
/// bridgeable allowlisted `host:port` (its agent's `egress.allow` and its credential's hosts),
/// ordered by host then port, so the pod and the proxy configuration always agree.
pub(crate) fn egress_bridges(plan: &SessionPlan, settings: &Settings) -> Vec<EgressBridge> {
    if !settings.bridge_egress {
        return Vec::new();
    }
    let allow = plan
        .snapshot
        .egress
        .iter()
        .flat_map(|e| e.allow.iter())
        .chain(plan.credential.hosts.iter());
    // Ports by host: hosts and ports in order, so addresses follow the sorted hosts.
    let mut wanted: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for raw in allow {
        let Ok(HostPattern {
            host: HostMatch::Exact(host),
            port,
        }) = HostPattern::parse(raw)
        else {
            continue;
        };
        let overridden = settings.proxy_resolve.iter().any(|r| r.key.host == host);
        if overridden || host.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        let ports = port.map_or_else(|| DEFAULT_PORTS.to_vec(), |p| vec![p]);
        for port in ports {
            if (host.as_str(), port)
                != (
                    settings.runtime_api_host.as_str(),
                    settings.runtime_api_port,
                )
            {
                wanted.entry(host.clone()).or_default().insert(port);
            }
        }
    }
    wanted
        .into_iter()
        .zip(0..)
        .flat_map(|((host, ports), n)| {
            ports.into_iter().map(move |port| EgressBridge {
                host: host.clone(),
                port,
                inside: SocketAddrV4::new(address(n), port),
            })
        })
        .collect()
}

/// The pod annotation's value: `INSIDE_ADDR:PORT=HOST:PORT`, comma-separated; `None` when there
/// are no bridges.
pub(crate) fn annotation(bridges: &[EgressBridge]) -> Option<String> {
    (!bridges.is_empty()).then(|| {
        bridges
            .iter()
            .map(|b| format!("{}={}:{}", b.inside, b.host, b.port))
            .collect::<Vec<_>>()
            .join(",")
    })
}

#[cfg(test)]
mod tests {
    use sealpod_resources::common::EgressPolicy;

    use super::*;
    use crate::build::{ProxyResolve, fixture};

    fn plan_allowing(allow: &[&str]) -> SessionPlan {
        let mut plan = fixture::plan();
        plan.snapshot.egress = Some(EgressPolicy {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            ..EgressPolicy::default()
        });
        plan
    }

    fn bridged() -> Settings {
        Settings {
            bridge_egress: true,
            ..fixture::settings()
        }
    }

    #[test]
    fn off_by_default_and_in_a_cluster() {
        let plan = plan_allowing(&["pypi.org"]);
        assert!(egress_bridges(&plan, &fixture::settings()).is_empty());
    }

    #[test]
    fn each_host_gets_an_address_with_each_of_its_ports() {
        let plan = plan_allowing(&[
            "pypi.org",
            "git.example.com:8443",
            "*.npmjs.org",
            "10.1.2.3:5432",
            "git.example.com:22",
        ]);
        let bridges = egress_bridges(&plan, &bridged());
        let text = annotation(&bridges).expect("bridges");
        // The fixture's credential host (api.anthropic.com) first, then by name; the pattern and
        // the IP literal get none.
        assert_eq!(
            text,
            "127.0.2.1:80=api.anthropic.com:80,127.0.2.1:443=api.anthropic.com:443,\
             127.0.2.2:22=git.example.com:22,127.0.2.2:8443=git.example.com:8443,\
             127.0.2.3:80=pypi.org:80,127.0.2.3:443=pypi.org:443"
        );
    }

    #[test]
    fn overridden_hosts_and_the_runtime_api_are_left_to_the_node() {
        let mut settings = bridged();
        settings.proxy_resolve =
            vec![ProxyResolve::parse("api.anthropic.com=127.0.0.1:9443").expect("entry")];
        let api = format!(
            "{}:{}",
            settings.runtime_api_host, settings.runtime_api_port
        );
        let plan = plan_allowing(&[api.as_str(), "pypi.org:443"]);
        assert_eq!(
            annotation(&egress_bridges(&plan, &settings)).as_deref(),
            Some("127.0.2.1:443=pypi.org:443")
        );
        assert_eq!(annotation(&[]), None);
    }

    #[test]
    fn the_pod_names_and_the_proxy_dials_the_same_addresses() {
        let plan = plan_allowing(&["pypi.org:443"]);
        let settings = bridged();
        let pod = crate::build::sandbox_pod(&plan, &settings);
        let asked = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(sealpod_resources::labels::EGRESS_BRIDGES_ANNOTATION))
            .expect("annotation");
        assert_eq!(
            asked,
            "127.0.2.1:80=api.anthropic.com:80,127.0.2.1:443=api.anthropic.com:443,\
             127.0.2.2:443=pypi.org:443"
        );
        let config = crate::build::proxy_config::proxy_config(&plan, &settings);
        assert_eq!(config.resolve["pypi.org:443"], ["127.0.2.2:443"]);
        assert_eq!(config.resolve["api.anthropic.com:80"], ["127.0.2.1:80"]);
        for host in ["127.0.2.1/32", "127.0.2.2/32"] {
            assert!(
                config.allow_cidrs.iter().any(|c| c == host),
                "{host} exempted"
            );
        }
        config.validate().expect("the proxy accepts it");
        let plain = crate::build::sandbox_pod(&plan, &fixture::settings());
        assert_eq!(
            plain.metadata.annotations, None,
            "nothing asked in a cluster"
        );
    }

    #[test]
    fn addresses_skip_network_and_broadcast_octets() {
        assert_eq!(address(0), Ipv4Addr::new(127, 0, 2, 1));
        assert_eq!(address(253), Ipv4Addr::new(127, 0, 2, 254));
        assert_eq!(address(254), Ipv4Addr::new(127, 0, 3, 1));
    }
}
