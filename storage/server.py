"""The storage service's Twisted resource: authenticate, route, answer S3-shaped.

Every response carries ``x-amz-request-id``.  Errors are S3's XML error
document; anything unexpected is logged here and answered as a bare 500
InternalError, never with a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor, tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request, Site

from resilin.aws.httplimits import HttpLimits, LimitedChannel, protect
from resilin.aws.httputil import request_headers
from resilin.aws.request import RequestHead
from resilin.aws.sigv4 import Credentials, Verified, parse_query
from resilin.aws.skeleton import AwsResource
from resilin.storage import authorize, cors_ops, lifecycle_sweep, post_object, s3xml
from resilin.storage.auth import authenticate, require_session_token
from resilin.storage.context import Call, Response, body_file
from resilin.storage.errors import S3Error, internal_error
from resilin.storage.ingest import MAX_OBJECT_SIZE
from resilin.storage.multipart_ops import MAX_PART_SIZE
from resilin.storage.response_head import (
    NO_BODY_STATUSES,
    encode_head,
    flush_now,
    http_date_now,
    start_response,
)
from resilin.storage.router import parse_target, route
from resilin.storage.sending import DIRECT_MAX, RangeProducer, read_exactly
from resilin.storage.spool import SpoolFile
from resilin.storage.spool_digest import planned_digests
from resilin.storage.store import Store

log = Logger()
SPOOL_THRESHOLD = 100_000  # bodies at least this large go to a file (Twisted's own threshold)
DIGEST_WHILE_SPOOLING = 4 * 1024 * 1024  # bodies at least this large are hashed as they arrive
# Twisted sends at most 128 KiB per send() and then waits for the next reactor turn;
# object bodies go out in larger pieces (see sending.PIECE), with fewer system calls.
# Connections are TCP_NODELAY: every response is written whole, so Nagle only adds delay.
SEND_LIMIT = 1024 * 1024
# A fixed socket send buffer (the kernel doubles it) rather than one the kernel grows for
# whichever reader drains fastest: a connection with a grown buffer takes more per turn,
# and parallel readers of one object drift apart (fairness 0.92-0.95 grown, 0.95-0.99 fixed).
SEND_BUFFER = 512 * 1024
RECEIVE_SIZE = 512 * 1024
DEFAULT_RECEIVE_SIZE = FileDescriptor.bufferSize


def _request_id_sequence() -> Iterator[str]:
    """Request ids as S3 makes them (16 upper-case hex digits): a random prefix for this
    process and a counter, unique without asking the system for randomness each time."""
    prefix = secrets.randbits(24)
    for number in itertools.count():
        yield f"{prefix:06X}{number % 16**10:010X}"


_request_ids = _request_id_sequence()


def standalone_error(exc: S3Error) -> bytes:
    """An S3 error as a whole response that closes the connection, for a client no request answers."""
    request_id = next(_request_ids)
    response = s3xml.error(exc, "", request_id, head=False)
    headers = {
        **response.headers,
        "Content-Length": str(len(response.body)),
        "Connection": "close",
        "x-amz-request-id": request_id,
        "Server": "Resilin",
    }
    return encode_head(b"HTTP/1.1", exc.status, headers, [b"Date: " + http_date_now()]) + response.body


def slow_down() -> S3Error:
    return S3Error("SlowDown", "Please reduce your request rate.", 503)


class StorageChannel(LimitedChannel):
    """One client connection: set up once, rather than again by every request on it.

    A request with a body is authenticated from its headers alone (they carry the
    signed payload hash) before a byte of the body is read: an unsigned or badly
    signed upload is answered and its connection closed, so nothing of it is spooled (what
    a client sends without waiting for ``100 Continue`` is read and dropped, up to a bound).
    """

    site: Site  # set by Site.buildProtocol, which Twisted does not declare
    _host: IAddress | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        # A TCP connection (Twisted declares a channel's transport as the plainer ITransport);
        # the checks below let a test's in-memory transport through.
        transport = cast(tcp.Connection, self.transport)
        transport.SEND_LIMIT = SEND_LIMIT
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        with contextlib.suppress(AttributeError, OSError):
            transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._host = None

    @property
    def _resource(self) -> StorageResource:
        return cast(StorageResource, self.site.resource)  # make_site's root resource

    def getHost(self) -> IAddress:
        # Twisted asks for every request (a getsockname call); it never changes.
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        if self.length != 0:  # a body follows: decide from the headers whether to take it
            refusal = self._refuse_body(request)
            if refusal is not None:
                self._answer_without_body(request, refusal)
                return
        super().allHeadersReceived()

    def _refuse_body(self, request: StorageRequest) -> S3Error | None:
        method = self._command.decode("latin-1").upper()
        raw_path, _, raw_query = self._path.decode("latin-1").partition("?")
        try:
            headers = request_headers(request)
            target = parse_target(
                raw_path, (headers.get("host") or [""])[0], self._resource.virtual_host_base
            )
            content_type = (headers.get("content-type") or [""])[0]
            if post_object.is_form_upload(method, target.key, target.bucket, raw_query, content_type):
                # A browser form: its signed policy is in the body, checked once the body is in.
                request.form_upload = True
                return self._admit_body(request)
            request.verified = authenticate(
                method=method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                lookup=self._resource.lookup,
                region=self._resource.region,
            )
            require_session_token(request.verified, headers, raw_query)
            # Refused uploads are answered before their body is read, whoever sends them.
            authorize.decide(
                self._resource.store,
                authorize.request_of(
                    request.verified.credentials.account_id, request.verified.presigned,
                    first_values(raw_query), headers, request.getClientAddress(),
                ),
                method, target.bucket, target.key,
            )  # fmt: skip
        except S3Error as exc:
            return exc
        except Exception:  # answered as any request that fails unexpectedly: 500, body unread
            log.failure("storage authentication of {method} {path} failed", method=method, path=raw_path)
            return internal_error()
        return self._admit_body(request)

    def _admit_body(self, request: StorageRequest) -> S3Error | None:
        limit = getattr(self.site, "max_request_body", None)
        if limit is not None and self.length is not None and self.length > limit:
            return entity_too_large(self._resource.store.max_object_size)
        # A chunked body (no length) is reserved piece by piece as it arrives.
        if not request.reserve_body(self.length or 0):
            return slow_down()
        return None

    def _answer_without_body(self, request: StorageRequest, refusal: S3Error) -> None:
        """Answer ``refusal`` at once, as if the request had no body; then close the connection."""
        request.refusal = refusal
        request.gotLength(0)
        self.length = 0  # the channel goes straight on to processing the request
        self._transferDecoder = None
        self.close_after_answer()  # the unread body must never be taken for a next request
        request.responseHeaders.setRawHeaders(b"Connection", [b"close"])

    def refusal_response(self) -> bytes:
        return standalone_error(slow_down())

    def body_timeout_response(self) -> bytes:
        return standalone_error(
            S3Error(
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within "
                "the timeout period. Idle connections will be closed.",
                400,
            )
        )


def first_values(raw_query: str) -> dict[str, str]:
    """The decoded query parameters, the first value of each."""
    query: dict[str, str] = {}
    for name, value in parse_query(raw_query):
        query.setdefault(name, value)
    return query


def entity_too_large(max_size: int) -> S3Error:
    return S3Error(
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed object size.",
        400,
        extra={"MaxSizeAllowed": str(max_size)},
    )


class StorageRequest(Request):
    channel: StorageChannel  # make_site's channels (protect() keeps a LimitedChannel protocol)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_bytes = 0
        self.body_too_large = False
        self.refusal: S3Error | None = None  # answered without reading the body (see StorageChannel)
        self.verified: Verified | None = None  # the signature, checked from the headers
        self.form_upload = False  # a POST Object form: authenticated by its policy, in the body
        self.body_reserved = 0  # bytes of the peer's body allowance this request holds
        self._release: Callable[[object], None] | None = None

    def reserve_body(self, size: int) -> bool:
        """Take ``size`` more bytes of the peer's allowance for bodies in flight, until the request ends."""
        channel = self.channel
        accounts, peer = channel.accounts, channel.peer
        if not accounts.reserve_body(peer, size):
            return False
        if self._release is None:

            def release(_: object) -> None:
                accounts.release_body(peer, self.body_reserved)

            self._release = release
            self.notifyFinish().addBoth(release)
        self.body_reserved += size
        return True

    def process(self) -> None:
        # Twisted's own process() sets Server and Date headers, splits and unquotes
        # the path and walks the resource tree: none of which the one leaf resource
        # needs, and the headers are written by response_head.
        self.site = self.channel.site
        self.prepath, self.postpath = [], []
        try:
            self.render(self.site.resource)
        except BaseException:
            self.processingFailed(Failure())

    def handleContentChunk(self, data: bytes) -> None:
        # Stop spooling a body larger than any request may be, so it cannot fill
        # the disk; the request is answered EntityTooLarge once it has arrived.
        self.body_bytes += len(data)
        limit = getattr(getattr(self.channel, "site", None), "max_request_body", None)
        if limit is not None and self.body_bytes > limit:
            self.body_too_large = True
            return
        if self.refusal is not None:
            return
        if self.body_bytes > self.body_reserved and not self.reserve_body(
            self.body_bytes - self.body_reserved
        ):
            self.refusal = slow_down()  # a chunked body past the peer's allowance: stop spooling it
            return
        super().handleContentChunk(data)

    def gotLength(self, length: int | None) -> None:
        # Read a large body in large pieces: Twisted's 64 KiB means a trip through the
        # whole HTTP stack for every 64 KiB.  Other requests keep 64 KiB, which costs
        # no memory mapping per read.  (This is also the write buffer size past which
        # Twisted pauses a producer.)
        transport = getattr(self.channel, "transport", None)
        if transport is not None:
            large = length is None or length >= SPOOL_THRESHOLD
            transport.bufferSize = RECEIVE_SIZE if large else DEFAULT_RECEIVE_SIZE
        # Spool large bodies in the data directory rather than the system's
        # temporary directory, which may be small (or in memory).
        spool = getattr(getattr(self.channel, "site", None), "spool_dir", None)
        if spool is not None and (length is None or length >= SPOOL_THRESHOLD):
            digests = None
            if length is not None and length >= DIGEST_WHILE_SPOOLING:
                headers = {name.lower(): values for name, values in self.requestHeaders.getAllRawHeaders()}
                digests = planned_digests(headers)
            # Twisted declares content as None; it is the body's file (typing.BinaryIO, its docs say).
            self.content = SpoolFile(spool, digests)  # type: ignore[assignment]
        else:
            super().gotLength(length)


