# The whole system over `sealpod up --fake-model` (tests/system/): the official @opencomputer/sdk
# and the real kubectl against devcluster, the operator, the API server, the pod runner (a
# network namespace per pod, as root) and the fake model API. Needs node, kubectl and
# tests/conformance/node_modules (scripts/setup.d/50-runtime-sdks.sh installs the SDK).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
SEALPOD_BIN_DIR="${target_dir}/debug" node --test --test-concurrency=1 --test-timeout=400000 tests/system/system.test.mjs
