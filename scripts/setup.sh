#!/usr/bin/env bash
# Installs everything Resilin needs on a Debian 12 machine: the Debian packages of
# scripts/debian-packages.txt, the container engine's settings (scripts/setup-podman.sh),
# the Python virtualenv and the node image (with Hadoop).  Idempotent; on a machine where
# all is in place it returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

# Go 1.23 (it builds the overlay gateway, overlay/gateway/) is newer than Debian 12 ships: it comes
# from bookworm-backports, pinned so that apt takes nothing else from there.
BACKPORTS_PACKAGES="golang-1.23-go golang-1.23-src"
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  cat >/etc/apt/sources.list.d/resilin-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >/etc/apt/preferences.d/resilin-backports <<EOF
Package: $BACKPORTS_PACKAGES
Pin: release n=bookworm-backports
Pin-Priority: 500

Package: *
Pin: release n=bookworm-backports
Pin-Priority: -1
EOF
fi

mapfile -t DEB_PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' scripts/debian-packages.txt | grep -v '^$')
# A package counts as present when it is installed or provided by one that is (a nodejs that
# bundles npm provides npm; installing Debian's npm over it would clash).
present=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' 2>/dev/null |
  awk '$1 == "ii" { $1 = ""; print }' | sed -e 's/([^)]*)//g' -e 's/,/ /g' | tr -s ' \n' ' ') "
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  [[ "$present" == *" $pkg "* ]] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

scripts/setup-podman.sh

scripts/setup-venv.sh

docker/node/build.sh
