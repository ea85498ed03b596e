"""The request skeleton the three services share, driven with Twisted's in-memory request."""

from __future__ import annotations

from twisted.web.test.requesthelper import DummyRequest

from resilin.aws.httputil import Answer
from resilin.aws.request import RequestHead
from resilin.aws.skeleton import AwsResource


class _Echo(AwsResource[Answer]):
    request_id_header = "X-Request-Id"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.heads: list[RequestHead] = []
        self.discarded: list[Answer] = []

    async def answer(self, request, head):
        self.heads.append(head)
        if self.fail:
            raise RuntimeError("a bug")
        return Answer(200, {"Content-Type": "text/plain"}, f"{head.method} {head.raw_path}".encode())

    def failed(self, head):
        return Answer(500, {"Content-Type": "text/plain"}, b"internal error")

    def discard(self, answer):
        self.discarded.append(answer)


def _request(path: bytes = b"/a%20b?x=1") -> DummyRequest:
    request = DummyRequest([b""])
    request.uri = path
    request.requestHeaders.setRawHeaders(b"X-Thing", [b"v"])
    return request


def test_answer_is_sent_with_request_id_and_length():
    resource, request = _Echo(), _request()
    resource.render(request)
    head = resource.heads[0]
    assert (head.method, head.raw_path, head.raw_query, head.header("x-thing")) == (
        "GET",
        "/a%20b",
        "x=1",
        "v",
    )
    assert request.responseCode == 200 and b"".join(request.written) == b"GET /a%20b"
    assert request.responseHeaders.getRawHeaders(b"x-request-id") == [head.request_id.encode()]
    assert request.responseHeaders.getRawHeaders(b"content-length") == [b"10"]
    assert request.finished


def test_unexpected_failure_is_answered_with_the_services_internal_error():
    resource, request = _Echo(fail=True), _request()
    resource.render(request)
    assert request.responseCode == 500 and b"".join(request.written) == b"internal error"


def test_nothing_is_sent_to_a_client_that_has_gone():
    resource, request = _Echo(), _request()
    request._disconnected = True
    resource.render(request)
    assert request.written == [] and len(resource.discarded) == 1


def test_each_request_has_its_own_id():
    resource = _Echo()
    for _ in range(3):
        resource.render(_request())
    assert len({head.request_id for head in resource.heads}) == 3
