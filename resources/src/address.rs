//! The built-in classification of non-public IP addresses: which addresses are private,
//! loopback, link-local, metadata endpoints, reserved, or embed IPv4 (mapped, compatible, NAT64,
//! 6to4, Teredo), each with the name of its range. Pure functions over `IpAddr`: the sidecar's
//! egress guard refuses to dial these, and the API server refuses webhook destinations in them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::proxy_config::Cidr;

/// Built-in non-public IPv4 ranges, each with the reason reported when it matches.
const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this_network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.169.254/32", "metadata"),
    ("169.254.170.2/32", "metadata"),
    ("168.63.129.16/32", "metadata"),
    ("169.254.0.0/16", "link_local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "ietf_protocol"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4_relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
];

/// Built-in non-public IPv6 ranges, checked in order (most specific reasons first). Anything
/// outside 2000::/3 (global unicast) is refused as `reserved` after these.
const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "ipv4_mapped"),
    ("::/96", "ipv4_compatible"),
    ("64:ff9b::/96", "nat64"),
    ("64:ff9b:1::/48", "nat64"),
    ("100::/64", "discard"),
    ("fd00:ec2::254/128", "metadata"),
    ("fc00::/7", "unique_local"),
    ("fe80::/10", "link_local"),
    ("fec0::/10", "site_local"),
    ("ff00::/8", "multicast"),
    ("2001::/32", "teredo"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "ietf_protocol"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "srv6"),
];

/// The built-in classification: `Some(range)` for a non-public address.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// True when `ip` is a public unicast address by the built-in rules alone.
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip).is_none()
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4.iter()
        .find(|(net, _)| builtin(net).contains(IpAddr::V4(ip)))
        .map(|(_, reason)| *reason)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some((_, reason)) = V6
        .iter()
        .find(|(net, _)| builtin(net).contains(IpAddr::V6(ip)))
    {
        return Some(reason);
    }
    // Only 2000::/3 is allocated as global unicast.
    if (ip.segments()[0] & 0xe000) != 0x2000 {
        return Some("reserved");
    }
    None
}

fn builtin(net: &str) -> Cidr {
    // The tables above are constants checked by `builtin_tables_parse`: parsing cannot fail.
    Cidr::parse(net).expect("built-in CIDR table entry")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full non-public matrix of the issue; each entry must be refused with the given range.
    pub(crate) const NON_PUBLIC: &[(&str, &str)] = &[
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("169.254.1.1", "link_local"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("168.63.129.16", "metadata"),
        ("100.100.100.200", "cgnat"),
        ("0.0.0.0", "this_network"),
        ("0.1.2.3", "this_network"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("192.0.0.1", "ietf_protocol"),
        ("192.0.0.192", "ietf_protocol"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.254", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "documentation"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd00::1", "unique_local"),
        ("fc00::1", "unique_local"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link_local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "ipv4_mapped"),
        ("::ffff:10.0.0.1", "ipv4_mapped"),
        ("::ffff:8.8.8.8", "ipv4_mapped"),
        ("::127.0.0.1", "ipv4_compatible"),
        ("::a9fe:a9fe", "ipv4_compatible"),
        ("64:ff9b::7f00:1", "nat64"),
        ("64:ff9b::a9fe:a9fe", "nat64"),
        ("64:ff9b:1::a00:1", "nat64"),
        ("2002:7f00:1::1", "6to4"),
        ("2002:a9fe:a9fe::", "6to4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
        ("2001:db8::1", "documentation"),
        ("fec0::1", "site_local"),
        ("100::1", "discard"),
        ("4000::1", "reserved"),
    ];

    #[test]
    fn builtin_tables_parse() {
        for (net, _) in V4.iter().chain(V6) {
            assert!(Cidr::parse(net).is_ok(), "{net}");
        }
    }

    #[test]
    fn the_full_non_public_matrix_is_classified() {
        for (ip, range) in NON_PUBLIC {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(classify(ip), Some(*range), "{ip}");
            assert!(!is_public(ip), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in PUBLIC {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_public(ip), "{ip}");
        }
    }

    const PUBLIC: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "160.79.104.10",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
        "198.20.0.1",
        "2606:4700::6810:84e5",
        "2a00:1450:4001:80b::200e",
    ];
}
