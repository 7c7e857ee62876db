#!/usr/bin/env bash
# Sidecar benchmark (not a test): P1, P2, P5, P7 and P9 of shared/PERFORMANCE.md §5.2 in one run,
# against direct connections and against squid, tinyproxy and mitmproxy, all on loopback.
#
#   sidecar/bench/run.sh                 # defaults: 3 rounds of 3 s per measurement
#   ROUNDS=5 SECS=5 sidecar/bench/run.sh
#   SIDECAR_WORKERS=1 sidecar/bench/run.sh   # the proxy with --worker-threads 1
#
# Installs its peers (pinned, idempotent): apt squid and tinyproxy (Debian 12 pins 5.7 and
# 1.11.1), mitmproxy 11.0.2 in .tools/bench-venv. Builds the proxy as shipped (`dist` profile)
# and the fake upstream and the load generator in release mode, starts every server itself, stops
# them by PID, and prints ratios (medians of per-round values; only figures from the same run are
# compared).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=/dev/null
. scripts/apt.sh
apt_ensure squid tinyproxy
MITM_VERSION=11.0.2
VENV=.tools/bench-venv
if [ ! -x "$VENV/bin/mitmdump" ] || [ "$("$VENV/bin/python" -c 'import mitmproxy.version as v; print(v.VERSION)')" != "$MITM_VERSION" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "mitmproxy==${MITM_VERSION}"
fi

# The proxy as shipped (the `dist` profile); its peers' helpers in plain release.
cargo build --quiet --profile dist -p sealpod-sidecar --bin sealpod-sidecar
cargo build --quiet --release -p sealpod-sidecar --example fake_upstream --example loadgen
exec python3 sidecar/bench/bench.py
