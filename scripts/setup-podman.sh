#!/usr/bin/env bash
# Configure podman for Resilin's local cloud: runc (crun refuses this kind of host's hybrid
# cgroups), no default ulimits (containers here lack CAP_SYS_RESOURCE), and the netavark
# network backend (Debian's podman 4.3 falls back to CNI, which gives an --internal network
# no address on the host's bridge, so the host could not reach any instance).
# The packages themselves come from scripts/setup.sh.  Idempotent.
set -euo pipefail

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

CONF=/etc/containers/containers.conf
WANT='# Written by Resilin'"'"'s scripts/setup-podman.sh (the original, if any, is kept as containers.conf.bak.*).
[containers]
default_ulimits = []

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
'
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$(printf '%s' "$WANT")" ]; then
    # Networks and containers belong to the backend that made them: before switching a
    # host from CNI, remove Resilin's own (they are recreated when a local cloud starts).
    backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || true)
    if [ -n "$backend" ] && [ "$backend" != netavark ]; then
        echo "setup-podman: podman uses the $backend network backend; switching it to netavark"
        leftovers=$(podman ps -aq --filter label=resilin.cloud 2>/dev/null || true)
        if [ -n "$leftovers" ]; then
            echo "setup-podman: removing Resilin's local-cloud containers made under $backend"
            # shellcheck disable=SC2086
            $SUDO podman rm -f $leftovers >/dev/null 2>&1 || true
        fi
        for net in $(podman network ls --format '{{.Name}}' 2>/dev/null | grep '^resilin-' || true); do
            echo "setup-podman: removing Resilin's network $net (recreated under netavark on next use)"
            $SUDO podman network rm -f "$net" >/dev/null 2>&1 || true
        done
        # CNI lists no network whose plugins are missing; its files go all the same.
        for conf in /etc/cni/net.d/resilin-*.conflist; do
            [ -e "$conf" ] || continue
            echo "setup-podman: removing Resilin's CNI network file $conf"
            $SUDO rm -f "$conf"
        done
    fi
    echo "setup-podman: writing $CONF"
    $SUDO mkdir -p /etc/containers
    if [ -f "$CONF" ]; then
        $SUDO cp "$CONF" "$CONF.bak.$(date +%s)"
    fi
    printf '%s' "$WANT" | $SUDO tee "$CONF" >/dev/null
fi

backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo '?')
runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo '?')
if [ "$backend" != netavark ] || [ "$runtime" != runc ]; then
    echo "setup-podman: podman runs with network backend '$backend' and runtime '$runtime'; Resilin needs netavark and runc" >&2
    exit 1
fi
echo "setup-podman: ok ($(podman --version), runtime $runtime, network backend $backend)"
