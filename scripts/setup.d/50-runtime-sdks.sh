# The official Python `anthropic` and `openai` SDKs (pinned) in `.venv`, used to prove the fake
# model API speaks the real wire formats; and the SDK of the end-to-end suite. A no-op when all are
# installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ANTHROPIC_VERSION=2.14.0
OPENAI_VERSION=3.63.0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('anthropic') != '${ANTHROPIC_VERSION}')" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "anthropic==${ANTHROPIC_VERSION}"
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('openai') != '${OPENAI_VERSION}')" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "openai==${OPENAI_VERSION}"
fi

# The official `@opencomputer/sdk` (pinned by tests/conformance/package-lock.json), which the
# runtime's end-to-end suite uses to stream a session's events. Installed only when missing.
if [ -f tests/conformance/package-lock.json ] && [ ! -f tests/conformance/node_modules/@opencomputer/sdk/package.json ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --silent)
fi
