# The API server's webhook tests again on PostgreSQL (the SQLite pass runs in `cargo test`): two
# replicas deliver each event once per destination, and a restart mid-retry loses nothing.
# The delivery signatures are verified by the official SDK from tests/conformance.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
if [ ! -d tests/conformance/node_modules/@opencomputer/sdk ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
# shellcheck source=/dev/null
. tests/conformance/pg.sh
pg_start
trap pg_stop EXIT
url="$(pg_new_database sealpod_webhooks)"
SEALPOD_TEST_POSTGRES_URL="$url" cargo test --locked --workspace --test webhooks -- --include-ignored
