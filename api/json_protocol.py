"""The JSON 1.1 protocol: ``POST /`` with ``X-Amz-Target: ElasticMapReduce.<Operation>``."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from resilin.api import model
from resilin.api.auth import Authenticator
from resilin.api.dispatch import Dispatcher
from resilin.api.errors import (
    InternalFailure,
    MethodNotAllowed,
    SerializationError,
    UnknownOperation,
    UnsupportedMediaType,
)
from resilin.api.request import ApiRequest, ApiResponse
from resilin.api.results import JSON_SCALARS
from resilin.errors import EmrError
from resilin.jobflows.caller import Caller

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
_ACCEPTED_TYPES = {"application/x-amz-json-1.1", "application/x-amz-json-1.0"}
# Far deeper than any EMR input (the deepest members, configurations within configurations included,
# sit a dozen levels down), and shallow enough for the validator, which recurses, and its messages.
MAX_DEPTH = 64


def is_json_type(content_type: str) -> bool:
    return _media(content_type) in _ACCEPTED_TYPES


def is_json_request(request: ApiRequest) -> bool:
    return is_json_type(request.header("content-type"))


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _media_type(request: ApiRequest) -> str:
    return _media(request.header("content-type"))


def decode_body(body: bytes) -> Any:
    if not body.strip():
        return {}  # an operation without parameters may be sent with no body
    try:
        # Strict JSON: UTF-8 only, no NaN or Infinity.
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SerializationError("The request body must be a JSON object.")
    # Counting brackets is cheap and rules out most bodies; only the others are walked.
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH and _nested_deeper_than(document, MAX_DEPTH):
        raise SerializationError(f"The request body is nested more than {MAX_DEPTH} levels deep.")
    return document


def _nested_deeper_than(document: Any, limit: int) -> bool:
    """Whether objects and arrays in ``document`` nest more than ``limit`` deep (walked without recursion)."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def operation_name(request: ApiRequest) -> str:
    target = request.header("x-amz-target")
    prefix, dot, name = target.partition(".")
    if not dot or prefix != model.target_prefix() or not name:
        raise UnknownOperation(f"The X-Amz-Target header {target!r} does not name an EMR operation.")
    return name


def error_response(error: EmrError) -> ApiResponse:
    fields = {"__type": error.code, "message": error.message}
    if error.error_code:
        fields["ErrorCode"] = error.error_code  # InvalidRequestException's modeled member
    body = orjson.dumps(fields)
    return ApiResponse(error.status, body, {"Content-Type": CONTENT_TYPE, "x-amzn-ErrorType": error.code})


class JsonProtocol:
    def __init__(self, dispatcher: Dispatcher, authenticator: Authenticator) -> None:
        self.dispatcher = dispatcher
        self.auth = authenticator

    @staticmethod
    def error_response(error: EmrError, request_id: str = "") -> ApiResponse:
        return error_response(error)

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request; blocking (the core is called here), so run it off the reactor."""
        try:
            result = self._answer(request)
        except EmrError as exc:
            return error_response(exc)
        except Exception:
            log.exception("request %s: unexpected failure", request.request_id)
            return error_response(InternalFailure())
        return ApiResponse(200, orjson.dumps(result), {"Content-Type": CONTENT_TYPE})

    def _answer(self, request: ApiRequest) -> dict[str, Any]:
        if request.method != "POST":
            raise MethodNotAllowed(f"The JSON protocol accepts POST only, not {request.method}.")
        if not is_json_request(request):
            raise UnsupportedMediaType(
                f"Content-Type {_media_type(request) or '(none)'!r} is not supported; use {CONTENT_TYPE}."
            )
        signed = self.auth.sigv4(request)
        name = operation_name(request)
        with self.auth.once(signed, name):
            params = decode_body(request.body)
            caller = Caller(signed.credentials.account_id, signed.credentials.access_key)
            return self.dispatcher.execute(caller, name, params, JSON_SCALARS, request_id=request.request_id)
