# A newcomer's first run (tests/system/first-run.test.mjs): the README's first command, verbatim
# in a fresh clone, brings the platform up, and its SDK snippet completes a session. Needs root,
# node, git and tests/conformance/node_modules (the SDK).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "82-first-run: needs root (local mode isolates pods in network namespaces)" >&2
  exit 1
fi
node --test --test-concurrency=1 --test-timeout=1200000 tests/system/first-run.test.mjs
