#!/usr/bin/env bash
# Prepare this host to build and run Resilin node containers with podman.
# Idempotent: installs missing packages and writes the containers.conf that
# this environment needs (no CAP_SYS_RESOURCE, so no default ulimits, and
# runc instead of crun).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

PKGS=(podman runc slirp4netns uidmap debootstrap)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-podman: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

CONF=/etc/containers/containers.conf
WANT='[containers]
default_ulimits = []

[engine]
runtime = "runc"
'
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$(printf '%s' "$WANT")" ]; then
    echo "setup-podman: writing $CONF"
    $SUDO mkdir -p /etc/containers
    if [ -f "$CONF" ]; then
        $SUDO cp "$CONF" "$CONF.bak.$(date +%s)"
    fi
    printf '%s' "$WANT" | $SUDO tee "$CONF" >/dev/null
fi

echo "setup-podman: ok ($(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo '?'))"
