"""Resilin's data is its user's alone: object files, spooled bodies and the Redis append-only
file (user data, step arguments, configurations) must not be readable by other local users.

Every service process Resilin starts sets a umask of 077 first, so that every file and
directory it (or a child such as redis-server) creates is private; the home and data
directories are made 0700, and one left more open by an earlier version is tightened at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
# Directories of a home that earlier versions created 0755, tightened along with the home itself.
HOME_DATA_DIRS = ("data", "data/storage", "redis")
# Files of a home holding secret keys, tightened to 0600 if an editor or an earlier version left them open.
HOME_SECRET_FILES = ("resilin.toml", "aws-credentials")


def private_process() -> None:
    """Files this process and its children create from now on are readable by their owner only."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter: created so, or tightened if it is not."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~PRIVATE_DIR_MODE & 0o777:
        try:
            path.chmod(mode & PRIVATE_DIR_MODE)
        except PermissionError:  # not ours (a shared directory named as home): say so, go on
            log.warning("%s is mode %o and cannot be made private (0700)", path, mode)
    return path


def private_home(home: Path) -> Path:
    """Resilin's home made private (0700), with the data directories and key files left open."""
    home = private_dir(home)
    for name in HOME_DATA_DIRS:
        if (home / name).is_dir():
            private_dir(home / name)
    for name in HOME_SECRET_FILES:
        path = home / name
        if path.is_file() and not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            try:
                path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o600)
            except PermissionError:
                log.warning("%s is readable by others and cannot be made private (0600)", path)
    return home
