# Real clients for the sidecar suite (scripts/test.d/30-sidecar-clients.sh): the official Anthropic
# Python SDK in .venv and the official Node SDK (plus undici for its proxy agent) under
# sidecar/tests/node. Pinned; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

ANTHROPIC_PY=2.14.0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ "$(.venv/bin/python -c 'import anthropic; print(anthropic.__version__)' 2>/dev/null || true)" != "${ANTHROPIC_PY}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "anthropic==${ANTHROPIC_PY}"
fi

# Versions are pinned in sidecar/tests/node/package.json.
if [ ! -d sidecar/tests/node/node_modules/@anthropic-ai/sdk ] || [ ! -d sidecar/tests/node/node_modules/undici ]; then
  (cd sidecar/tests/node && npm install --no-audit --no-fund --silent)
fi
