# The API server's shell-driven suites: the official SDK conformance suite, the durability test
# (SIGKILL during appends), the secret scan and the browser EventSource test, all against the
# real `sealpod-api-server` binary over `devcluster serve`: first on SQLite, then on PostgreSQL
# (a private PostgreSQL 15 cluster on a loopback port, started here); then the crate's Rust
# store, route, SSE, adoption, limits, schedule and console tests again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
cargo build --locked --workspace --bin sealpod-api-server --bin devcluster
if [ ! -d tests/conformance/node_modules/@opencomputer/sdk ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "--- conformance, durability, scan, browser on SQLite"
(cd tests/conformance && npm test)

# shellcheck source=/dev/null
. tests/conformance/pg.sh
pg_start
trap pg_stop EXIT
echo "--- conformance, durability, scan, browser on PostgreSQL"
url="$(pg_new_database sealpod_conformance)"
(cd tests/conformance && SEALPOD_TEST_DATABASE_URL="$url" npm test)

echo "--- Rust store, route, SSE, adoption, limits, schedule and console tests on PostgreSQL"
url="$(pg_new_database sealpod_cargo)"
SEALPOD_TEST_POSTGRES_URL="$url" cargo test --locked --workspace --test store --test routes --test sse --test adopt --test limits --test schedules --test console -- --include-ignored
