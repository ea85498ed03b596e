#!/bin/bash
# resilin-init: entrypoint (PID 1) of a Resilin node container.
#
# Does what cloud-init does on an EC2 instance, in miniature:
#   1. creates SSH host keys on first boot;
#   2. authorizes $RESILIN_SSH_PUBKEY (one or more lines) for the hadoop user;
#   3. runs the user data in $RESILIN_USER_DATA_B64 (base64) once, as root,
#      if it is a script (starts with "#!"); otherwise just stores it;
#   4. prints the host key fingerprints and public keys to the console
#      (stdout, i.e. `podman logs`) between the markers cloud-init uses;
#   5. execs sshd in the foreground.
# No systemd needed; runs unprivileged under podman with runc.
set -u

log() { echo "resilin-init: $*"; }

STATE=/var/lib/resilin
mkdir -p "$STATE" /run/sshd /var/run/hadoop /var/log/hadoop
chmod 0755 /run/sshd
chown hadoop:hadoop /var/run/hadoop /var/log/hadoop

# 1. SSH host keys: Ed25519 and ECDSA only.  An RSA key would cost more CPU at boot than
#    the rest of it together, and every client Resilin serves speaks these two.
for t in ed25519 ecdsa; do
    if [ ! -f "/etc/ssh/ssh_host_${t}_key" ]; then
        log "generating SSH host key ($t)"
        ssh-keygen -q -t "$t" -N '' -f "/etc/ssh/ssh_host_${t}_key"
    fi
done

# 2. Authorized key for the hadoop user.
if [ -n "${RESILIN_SSH_PUBKEY:-}" ]; then
    install -d -m 0700 -o hadoop -g hadoop /home/hadoop/.ssh
    keys=/home/hadoop/.ssh/authorized_keys
    touch "$keys"
    while IFS= read -r key; do
        [ -n "$key" ] || continue
        grep -qxF -- "$key" "$keys" || printf '%s\n' "$key" >>"$keys"
    done <<<"$RESILIN_SSH_PUBKEY"
    chown hadoop:hadoop "$keys"
    chmod 0600 "$keys"
fi

# 3. User data, once per container.
if [ -n "${RESILIN_USER_DATA_B64:-}" ] && [ ! -e "$STATE/user-data.done" ]; then
    if printf '%s' "$RESILIN_USER_DATA_B64" | base64 -d >"$STATE/user-data" 2>/dev/null; then
        if [ "$(head -c 2 "$STATE/user-data")" = "#!" ]; then
            chmod 0700 "$STATE/user-data"
            log "running user data script"
            "$STATE/user-data" 2>&1 | tee -a /var/log/user-data.log
            rc=${PIPESTATUS[0]}
            log "user data script exited with status $rc"
            echo "$rc" >"$STATE/user-data.exit-status"
        else
            log "user data is not a script (no #!); stored in $STATE/user-data"
        fi
    else
        log "could not base64-decode RESILIN_USER_DATA_B64; ignored"
    fi
    touch "$STATE/user-data.done"
fi

# 4. Host keys on the console, as cloud-init prints them on EC2.
pubs=()
for t in ecdsa ed25519; do
    [ -f "/etc/ssh/ssh_host_${t}_key.pub" ] && pubs+=("/etc/ssh/ssh_host_${t}_key.pub")
done
echo "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
for p in "${pubs[@]}"; do ssh-keygen -l -f "$p"; done
echo "-----END SSH HOST KEY FINGERPRINTS-----"
echo "-----BEGIN SSH HOST KEY KEYS-----"
for p in "${pubs[@]}"; do cat "$p"; done
echo "-----END SSH HOST KEY KEYS-----"
log "node ready, starting sshd"

# 5. sshd as PID 1 (it also reaps orphaned children, e.g. daemonized Hadoop JVMs).
exec /usr/sbin/sshd -D -e
