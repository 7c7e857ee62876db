#!/usr/bin/env bash
# The real kubectl against our control plane (issue 3, "Done when"): apply of CRDs and examples,
# get with printer columns / -o yaml / -o json / -l, get --watch seeing another client's change,
# patch --type=merge|json, label, delete held by a finalizer then released, describe.
#
# SEALPOD_TEST_CONTROL_PLANE picks the server: `devcluster` or `kubernetes` (the real
# kube-apiserver that `sealpod-controlplane serve` runs); unset, the suite runs on both, at once. The
# second client is a token user on devcluster and a ServiceAccount token (TokenRequest) on
# Kubernetes.
#
# Uses /usr/bin/kubectl (override with KUBECTL=...). Serves HTTPS: kubectl only sends bearer
# tokens over TLS. Everything listens on 127.0.0.1 and stops when the script exits.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
KUBECTL="${KUBECTL:-/usr/bin/kubectl}"
if [ -z "${SEALPOD_TEST_CONTROL_PLANE:-}" ]; then
  # Both planes at once: each half mostly waits on kubectl and server processes starting. Each
  # writes its own log, shown when it ends; the suite fails when either does.
  logs="$(mktemp -d)"
  trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "${logs}"' EXIT
  pids=()
  for plane in devcluster kubernetes; do
    SEALPOD_TEST_CONTROL_PLANE="${plane}" bash "$0" > "${logs}/${plane}" 2>&1 &
    pids+=($!)
  done
  status=0
  for i in 0 1; do
    wait "${pids[$i]}" || status=1
  done
  cat "${logs}/devcluster" "${logs}/kubernetes"
  exit "${status}"
fi
PLANE="${SEALPOD_TEST_CONTROL_PLANE}"

WORK="$(mktemp -d)"
SERVER_PID=""
WATCH_PID=""
cleanup() {
  [ -n "${WATCH_PID}" ] && kill "${WATCH_PID}" 2>/dev/null || true
  [ -n "${SERVER_PID}" ] && kill "${SERVER_PID}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "${WORK}"
}
trap cleanup EXIT

fail() { echo "FAIL (${PLANE}): $*" >&2; [ -f "${WORK}/server.err" ] && tail -20 "${WORK}/server.err" >&2; exit 1; }
pass() { echo "ok (${PLANE}): $*"; }

# Bounded wait: retries a command for up to 60 seconds.
until_ok() {
  local what="$1"; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for ${what}"
}

k() { "${KUBECTL}" "$@"; }
export KUBECONFIG="${WORK}/kubeconfig"

case "${PLANE}" in
  devcluster)
    cargo build -q --workspace --bin devcluster
    BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/devcluster"
    printf 'admin-token-%s,admin\noperator-token-%s,operator\n' "$RANDOM$RANDOM" "$RANDOM$RANDOM" > "${WORK}/tokens.csv"
    # TLS is the default: the suite runs devcluster as a user would, without `--tls`.
    "${BIN}" serve --listen 127.0.0.1:0 --token-file "${WORK}/tokens.csv" \
      --kubeconfig-out "${KUBECONFIG}" --state "${WORK}/state.json" \
      > "${WORK}/server.out" 2> "${WORK}/server.err" &
    SERVER_PID=$!
    ADMIN=admin
    OTHER_CTX=operator@devcluster
    OTHER=operator
    ;;
  kubernetes)
    cargo build -q --workspace --bin sealpod-controlplane
    BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/sealpod-controlplane"
    "${BIN}" serve --dir "${WORK}/plane" --kubeconfig-out "${KUBECONFIG}" \
      > "${WORK}/server.out" 2> "${WORK}/server.err" &
    SERVER_PID=$!
    ADMIN=sealpod-admin
    OTHER_CTX=operator
    OTHER=system:serviceaccount:default:operator
    ;;
  *) fail "SEALPOD_TEST_CONTROL_PLANE=${PLANE}: expected devcluster or kubernetes" ;;
esac
until_ok "the server to be ready" grep -q "listening on https://127.0.0.1:" "${WORK}/server.out"
export HOME="${WORK}/home"   # a fresh discovery cache (after cargo, which finds rustup by HOME)
mkdir -p "${HOME}"
pass "serving on $(sed -n 's/listening on //p' "${WORK}/server.out")"

if [ "${PLANE}" = kubernetes ]; then
  # The second client: a ServiceAccount bound to cluster-admin, its token from TokenRequest.
  k create serviceaccount operator -n default >/dev/null || fail "create serviceaccount"
  k create clusterrolebinding operator-admin --clusterrole=cluster-admin \
    --serviceaccount=default:operator >/dev/null || fail "bind the serviceaccount"
  k config set-credentials operator --token="$(k create token operator -n default --duration=1h)" >/dev/null
  k config set-context operator --cluster="$(k config view -o jsonpath='{.clusters[0].name}')" \
    --user=operator >/dev/null
