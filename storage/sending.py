"""Sending part of an open object file as a response body.

Small bodies are read at once and written with the response head.  Larger
ones go out through a push producer that hands the file to the kernel with
``sendfile`` whenever the connection has nothing else queued: the data goes
from the page cache to the socket without passing through Python.  When the
socket is full, one small piece is queued through the transport instead, so
that Twisted says when the connection can take more (and pauses the producer
until then); memory stays flat whatever the object size, and every connection
gets its turn (readers of one object share the disk and the network fairly).
Where ``sendfile`` is not available (or the transport is not a plain socket)
every piece goes through the transport.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, cast

from twisted.internet.interfaces import ITCPTransport
from twisted.web.server import Request

PIECE = 512 * 1024  # read and written through the transport when sendfile cannot be used
WAKE_PIECE = 64 * 1024 + 1  # queued when the socket is full: just over Twisted's buffer size, so it pauses us
# At most this much per sendfile call (and at most what the socket's buffer takes, see
# server.SEND_BUFFER): connections take turns in steps of this size.
SENDFILE_MAX = 1024 * 1024
DIRECT_MAX = 256 * 1024  # bodies up to this size are written in one go
_HAVE_SENDFILE = hasattr(os, "sendfile")


def _queued(transport: object) -> int | None:
    """Bytes waiting in a Twisted TCP transport's write buffer (None when it cannot be told)."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return None


class RangeProducer:
    """Writes ``length`` bytes of ``file`` from ``offset`` to ``request``, then finishes it."""

    def __init__(self, request: Request, file: BinaryIO, offset: int, length: int) -> None:
        self.request: Request | None = request
        self.fd = file.fileno()
        self.position = offset
        self.remaining = length
        self.paused = False
        # A tcp.Connection when sendfile can be used (fileno, doWrite); any transport otherwise.
        self.transport: Any = cast(Any, request.channel.transport)
        self.socket_fd: int | None = None
        # Just over the transport's buffer size, so that writing it pauses us.
        self.wake_piece = getattr(self.transport, "bufferSize", WAKE_PIECE - 1) + 1
        if _HAVE_SENDFILE and _queued(self.transport) is not None:
            try:
                self.socket_fd = self.transport.fileno()
            except (AttributeError, OSError):
                self.socket_fd = None

    def start(self) -> None:
        """Register with the request and start sending (the response head is already written)."""
        assert self.request is not None
        if self.socket_fd is not None and _queued(self.transport):
            # Push the head out first, so that the body can go straight to the socket.
            self.transport.doWrite()
        self.request.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        while self.request is not None and self.remaining and not self.paused:
            if self.socket_fd is not None and _queued(self.transport) == 0 and self._send_file():
                continue
            if self.request is None:
                return
            # Through the transport: it pauses us (the piece is over its buffer size) and
            # resumes us once the piece has gone out.
            size = PIECE if self.socket_fd is None else self.wake_piece
            data = os.pread(self.fd, min(size, self.remaining), self.position)
            if not data:
                self._cut_short()
                return
            self.position += len(data)
            self.remaining -= len(data)
            self.request.write(data)
        request = self.request
        if request is not None and not self.remaining:
            self.request = None
            request.unregisterProducer()
            request.finish()

    def _send_file(self) -> bool:
        """Hand the kernel as much as the socket takes now; False once it takes nothing more."""
        assert self.socket_fd is not None and self.request is not None
        try:
            sent = os.sendfile(self.socket_fd, self.fd, self.position, min(self.remaining, SENDFILE_MAX))
        except BlockingIOError:
            return False
        except OSError:
            # The connection is gone (or the file cannot be read): nothing more can be sent.
            self._cut_short()
            return False
        if sent == 0:
            # End of file: the file is shorter than its metadata said.
            self._cut_short()
            return False
        self.position += sent
        self.remaining -= sent
        self.request.sentLength += sent
        return True

    def _cut_short(self) -> None:
        """Drop the connection: the response cannot be completed."""
        request = self.request
        self.stopProducing()
        if request is not None:
            request.unregisterProducer()
            if request.channel is not None:
                cast(ITCPTransport, request.channel.transport).abortConnection()

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.request = None


def read_exactly(file: BinaryIO, offset: int, length: int) -> bytes:
    """``length`` bytes of ``file`` from ``offset`` (for bodies up to DIRECT_MAX, sent in one write)."""
    data = os.pread(file.fileno(), length, offset) if length else b""
    if len(data) != length:
        raise OSError("object file shorter than its metadata says")
    return data
