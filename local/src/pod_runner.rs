//! `sealpod pod-runner`: the pod runner as a process of its own, as a node runs its kubelet
//! beside its workloads. `up` starts it last (everything pods talk to is up) and stops it after
//! the operator, so nothing replaces the pods it stops; if it dies, `up` starts it again, and
//! the new runner first kills what the dead one left running ([`sealpod_node::ledger`]).

use std::time::Duration;

use anyhow::Context as _;
use sealpod_node::isolation::{Bridge, IsolationConfig};
use sealpod_node::{ImageMap, PodRunner, RunnerConfig};

use crate::config::PodRunnerArgs;

/// Runs pods until SIGTERM or Ctrl-C, then stops them (each with its grace period).
pub async fn run(args: PodRunnerArgs) -> anyhow::Result<()> {
    let images = ImageMap::parse(args.images.iter().map(String::as_str))?;
    let bridges = args
        .bridges
        .iter()
        .map(|b| Bridge::parse(b).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("the kubeconfig")?;
    let client = kube::Client::try_from(config).context("a client of the control plane")?;

    let mut runner = RunnerConfig::new(args.data_dir, images);
    runner.node_name = args.node_name;
    runner.schedule = args.schedule;
    runner.path = args.path;
    runner.backoff_max = Duration::from_secs(args.backoff_max_seconds);
    runner.isolation = args.isolate.then_some(IsolationConfig { bridges });
    let runner = PodRunner::start(client, runner);
    sealpod_util::shutdown::signal().await;
    runner.shutdown().await;
    Ok(())
}
