#!/usr/bin/env bash
# Fuzz smoke test: builds every libFuzzer target of fuzz/ and runs each for 10 s (scripts/fuzz,
# fuzz/README.md). It proves that the targets build on the stable toolchain and that their seeds
# and first mutations keep every invariant; it is no fuzzing campaign (run `scripts/fuzz` for
# that). A crash fails the suite and leaves its input in fuzz/artifacts/<target>/.
# Cost: a cold build of the fuzz crate (its own target directory, target/fuzz), then 10 s per
# target. SEALPOD_FUZZ_SMOKE_SECONDS changes the time per target. Mostly computing, it runs beside
# the other suites (scripts/test):
# sealpod-test: beside
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/fuzz --seconds "${SEALPOD_FUZZ_SMOKE_SECONDS:-10}"
