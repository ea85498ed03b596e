"""Where a running ``resilin server`` serves its local clouds, for ``resilin clouds`` to find them.

The local clouds' EC2 endpoints get their keys fresh at every start, so the
server writes them (with the endpoints) to ``home/run/local-clouds.json``,
readable by the owner only, and removes the file when it stops.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalCloudAccess:
    name: str
    endpoint: str
    region: str
    access_key: str
    secret_key: str
    gateway: str
    pid: int


def _path(home: Path) -> Path:
    return Path(home) / "run" / "local-clouds.json"


def write(home: Path, clouds: list[LocalCloudAccess]) -> Path:
    path = _path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([asdict(c) for c in clouds], fh)
    tmp.replace(path)
    return path


def read(home: Path) -> dict[str, LocalCloudAccess]:
    """The local clouds of the server running for ``home`` ({} if none runs)."""
    try:
        entries = json.loads(_path(home).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    clouds = {e["name"]: LocalCloudAccess(**e) for e in entries}
    if clouds and not _alive(next(iter(clouds.values())).pid):
        return {}  # left by a server that died without cleaning up
    return clouds


def remove(home: Path) -> None:
    _path(home).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
