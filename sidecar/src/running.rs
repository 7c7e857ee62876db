//! The start-up sequence: build the shared [`Proxy`], mint the CA and write its certificate, bind
//! the proxy and admin listeners, and serve both. Start-up must finish every check before it
//! binds a port, and must never write anything but the CA certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sealpod_resources::proxy_config::ValidatedProxyConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::proxy::{Proxy, StartError};
use crate::resolve::Net;

/// A started proxy: its bound addresses and serving tasks.
#[derive(Debug)]
pub struct Running {
    /// The proxy listener's address.
    pub listen: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// The shared state.
    pub proxy: Arc<Proxy>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until a serving task ends (they only end on a fatal error).
    pub async fn wait(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Mints the CA, writes its certificate, binds both listeners and starts serving.
pub async fn start(
    config: &ValidatedProxyConfig,
    net: Arc<dyn Net>,
) -> Result<Running, StartError> {
    let proxy = Arc::new(Proxy::new(config, net)?);
    write_ca(&config.ca_cert_out, proxy.ca.cert_pem())?;
    let bind = |key, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { key, addr, source })
    };
    let listener = bind("listen", config.listen).await?;
    let admin = bind("admin_listen", config.admin_listen).await?;
    let running = Running {
        listen: listener.local_addr().map_err(|source| StartError::Bind {
            key: "listen",
            addr: config.listen,
            source,
        })?,
        admin: admin.local_addr().map_err(|source| StartError::Bind {
            key: "admin_listen",
            addr: config.admin_listen,
            source,
        })?,
        tasks: vec![
            tokio::spawn(crate::server::serve(listener, Arc::clone(&proxy))),
            tokio::spawn(crate::admin::serve(admin, Arc::clone(&proxy))),
        ],
        proxy,
    };
    running.proxy.ready.store(true, Ordering::Release);
    tracing::info!(listen = %running.listen, admin = %running.admin, mode = config.mode.as_str(), "sidecar proxy ready");
    Ok(running)
}

fn write_ca(path: &std::path::Path, pem: &str) -> Result<(), StartError> {
    let err = |source| StartError::WriteCa {
        path: path.display().to_string(),
        source,
    };
    // Written then renamed, so a reader never sees half a certificate.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pem).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
