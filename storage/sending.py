"""Sending part of an open object file as a response body.

Small bodies are read at once and written with the response head.  Larger ones go through a pull
producer that reads with ``pread`` in large pieces each time the transport's
buffer drains, so memory stays flat whatever the object size and every
connection gets its turn (readers of one object share the disk and the
network fairly).
"""

from __future__ import annotations

import os
from typing import BinaryIO

from twisted.web.server import Request

PIECE = 512 * 1024
DIRECT_MAX = 256 * 1024  # bodies up to this size are written in one go


class RangeProducer:
    """Writes ``length`` bytes of ``file`` from ``offset`` to ``request``, then finishes it."""

    def __init__(self, request: Request, file: BinaryIO, offset: int, length: int) -> None:
        self.request: Request | None = request
        self.fd = file.fileno()
        self.position = offset
        self.remaining = length

    def start(self) -> None:
        assert self.request is not None
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        request = self.request
        if request is None:
            return
        if self.remaining:
            data = os.pread(self.fd, min(PIECE, self.remaining), self.position)
            if not data:
                # The file is shorter than its metadata said: cut the response short.
                self.stopProducing()
                request.unregisterProducer()
                if request.channel is not None:
                    request.channel.transport.abortConnection()
                return
            self.position += len(data)
            self.remaining -= len(data)
            # This write may re-enter resumeProducing.
            request.write(data)
        if self.request is not None and not self.remaining:
            self.request = None
            request.unregisterProducer()
            request.finish()

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.request = None


def read_exactly(file: BinaryIO, offset: int, length: int) -> bytes:
    """``length`` bytes of ``file`` from ``offset`` (for bodies up to DIRECT_MAX, sent in one write)."""
    data = os.pread(file.fileno(), length, offset) if length else b""
    if len(data) != length:
        raise OSError("object file shorter than its metadata says")
    return data
