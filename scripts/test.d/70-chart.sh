# Chart checks: helm lint --strict, helm template for four value sets, kubernetes-validate of
# every rendered object, assertions on the rendered fields, CRD drift, bad values rejected by
# values.schema.json, and the Dockerfiles (charts/sealpod/tests/check_chart.py says what each
# check proves). Needs the pinned helm (setup.d/70-helm.sh) and kubernetes-validate
# (setup.d/71-python-tools.sh); no cluster, no network.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
for t in helm kubernetes-validate; do
  command -v "$t" >/dev/null || { echo "70-chart: $t missing: run scripts/setup" >&2; exit 1; }
done
exec .venv/bin/python charts/sealpod/tests/check_chart.py
