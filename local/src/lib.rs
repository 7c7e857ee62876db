//! sealpod on one machine. `sealpod up` runs the whole platform as a user would run it on a
//! cluster, on devcluster (in process) or the real Kubernetes control plane ([`cluster`]), with
//! the pod runner in place of a kubelet: the operators and the API servers (child processes, the
//! real binaries), the pod runner (`sealpod pod-runner`, a child process: [`pod_runner`]) and,
//! with `--fake-model`, the fake model API.
//!
//! Everything it keeps lives in one data directory ([`state`]); a second `up` with the same
//! directory resumes the same cluster, store, workspaces and API key. It must never print a
//! secret other than the org API key it exists to hand out, and never pass its own `SEALPOD_*`
//! environment on to a child (each child gets exactly the flags written here).

pub mod balancer;
pub mod bootstrap;
pub mod cluster;
pub mod config;
pub mod pod_runner;
pub mod programs;
pub mod rootless;
pub mod state;
pub mod supervise;
pub mod up;
