# Debian packages the tests need (see scripts/apt.sh).
set -euo pipefail
# shellcheck source=/dev/null
. "$(dirname "$0")/../apt.sh"
apt_ensure nftables iproute2 socat curl util-linux
