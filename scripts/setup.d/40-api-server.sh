# What the API server's suites need: PostgreSQL 15 and Chromium from Debian 12 (pinned by the
# release), and the conformance suite's one npm dependency (@opencomputer/sdk@0.12.4, from its
# lockfile). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/apt.sh
apt_ensure postgresql-15 postgresql-client-15 chromium
want="0.12.4"
have="$(node -p "try{require('./tests/conformance/node_modules/@opencomputer/sdk/package.json').version}catch(e){''}" 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
