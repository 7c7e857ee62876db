# The official Python `anthropic` SDK (pinned) in `.venv`, used to prove the fake model API speaks
# the real wire format. A no-op when the pinned version is already installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ANTHROPIC_VERSION=2.14.0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('anthropic') != '${ANTHROPIC_VERSION}')" 2>/dev/null; then
  exit 0
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "anthropic==${ANTHROPIC_VERSION}"
