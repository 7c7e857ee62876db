#!/usr/bin/env bash
# The egress lock with real nftables, in two network namespaces this script creates (root only):
# a "pod" namespace where `sealpod-sidecar lock` is applied and the proxy runs as UID 1337, and a
# "server" namespace (reached over a veth pair) running a TCP and a UDP server. Shows that a
# process under another UID reaches the server directly before the lock, cannot after it (TCP and
# UDP), still reaches it through the proxy, and that `lock --verify` agrees each time.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh

if [ "$(id -u)" != 0 ]; then
  echo "30-sidecar-lock: needs root (network namespaces, nftables)" >&2
  exit 1
fi
cargo build --quiet --workspace --bin sealpod-sidecar
BIN="$(realpath -m "${CARGO_TARGET_DIR:-target}")/debug/sealpod-sidecar"
PY=/usr/bin/python3
POD="sp-pod-$$"
SRV="sp-srv-$$"
PROXY_UID=1337
SANDBOX_UID=4242
WORK="$(mktemp -d)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  ip netns del "$POD" 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$POD"
ip netns add "$SRV"
ip link add "vp$$" type veth peer name "vs$$"
ip link set "vp$$" netns "$POD"
ip link set "vs$$" netns "$SRV"
ip -n "$POD" addr add 192.0.2.1/24 dev "vp$$"
ip -n "$SRV" addr add 192.0.2.2/24 dev "vs$$"
ip -n "$POD" addr add 2001:db8::1/64 dev "vp$$" nodad
ip -n "$SRV" addr add 2001:db8::2/64 dev "vs$$" nodad
for ns in "$POD" "$SRV"; do ip -n "$ns" link set lo up; done
ip -n "$POD" link set "vp$$" up
ip -n "$SRV" link set "vs$$" up

# Servers in the second namespace: HTTP on TCP 8080 and a UDP echo on 5353, IPv4 and IPv6.
mkdir -p "$WORK/www" && echo "hello from the server namespace" >"$WORK/www/index.html"
for addr in 192.0.2.2 2001:db8::2; do
  ip netns exec "$SRV" "$PY" -m http.server 8080 --bind "$addr" --directory "$WORK/www" >/dev/null 2>&1 &
  PIDS+=($!)
  ip netns exec "$SRV" "$PY" -c '
import socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 5353))
while True:
    data, peer = s.recvfrom(512); s.sendto(data, peer)' "$addr" &
  PIDS+=($!)
done
for url in http://192.0.2.2:8080/ 'http://[2001:db8::2]:8080/'; do
  for _ in $(seq 100); do
    ip netns exec "$SRV" curl -fsS --noproxy '*' -o /dev/null "$url" 2>/dev/null && break
    sleep 0.1
  done
done

cat >"$WORK/proxy.yaml" <<YAML
listen: 127.0.0.1:3128
admin_listen: 127.0.0.1:9901
ca_cert_out: ${WORK}/ca/pod-ca.pem
allow: ["srv.test:8080"]
allow_cidrs: [192.0.2.0/24]
resolve:
  srv.test: [192.0.2.2]
YAML
mkdir -p "$WORK/ca" && chown "$PROXY_UID:$PROXY_UID" "$WORK/ca"
ip netns exec "$POD" setpriv --reuid "$PROXY_UID" --regid "$PROXY_UID" --clear-groups \
  "$BIN" proxy --config "$WORK/proxy.yaml" 2>"$WORK/proxy.log" &
PIDS+=($!)
for _ in $(seq 100); do
  ip netns exec "$POD" curl -fsS --noproxy '*' http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
  sleep 0.1
done

as_sandbox() { ip netns exec "$POD" setpriv --reuid "$SANDBOX_UID" --regid "$SANDBOX_UID" --clear-groups "$@"; }
direct_tcp() { as_sandbox curl -fsS --noproxy '*' --max-time 3 "${1:-http://192.0.2.2:8080/}" >/dev/null 2>&1; }
direct_tcp6() { direct_tcp 'http://[2001:db8::2]:8080/'; }
via_proxy() { as_sandbox curl -fsS --max-time 5 -x http://127.0.0.1:3128 http://srv.test:8080/ 2>/dev/null | grep -q "server namespace"; }
direct_udp() {
  as_sandbox "$PY" -c '
import socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
try:
    s.connect((addr, 5353)); s.send(b"ping"); sys.exit(0 if s.recv(16) == b"ping" else 1)
except OSError:
    sys.exit(1)' "${1:-192.0.2.2}"
}
direct_udp6() { direct_udp 2001:db8::2; }
verify() {
  ip netns exec "$POD" "$BIN" lock --verify --proxy-uid "$PROXY_UID" --proxy-port 3128 \
    --sandbox-uid "$SANDBOX_UID" --probe-tcp 192.0.2.2:8080,[2001:db8::2]:8080 \
    --probe-udp 192.0.2.2:5353,[2001:db8::2]:5353
}
passed=0
check() { if "$@"; then passed=$((passed + 1)); else echo "30-sidecar-lock: FAILED: $*" >&2; exit 1; fi; }
not() { ! "$@"; }

# Before the lock: the sandbox UID reaches the server directly, and verify says so.
check direct_tcp
check direct_tcp6
check direct_udp
check direct_udp6
check via_proxy
set +e; verify >"$WORK/verify.out"; rc=$?; set -e
check test "$rc" = 3

# The lock, as the init container runs it.
ip netns exec "$POD" "$BIN" lock --proxy-uid "$PROXY_UID" --proxy-port 3128
check not direct_tcp
check not direct_tcp6
check not direct_udp
check not direct_udp6
check via_proxy
# Loopback services other than the proxy port are closed too (the admin port, for one).
check not as_sandbox curl -fsS --noproxy '*' --max-time 3 http://127.0.0.1:9901/ready
# The proxy's own UID is unrestricted.
check ip netns exec "$POD" setpriv --reuid "$PROXY_UID" --regid "$PROXY_UID" --clear-groups \
  curl -fsS --noproxy '*' --max-time 3 -o /dev/null http://192.0.2.2:8080/
check verify
# Applying twice is idempotent.
ip netns exec "$POD" "$BIN" lock --proxy-uid "$PROXY_UID" --proxy-port 3128
check verify
echo "sidecar-lock: ${passed} passed, 0 failed"
