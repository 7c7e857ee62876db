//! The backstop NetworkPolicy of a sandbox pod: egress only to DNS, to public addresses, to the
//! API server's runtime API and to the addresses of `--proxy-resolve` overrides. It applies to the
//! whole pod (it cannot tell the proxy from the runtime), so it is the SSRF backstop under the
//! proxy's allowlist, not the allowlist itself; it must never open a non-public range wider than
//! the host routes the operator's own flags name.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sealpod_resources::labels;

use super::{SessionPlan, Settings, child_meta, network_policy_name};

/// IPv4 ranges that are never public: "this network", RFC 1918, CGNAT (and the Alibaba metadata
/// address in it), loopback, link-local (cloud metadata), IETF protocol assignments, benchmarking,
/// multicast and reserved.
pub const NON_PUBLIC_V4: [&str; 11] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// IPv6 ranges that are never public: loopback, NAT64, 6to4 (they can reach IPv4 private space),
/// unique local (AWS's `fd00:ec2::254` metadata), link-local and multicast. IPv4-mapped addresses
/// (`::ffff:0:0/96`) are not listed: a connection to one leaves as IPv4, where the IPv4 ranges
/// apply, and the API server refuses them in an `ipBlock`.
pub const NON_PUBLIC_V6: [&str; 6] = [
    "::1/128",
    "64:ff9b::/96",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

/// The NetworkPolicy of a session's sandbox pod.
pub fn network_policy(plan: &SessionPlan, settings: &Settings) -> NetworkPolicy {
    let cluster = settings.pod_cidrs.iter().chain(&settings.service_cidrs);
    let mut except_v4: Vec<String> = NON_PUBLIC_V4.iter().map(|s| (*s).to_owned()).collect();
    let mut except_v6: Vec<String> = NON_PUBLIC_V6.iter().map(|s| (*s).to_owned()).collect();
    for net in cluster {
        match net {
            ipnet::IpNet::V4(_) => except_v4.push(net.to_string()),
            ipnet::IpNet::V6(_) => except_v6.push(net.to_string()),
        }
    }
    let dns = NetworkPolicyEgressRule {
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
        to: None,
    };
    let public = NetworkPolicyEgressRule {
        ports: None,
        to: Some(vec![
            NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".to_owned(),
                    except: Some(except_v4),
                }),
                ..NetworkPolicyPeer::default()
            },
            NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "::/0".to_owned(),
                    except: Some(except_v6),
                }),
                ..NetworkPolicyPeer::default()
            },
        ]),
    };
    let runtime_api = NetworkPolicyEgressRule {
        ports: Some(vec![port("TCP", i32::from(settings.runtime_api_port))]),
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    settings.system_namespace.clone(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(settings.runtime_api_pod_labels.clone()),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
    };
    let mut egress = vec![dns, public, runtime_api];
    egress.extend(override_rules(settings));
    NetworkPolicy {
        metadata: child_meta(
            plan,
            network_policy_name(&plan.name),
            labels::COMPONENT_SANDBOX,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (labels::SESSION_LABEL.to_owned(), plan.name.clone()),
                    (
                        labels::COMPONENT_LABEL.to_owned(),
                        labels::COMPONENT_SANDBOX.to_owned(),
                    ),
                ])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(egress),
            ingress: None,
        }),
    }
}

/// One rule per address of a `--proxy-resolve` override (in the order given), on the ports the
/// overrides fix (any port when one of them does not): without it an override into a private
/// range, such as a model gateway in the cluster, would pass the proxy's guard and then be
/// dropped by the "public only" rule. Loopback addresses never leave the pod: no rule.
fn override_rules(settings: &Settings) -> Vec<NetworkPolicyEgressRule> {
    let mut by_ip: Vec<(std::net::IpAddr, Option<Vec<u16>>)> = Vec::new();
    for r in &settings.proxy_resolve {
        let ip = r.ip();
        if ip.is_loopback() {
            continue;
        }
        let idx = match by_ip.iter().position(|(known, _)| *known == ip) {
            Some(i) => i,
            None => {
                by_ip.push((ip, Some(Vec::new())));
                by_ip.len() - 1
            }
        };
        let ports = &mut by_ip[idx].1;
        match (r.port(), ports.as_mut()) {
            (Some(p), Some(list)) if !list.contains(&p) => list.push(p),
            (Some(_), _) => {}
            (None, _) => *ports = None,
        }
    }
    by_ip
        .into_iter()
        .map(|(ip, ports)| NetworkPolicyEgressRule {
            ports: ports.map(|list| {
                list.into_iter()
                    .map(|p| port("TCP", i32::from(p)))
                    .collect()
            }),
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: ipnet::IpNet::from(ip).to_string(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
        })
        .collect()
}
