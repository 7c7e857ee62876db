# devcluster measured against the real kube-apiserver (devcluster/tests/fidelity.py says how):
# the same raw API requests and kubectl commands to both, normalized responses compared. Prints
# each difference and `fidelity: N/M identical`; fails on a difference devcluster/README.md does
# not list (or on a listed one that is gone). Needs the control plane (setup.d/60-control-plane.sh),
# the pinned kubectl (setup.d/70-helm.sh) and the venv's PyYAML (setup.d/71-python-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
cargo build --quiet --locked --workspace --bin devcluster --bin sealpod-controlplane
target_dir="${CARGO_TARGET_DIR:-target}"
.venv/bin/python devcluster/tests/fidelity.py "${target_dir}/debug/devcluster" \
  "${target_dir}/debug/sealpod-controlplane" "$(command -v kubectl-1.35)"