fi

k version >/dev/null || fail "kubectl version"
[ "$(k auth whoami -o jsonpath='{.status.userInfo.username}')" = "${ADMIN}" ] || fail "whoami ${ADMIN}"
[ "$(k --context "${OTHER_CTX}" auth whoami -o jsonpath='{.status.userInfo.username}')" = "${OTHER}" ] \
  || fail "whoami ${OTHER}"
pass "two users, one token each"

# --- apply: our fixture CRD plus crds/ and examples/ when present ---------------------------
FIXTURES="devcluster/tests/fixtures"
k apply -f "${FIXTURES}/widget-crd.yaml" | grep -q "created" || fail "apply fixture CRD"
[ "$(k apply -f "${FIXTURES}/widget-crd.yaml")" = "customresourcedefinition.apiextensions.k8s.io/widgets.fixture.sealpod.dev unchanged" ] \
  || fail "re-applying an unchanged CRD must be a no-op"
k apply -f "${FIXTURES}/widget.yaml" | grep -q "widget.fixture.sealpod.dev/sample created" || fail "apply widget"
pass "apply CRD and custom resource"

if compgen -G "crds/*.yaml" >/dev/null; then
  k apply -f crds/ >/dev/null 2> "${WORK}/crds.err" || fail "apply -f crds/: $(cat "${WORK}/crds.err")"
  # kube-apiserver warns about what it does not understand in a CRD (e.g. an unknown format).
  if grep -v "version difference" "${WORK}/crds.err" | grep -i "warning"; then
    fail "applying crds/ drew warnings"
  fi
  pass "apply -f crds/, without a warning"
  if compgen -G "examples/*.yaml" >/dev/null; then
    k apply -f examples/ >/dev/null || fail "apply -f examples/"
    pass "apply -f examples/"
  fi
  # Every kind of crds/ lists with its printer columns.
  for crd in $(k get crd -o jsonpath='{.items[*].metadata.name}'); do
    case "${crd}" in *.fixture.sealpod.dev) continue ;; esac
    plural="${crd%%.*}"
    listing="$(k get "${crd}" 2>&1)" || fail "kubectl get ${plural}: ${listing}"
    header="${listing%%$'\n'*}"
    [ "${header}" = "No resources found in default namespace." ] && continue
    for col in $(k get crd "${crd}" -o jsonpath='{.spec.versions[0].additionalPrinterColumns[*].name}'); do
      echo "${header}" | grep -qw "$(echo "${col}" | tr '[:lower:]' '[:upper:]')" \
        || fail "kubectl get ${plural}: column ${col} missing from: ${header}"
    done
  done
  pass "printer columns of every CRD in crds/"
  if compgen -G "examples/*.yaml" >/dev/null; then
    k describe -f examples/ >/dev/null 2>&1 || echo "note: describe -f examples/ is best effort and failed"
  fi
fi

# --- get ------------------------------------------------------------------------------------
out="$(k get widgets)"
[[ "${out%%$'\n'*}" =~ ^NAME\ +SIZE\ +OBSERVED\ +AGE$ ]] || fail "printer columns: ${out}"
echo "${out}" | grep -Eq '^sample +3 ' || fail "row: ${out}"
pass "get shows the CRD printer columns"
k get wdg sample -o yaml | grep -q "^kind: Widget" || fail "-o yaml"
k get wdg sample -o json | python3 -c 'import json,sys; o=json.load(sys.stdin); assert o["spec"]["size"]==3, o' \
  || fail "-o json"
[ "$(k get wdg -l app=sample -o name)" = "widget.fixture.sealpod.dev/sample" ] || fail "-l app=sample"
[ -z "$(k get wdg -l app=other -o name)" ] || fail "-l app=other must be empty"
k get cm,ns >/dev/null || fail "get built-in kinds"
pass "get -o yaml, -o json, -l"

# --- watch sees another client's change -----------------------------------------------------
k get wdg sample --watch -o jsonpath='{.spec.size}{"\n"}' > "${WORK}/watch.out" 2>&1 &
WATCH_PID=$!
until_ok "the watch's first line" grep -qx 3 "${WORK}/watch.out"
k --context "${OTHER_CTX}" patch wdg sample --type=merge -p '{"spec":{"size":5}}' >/dev/null \
  || fail "patch as operator"
until_ok "the watch to see size 5" grep -qx 5 "${WORK}/watch.out"
kill "${WATCH_PID}" 2>/dev/null || true
WATCH_PID=""
pass "get --watch streams a change made by another client"

