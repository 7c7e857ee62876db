//! Name resolution and dialling, behind the [`Net`] trait so tests can count lookups and dials.
//!
//! [`dial`] resolves (overrides from `resolve` first, then DNS), checks **every** resolved address
//! with the [`Guard`], and dials only addresses it checked. It must never be called before the
//! allowlist decision, and never dial an address that was not checked.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealpod_resources::proxy_config::{ResolveKey, ResolveTarget};
use tokio::net::TcpStream;

use crate::ssrf::{Guard, NonPublic};
use crate::target::Target;

/// A boxed future, for the object-safe [`Net`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the proxy resolves names and opens TCP connections.
pub trait Net: Send + Sync + fmt::Debug {
    /// Addresses for `host:port` (`host` is lowercase, not an IP literal).
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
    /// A TCP connection to `addr`.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>>;
}

/// How long a system DNS answer is reused. Every use is still checked by the guard, so a cached
/// answer can never skip the non-public check; it only keeps DNS off the per-CONNECT path.
pub const DNS_TTL: Duration = Duration::from_secs(30);
/// Names kept in the DNS cache; past this the cache starts over.
const DNS_CACHE: usize = 1024;

type DnsCache = HashMap<(String, u16), (Instant, Vec<SocketAddr>)>;

/// The real network: `resolve` overrides, then the system resolver (answers cached for
/// [`DNS_TTL`]); plain TCP connects.
#[derive(Debug, Default)]
pub struct SystemNet {
    overrides: BTreeMap<ResolveKey, Vec<ResolveTarget>>,
    cache: Mutex<DnsCache>,
}

impl SystemNet {
    /// A resolver with the config's `resolve` overrides.
    pub fn new(overrides: BTreeMap<ResolveKey, Vec<ResolveTarget>>) -> Self {
        Self {
            overrides,
            cache: Mutex::default(),
        }
    }

    fn cached(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&(host.to_owned(), port))
            .filter(|(at, _)| at.elapsed() < DNS_TTL)
            .map(|(_, addrs)| addrs.clone())
    }

    fn remember(&self, host: &str, port: u16, addrs: &[SocketAddr]) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= DNS_CACHE {
            cache.clear();
        }
        cache.insert((host.to_owned(), port), (Instant::now(), addrs.to_vec()));
    }

    fn lookup_override(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let exact = ResolveKey {
            host: host.to_owned(),
            port: Some(port),
        };
        let any = ResolveKey {
            host: host.to_owned(),
            port: None,
        };
        self.overrides
            .get(&exact)
            .or_else(|| self.overrides.get(&any))
            .map(|targets| targets.iter().map(|t| t.socket_addr(port)).collect())
    }
}

impl Net for SystemNet {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            if let Some(addrs) = self.lookup_override(host, port) {
                return Ok(addrs);
            }
            if let Some(addrs) = self.cached(host, port) {
                return Ok(addrs);
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            if !addrs.is_empty() {
                self.remember(host, port, &addrs);
            }
            Ok(addrs)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

/// Why a destination could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// A resolved (or literal) address is not public.
    #[error("destination resolves to a non-public address ({})", .0.label())]
    NonPublic(NonPublic),
    /// The name did not resolve.
    #[error("name resolution failed: {0}")]
    Resolve(#[source] io::Error),
    /// No address answered.
    #[error("connection failed: {0}")]
    Connect(#[source] io::Error),
}

/// How long a dial may take before the proxy answers 504.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves `target` (the same normalized name the allowlist matched), checks every address,
/// then dials the checked addresses in order. Returns the stream and the address it is connected
/// to.
pub async fn dial(
    net: &Arc<dyn Net>,
    guard: &Guard,
    target: &Target,
) -> Result<(TcpStream, SocketAddr), DialError> {
    let addrs = resolve_checked(net, guard, target).await?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, net.connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(DialError::Connect(last))
}

/// Resolves `target` (an IP literal is used as is, without a lookup) and checks every address:
/// one non-public answer refuses the whole name, so a rebinding answer cannot slip in beside a
/// public one.
pub async fn resolve_checked(
    net: &Arc<dyn Net>,
    guard: &Guard,
    target: &Target,
) -> Result<Vec<SocketAddr>, DialError> {
    let (host, port) = (target.host(), target.port());
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let addrs = net.resolve(host, port).await.map_err(DialError::Resolve)?;
            if addrs.is_empty() {
                return Err(DialError::Resolve(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no addresses",
                )));
            }
            addrs
        }
    };
    for addr in &addrs {
        guard.check(addr.ip()).map_err(DialError::NonPublic)?;
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpod_resources::proxy_config::Cidr;

    #[tokio::test]
    async fn literals_skip_lookup_and_every_answer_is_checked() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            ResolveKey {
                host: "mixed.test".into(),
                port: None,
            },
            vec![
                ResolveTarget::Ip("8.8.8.8".parse().expect("ip")),
                ResolveTarget::Ip("10.0.0.1".parse().expect("ip")),
            ],
        );
        let net: Arc<dyn Net> = Arc::new(SystemNet::new(overrides));
        let guard = Guard::default();
        let t = |a: &str| Target::parse(a, 443).expect("target");
        let err = resolve_checked(&net, &guard, &t("mixed.test")).await;
        assert!(
            matches!(err, Err(DialError::NonPublic(_))),
            "one private answer refuses the name"
        );
        let ok = resolve_checked(&net, &guard, &t("1.1.1.1"))
            .await
            .expect("literal");
        assert_eq!(ok, vec!["1.1.1.1:443".parse().expect("addr")]);
        let exempt = Guard::new(vec![], vec![Cidr::parse("10.0.0.0/8").expect("cidr")]);
        assert_eq!(
            resolve_checked(&net, &exempt, &t("Mixed.Test.:80"))
                .await
                .expect("ok")
                .len(),
            2
        );
    }
}
