# The whole system over `sealpod up --fake-model` (tests/system/), on both control planes: the
# official @opencomputer/sdk and the real kubectl against devcluster or kube-apiserver, the
# operator, the API server, the pod runner (a network namespace per pod, as root) and the fake
# model API. Needs node, kubectl and
# tests/conformance/node_modules (scripts/setup.d/50-runtime-sdks.sh installs the SDK).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# On devcluster, then on the real control plane (scripts/setup builds it into .tools/bin).
for control_plane in devcluster kubernetes; do
  echo "--- control plane: ${control_plane}"
  SEALPOD_TEST_CONTROL_PLANE="${control_plane}" SEALPOD_BIN_DIR="${target_dir}/debug" \
    node --test --test-concurrency=1 --test-timeout=400000 tests/system/system.test.mjs
done
