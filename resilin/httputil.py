"""Small helpers shared by Resilin's Twisted HTTP services."""

from __future__ import annotations

import uuid

from twisted.web.server import Request


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


def new_request_id() -> str:
    return str(uuid.uuid4())
