"""Commands run in an instance's network namespace from the host (``nsenter --net``).

The container itself lacks CAP_NET_ADMIN, so whatever the cloud does to an
instance's network (its firewall, its forwarding and TUN device, its routes)
is done from outside, with the host's programs, in the namespace of the
process that holds the container's namespaces.  Blocking: run off the reactor.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class NetnsError(Exception):
    pass


def run(pid: int, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> str:
    """Run ``argv`` in the network namespace of process ``pid``; its output (NetnsError if it fails and ``check``)."""
    proc = subprocess.run(
        ["nsenter", "--target", str(pid), "--net", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"{argv[0]} in the namespace of pid {pid} failed: {proc.stderr.strip()}")
    return proc.stdout if proc.returncode == 0 else ""
