# Debian packages the tests need. `apt-get update` runs only when something is missing.
set -euo pipefail
# Each line: a package name (Debian 12 pins its versions within the release).
packages=(
  nftables
  iproute2
  socat
  curl
  util-linux
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
