"""This Resilin's installation id: tagged on everything it launches, so that reconciliation only
ever touches its own instances, even in a cloud account other Resilins (or people) share."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from resilin.settings.private_files import private_dir


def installation_id(home: Path) -> str:
    """The id kept in ``home/installation-id``, made on first use."""
    path = Path(home) / "installation-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    candidate = "rsl-" + secrets.token_hex(8)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(candidate + "\n")
    return candidate
