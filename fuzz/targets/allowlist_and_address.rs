//! Host names, allowlist patterns and addresses (`sealpod_resources::proxy_config`,
//! `sealpod_resources::address`, and the sidecar's guard over them).
//!
//! Invariants:
//! - `normalize_host` is idempotent and yields lowercase names without a trailing dot or an empty
//!   label;
//! - a pattern that parses is written back to itself, matches its own literal host on the ports
//!   it names (and no other), a wildcard matches strictly below its suffix only, and a request
//!   target spelled like the pattern is matched by it;
//! - `Cidr` parses back from its own `addr/prefix` and contains its address;
//! - the classifier refuses every address the standard library knows as non-public, everything
//!   outside 2000::/3, and every IPv6 form that embeds an IPv4 address; an `allow_cidrs`
//!   exemption for an IPv4 address never opens those IPv6 forms.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use sealpod_resources::address::classify;
use sealpod_resources::proxy_config::{
    Cidr, DEFAULT_PORTS, HostMatch, HostPattern, normalize_host,
};
use sealpod_sidecar::ssrf::Guard;
use sealpod_sidecar::target::Target;

fn check_normalize(raw: &str) {
    let Some(name) = normalize_host(raw) else {
        return;
    };
    assert_eq!(normalize_host(&name).as_ref(), Some(&name), "{raw:?}");
    assert_eq!(name, name.to_ascii_lowercase());
    assert!(
        !name.ends_with('.') && !name.split('.').any(str::is_empty),
        "{name:?}"
    );
}

/// `host[:port]` as a configuration would spell the pattern.
fn written(p: &HostPattern) -> String {
    let host = match &p.host {
        HostMatch::Exact(h) if h.contains(':') => format!("[{h}]"),
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Suffix(s) => format!("*.{s}"),
    };
    match p.port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn check_pattern(raw: &str) {
    let Ok(p) = HostPattern::parse(raw) else {
        return;
    };
    assert_eq!(HostPattern::parse(&written(&p)).as_ref(), Ok(&p), "{raw:?}");
    let ports: Vec<u16> = p.port.map_or(DEFAULT_PORTS.to_vec(), |port| vec![port]);
    let other = (1..=u16::MAX).find(|q| !ports.contains(q)).expect("a port");
    match &p.host {
        HostMatch::Exact(h) => {
            assert_eq!(normalize_host(h).as_ref(), Some(h), "{raw:?}");
            for &port in &ports {
                assert!(p.matches(h, port), "{raw:?} does not match {h}:{port}");
            }
            assert!(!p.matches(h, other), "{raw:?} matches port {other}");
            assert!(!p.matches(&format!("a.{h}"), ports[0]), "{raw:?}");
            // A request naming the pattern's host is matched by it: the proxy's own parse
            // (`Target`) and the pattern's agree on what the name is.
            let authority = written(&p);
            if let Some(t) = Target::parse(&authority, ports[0]) {
                assert_eq!(t.host(), h, "{authority:?}");
                assert!(p.matches(t.host(), t.port()), "{authority:?}");
            }
        }
        HostMatch::Suffix(s) => {
            assert_eq!(normalize_host(s).as_ref(), Some(s), "{raw:?}");
            for &port in &ports {
                assert!(p.matches(&format!("a.{s}"), port), "{raw:?}");
                assert!(!p.matches(s, port), "{raw:?} matches its bare suffix");
                assert!(!p.matches(&format!("a{s}"), port), "{raw:?} matches a{s}");
            }
            assert!(!p.matches(&format!("a.{s}"), other));
        }
    }
}

fn check_cidr(raw: &str) {
    let Ok(c) = Cidr::parse(raw) else {
        return;
    };
    assert!(c.contains(c.addr), "{raw:?}");
    let back = format!("{}/{}", c.addr, c.prefix);
    assert_eq!(Cidr::parse(&back), Ok(c), "{raw:?}");
}

/// `ip/prefix` with the host bits cleared parses and contains `ip`.
fn check_network(ip: IpAddr, prefix: u8) {
    let width: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = u32::from(prefix) % (width + 1);
    let net = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    };
    let c = Cidr::parse(&format!("{net}/{prefix}")).expect("a masked network parses");
    assert!(c.contains(ip), "{net}/{prefix} does not contain {ip}");
}

fn check_v4(v4: Ipv4Addr) {
    let ip = IpAddr::V4(v4);
    if v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_unspecified()
        || v4.is_multicast()
    {
        assert!(classify(ip).is_some(), "{v4} passes");
    }
    let n = u128::from(u32::from(v4));
    let embedded = [
        IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(Ipv6Addr::from(n)), // IPv4-compatible
        IpAddr::V6(Ipv6Addr::from((0x64_ff9b_u128 << 96) | n)), // NAT64
        IpAddr::V6(Ipv6Addr::from((0x64_ff9b_0001_u128 << 80) | n)), // local-use NAT64
        IpAddr::V6(Ipv6Addr::from((0x2002_u128 << 112) | (n << 80))), // 6to4
        IpAddr::V6(Ipv6Addr::from(
            (0x2001_0000_u128 << 96) | (!n & 0xffff_ffff),
        )), // Teredo
    ];
    let exempt = Guard::new(
        vec![],
        vec![Cidr::parse(&format!("{v4}/32")).expect("host route")],
    );
    assert_eq!(exempt.check(ip), Ok(()), "{v4} exempted");
    for e in embedded {
        assert!(classify(e).is_some(), "{e} embeds {v4} and passes");
        assert!(exempt.check(e).is_err(), "exempting {v4} opened {e}");
    }
}

fn check_v6(v6: Ipv6Addr) {
    let ip = IpAddr::V6(v6);
    if v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || v6.is_unique_local()
        || v6.is_unicast_link_local()
        || v6.to_ipv4_mapped().is_some()
    {
        assert!(classify(ip).is_some(), "{v6} passes");
    }
    if classify(ip).is_none() {
        assert_eq!(
            v6.segments()[0] & 0xe000,
            0x2000,
            "{v6} outside 2000::/3 passes"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_normalize(text);
        check_pattern(text);
        check_cidr(text);
        if let Ok(ip) = text.trim().parse::<IpAddr>() {
            match ip {
                IpAddr::V4(v4) => check_v4(v4),
                IpAddr::V6(v6) => check_v6(v6),
            }
        }
    }
    if let Some(bytes) = data.get(..4) {
        let v4 = Ipv4Addr::from(<[u8; 4]>::try_from(bytes).expect("four bytes"));
        check_v4(v4);
        check_network(IpAddr::V4(v4), data[4..].first().copied().unwrap_or(32));
    }
    if let Some(bytes) = data.get(..16) {
        let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).expect("sixteen bytes"));
        check_v6(v6);
        check_network(IpAddr::V6(v6), data.get(16).copied().unwrap_or(128));
    }
});
