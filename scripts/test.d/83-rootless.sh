# Rootless local mode: the whole-system test (tests/system/system.test.mjs), on both control
# planes, with `sealpod up` run by a normal user, created here with a range of subordinate IDs
# (room for 16 pods) and removed at the end; every isolation check of the test then holds for the
# rootless path. Needs root (to create the user), the Debian package uidmap
# (scripts/setup-local), node, kubectl and tests/conformance/node_modules.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "83-rootless: needs root to create the test user" >&2
  exit 1
fi
user=sealpod-rootless
# Below the blocks a root `up` hands out (from 0x40000000), so both paths can run at once.
first=600000000
last=$((first + 16 * 65536 - 1))
remove_user() {
  userdel "${user}" 2>/dev/null || true
  sed -i "/^${user}:/d" /etc/subuid /etc/subgid
}
touch /etc/subuid /etc/subgid
remove_user
trap remove_user EXIT
useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "${user}"
usermod --add-subuids "${first}-${last}" --add-subgids "${first}-${last}" "${user}"
cargo build --quiet --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
for control_plane in devcluster kubernetes; do
  echo "--- control plane: ${control_plane}"
  SEALPOD_TEST_UP_USER="${user}" SEALPOD_TEST_CONTROL_PLANE="${control_plane}" \
    SEALPOD_BIN_DIR="${target_dir}/debug" \
    node --test --test-concurrency=1 --test-timeout=400000 tests/system/system.test.mjs
done
