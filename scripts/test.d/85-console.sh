# The web console in Debian's Chromium, driven by Playwright (tests/system/console.test.mjs):
# sign-in, the pages over sessions made with the SDK, a live steered turn, a redelivery, a
# credential rotation, the end-user view with a client token, sign-out; no console error, no
# secret in a URL, a served file or a log. Screenshots of each page land in
# target/test-artifacts/console/. Over `sealpod up --fake-model` on devcluster: the console's
# server side is the API server alone (its cluster tests run on both control planes). Needs root,
# node, tests/conformance/node_modules and /usr/bin/chromium (scripts/setup installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
SEALPOD_BIN_DIR="${target_dir}/debug" \
  node --test --test-concurrency=1 --test-timeout=400000 tests/system/console.test.mjs
