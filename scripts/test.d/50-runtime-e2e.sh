# End to end: sessions created with the official @opencomputer/sdk on the real API server over
# devcluster, run by the real sealpod-runtime through the real sidecar proxy against the fake
# model API (runtime/tests/e2e/). Needs node, kubectl and tests/conformance/node_modules
# (scripts/setup.d/50-runtime-sdks.sh installs the SDK).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
SEALPOD_BIN_DIR="${target_dir}/debug" node --test --test-concurrency=1 --test-timeout=300000 runtime/tests/e2e/runtime.test.mjs
