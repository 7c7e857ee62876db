# A short soak (tests/soak/run; the header of tests/soak/soak.mjs says what it loads, injects and
# checks): three sessions for half a minute over `sealpod up` with two API servers on PostgreSQL
# and two operators, each fault kind injected once, every invariant checked (memory aside: half a
# minute is all warm-up). The 30-minute soak is run by hand (README "Soak"). Needs root,
# PostgreSQL 15, kubectl, node and the SDK (scripts/setup installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "84-soak-smoke: needs root (local mode isolates pods in network namespaces)" >&2
  exit 1
fi
tests/soak/run --minutes 0.5 --sessions 3 --faults 7
