//! Starting and stopping the operator: the health listener, leader election, and, while this
//! replica leads, the key bootstrap and the three controllers.
//!
//! Losing the lease stops the controllers at once (aborted, not drained): a replica that is no
//! longer leader must not write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::controller::{self, Context};
use crate::error::Error;
use crate::http::{Health, app};
use crate::keys;
use crate::leader::Elector;
use crate::metrics::Metrics;

/// A running operator.
#[derive(Debug)]
pub struct Running {
    /// Its metrics (tests read reconcile counts and leadership here).
    pub metrics: Arc<Metrics>,
    /// The bound `/healthz`, `/readyz`, `/metrics` address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
    server: JoinHandle<()>,
}

impl Running {
    /// Stops gracefully: controllers stop and the lease is released.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = (&mut self.task).await.unwrap_or(Ok(()));
        self.server.abort();
        result
    }

    /// Stops without releasing anything, as a crash would.
    pub fn abort(self) {
        self.task.abort();
        self.server.abort();
    }

    /// Waits until the operator ends by itself (it only ends on error or after `stop`).
    pub async fn wait(mut self) -> Result<(), Error> {
        let result = (&mut self.task).await.unwrap_or(Ok(()));
        self.server.abort();
        result
    }
}

fn identity(config: &Config) -> String {
    config
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| {
            format!(
                "sealpod-operator-{}",
                sealpod_resources::secret::random_hex(4)
            )
        })
}

/// Starts the operator against `client`: binds the listener (failing fast), then elects and
/// runs in the background.
pub async fn start(client: Client, config: Config) -> Result<Running, Error> {
    let settings = config.settings()?;
    start_with(client, config, settings).await
}

/// [`start`] with settings already derived from `config` (so files named by flags are read once).
pub async fn start_with(
    client: Client,
    config: Config,
    settings: crate::build::Settings,
) -> Result<Running, Error> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health {
        ready: Default::default(),
        metrics: metrics.clone(),
    });
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(Error::Listener)?;
    let addr = listener.local_addr().map_err(Error::Listener)?;
    let server = tokio::spawn({
        let router = app(health.clone());
        async move {
            if let Err(error) = axum::serve(listener, router.into_make_service()).await {
                tracing::error!(%error, "health listener stopped");
            }
        }
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(elect(client, config, settings, health, stop_rx));
    Ok(Running {
        metrics,
        addr,
        stop: Some(stop_tx),
        task,
        server,
    })
}

async fn start_controllers(
    client: &Client,
    config: &Config,
    settings: &crate::build::Settings,
    metrics: &Arc<Metrics>,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let ns = &config.system_namespace;
    let keys = keys::ensure_sealing_keys(client, ns).await?;
    let token_key = keys::ensure_token_key(client, ns).await?;
    keys::ensure_client_token_key(client, ns).await?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        config.clone(),
        settings.clone(),
        keys,
        token_key,
        metrics.clone(),
    ));
    let never = std::future::pending::<()>;
    // Cluster-wide, or one set of controllers per watched namespace (namespaced RBAC). The system
    // namespace holds the managed credential, so its Credentials are watched too.
    let scopes: Vec<Option<String>> = if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config.watch_namespaces.iter().cloned().map(Some).collect()
    };
    crate::moves::move_api_keys(client, &scopes).await?;
    let mut handles = Vec::new();
    for ns in scopes {
        handles.push(tokio::spawn(controller::credential::run(
            ctx.clone(),
            ns.clone(),
            never(),
        )));
        handles.push(tokio::spawn(controller::agent::run(
            ctx.clone(),
            ns.clone(),
            never(),
        )));
        handles.push(tokio::spawn(controller::session::run(
            ctx.clone(),
            ns,
            never(),
        )));
    }
    if !config.watch_namespaces.is_empty()
        && !config.watch_namespaces.contains(&config.system_namespace)
    {
        handles.push(tokio::spawn(controller::credential::run(
            ctx,
            Some(config.system_namespace.clone()),
            never(),
        )));
    }
    Ok(handles)
}

async fn elect(
    client: Client,
    config: Config,
    settings: crate::build::Settings,
    health: Arc<Health>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), Error> {
    let identity = identity(&config);
    let elector = Elector::new(
        client.clone(),
        &config.system_namespace,
        &config.lease_name,
        &identity,
        Duration::from_secs(u64::from(config.lease_duration_seconds.max(1))),
    );
    let metrics = health.metrics.clone();
    let mut running: Option<Vec<JoinHandle<()>>> = None;
    let stop_all = |running: &mut Option<Vec<JoinHandle<()>>>| {
        for handle in running.take().into_iter().flatten() {
            handle.abort();
        }
    };
    loop {
        let leading = match elector.try_acquire_or_renew().await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "leader election round failed");
                false
            }
        };
        metrics.set_leader(leading);
        match (leading, running.is_some()) {
            (true, false) => match start_controllers(&client, &config, &settings, &metrics).await {
                Ok(handles) => {
                    tracing::info!(%identity, "leading: controllers started");
                    running = Some(handles);
                }
                Err(error) => tracing::error!(%error, "cannot start the controllers; retrying"),
            },
            (false, true) => {
                tracing::warn!(%identity, "lost the leader lease: controllers stopped");
                stop_all(&mut running);
            }
            _ => {}
        }
        health
            .ready
            .store(!leading || running.is_some(), Ordering::Relaxed);
        tokio::select! {
            _ = &mut stop => break,
            () = tokio::time::sleep(elector.renew_period()) => {}
        }
    }
    stop_all(&mut running);
    metrics.set_leader(false);
    elector.release().await
}

/// Renews the cluster sealing key (old keys kept) and returns.
pub async fn renew_sealing_key(client: Client, config: &Config) -> Result<(), Error> {
    keys::renew_sealing_keys(&client, &config.system_namespace)
        .await
        .map(|_| ())
}
