#!/usr/bin/env bash
# Build a small stand-in node image for testing the local cloud without the
# full Hadoop node image (docker/node/build.sh).  It honours the same init
# contract: RESILIN_SSH_PUBKEY goes to hadoop's authorized_keys,
# RESILIN_USER_DATA_B64 is decoded to /var/lib/cloud/user-data and, if it is a
# script (#!), run once as root at first boot, SSH host keys
# are generated and printed between cloud-init's markers, then sshd runs on 22.
#
# Usage: testnode.sh [IMAGE]   (default localhost/resilin-testnode:2)
# The debootstrap rootfs is cached in $RESILIN_TESTNODE_CACHE (/var/tmp/resilin-testnode).
set -euo pipefail

# The tag names the init contract's version: a new one builds a new image.
IMAGE=${1:-localhost/resilin-testnode:2}
CACHE=${RESILIN_TESTNODE_CACHE:-/var/tmp/resilin-testnode}
MIRROR=${RESILIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$IMAGE"; then
    echo "$IMAGE"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "testnode.sh must run as root (debootstrap)" >&2; exit 1; }

ROOT=$CACHE/rootfs
if [ ! -x "$ROOT/usr/sbin/sshd" ]; then
    rm -rf --one-file-system "$ROOT"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase --include=openssh-server,python3,procps,iproute2 \
        bookworm "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1
fi

STAGE=$(mktemp -d "$CACHE/stage.XXXXXX")
trap 'rm -rf --one-file-system "$STAGE"' EXIT
cp -a "$ROOT/." "$STAGE/"
# Host keys must be made per instance, never baked into the image.
rm -f "$STAGE"/etc/ssh/ssh_host_*
grep -q '^hadoop:' "$STAGE/etc/passwd" || chroot "$STAGE" useradd -m -s /bin/bash hadoop
mkdir -p "$STAGE/run/sshd" "$STAGE/usr/local/sbin"
cat >"$STAGE/usr/local/sbin/resilin-init" <<'INIT'
#!/bin/bash
set -eu
home=/home/hadoop
mkdir -p "$home/.ssh"
printf '%s\n' "${RESILIN_SSH_PUBKEY:-}" >"$home/.ssh/authorized_keys"
chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
chown -R hadoop:hadoop "$home/.ssh"
mkdir -p /var/lib/cloud
if [ ! -e /var/lib/cloud/user-data.done ]; then
    printf '%s' "${RESILIN_USER_DATA_B64:-}" | base64 -d >/var/lib/cloud/user-data 2>/dev/null || true
    if [ "$(head -c 2 /var/lib/cloud/user-data)" = "#!" ]; then
        chmod 700 /var/lib/cloud/user-data
        /var/lib/cloud/user-data || echo "resilin-init: user data exited with status $?"
    fi
    touch /var/lib/cloud/user-data.done
fi
ssh-keygen -A >/dev/null
echo "-----BEGIN SSH HOST KEY KEYS-----"
cat /etc/ssh/ssh_host_*_key.pub
echo "-----END SSH HOST KEY KEYS-----"
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
INIT
chmod 755 "$STAGE/usr/local/sbin/resilin-init"
tar -C "$STAGE" -c . | podman import --change 'ENTRYPOINT ["/usr/local/sbin/resilin-init"]' - "$IMAGE" >/dev/null
echo "$IMAGE"
