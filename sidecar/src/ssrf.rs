//! The non-public address guard: which resolved addresses the proxy may dial — the built-in
//! classification (`sealpod_resources::address`) plus the configured `deny_cidrs` and
//! `allow_cidrs`.
//!
//! Pure functions over `IpAddr`, called on every resolved address before it is dialled (and the
//! address checked is the one dialled). It must never resolve or connect by itself, and never
//! let an address that embeds IPv4 (mapped, compatible, NAT64, 6to4, Teredo) through: such forms
//! reach private IPv4 space on dual-stack hosts and gateways.

use std::net::IpAddr;

pub use sealpod_resources::address::{classify, is_public};
use sealpod_resources::proxy_config::Cidr;

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublic {
    /// In a built-in range (the name of the range).
    Builtin(&'static str),
    /// In one of the configured `deny_cidrs`.
    Denied,
}

impl NonPublic {
    /// A short label for logs and events (never a secret).
    pub fn label(self) -> &'static str {
        match self {
            NonPublic::Builtin(r) => r,
            NonPublic::Denied => "deny_cidrs",
        }
    }
}

/// The guard as configured: built-in ranges plus `deny_cidrs`, minus `allow_cidrs`.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    deny: Vec<Cidr>,
    allow: Vec<Cidr>,
}

impl Guard {
    /// A guard with extra denied and exempted networks.
    pub fn new(deny: Vec<Cidr>, allow: Vec<Cidr>) -> Self {
        Self { deny, allow }
    }

    /// `Ok` when `ip` may be dialled.
    pub fn check(&self, ip: IpAddr) -> Result<(), NonPublic> {
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        if let Some(r) = classify(ip) {
            return Err(NonPublic::Builtin(r));
        }
        if self.deny.iter().any(|c| c.contains(ip)) {
            return Err(NonPublic::Denied);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_each_builtin_range_with_its_name() {
        for (ip, range) in [
            ("10.1.2.3", "private"),
            ("169.254.169.254", "metadata"),
            ("::ffff:127.0.0.1", "ipv4_mapped"),
            ("2002:7f00:1::1", "6to4"),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(
                Guard::default().check(ip),
                Err(NonPublic::Builtin(range)),
                "{ip}"
            );
        }
        assert_eq!(
            Guard::default().check("8.8.8.8".parse().expect("ip")),
            Ok(())
        );
    }

    #[test]
    fn deny_cidrs_add_and_allow_cidrs_exempt() {
        let guard = Guard::new(
            vec![Cidr::parse("8.8.8.0/24").expect("c")],
            vec![Cidr::parse("127.0.0.1/32").expect("c")],
        );
        assert_eq!(
            guard.check("8.8.8.8".parse().expect("ip")),
            Err(NonPublic::Denied)
        );
        assert_eq!(guard.check("8.8.4.4".parse().expect("ip")), Ok(()));
        assert_eq!(guard.check("127.0.0.1".parse().expect("ip")), Ok(()));
        assert_eq!(
            guard.check("127.0.0.2".parse().expect("ip")),
            Err(NonPublic::Builtin("loopback"))
        );
        // An exemption for 127.0.0.1 does not open its IPv4-mapped form.
        assert_eq!(
            guard.check("::ffff:127.0.0.1".parse().expect("ip")),
            Err(NonPublic::Builtin("ipv4_mapped"))
        );
    }
}
