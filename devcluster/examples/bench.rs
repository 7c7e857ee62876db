//! devcluster benchmark (not a test): apply, list and watch throughput and memory per 10k
//! objects over real HTTP with kube-rs, printed next to an in-process baseline measured in the
//! same run (JSON encode + decode of the same objects, the least any API server must do), so
//! the figures compare across machines as ratios.
//!
//! `cargo run -p devcluster --release --example bench` (`BENCH_OBJECTS=N` to change the size,
//! default 10000; `BENCH_CONCURRENCY`, default 16). Bounded: every phase ends by itself.

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn object(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("bench-{i:06}"), "labels": {"app": "bench", "shard": format!("s{}", i % 16)}},
        "data": {"index": i.to_string(), "payload": "x".repeat(200)},
    })
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let conc: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);

    // Baseline: JSON encode + decode of every object, in process.
    let t = Instant::now();
    let mut sink = 0usize;
    for i in 0..n {
        let bytes = serde_json::to_vec(&object(i))?;
        let back: Value = serde_json::from_slice(&bytes)?;
        sink += back.as_object().map_or(0, serde_json::Map::len);
    }
    let baseline = per_sec(n, t.elapsed());
    assert!(sink > 0);

    let rss_before = rss_bytes();
    let cluster = devcluster::DevCluster::start(devcluster::Config::default()).await?;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");

    // Apply: server-side apply creating every object.
    let pp = PatchParams::apply("bench").force();
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            let pp = pp.clone();
            async move {
                cms.patch(&format!("bench-{i:06}"), &pp, &Patch::Apply(object(i)))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<()>>()
        .await?;
    let apply_create = per_sec(n, t.elapsed());
    let rss_after = rss_bytes();

    // Watch: a watch opened before n updates, counting the events it delivers.
    let rv = cluster.resource_version();
    let watch_cms = cms.clone();
    let counter = tokio::spawn(async move {
        let wp = kube::api::WatchParams::default().timeout(290);
        let mut s = watch_cms.watch(&wp, &rv.to_string()).await?.boxed();
        let mut seen = 0usize;
        let start = Instant::now();
        while seen < n {
            match tokio::time::timeout(Duration::from_secs(60), s.try_next()).await {
                Ok(Ok(Some(kube::api::WatchEvent::Modified(_)))) => seen += 1,
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        Ok::<_, kube::Error>((seen, start.elapsed()))
    });
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            let pp = pp.clone();
            async move {
                let mut o = object(i);
                o["data"]["index"] = json!(format!("{i}-updated"));
                cms.patch(&format!("bench-{i:06}"), &pp, &Patch::Apply(o))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<()>>()
        .await?;
    let apply_update = per_sec(n, t.elapsed());
    let (seen, watch_time) = counter.await??;
    let watch_live = per_sec(seen, watch_time);

    // List: full lists in pages of 500 (what a watcher's initial list does).
    let rounds = 5;
    let t = Instant::now();
    let mut listed = 0;
    for _ in 0..rounds {
        let mut lp = ListParams::default().limit(500);
        loop {
            let page = cms.list(&lp).await?;
            listed += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
    }
    let list = per_sec(listed, t.elapsed());

    // Streaming list: a watcher's initial events for every object.
    let t = Instant::now();
    let mut initial = 0usize;
    let mut s = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), s.try_next()).await?? {
        match ev {
            watcher::Event::InitApply(_) => initial += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    let streaming_list = per_sec(initial, t.elapsed());
    cluster.shutdown().await;

    let mib_per_10k =
        (rss_after.saturating_sub(rss_before)) as f64 / (1024.0 * 1024.0) * (10_000.0 / n as f64);
    println!("devcluster bench: {n} ConfigMaps (~300 B of data each), concurrency {conc}");
    println!("  baseline JSON encode+decode   {baseline:>12.0} obj/s  (1.000)");
    let row = |name: &str, v: f64| {
        println!(
            "  {name:<29} {v:>12.0} obj/s  ({:.3} of baseline)",
            v / baseline
        );
    };
    row("apply (create, SSA)", apply_create);
    row("apply (update, SSA)", apply_update);
    row("watch (live MODIFIED events)", watch_live);
    row("list (pages of 500)", list);
    row("watch (streaming list)", streaming_list);
    println!(
        "  memory: {mib_per_10k:.1} MiB RSS per 10k objects (process RSS growth while creating them)"
    );
    if seen < n {
        println!("  note: the watch saw {seen} of {n} updates before its bound");
    }
    Ok(())
}
