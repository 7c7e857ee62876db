# The pod runner's tests that need root (`#[ignore]`d in `cargo test --workspace`): a network
# namespace per pod reaching only its bridged host ports, and a user namespace and block of host
# IDs per pod (volumes closed to other pods, no key left after a pod stops).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
. scripts/env.sh
if [ "$(id -u)" != 0 ]; then
  echo "15-node-as-root: needs root (network and user namespaces)" >&2
  exit 1
fi
cargo test --quiet --locked --workspace --test pod_runner -- --ignored
