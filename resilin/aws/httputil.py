"""Small helpers shared by Resilin's Twisted HTTP services."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

from twisted.internet.interfaces import ITransport
from twisted.web.http import RESPONSES
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


def request_headers(request: Request) -> dict[str, list[str]]:
    """All request headers, keyed by lower-case name, values decoded as Latin-1 (as HTTP allows)."""
    return {
        name.decode("latin-1").lower(): [v.decode("latin-1") for v in values]
        for name, values in request.requestHeaders.getAllRawHeaders()
    }


def split_uri(request: Request) -> tuple[str, str]:
    """The raw (still percent-encoded) path and query string of a request."""
    raw = request.uri.decode("latin-1")
    path, _, query = raw.partition("?")
    return path, query


class Answer(NamedTuple):
    """A whole response: status, headers (Content-Length is added) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class BoundedRequest(Request):
    """A request whose body may not exceed its :class:`BoundedSite`'s ``max_body`` bytes.

    Twisted reads a whole body (into memory or a temporary file) before a resource sees the
    request.  Here a declared Content-Length over the limit is refused as soon as the headers
    are in, before any of the body is read, and a chunked body once it passes the limit.  The
    site's ``too_large`` answer is sent and the connection closed, so no more of it is read.
    """

    refused = False
    body_bytes = 0

    @property
    def _site(self) -> BoundedSite:
        # Twisted's Site gives each of its channels a ``site`` attribute that it does not declare.
        return cast(BoundedSite, cast(Any, self.channel).site)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._site.max_body:
            self.content = io.BytesIO()  # type: ignore[assignment]  # Twisted declares it None until now
            self._refuse()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return  # the rest of what was already received with the chunk that passed the limit
        self.body_bytes += len(data)
        if self.body_bytes > self._site.max_body:
            self._refuse()
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:  # a refused request was answered; its connection is closing
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.refused = True
        # Twisted answers "Expect: 100-continue" right after gotLength: not once refused.
        self.requestHeaders.removeHeader(b"expect")
        status, headers, body = self._site.too_large(self)
        head = [f"HTTP/1.1 {status} {RESPONSES.get(status, b'').decode()}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        cast(ITransport, self.channel.transport).write("\r\n".join(head).encode("latin-1") + body)
        self.channel.loseConnection()  # stops reading at once; what was written is still sent


class BoundedSite(Site):
    """A Site whose request bodies are at most ``max_body`` bytes; ``too_large`` answers the others."""

    def __init__(
        self, resource: Resource, *, max_body: int, too_large: Callable[[Request], Answer], **kwargs: object
    ) -> None:
        super().__init__(resource, requestFactory=BoundedRequest, **kwargs)
        self.max_body = max_body
        self.too_large = too_large
