//! Operator benchmark (PERFORMANCE.md §5.4, O2 and O4). Not a test: run
//!
//! ```text
//! cargo build --release -p sealpod-operator --bins --examples
//! target/release/examples/bench [--sessions N] [--rounds R] [--memory-sessions M]
//! ```
//!
//! O2: per round, a fresh in-process devcluster gets N pinned Sessions (with a Credential and an
//! Agent); then either the real `sealpod-operator` binary (a child process, concurrency 16) or
//! the plain loop (this binary again, `baseline` mode: the same reconcile function called for
//! each Session with 16 at a time, no watch, queue or cache) runs until every Session has its Pod
//! and `status.podName`. Rounds alternate which goes first. Prints sessions/s of each and the
//! median, min and max of the per-round ratio operator / plain loop.
//!
//! `BENCH_METRICS=1` prints the operator's `/metrics` (reconcile counts and durations) after
//! each operator round, and O4's reconcile counts (it then listens on 127.0.0.1:18089).
//!
//! O4: one operator run over M Sessions; RSS once every pod exists and things settle (steady),
//! then the peak (VmHWM, reset first) while a compacted watch log forces every watcher to relist.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use sealpod_resources::Session;

mod common;

use common::{NS, cluster, flags, populate};

const CONCURRENCY: usize = 16;

#[derive(Debug, Parser)]
struct Args {
    /// Sessions per O2 round.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// O2 rounds (each runs both candidates).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Sessions (and pods) of the O4 memory run; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    memory_sessions: usize,
    /// Internal: run the plain loop against this kubeconfig.
    #[arg(long, hide = true)]
    baseline: Option<PathBuf>,
}

