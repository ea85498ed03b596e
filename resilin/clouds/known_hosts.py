"""An OpenSSH known_hosts file of every live cluster node, for users' own ``ssh`` (and ``aws emr ssh``).

Resilin learns each node's host keys from the cloud before its first connection and
pins them; this file hands the same pinned keys to OpenSSH, so that users need not
trust on first use either::

    aws emr ssh --cluster-id j-… --key-pair-file key.pem \\
        --ssh-options UserKnownHostsFile=~/.resilin/known_hosts StrictHostKeyChecking=yes

Entries carry the cluster id as their comment and are removed when the cluster ends:
local clouds hand out the same addresses again, and a stale key would make ssh refuse
the next cluster that gets the address.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_lock = threading.Lock()  # every cluster worker of this process writes the same file


def _owner_tag(cluster_id: str) -> str:
    return f"resilin:{cluster_id}"


def add(path: Path, cluster_id: str, host: str, host_keys: list[str]) -> None:
    """Record ``host_keys`` (``type base64`` lines) for ``host``, on behalf of ``cluster_id``."""
    lines = []
    for key in host_keys:
        parts = key.split()
        if len(parts) >= 2:
            lines.append(f"{host} {parts[0]} {parts[1]} {_owner_tag(cluster_id)}")
    with _lock:
        current = _read(path)
        # A host now belongs to this cluster: any older entry for the address is stale.
        kept = [line for line in current if line.split(" ", 1)[0] != host]
        _write(path, kept + lines)


def remove(path: Path, cluster_id: str) -> None:
    tag = _owner_tag(cluster_id)
    with _lock:
        current = _read(path)
        kept = [line for line in current if not line.endswith(" " + tag)]
        if kept != current:
            _write(path, kept)


def _read(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)  # readers never see a half-written file
