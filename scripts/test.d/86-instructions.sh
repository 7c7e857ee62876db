# The instruction-count gate (scripts/instructions): instructions per operation (a session GET
# of the API server, the first reconcile of a new Session by the operator, a request through a
# proxy tunnel), counted by callgrind, fail when more than 10% over perf/instructions.json.
# Counted, not timed (load moves the counts by a few percent at most), it runs beside the other
# suites (scripts/test):
# sealpod-test: beside
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --locked --workspace --example instructions --example reconcile_instructions \
  --example tunnel_instructions
exec scripts/instructions
