//! The runner's `Node`: registered at start (as a kubelet registers itself), reported Ready with
//! this machine's capacity, and kept alive by renewing its Lease in `kube-node-lease` every
//! [`HEARTBEAT`], which is what a real control plane's node lifecycle controller watches. A
//! cluster without that namespace (devcluster) gets the Node but no Lease.
//!
//! It writes only its own Node and Lease, with its own field manager.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::RunnerError;

/// How often the Lease is renewed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// The namespace of node Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The field manager of everything this module writes.
const MANAGER: &str = "sealpod-node";
/// The version this node reports as its kubelet's.
pub const NODE_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "-sealpod-node");

fn node_capacity() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({"cpu": cpus.to_string(), "memory": format!("{memory_kib}Ki"), "pods": "110"})
}

/// Creates or updates the Node and reports it Ready.
pub async fn register(client: &kube::Client, name: &str) -> Result<(), RunnerError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH,
                "node.sealpod.dev/pod-runner": "true",
            },
        },
    });
    nodes
        .patch(name, &params, &Patch::Apply(&node))
        .await
        .map_err(RunnerError::kube)?;
    let now = Timestamp::now().to_string();
    let capacity = node_capacity();
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "the sealpod pod runner is running pods",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }],
            "nodeInfo": {
                "kubeletVersion": NODE_VERSION,
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH,
                "containerRuntimeVersion": "sealpod-node://local-processes",
                "osImage": "", "kernelVersion": "", "machineID": "", "systemUUID": "",
                "bootID": "", "kubeProxyVersion": "",
            },
        },
    });
    nodes
        .patch_status(name, &params, &Patch::Apply(&status))
        .await
        .map_err(RunnerError::kube)?;
    Ok(())
}

/// Renews the node's Lease once (creating it); a cluster without `kube-node-lease` is skipped.
pub async fn heartbeat(client: &kube::Client, name: &str) -> Result<(), RunnerError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 40,
            "renewTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        },
    });
    match leases
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(RunnerError::kube(e)),
    }
}
