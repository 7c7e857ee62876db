//! The sealpod runtime: the agent loop inside the sandbox. It claims input from the runtime API,
//! calls the model through the egress proxy with only a sealed token, runs tools in the
//! workspace and appends events.
//!
//! It never sees a real model key, and never prints the sealed token or its runtime token.

pub mod api;
pub mod config;
pub mod model;
pub mod net;
pub mod skills;
pub mod started;
pub mod tools;
pub mod transcript;
pub mod turn;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{ApiError, RuntimeApi};
use crate::config::{Config, Tunables};
use crate::model::ModelClient;
use crate::started::StartPhases;
use crate::transcript::Transcript;
use crate::turn::{Stop, TurnEnd};

/// Why the runtime stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The transcript could not be read or written.
    #[error("transcript: {0}")]
    Transcript(#[source] std::io::Error),
    /// The trust store could not be loaded.
    #[error("loading SSL_CERT_FILE: {0}")]
    Trust(#[source] std::io::Error),
    /// The workspace is unusable.
    #[error("workspace {path}: {source}")]
    Workspace {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime API failed for good.
    #[error(transparent)]
    Api(ApiError),
}

/// The runtime's state: clients, workspace and transcript.
#[derive(Debug)]
pub struct Runtime {
    api: RuntimeApi,
    model: ModelClient,
    workspace: PathBuf,
    /// The system prompt's skills section (read at start), if the session has skills.
    skills: Option<String>,
    tunables: Tunables,
    transcript: Transcript,
    /// Until the first claim: the moments of this sandbox's start, reported then.
    start: Option<StartPhases>,
}

impl Runtime {
    /// Builds the runtime from its configuration and loads the transcript.
    pub fn new(config: Config) -> Result<Runtime, RuntimeError> {
        std::fs::create_dir_all(&config.workspace).map_err(|source| RuntimeError::Workspace {
            path: config.workspace.clone(),
            source,
        })?;
        let trust = Arc::new(
            net::Trust::load(config.model.ca_file.as_deref()).map_err(RuntimeError::Trust)?,
        );
        let transcript = transcript::load(&config.workspace).map_err(RuntimeError::Transcript)?;
        let start = StartPhases::now(
            config.pod_created_at.clone(),
            config.model.ca_file.as_deref(),
        );
        Ok(Runtime {
            start: Some(start),
            api: RuntimeApi::new(
                config.api.clone(),
                config.runtime_token.clone(),
                trust.clone(),
                config
                    .model
                    .proxy
                    .clone()
                    .filter(|_| !config.api.bypasses_proxy(&config.model.no_proxy)),
            ),
            model: ModelClient::new(&config.model, trust),
            workspace: config.workspace,
            skills: config.skills_dir.as_deref().and_then(skills::section),
            tunables: config.tunables,
            transcript,
        })
    }

    /// Claims and runs turns until `shutdown` turns true. A turn running at shutdown stops at
    /// its next model call or tool (appends in flight finish first) and is left for the next
    /// attempt.
    pub async fn serve(&mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), RuntimeError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let claim = tokio::select! {
                _ = shutdown.changed() => continue,
                c = self.api.claim(self.tunables.claim_wait_seconds) => c,
            };
            match claim {
                Ok(None) => {}
                Ok(Some(turn)) => {
                    if let Some(start) = self.start.take()
                        && let Err(error) = self.api.append(vec![start.event(&turn)]).await
                    {
                        // Only a report: the turn goes on without it.
                        tracing::warn!(%error, "cannot record the sandbox start");
                    }
                    let (stop_tx, stop_rx) = watch::channel(None);
                    let watchers = [
                        tokio::spawn(watch_cancel(
                            self.api.clone(),
                            turn.turn_id.clone(),
                            stop_tx.clone(),
                        )),
                        tokio::spawn(forward_shutdown(shutdown.clone(), stop_tx)),
                    ];
                    let ended = self.run_turn(turn, stop_rx).await;
                    for w in watchers {
                        w.abort();
                    }
                    match ended {
                        Ok(TurnEnd::ShutDown) => return Ok(()),
                        Ok(TurnEnd::Completed(_)) => {}
                        Err(RuntimeError::Api(
                            e @ ApiError::Status {
                                status: 401 | 403, ..
                            },
                        )) => {
                            // The token was revoked or is wrong: nothing here can fix that.
                            return Err(RuntimeError::Api(e));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "turn failed; claiming again");
                            pause(&mut shutdown, Duration::from_secs(1)).await;
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "claim failed; retrying");
                    pause(&mut shutdown, Duration::from_secs(1)).await;
                }
                Err(e) => return Err(RuntimeError::Api(e)),
            }
        }
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        _ = shutdown.changed() => {}
        () = tokio::time::sleep(wait) => {}
    }
}

fn first_stop(tx: &watch::Sender<Option<Stop>>, stop: Stop) {
    tx.send_if_modified(|current| {
        if current.is_none() {
            *current = Some(stop);
            true
        } else {
            false
        }
    });
}

async fn watch_cancel(api: RuntimeApi, turn_id: String, tx: watch::Sender<Option<Stop>>) {
    loop {
        match api.signal(&turn_id, Duration::from_secs(30)).await {
            Ok(signal) if signal.cancel => {
                tracing::info!(turn_id, "cancel received");
                first_stop(&tx, Stop::Cancel);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "signal poll failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn forward_shutdown(mut shutdown: watch::Receiver<bool>, tx: watch::Sender<Option<Stop>>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
    first_stop(&tx, Stop::Shutdown);
}

/// Runs the runtime until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RuntimeError> {
    let mut runtime = Runtime::new(config)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        sealpod_util::shutdown::signal().await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    runtime.serve(rx).await
}
