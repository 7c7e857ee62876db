# The Rust tests that use a cluster, again on the real control plane: `cargo test --workspace`
# ran them on devcluster; here SEALPOD_TEST_CONTROL_PLANE=kubernetes gives each test its own
# etcd, kube-apiserver and kube-controller-manager (scripts/setup builds them into .tools/bin).
# The operator's controller tests and the API server's route and adoption tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SEALPOD_TEST_CONTROL_PLANE=kubernetes
cargo test --quiet --locked -p sealpod-operator --test controller
cargo test --quiet --locked -p sealpod-api-server --test routes --test adopt
