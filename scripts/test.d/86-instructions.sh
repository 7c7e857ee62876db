# The instruction-count gate (scripts/instructions): instructions per operation (a session GET
# of the API server, the first reconcile of a new Session by the operator), counted by
# callgrind, fail when more than 10% over perf/instructions.json. Single-threaded under valgrind
# and insensitive to load, it runs beside the other suites (scripts/test):
# sealpod-test: beside
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --locked --workspace --example instructions --example reconcile_instructions
exec scripts/instructions
