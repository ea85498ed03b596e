"""A response's status line and headers, written in one piece.

Twisted builds a response head header by header, sanitising and
re-capitalising each name and value on the way; for a small object that
costs more than everything else the server does.  Here the head is one
``bytes`` built from the handler's header dict, and a small body goes out in
the same write.  Names are sent as the handlers spell them (``x-amz-meta-*``
in lower case, as S3 sends them: SDKs hand user metadata keys on exactly as
received).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import formatdate

from twisted.web.http import RESPONSES
from twisted.web.server import Request

NO_BODY_STATUSES = (204, 304)
_UNSAFE = str.maketrans({"\r": " ", "\n": " ", "\0": " "})
_date_cache: tuple[int, bytes] = (0, b"")


def http_date_now() -> bytes:
    """The Date header's value, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def _safe(text: str) -> str:
    # Values can come from the request (user metadata, response-* query overrides):
    # a line break in one must not start a header of its own.
    return text.translate(_UNSAFE) if ("\r" in text or "\n" in text or "\0" in text) else text


def encode_head(version: bytes, status: int, headers: Mapping[str, str], extra: list[bytes]) -> bytes:
    """The status line and header block; ``extra`` holds ready-made ``Name: value`` lines."""
    reason = RESPONSES.get(status, b"Unknown")
    text = "\r\n".join([f"{name}: {value}" for name, value in headers.items()])
    breaks = len(headers) - 1
    if text.count("\r") != breaks or text.count("\n") != breaks or "\0" in text:
        # Rare: some value carries a line break of its own.
        text = "\r\n".join([f"{_safe(name)}: {_safe(value)}" for name, value in headers.items()])
    head = text.encode("latin-1", "replace")
    parts = [version, b" %d " % status, reason, b"\r\n", head, b"\r\n"]
    for line in extra:
        parts += [line, b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


def start_response(request: Request, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
    """Write the head (and ``body``, when the response carries one) to the connection.

    The Twisted request is marked as started, so any further ``request.write``
    sends body bytes only; the caller still calls ``request.finish()``.
    Headers Twisted set itself (``Connection: close``) are kept.
    """
    extra = [b"Date: " + http_date_now()]
    for name, values in request.responseHeaders.getAllRawHeaders():
        extra += [name + b": " + value for value in values]
    head = encode_head(request.clientproto, status, headers, extra)
    request.setResponseCode(status)
    request.startedWriting = 1
    if request.method == b"HEAD" or status in NO_BODY_STATUSES or not body:
        body = b""
    request.sentLength = len(body)
    request.channel.write(head + body if len(body) <= 64 * 1024 else head)
    if len(body) > 64 * 1024:
        request.channel.write(body)  # no copy of a large body just to join it to the head


def flush_now(transport: object) -> None:
    """Send what a finished response left in ``transport``'s buffer now, rather than on the
    reactor's next turn (which costs a wake-up and a trip round the reactor loop).

    Take the transport before finishing the request: a finished request lets go of its channel.
    """
    # (The transport's producer is the HTTP channel itself, which a drained buffer
    # does not disturb; a response's own producer is registered with the channel.)
    if not getattr(transport, "connected", False) or getattr(transport, "disconnecting", True):
        return
    do_write = getattr(transport, "doWrite", None)
    if do_write is not None:
        # An error is left for the reactor to find: the transport stays registered for writing.
        do_write()
