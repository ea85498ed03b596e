"""Hashing a spooled request body while it is still arriving.

Hashing a large body only once it has all arrived (MD5 alone runs at a few
hundred MB/s) delays the response by about as long again as receiving it
took.  Instead, every few megabytes the spool file has taken are hashed in a
worker thread, read back from the page cache with ``pread`` on a descriptor
of the digest's own, while the reactor goes on receiving.  When the body is
complete the handler waits (in its own worker thread) for the last piece and
gets the digests without reading the body again.  Each hashed piece is also
handed to the kernel for writing out (``sync_file_range``, on Linux), so that
the final fsync has little left to do.

Which digests to compute is guessed from the request headers before the body
arrives; the handler uses the result only if the guess matches what it checks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from resilin.storage import checksums
from resilin.storage.ingest import Digests

PIECE = 2 * 1024 * 1024  # hashed as soon as this much more has been spooled
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spool-digest")
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_NOT_VALUE_HEADERS = {b"x-amz-checksum-algorithm", b"x-amz-checksum-type", b"x-amz-checksum-mode"}


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range, or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def planned_digests(headers: Mapping[bytes, Sequence[bytes]]) -> Digests | None:
    """The digests a plain (not aws-chunked) upload with these headers will need, or None.

    ``headers`` maps lower-case header names to their values, as sent.
    """
    payload = b"".join(headers.get(b"x-amz-content-sha256", [b""])[:1]).decode("latin-1")
    if payload.startswith("STREAMING-") or b"aws-chunked" in b"".join(headers.get(b"content-encoding", [])):
        return None  # digests of the decoded data, not of what is spooled
    algorithm = None
    for name in headers:
        if name.startswith(b"x-amz-checksum-") and name not in _NOT_VALUE_HEADERS:
            algorithm = name[len(b"x-amz-checksum-") :].decode("latin-1")
            break
    else:
        declared = headers.get(b"x-amz-sdk-checksum-algorithm") or headers.get(b"x-amz-checksum-algorithm")
        if declared:
            algorithm = declared[0].decode("latin-1").lower()
    if algorithm is not None and algorithm not in checksums.ALGORITHMS:
        return None
    return Digests(bool(_HEX_SHA256.match(payload)), algorithm)


class SpoolDigest:
    """Feeds a spool file's bytes, in order, to ``digests`` in a worker thread."""

    def __init__(self, fd: int, digests: Digests) -> None:
        self.fd = os.dup(fd)  # ours: the spool's own may be closed while a piece is being hashed
        self.digests = digests
        self._lock = threading.Condition()
        self._available = 0  # bytes written to the file so far
        self._running = False
        self._abandoned = False
        self._error: BaseException | None = None

    def advance(self, available: int) -> None:
        """``available`` bytes are now in the file (flushed): hash them in the background."""
        with self._lock:
            self._available = available
            if self._running or self._abandoned:
                return
            self._running = True
        _pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                start, end = self.digests.size, self._available
                if start >= end or self._abandoned or self._error is not None:
                    self._running = False
                    self._lock.notify_all()
                    if self._abandoned:
                        self._close()
                    return
            try:
                data = os.pread(self.fd, min(end - start, PIECE), start)
                if not data:
                    raise OSError("spool file shorter than was written")
                self.digests.update(data)
                if _sync_file_range is not None:
                    _sync_file_range(self.fd, start, len(data), _SYNC_FILE_RANGE_WRITE)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                with self._lock:
                    self._error = exc

    def wait(self, size: int) -> Digests | None:
        """The digests of the first ``size`` bytes, once hashed (blocks: call from a worker thread).

        None if they cannot be had (a read failed): the caller then hashes the file itself.
        """
        self.advance(size)
        with self._lock:
            while self._running:
                self._lock.wait()
            ok = self._error is None and self.digests.size == size
            self._abandoned = True
            self._close()
        return self.digests if ok else None

    def abandon(self) -> None:
        """Nobody will wait for the result: stop, and let go of the descriptor."""
        with self._lock:
            self._abandoned = True
            if not self._running:
                self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
