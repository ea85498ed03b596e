#!/usr/bin/env bash
# Installs everything Resilin needs on a Debian 12 machine: Debian packages, the
# Python virtualenv, the container engine's settings and the node image (with
# Hadoop).  Idempotent; on a machine where all is in place it returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

DEB_PACKAGES=(redis-server podman runc slirp4netns uidmap fuse-overlayfs debootstrap openssh-client
              wireguard-tools wireguard-go python3-venv maven openjdk-17-jdk-headless curl ca-certificates make)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

scripts/setup-podman.sh

# The virtualenv is rebuilt only when pyproject.toml changes.
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing Python packages into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

docker/node/build.sh
