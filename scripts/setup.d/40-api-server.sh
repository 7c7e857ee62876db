# What the API server's suites need: PostgreSQL 15 and Chromium from Debian 12 (pinned by the
# release), and the conformance suite's one npm dependency (@opencomputer/sdk@0.12.4, from its
# lockfile). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
packages=(postgresql-15 postgresql-client-15 chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
want="0.12.4"
have="$(node -p "try{require('./tests/conformance/node_modules/@opencomputer/sdk/package.json').version}catch(e){''}" 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
