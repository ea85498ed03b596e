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
# A boot runs on every instance of a launch at once, so it starts few processes: bash builtins
# do what they can, and each remaining command is run once for every file it applies to.
mkdir -p "$STATE" /run/sshd /var/run/hadoop /var/log/hadoop /home/hadoop/.ssh

# 1. SSH host keys: Ed25519 and ECDSA only.  An RSA key would cost more CPU at boot than
#    the rest of it together, and every client Resilin serves speaks these two.
for t in ed25519 ecdsa; do
    if [ ! -f "/etc/ssh/ssh_host_${t}_key" ]; then
        log "generating SSH host key ($t)"
        ssh-keygen -q -t "$t" -N '' -f "/etc/ssh/ssh_host_${t}_key"
    fi
done

# 2. Authorized keys for the hadoop user: each line of $RESILIN_SSH_PUBKEY not there yet.
keys=/home/hadoop/.ssh/authorized_keys
umask 077
declare -A have=()
if [ -f "$keys" ]; then
    while IFS= read -r key; do have["$key"]=1; done <"$keys"
fi
while IFS= read -r key; do
    [ -n "$key" ] && [ -z "${have["$key"]:-}" ] || continue
    printf '%s\n' "$key" >>"$keys"
    have["$key"]=1
done <<<"${RESILIN_SSH_PUBKEY:-}"
[ -f "$keys" ] || : >"$keys"
umask 022
chmod go-rwx /home/hadoop/.ssh "$keys"
chown hadoop:hadoop /var/run/hadoop /var/log/hadoop /home/hadoop/.ssh "$keys"

# 3. User data, once per container.
if [ -n "${RESILIN_USER_DATA_B64:-}" ] && [ ! -e "$STATE/user-data.done" ]; then
    if printf '%s' "$RESILIN_USER_DATA_B64" | base64 -d >"$STATE/user-data" 2>/dev/null; then
        magic=""
        read -r -n 2 magic <"$STATE/user-data" || true
        if [ "$magic" = "#!" ]; then
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
    : >"$STATE/user-data.done"
fi

# 4. Host keys on the console, as cloud-init prints them on EC2 (one ssh-keygen for all the
#    fingerprints: it reads a file of several keys).
pubs=""
for t in ecdsa ed25519; do
    [ -f "/etc/ssh/ssh_host_${t}_key.pub" ] && pubs+="$(<"/etc/ssh/ssh_host_${t}_key.pub")"$'\n'
done
echo "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
[ -n "$pubs" ] && ssh-keygen -l -f - <<<"${pubs%$'\n'}"
echo "-----END SSH HOST KEY FINGERPRINTS-----"
echo "-----BEGIN SSH HOST KEY KEYS-----"
printf '%s' "$pubs"
echo "-----END SSH HOST KEY KEYS-----"
log "node ready, starting sshd"

# 5. sshd as PID 1 (it also reaps orphaned children, e.g. daemonized Hadoop JVMs).
exec /usr/sbin/sshd -D -e