class StorageResource(AwsResource[Response]):
    def __init__(
        self,
        store: Store,
        lookup: Callable[[str], Credentials | None],
        region: str,
        virtual_host_base: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.lookup = lookup
        self.region = region
        self.virtual_host_base = virtual_host_base.lower() if virtual_host_base else None

    def new_request_id(self) -> str:
        return next(_request_ids)

    async def answer(self, request: Request, head: RequestHead) -> Response:
        method = head.method.upper()
        try:
            return await self._dispatch(request, method, head)
        except S3Error as exc:
            return s3xml.error(exc, head.raw_path, head.request_id, method == "HEAD")

    def failed(self, head: RequestHead) -> Response:
        return s3xml.error(internal_error(), head.raw_path, head.request_id, head.method.upper() == "HEAD")

    def discard(self, answer: Response) -> None:
        if answer.stream is not None:
            answer.stream.file.close()

    def send(self, request: Request, head: RequestHead, answer: Response) -> None:
        if "origin" in head.headers and head.method.upper() != "OPTIONS":
            answer.headers.update(self._cors_headers(head))
        answer.headers.update(
            {
                "x-amz-request-id": head.request_id,
                "x-amz-id-2": base64.b64encode(hashlib.sha256(head.request_id.encode()).digest()).decode(),
                "Server": "Resilin",
            }
        )
        self._send(request, answer)

    def _cors_headers(self, head: RequestHead) -> dict[str, str]:
        """What the bucket's CORS rules let a browser's page see of this answer."""
        try:
            target = parse_target(
                head.raw_path, (head.headers.get("host") or [""])[0], self.virtual_host_base
            )
        except S3Error:
            return {}
        return cors_ops.response_headers(self.store, target.bucket, head.method.upper(), head.headers)

    async def _dispatch(self, request: Request, method: str, head: RequestHead) -> Response:
        raw_path, raw_query = head.raw_path, head.raw_query
        if getattr(request, "body_too_large", False):
            raise entity_too_large(self.store.max_object_size)
        refusal = getattr(request, "refusal", None)
        if refusal is not None:
            raise refusal
        headers = head.headers
        if method == "OPTIONS":  # a browser's CORS preflight: never signed, and it changes nothing
            target = parse_target(raw_path, (headers.get("host") or [""])[0], self.virtual_host_base)
            return cors_ops.preflight(self.store, target.bucket, headers)
        if getattr(request, "form_upload", False):
            target = parse_target(raw_path, (headers.get("host") or [""])[0], self.virtual_host_base)

            def make_call(verified: Verified, fields: dict[str, list[str]]) -> Call:
                return Call(request=request, store=self.store, method=method, bucket=target.bucket, key=None,
                            query={}, headers=fields, verified=verified, request_id=head.request_id,
                            region=self.region)  # fmt: skip

            with body_file(request) as body:
                return await post_object.post_object(
                    headers, target.bucket or "", body, self.lookup, self.region, make_call
                )
        # Requests with a body were authenticated from their headers, before the body was read.
        verified = getattr(request, "verified", None) or authenticate(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            lookup=self.lookup,
            region=self.region,
        )
        require_session_token(verified, headers, raw_query)
        target = parse_target(raw_path, (headers.get("host") or [""])[0], self.virtual_host_base)
        query = first_values(raw_query)
        handler = route(method, target, query, headers)
        call = Call(
            request=request,
            store=self.store,
            method=method,
            bucket=target.bucket,
            key=target.key,
            query=query,
            headers=headers,
            verified=verified,
            request_id=head.request_id,
            region=self.region,
        )
        call.authorized = authorize.decide(
            self.store, authorize.request_of_call(call), method, target.bucket, target.key
        )
        return await handler(call)

    def _send(self, request: Request, response: Response) -> None:
        transport = request.channel.transport
        stream = response.stream
        if stream is not None and stream.length > DIRECT_MAX:
            request.notifyFinish().addBoth(lambda _: stream.file.close())
            start_response(request, response.status, response.headers)
            RangeProducer(request, stream.file, stream.offset, stream.length).start()
            return
        if stream is not None:
            with stream.file:
                body = read_exactly(stream.file, stream.offset, stream.length)
        else:
            body = response.body
            if response.status not in NO_BODY_STATUSES and "Content-Length" not in response.headers:
                response.headers["Content-Length"] = str(len(body))
        start_response(request, response.status, response.headers, body)
        request.finish()
        flush_now(transport)


def make_site(
    data_dir: Path,
    lookup: Callable[[str], Credentials | None],
    region: str = "us-east-1",
    *,
    virtual_host_base: str | None = None,
    max_object_size: int = MAX_OBJECT_SIZE,
    access_log: bool = True,
    limits: HttpLimits | None = None,
    lifecycle_interval: float = lifecycle_sweep.DEFAULT_INTERVAL_S,
) -> Site:
    """The storage service as a Twisted Site, to listen with on any reactor port.

    ``lookup`` maps an access key to its credentials (None when unknown).  With
    ``virtual_host_base`` (e.g. ``s3.example.test``), ``bucket.s3.example.test``
    Host headers are accepted besides path-style URLs.  With ``access_log``
    False, requests are not formatted into access-log lines at all (Twisted
    formats each one even when the log level then drops it).  ``limits`` bound
    connections, their deadlines and the body bytes one peer may have in flight
    (see resilin/aws/httplimits.py).  Buckets' lifecycle rules are applied every
    ``lifecycle_interval`` seconds (0: never, for a store another process sweeps).
    """
    store = Store(
        Path(data_dir),
        region,
        background=lambda job: reactor.callInThread(job),  # type: ignore[attr-defined]
        max_object_size=max_object_size,
    )
    site = Site(StorageResource(store, lookup, region, virtual_host_base), requestFactory=StorageRequest)
    site.protocol = StorageChannel  # type: ignore[method-assign,assignment]  # Twisted declares a factory function
    site.displayTracebacks = False
    if not access_log:
        site.log = lambda request: None  # type: ignore[method-assign]
    site.storage = store  # type: ignore[attr-defined]
    if lifecycle_interval > 0:
        site.lifecycle = lifecycle_sweep.start(store, lifecycle_interval)  # type: ignore[attr-defined]
    site.spool_dir = str(store.tmp)  # type: ignore[attr-defined]
    # The largest body accepted, with room for aws-chunked framing (under 0.2% with 64 KiB chunks).
    site.max_request_body = int(min(max_object_size, MAX_PART_SIZE) * 1.01) + 1024 * 1024  # type: ignore[attr-defined]
    return protect(site, limits)
