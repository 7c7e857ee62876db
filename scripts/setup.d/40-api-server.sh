# What the API server's suites need: PostgreSQL 15 and Chromium from Debian 12 (pinned by the
# release), and the conformance suite's npm dependencies from its lockfile (@opencomputer/sdk
# 0.12.4, and playwright-core 1.64.1, which drives that Chromium in the console's browser test).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/apt.sh
apt_ensure postgresql-15 postgresql-client-15 chromium
version() {
  node -p "try{require('./tests/conformance/node_modules/$1/package.json').version}catch(e){''}" 2>/dev/null || true
}
if [ "$(version @opencomputer/sdk)" != 0.12.4 ] || [ "$(version playwright-core)" != 1.64.1 ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
