"""One request skeleton for the Twisted services that speak AWS protocols (EMR, EC2, S3).

Every request gets an id and its head (method, raw path and query, headers) read once; the
service's ``answer`` is awaited off the render call; a failure nobody expected is logged and
answered with the service's internal error, never a traceback; nothing is written to a client
that has gone, and a response that fails half-way drops the connection.  Bodies are capped
before they are read by :class:`resilin.aws.httputil.BoundedSite` (storage, which spools bodies
to disk, caps them in its own request class).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from resilin.aws.httputil import request_headers, split_uri
from resilin.aws.request import RequestHead

log = logging.getLogger(__name__)


def new_request_id() -> str:
    # Unique, not secret: the fast generator rather than the kernel's (which costs a system call).
    return str(uuid.UUID(bytes=random.randbytes(16), version=4))


def read_head(request: Request, request_id: str) -> RequestHead:
    path, query = split_uri(request)
    return RequestHead(request.method.decode("latin-1"), path, query, request_headers(request), request_id)


class Reply(Protocol):
    """A whole response: ``httputil.Answer``, the EMR API's ``ApiResponse``."""

    status: int
    headers: Mapping[str, str]
    body: bytes


A = TypeVar("A")


class AwsResource(Resource, Generic[A]):
    """A leaf resource answering every path; subclasses give ``answer`` and ``failed``."""

    isLeaf = True
    request_id_header: str | None = None  # the response header carrying the request id

    def new_request_id(self) -> str:
        return new_request_id()

    async def answer(self, request: Request, head: RequestHead) -> A:
        """The answer to one request, service errors included."""
        raise NotImplementedError

    def failed(self, head: RequestHead) -> A:
        """The answer when ``answer`` raised something unexpected (already logged)."""
        raise NotImplementedError

    def discard(self, answer: A) -> None:
        """Let go of an answer nobody will receive (the client went away)."""

    def send(self, request: Request, head: RequestHead, answer: A) -> None:
        reply: Reply = answer  # type: ignore[assignment]
        request.setResponseCode(reply.status)
        for name, value in reply.headers.items():
            request.setHeader(name, value)
        if self.request_id_header:
            request.setHeader(self.request_id_header, head.request_id)
        request.setHeader("Content-Length", str(len(reply.body)))
        if request.method != b"HEAD":
            request.write(reply.body)
        request.finish()

    def render(self, request: Request) -> Any:
        head = read_head(request, self.new_request_id())
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = Deferred.fromCoroutine(self._handle(request, head, gone))
        d.addErrback(lambda failure: log.error("request %s: %s", head.request_id, failure.getTraceback()))
        return NOT_DONE_YET

    async def _handle(self, request: Request, head: RequestHead, gone: list[bool]) -> None:
        try:
            answer = await self.answer(request, head)
        except Exception:
            log.error("request %s failed: %s", head.request_id, Failure().getTraceback())
            answer = self.failed(head)
        if gone or request.finished or getattr(request, "_disconnected", False):
            self.discard(answer)
            return
        try:
            self.send(request, head, answer)
        except Exception:
            # Nothing sensible can be sent once a response has started; drop the connection.
            log.error("request %s: sending the answer failed: %s", head.request_id, Failure().getTraceback())
            self.discard(answer)
            transport = request.channel.transport if request.channel is not None else None
            if transport is not None:
                transport.abortConnection()  # type: ignore[attr-defined]  # a TCP transport