/// Counts, from watches, pods created and sessions whose status names their pod.
struct Progress {
    pods: Arc<AtomicUsize>,
    bound: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(client: &Client) -> Progress {
        let pods = Arc::new(AtomicUsize::new(0));
        let bound = Arc::new(AtomicUsize::new(0));
        let p = pods.clone();
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
        let t1 = tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut s = watcher(pod_api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(pod)) = s.next().await {
                if seen.insert(pod.name_any()) {
                    p.store(seen.len(), Ordering::Relaxed);
                }
            }
        });
        let b = bound.clone();
        let ses_api: Api<Session> = Api::namespaced(client.clone(), NS);
        let t2 = tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut s = watcher(ses_api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(ses)) = s.next().await {
                if ses
                    .status
                    .as_ref()
                    .and_then(|st| st.pod_name.as_ref())
                    .is_some()
                    && seen.insert(ses.name_any())
                {
                    b.store(seen.len(), Ordering::Relaxed);
                }
            }
        });
        Progress {
            pods,
            bound,
            tasks: vec![t1, t2],
        }
    }

    async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.pods.load(Ordering::Relaxed) < n || self.bound.load(Ordering::Relaxed) < n {
            anyhow::ensure!(
                start.elapsed() < limit,
                "stalled at {} pods / {} bound of {n}",
                self.pods.load(Ordering::Relaxed),
                self.bound.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    // target/<profile>/examples/bench → target/<profile>/<name>
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target dir"))?;
    Ok(dir.join(name))
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

enum Candidate {
    Operator,
    Loop,
}

/// One O2 run: a fresh cluster with `n` sessions, then one candidate until all are bound.
async fn round(candidate: &Candidate, n: usize) -> anyhow::Result<f64> {
    let cluster = cluster().await?;
    let client = cluster.client();
    populate(&client, n).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let progress = Progress::start(&client);
    let start = Instant::now();
    let mut child = match candidate {
        Candidate::Operator => tokio::process::Command::new(sibling("sealpod-operator")?)
            .args(flags())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?,
        Candidate::Loop => tokio::process::Command::new(std::env::current_exe()?)
            .arg("--baseline")
            .arg(&kubeconfig)
            .env("KUBECONFIG", &kubeconfig)
            .kill_on_drop(true)
            .spawn()?,
    };
    progress.wait_for(n, Duration::from_secs(600)).await?;
    let secs = start.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_METRICS").is_some() {
        println!("{}", metrics()?);
    }
    child.kill().await?;
    cluster.shutdown().await;
    Ok(n as f64 / secs)
}

/// The plain loop: the operator's own reconcile, called directly for each Session, 16 at a time.
async fn baseline() -> anyhow::Result<()> {
    use sealpod_operator::controller::session;
    let client = Client::try_default().await?;
    let ctx = common::context(&client).await?;
    let sessions: Api<Session> = Api::namespaced(client, NS);
    let list = sessions.list(&Default::default()).await?;
    futures::stream::iter(list.items)
        .map(|s| {
            let ctx = ctx.clone();
            async move {
                // One reconcile per Session: it adds the finalizer and runs the pipeline, as
                // the controller's first reconcile of a new Session does.
                session::reconcile(Arc::new(s), ctx).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn memory(m: usize) -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let client = cluster.client();
    populate(&client, m).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let progress = Progress::start(&client);
    let mut child = tokio::process::Command::new(sibling("sealpod-operator")?)
        .args(flags())
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    progress.wait_for(m, Duration::from_secs(1800)).await?;
    let first_peak = status_field(pid, "VmHWM:");
    let before = reconciles()?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady = status_field(pid, "VmRSS:");
    if let (Some(before), Some(now)) = (before, reconciles()?) {
        println!(
            "O4 reconciles by the time every pod existed: {before}; during the steady window: {}",
            now - before
        );
    }
    let (anonymous, mapped) = (status_field(pid, "RssAnon:"), status_field(pid, "RssFile:"));
    // Reset the peak, drop the watch log, and let every watch (5 s timeout) come back to a 410.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    cluster.compact();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let relist_peak = status_field(pid, "VmHWM:");
    let after = status_field(pid, "VmRSS:");
    child.kill().await?;
    cluster.shutdown().await;
    println!(
        "O4 {m} sessions + {m} pods: steady RSS {:.1} MiB ({:.2} KiB per session+pod; \
         anonymous {:.1} MiB, mapped files {:.1} MiB); peak during first list and reconcile {:.1} MiB; peak during relist {:.1} MiB = {:.2}x steady; RSS after relist {:.1} MiB",
        steady as f64 / 1024.0,
        steady as f64 / m as f64,
        anonymous as f64 / 1024.0,
        mapped as f64 / 1024.0,
        first_peak as f64 / 1024.0,
        relist_peak as f64 / 1024.0,
        relist_peak as f64 / steady.max(1) as f64,
        after as f64 / 1024.0,
    );
    Ok(())
}

/// The operator's `/metrics` (it listens there when `BENCH_METRICS` is set).
fn metrics() -> anyhow::Result<String> {
    let out = std::process::Command::new("curl")
        .arg("-s")
        .arg("http://127.0.0.1:18089/metrics")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reconciles of every controller so far, when `BENCH_METRICS` is set.
fn reconciles() -> anyhow::Result<Option<u64>> {
    if std::env::var_os("BENCH_METRICS").is_none() {
        return Ok(None);
    }
    let total = metrics()?
        .lines()
        .filter(|l| l.starts_with("sealpod_operator_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    Ok(Some(total))
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.baseline.is_some() {
        return baseline().await;
    }
    let mut ratios = Vec::new();
    for r in 0..args.rounds {
        // Alternate the order so neither candidate always runs on a warmer machine.
        let (op, plain) = if r % 2 == 0 {
            let op = round(&Candidate::Operator, args.sessions).await?;
            (op, round(&Candidate::Loop, args.sessions).await?)
        } else {
            let plain = round(&Candidate::Loop, args.sessions).await?;
            (round(&Candidate::Operator, args.sessions).await?, plain)
        };
        println!(
            "O2 round {}: operator {op:.0} sessions/s, plain loop {plain:.0} sessions/s, ratio {:.2} (loadavg {})",
            r + 1,
            op / plain,
            uptime()
        );
        ratios.push(op / plain);
    }
    ratios.sort_by(f64::total_cmp);
    if !ratios.is_empty() {
        println!(
            "O2 ratio operator/plain loop over {} rounds of {} sessions: median {:.2}, min {:.2}, max {:.2}",
            ratios.len(),
            args.sessions,
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    if args.memory_sessions > 0 {
        memory(args.memory_sessions).await?;
    }
    Ok(())
}
