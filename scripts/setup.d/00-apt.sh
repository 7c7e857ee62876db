# Debian packages the tests need: those of local mode (scripts/setup-local, which checks each
# program first).
set -euo pipefail
"$(dirname "$0")/../setup-local"
