#!/usr/bin/env bash
# Builds the binaries and runs the session-latency benchmark (tests/bench/session-latency.mjs;
# its header says what it measures). Not a test: it prints figures and asserts nothing.
#
#   tests/bench/session-latency.sh [--release] [ARGS of session-latency.mjs…]
#
# --release builds and measures release binaries (target/release); the default is the debug
# build the tests use. Needs root, node and the SDK in tests/conformance/node_modules (installed
# here when missing, from its lock file).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
profile=debug
if [ "${1:-}" = --release ]; then
  profile=release
  shift
fi
if [ "$profile" = release ]; then
  cargo build --locked --release --workspace --bins
else
  cargo build --locked --workspace --bins
fi
if [ ! -d tests/conformance/node_modules/@opencomputer/sdk ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node tests/bench/session-latency.mjs --bin-dir "target/$profile" "$@"
