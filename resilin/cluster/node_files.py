"""Reading what a node hands back, in bounded amounts.

Cluster nodes run the users' code, as a user who may become root there: a log file may be
a symlink to ``/dev/zero``, a FIFO that never opens, or grow for ever, and a command's
output may never end.  Resilin is one process for every tenant, so whatever it takes from
a node is bounded in size and time: files are read only when they are regular files (the
path itself, not what a symlink points at), at most ``limit`` bytes of them (their head and
tail, as EMR keeps the end of a big log), and command output keeps only its last bytes.
"""

from __future__ import annotations

import stat
import time
from typing import cast

import paramiko

LOG_LIMIT = 16 * 1024 * 1024  # bytes kept of one log file
LOG_HEAD = 1024 * 1024  # of which from its start (a step's submitted applications are named early)
OUTPUT_LIMIT = 1024 * 1024  # bytes kept of each of a command's stdout and stderr
READ_TIMEOUT = 120.0  # seconds to read one file
_REQUEST = 32 * 1024  # bytes asked of the SFTP server at a time (its usual maximum)


class NodeFileError(Exception):
    """A node's file cannot be taken: not a regular file, or too slow in coming."""


class TailBuffer:
    """Collects a stream, keeping only its last ``limit`` bytes and counting what it dropped."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.dropped = 0
        self._data = bytearray()

    def write(self, chunk: bytes) -> None:
        self._data += chunk
        excess = len(self._data) - self.limit
        if excess > 0:
            del self._data[:excess]
            self.dropped += excess

    def getvalue(self) -> bytes:
        return bytes(self._data)


def omitted_marker(count: int) -> bytes:
    return f"\n[... {count} bytes omitted by Resilin ...]\n".encode()


def read_regular_file(
    sftp: paramiko.SFTPClient,
    path: str,
    limit: int = LOG_LIMIT,
    head: int = LOG_HEAD,
    timeout: float = READ_TIMEOUT,
) -> bytes:
    """``path`` on the node, whole if it has at most ``limit`` bytes, else its first ``head`` and
    last ``limit - head`` bytes around a marker; NodeFileError if it is not a regular file (a
    symlink, a device, a FIFO) or takes longer than ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    # An SFTPClient opened on a session always has its channel; the stubs allow None for one made otherwise.
    channel = cast(paramiko.Channel, sftp.get_channel())
    channel.settimeout(max(1.0, timeout))  # no single answer may take longer
    _require_regular(sftp.lstat(path), path)  # lstat: a symlink is refused, not followed
    with sftp.open(path, "rb") as fh:
        # The path may have been swapped since the lstat: what was opened must be regular too.
        attrs = fh.stat()
        _require_regular(attrs, path)
        size = attrs.st_size or 0
        if size <= limit:
            return _read_range(fh, 0, size, deadline, path)
        tail = limit - head
        return (
            _read_range(fh, 0, head, deadline, path)
            + omitted_marker(size - limit)
            + _read_range(fh, size - tail, tail, deadline, path)
        )


def _require_regular(attrs: paramiko.SFTPAttributes, path: str) -> None:
    if attrs.st_mode is None or not stat.S_ISREG(attrs.st_mode):
        raise NodeFileError(f"{path} is not a regular file")


def _read_range(fh: paramiko.SFTPFile, start: int, length: int, deadline: float, path: str) -> bytes:
    """At most ``length`` bytes from ``start`` (fewer if the file has shrunk meanwhile)."""
    out = bytearray()
    fh.seek(start)
    while len(out) < length:
        if time.monotonic() > deadline:
            raise NodeFileError(f"{path}: reading took too long")
        chunk = fh.read(min(_REQUEST, length - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out[:length])
