"""The auto-termination policy: a cluster idle for longer than its IdleTimeout shuts down.

As on EMR (releases 6.4 and later), a cluster is idle when it has no active step, no
active YARN application, and ``/emr/metricscollector/isbusy`` on the master has not
been touched within the timeout (how scripts and non-YARN work say they are busy).
The timeout is read from the cluster's ``auto_termination_policy`` (IdleTimeout, seconds),
so Put/RemoveAutoTerminationPolicy take effect on the next check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from resilin.clouds.ssh import Node, SshError
from resilin.jobflows.documents import ClusterDoc

log = logging.getLogger(__name__)

PROBE_INTERVAL = 10.0  # seconds between looks at YARN on the master
BUSY_FILE = "/emr/metricscollector/isbusy"
_ACTIVE_APP_STATES = "NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING"


def probe_command(master_ip: str) -> str:
    """Prints the number of active YARN applications and the busy file's mtime (0 if none)."""
    url = f"http://{master_ip}:8088/ws/v1/cluster/apps?states={_ACTIVE_APP_STATES}"
    count = "import json,sys; print(len((json.load(sys.stdin).get('apps') or {}).get('app') or []))"
    return (
        f"apps=$(curl -sf -m 10 '{url}' | python3 -c \"{count}\") || apps=unknown; "
        f'busy=$(stat -c %Y {BUSY_FILE} 2>/dev/null || echo 0); echo "$apps $busy $(date +%s)"'
    )


class IdleClock:
    """How long the cluster has been idle, by the rules above."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.idle_since: float | None = None
        self._last_probe = float("-inf")

    def timeout(self, cluster: ClusterDoc) -> int | None:
        # Put by RunJobFlow or PutAutoTerminationPolicy (resilin/jobflows/policy_operations.py).
        value = (cluster.get("auto_termination_policy") or {}).get("IdleTimeout")
        return int(value) if value else None

    def reset(self) -> None:
        """Activity: steps are running (or the policy was just put in place)."""
        self.idle_since = None

    def expired(self, cluster: ClusterDoc, master: Node, master_ip: str) -> bool:
        """Called while the cluster waits with no step to run; True once it has idled past the timeout."""
        timeout = self.timeout(cluster)
        if timeout is None:
            self.idle_since = None
            return False
        now = self.now()
        if self.idle_since is None:
            self.idle_since = now
        if now - self._last_probe >= PROBE_INTERVAL:
            self._last_probe = now
            if self._busy(master, master_ip, timeout):
                self.idle_since = now
        return now - self.idle_since >= timeout

    def _busy(self, master: Node, master_ip: str, timeout: int) -> bool:
        try:
            out = master.run(probe_command(master_ip), timeout=30).stdout.split()
        except (SshError, OSError) as exc:
            log.warning("idle check on %s failed: %s", master_ip, exc)
            return True  # unknown is not idle: never shut a cluster down on a failed look
        if len(out) != 3 or not out[0].isdigit():
            return True
        apps, busy_mtime, master_now = int(out[0]), int(out[1]), int(out[2])
        return apps > 0 or (busy_mtime > 0 and master_now - busy_mtime < timeout)
