#!/usr/bin/env bash
# Real clients through the sidecar proxy, on loopback only: curl (HTTPS_PROXY + the per-pod CA
# bundle), the official Anthropic Python SDK and the official Node SDK, each streaming a Messages
# call to the fake upstream while holding only the sealed token. The fake upstream answers 401
# unless it receives the real key, so every success proves the swap.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh

cargo build --quiet --workspace --bin sealpod-sidecar --example fake_upstream
BIN="${CARGO_TARGET_DIR:-target}/debug/sealpod-sidecar"
UPSTREAM="${CARGO_TARGET_DIR:-target}/debug/examples/fake_upstream"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

SEALED=sp_sealed_00112233445566778899aabbccddeeff
REAL="sk-ant-api03-real-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$REAL" >"$WORK/key"
"$UPSTREAM" --names api.fake.test,tunnel.fake.test --key-file "$WORK/key" \
  --root-out "$WORK/upstream.pem" --port-out "$WORK/port" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
UPORT="$(cat "$WORK/port")"

PROXY_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ADMIN_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/proxy.yaml" <<YAML
listen: 127.0.0.1:${PROXY_PORT}
admin_listen: 127.0.0.1:${ADMIN_PORT}
ca_cert_out: ${WORK}/pod-ca.pem
mode: enforce
allow: ["tunnel.fake.test:${UPORT}"]
allow_cidrs: [127.0.0.1/32]
credentials:
  - sealed: ${SEALED}
    value_file: ${WORK}/key
    hosts: ["api.fake.test:${UPORT}"]
    headers:
      - name: x-api-key
      - name: authorization
        scheme: Bearer
resolve:
  api.fake.test: [127.0.0.1]
  tunnel.fake.test: [127.0.0.1]
  denied.fake.test: [127.0.0.1]
extra_roots: [${WORK}/upstream.pem]
YAML
"$BIN" proxy --config "$WORK/proxy.yaml" 2>"$WORK/proxy.log" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:${ADMIN_PORT}/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:${ADMIN_PORT}/ready" >/dev/null

export HTTPS_PROXY="http://127.0.0.1:${PROXY_PORT}" NO_PROXY=""
BASE="https://api.fake.test:${UPORT}"
fail() { echo "30-sidecar-clients: $*" >&2; exit 1; }
passed=0

# curl: the swap, streaming.
out="$(curl -sS --cacert "$WORK/pod-ca.pem" -N "$BASE/v1/messages" -H "x-api-key: $SEALED" \
  -H 'content-type: application/json' -d '{"model":"m","max_tokens":8,"stream":true,"messages":[]}')"
grep -q 'event: message_stop' <<<"$out" || fail "curl stream: $out"
passed=$((passed + 1))
# curl: without the sealed token the upstream refuses (nothing is injected by default).
code="$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$WORK/pod-ca.pem" "$BASE/v1/models")"
[ "$code" = 401 ] || fail "curl without token got $code"
passed=$((passed + 1))
# curl: an off-allowlist host is refused at CONNECT.
if curl -sS -o /dev/null --cacert "$WORK/pod-ca.pem" "https://denied.fake.test:${UPORT}/" 2>"$WORK/curl.err"; then
  fail "denied host reached"
fi
grep -q '403' "$WORK/curl.err" || fail "denied host: $(cat "$WORK/curl.err")"
passed=$((passed + 1))
# curl: a tunnelled host shows the upstream's own certificate, not the pod CA.
curl -fsS --cacert "$WORK/upstream.pem" "https://tunnel.fake.test:${UPORT}/public" >/dev/null \
  || fail "tunnel with the upstream root"
passed=$((passed + 1))

# The official SDKs, holding only the sealed token.
export ANTHROPIC_API_KEY="$SEALED" ANTHROPIC_BASE_URL="$BASE"
SSL_CERT_FILE="$WORK/pod-ca.pem" python sidecar/tests/clients/anthropic_stream.py || fail "python sdk"
passed=$((passed + 1))
(cd sidecar/tests/node && NODE_EXTRA_CA_CERTS="$WORK/pod-ca.pem" node stream.mjs) || fail "node sdk"
passed=$((passed + 1))

# The real key never appears in the proxy's logs or metrics.
metrics="$(curl -fsS "http://127.0.0.1:${ADMIN_PORT}/metrics")"
swaps="$(awk '/^sealpod_sidecar_swaps_total/ {print $2}' <<<"$metrics")"
[ "$swaps" -ge 3 ] || fail "expected >= 3 swaps, got $swaps"
if grep -qF "$REAL" "$WORK/proxy.log" || grep -qF "$REAL" <<<"$metrics"; then fail "real key leaked"; fi
if grep -qF "$SEALED" "$WORK/proxy.log" || grep -qF "$SEALED" <<<"$metrics"; then fail "sealed token logged"; fi
passed=$((passed + 1))
echo "sidecar-clients: ${passed} passed, 0 failed"
