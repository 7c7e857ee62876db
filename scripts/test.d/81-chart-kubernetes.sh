# The Helm chart on the real control plane with the chart's own identities
# (tests/system/chart.test.mjs says what it proves): helm install into kube-apiserver, the
# operator and the API server running with tokens of the chart's ServiceAccounts, a session over
# `/v3`, `kubectl auth can-i` least privilege, Pod Security admission of the sandbox pod. Needs
# root, node, the pinned helm (setup.d/70-helm.sh), the control plane (setup.d/60-control-plane.sh)
# and the SDK (setup.d/50-runtime-sdks.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
cargo build --quiet --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
SEALPOD_BIN_DIR="${target_dir}/debug" \
  node --test --test-concurrency=1 --test-timeout=400000 tests/system/chart.test.mjs
