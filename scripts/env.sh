# Sourced by scripts/test and the suites: puts the pinned tools first on PATH.
SEALPOD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SEALPOD_ROOT
export PATH="${SEALPOD_ROOT}/.tools/bin:${SEALPOD_ROOT}/.venv/bin:${PATH}"
