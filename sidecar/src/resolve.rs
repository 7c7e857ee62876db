//! Name resolution and dialling, behind the [`Net`] trait so tests can count lookups and dials.
//!
//! [`dial`] resolves (overrides from `resolve` first, then DNS), checks **every** resolved address
//! with the [`Guard`], and dials only addresses it checked. It must never be called before the
//! allowlist decision, and never dial an address that was not checked.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sealpod_resources::proxy_config::{ResolveKey, ResolveTarget};
use tokio::net::TcpStream;

use crate::ssrf::{Guard, NonPublic};

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

/// The real network: `resolve` overrides, then the system resolver; plain TCP connects.
#[derive(Debug, Clone, Default)]
pub struct SystemNet {
    overrides: BTreeMap<ResolveKey, Vec<ResolveTarget>>,
}

impl SystemNet {
    /// A resolver with the config's `resolve` overrides.
    pub fn new(overrides: BTreeMap<ResolveKey, Vec<ResolveTarget>>) -> Self {
        Self { overrides }
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
            Ok(tokio::net::lookup_host((host, port)).await?.collect())
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

/// Resolves `host`, checks every address, then dials the checked addresses in order.
/// Returns the stream and the address it is connected to.
pub async fn dial(
    net: &Arc<dyn Net>,
    guard: &Guard,
    host: &str,
    port: u16,
) -> Result<(TcpStream, SocketAddr), DialError> {
    let addrs = resolve_checked(net, guard, host, port).await?;
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

/// Resolves `host` (an IP literal is used as is, without a lookup) and checks every address: one
/// non-public answer refuses the whole name, so a rebinding answer cannot slip in beside a
/// public one.
pub async fn resolve_checked(
    net: &Arc<dyn Net>,
    guard: &Guard,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, DialError> {
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
