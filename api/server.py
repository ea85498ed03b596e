"""The EMR web service as a Twisted site."""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet.threads import deferToThread
from twisted.web import server
from twisted.web.server import Request

from resilin.api import model
from resilin.api.auth import Authenticator
from resilin.api.dispatch import Dispatcher
from resilin.api.errors import InternalFailure, RequestTooLarge
from resilin.api.json_protocol import JsonProtocol, is_json_type
from resilin.api.query_protocol import QueryProtocol
from resilin.api.request import ApiRequest, ApiResponse
from resilin.aws.httplimits import HttpLimits, protect
from resilin.aws.httputil import Answer, BoundedSite, request_headers
from resilin.aws.replay import SignatureLedger
from resilin.aws.request import RequestHead
from resilin.aws.sigv4 import Credentials
from resilin.aws.skeleton import AwsResource, new_request_id

log = logging.getLogger(__name__)

# Far above any real EMR request (RunJobFlow with hundreds of steps is well under 1 MiB).
MAX_BODY = 16 * 1024 * 1024


class EmrResource(AwsResource[ApiResponse]):
    """Every path and method: the protocols route by headers, not by URL."""

    request_id_header = "X-Amzn-RequestId"

    def __init__(self, json_protocol: JsonProtocol, query_protocol: QueryProtocol) -> None:
        super().__init__()
        self.json_protocol = json_protocol
        self.query_protocol = query_protocol

    def protocol_for(self, headers: dict[str, list[str]]) -> JsonProtocol | QueryProtocol:
        # JSON requests name their operation in X-Amz-Target; the Query protocol in Action=.
        if "x-amz-target" in headers or is_json_type(headers.get("content-type", [""])[0]):
            return self.json_protocol
        return self.query_protocol

    def too_large(self, request: Request) -> Answer:
        """The answer to a body over MAX_BODY, sent before it is read (see BoundedRequest)."""
        request_id = new_request_id()
        protocol = self.protocol_for(request_headers(request))
        response = protocol.error_response(RequestTooLarge("The request body is too large."), request_id)
        return Answer(response.status, response.headers | {"X-Amzn-RequestId": request_id}, response.body)

    async def answer(self, request: Request, head: RequestHead) -> ApiResponse:
        content = request.content
        body = b""
        if content is not None:
            content.seek(0)
            body = content.read()  # at most MAX_BODY: the site refused larger ones unread
        api_request = ApiRequest(
            method=head.method,
            raw_path=head.raw_path,
            raw_query=head.raw_query,
            headers=head.headers,
            body=body,
            request_id=head.request_id,
        )
        protocol = self.protocol_for(head.headers)
        return await deferToThread(protocol.handle, api_request)

    def failed(self, head: RequestHead) -> ApiResponse:
        return self.protocol_for(head.headers).error_response(InternalFailure(), head.request_id)


def make_site(
    service: object,
    lookup: Callable[[str], Credentials | None],
    region: str,
    ledger: SignatureLedger | None = None,
    limits: HttpLimits | None = None,
) -> server.Site:
    """The EMR API over ``service`` (the core), authenticating with ``lookup`` for ``region``.

    Signatures already used are refused; they are remembered in ``ledger``, by default in
    the Redis of the core's store.
    """
    model.emr_model()  # load the model now rather than inside the first request
    if ledger is None:
        ledger = SignatureLedger(service.store.redis)  # type: ignore[attr-defined]
    dispatcher = Dispatcher(service)
    authenticator = Authenticator(lookup, region, ledger)
    resource = EmrResource(JsonProtocol(dispatcher, authenticator), QueryProtocol(dispatcher, authenticator))
    # The protocols read the body themselves; Twisted's own form parsing would only cost time.
    site = BoundedSite(
        resource, max_body=MAX_BODY, too_large=resource.too_large, parsePOSTFormSubmission=False
    )
    site.displayTracebacks = False  # never a traceback to a client
    site.log = lambda request: None  # type: ignore[method-assign]  # no access log: request ids are logged where something fails
    return protect(site, limits)  # deadlines and connection caps (resilin/aws/httplimits.py)