# --- patch, label ---------------------------------------------------------------------------
k patch wdg sample --type=merge -p '{"spec":{"color":"red"}}' >/dev/null || fail "merge patch"
k patch wdg sample --type=json -p '[{"op":"replace","path":"/spec/size","value":9}]' >/dev/null || fail "json patch"
[ "$(k get wdg sample -o jsonpath='{.spec.size}/{.spec.color}')" = "9/red" ] || fail "patched values"
k label wdg sample tier=gold >/dev/null || fail "label"
[ "$(k get wdg -l tier=gold -o name)" = "widget.fixture.sealpod.dev/sample" ] || fail "label selects"
k label wdg sample tier- >/dev/null || fail "unlabel"
[ -z "$(k get wdg -l tier -o name)" ] || fail "label removed"
if k patch wdg sample --type=merge -p '{"spec":{"size":"big"}}' 2> "${WORK}/invalid.err"; then
  fail "a schema-invalid patch must be refused"
fi
grep -q "spec.size" "${WORK}/invalid.err" || fail "422 names the field: $(cat "${WORK}/invalid.err")"
pass "patch --type=merge|json, label, 422 on invalid"

# --- server-side apply: field managers and conflicts -----------------------------------------
sed 's/name: sample/name: ssa-sample/' "${FIXTURES}/widget.yaml" > "${WORK}/ssa.yaml"
k apply --server-side --field-manager=team-a -f "${WORK}/ssa.yaml" >/dev/null || fail "server-side apply"
sed 's/size: 3/size: 4/' "${WORK}/ssa.yaml" > "${WORK}/ssa2.yaml"
if k apply --server-side --field-manager=team-b -f "${WORK}/ssa2.yaml" 2> "${WORK}/conflict.err"; then
  fail "a second manager changing an owned field must conflict"
fi
grep -q 'conflict with "team-a"' "${WORK}/conflict.err" || fail "conflict message: $(cat "${WORK}/conflict.err")"
k apply --server-side --field-manager=team-b --force-conflicts -f "${WORK}/ssa2.yaml" >/dev/null || fail "forced apply"
[ "$(k get wdg ssa-sample -o jsonpath='{.spec.size}')" = 4 ] || fail "forced value"
k delete wdg ssa-sample >/dev/null || fail "delete ssa-sample"
pass "apply --server-side: conflict, then --force-conflicts"

# --- describe (best effort) -----------------------------------------------------------------
k describe wdg sample | grep -q "^Name: *sample" || fail "describe"
pass "describe"

# --- delete held by a finalizer, then released ----------------------------------------------
k patch wdg sample --type=merge -p '{"metadata":{"finalizers":["fixture.sealpod.dev/hold"]}}' >/dev/null \
  || fail "add finalizer"
k delete wdg sample --timeout=30s > "${WORK}/delete.out" 2>&1 &
DELETE_PID=$!
deleting() { [ -n "$(k get wdg sample -o jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null)" ]; }
until_ok "deletionTimestamp" deleting
k get wdg sample >/dev/null || fail "object must stay while the finalizer is held"
k --context "${OTHER_CTX}" patch wdg sample --type=json \
  -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null || fail "release finalizer"
wait "${DELETE_PID}" || fail "kubectl delete: $(cat "${WORK}/delete.out")"
grep -q 'deleted' "${WORK}/delete.out" || fail "delete output"
if k get wdg sample >/dev/null 2>&1; then fail "object must be gone"; fi
pass "delete with a finalizer held, then released"

# --- built-in kinds: imperative generators (protobuf bodies) and apply; namespace deletion ---
k create namespace generated >/dev/null || fail "create namespace"
k create configmap gen-cm -n generated --from-literal=k=v >/dev/null || fail "create configmap"
k create secret generic gen-secret -n generated --from-literal=pw=s3cret >/dev/null || fail "create secret"
[ "$(k get secret gen-secret -n generated -o jsonpath='{.data.pw}' | base64 -d)" = s3cret ] || fail "secret data"
[ "$(k get cm gen-cm -n generated -o jsonpath='{.data.k}')" = v ] || fail "configmap data"
k delete ns generated --timeout=30s >/dev/null || fail "delete generated namespace"

cat > "${WORK}/ns.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: scratch
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: scratch
data:
  a: "1"
YAML
k apply -f "${WORK}/ns.yaml" >/dev/null || fail "apply namespace and configmap"
[ "$(k get cm settings -n scratch -o jsonpath='{.data.a}')" = 1 ] || fail "configmap"
k delete ns scratch --timeout=30s >/dev/null || fail "delete namespace"
if k get cm settings -n scratch >/dev/null 2>&1; then fail "namespace contents must go"; fi
pass "built-in kinds, namespace deletion"

echo "kubectl suite (${PLANE}): all checks passed"
