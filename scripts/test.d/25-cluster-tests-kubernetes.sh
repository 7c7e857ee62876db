# The Rust tests that use a cluster, again on the real control plane: `cargo test --workspace`
# ran them on devcluster; here SEALPOD_TEST_CONTROL_PLANE=kubernetes gives each test its own
# etcd, kube-apiserver and kube-controller-manager (scripts/setup builds them into .tools/bin).
# The operator's controller tests, the API server's route, adoption, revision and console
# tests, and two of its schedule tests. `--workspace` keeps the features of `cargo test --workspace`, so nothing is
# compiled again (`-p` would); it also runs devcluster's own `controller` test, which does not
# read the variable.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SEALPOD_TEST_CONTROL_PLANE=kubernetes
cargo test --quiet --locked --workspace --test controller --test revisions --test routes --test adopt --test console
# Of the schedule tests, those whose outcome rests on the cluster (the Schedule kind, its status,
# a kubectl-applied object); the others test the store and the clock, as on devcluster.
cargo test --quiet --locked --workspace --test schedules -- kubectl each_time_fires_once
