# Chart checks: helm lint --strict, helm template for four value sets, kubernetes-validate of
# every rendered object, assertions on the rendered fields, CRD drift, bad values rejected by
# values.schema.json, and the Dockerfiles (charts/sealpod/tests/check_chart.py says what each
# check proves). Then the rendered manifests are applied to a devcluster with the real kubectl
# (charts/sealpod/tests/apply_devcluster.py). Needs the pinned helm and kubectl
# (setup.d/70-helm.sh) and kubernetes-validate (setup.d/71-python-tools.sh); loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
for t in helm kubectl-1.35 kubernetes-validate; do
  command -v "$t" >/dev/null || { echo "70-chart: $t missing: run scripts/setup" >&2; exit 1; }
done
.venv/bin/python charts/sealpod/tests/check_chart.py

if [ -f devcluster/src/main.rs ]; then
  cargo build --quiet --locked --workspace --bin devcluster
  .venv/bin/python charts/sealpod/tests/apply_devcluster.py \
    "${CARGO_TARGET_DIR:-target}/debug/devcluster" "$(command -v kubectl-1.35)"
else
  echo "70-chart: this tree has no devcluster binary yet: the apply step did not run"
fi
