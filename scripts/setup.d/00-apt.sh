# Debian packages the tests need: those of local mode (scripts/setup-local, which checks each
# program first), and valgrind for the instruction-count gate (scripts/instructions).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-local
# shellcheck source=/dev/null
. scripts/apt.sh
apt_ensure valgrind
