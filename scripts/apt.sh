# Sourced by set-up scripts: `apt_ensure PKG...` installs the Debian packages that are missing
# (Debian 12 pins their versions within the release). `apt-get update` runs only when something
# is missing, so a machine already set up does no network work.
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}
