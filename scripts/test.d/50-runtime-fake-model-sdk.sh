# The official Python `anthropic` and `openai` SDKs (pinned in scripts/setup.d/50-runtime-sdks.sh)
# against the fake model API over TLS: streaming, non-streaming, tool use and error answers of the
# Messages and the Responses API must parse.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --workspace --bin sealpod-fake-model
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "${pid}" ]; then kill "${pid}" 2>/dev/null || true; wait "${pid}" 2>/dev/null || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT
printf 'sk-ant-fake-%s' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "${work}/key"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
"${target_dir}/debug/sealpod-fake-model" --api-key-file "${work}/key" --cert-out "${work}/cert.pem" \
  --addr-file "${work}/addr" > "${work}/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  [ -s "${work}/addr" ] && break
  sleep 0.1
done
[ -s "${work}/addr" ] || { cat "${work}/out"; exit 1; }
port="$(cut -d: -f2 < "${work}/addr")"
python tests/src/fake_model/sdk_check.py "https://localhost:${port}" "${work}/cert.pem" "${work}/key"
python tests/src/fake_model/openai_sdk_check.py "https://localhost:${port}" "${work}/cert.pem" "${work}/key"
