# Python tools of the tests, pinned, in the shared virtualenv `.venv` (other set-up parts install
# their own pinned packages into the same venv). Creates the venv only if it is missing and
# installs only the pins that are not already satisfied.
set -euo pipefail
cd "$(dirname "$0")/../.."

pins=(
  "kubernetes-validate==1.37.0"
  # The chart checks (charts/sealpod/tests/check_chart.py) parse helm's output with it.
  "PyYAML==6.0.4"
)

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
missing=()
for pin in "${pins[@]}"; do
  name="${pin%%==*}"
  want="${pin##*==}"
  have="$(.venv/bin/python -m pip show "${name}" 2>/dev/null | sed -n 's/^Version: //p' || true)"
  [ "${have}" = "${want}" ] || missing+=("${pin}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  .venv/bin/python -m pip install --quiet "${missing[@]}"
fi
echo "python tools: ${pins[*]}"
