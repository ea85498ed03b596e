"""The legacy Query protocol: ``Action=<Operation>&Version=2009-03-31&…``, answered in XML.

Used by boto 2 and older tools, over GET (parameters in the query string) or POST (a form
body).  Signed with SigV4 (header or presigned query) or SigV2 (``SignatureVersion=2``).
Every operation goes through the same dispatcher as the JSON protocol.
"""

from __future__ import annotations

import logging

from resilin.api import model
from resilin.api.auth import Authenticator, AuthError, Signed
from resilin.api.dispatch import Dispatcher
from resilin.api.errors import (
    InternalFailure,
    MalformedQueryString,
    MethodNotAllowed,
    MissingAction,
    NoSuchVersion,
    SerializationError,
    UnknownOperation,
    UnsupportedMediaType,
)
from resilin.api.request import ApiRequest, ApiResponse
from resilin.api.results import Scalars
from resilin.aws.query import QueryDecoder, parse_form
from resilin.aws.query_xml import CONTENT_TYPE, QueryXmlWriter
from resilin.aws.sigv4 import Failure
from resilin.aws.timestamps import iso8601
from resilin.errors import EmrError, ValidationError
from resilin.jobflows.caller import Caller

log = logging.getLogger(__name__)

API_VERSION = "2009-03-31"
NAMESPACE = "http://elasticmapreduce.amazonaws.com/doc/2009-03-31"
FORM_TYPE = "application/x-www-form-urlencoded"
# Blobs stay bytes: the XML writer encodes them.
XML_SCALARS = Scalars(timestamp=iso8601, blob=lambda data: data)
DECODER = QueryDecoder(ValidationError)
WRITER = QueryXmlWriter(NAMESPACE)
# Parameters that old Query clients send and EMR accepted without a member in today's model:
# boto 2's run_jobflow always sends a top-level ActionOnFailure (the steps carry their own).
LEGACY_IGNORED = {"RunJobFlow": frozenset({"ActionOnFailure"})}

# The Query protocol's names for errors the JSON protocol calls otherwise.
_QUERY_CODES = {
    "ValidationException": "ValidationError",
    "UnknownOperationException": "InvalidAction",
    "SerializationException": "MalformedQueryString",
    "InternalServerError": "InternalFailure",
    "RequestEntityTooLargeException": "RequestEntityTooLarge",
    "UnsupportedMediaTypeException": "UnsupportedMediaType",
    "MethodNotAllowedException": "MethodNotAllowed",
}


def decode_form(text: str, what: str) -> list[tuple[str, str]]:
    """``name=value&…`` pairs, percent-decoded as UTF-8; MalformedQueryString when they are not."""
    try:
        return parse_form(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedQueryString(f"The {what} is not valid form encoding: {exc}") from None


def error_response(error: EmrError, request_id: str) -> ApiResponse:
    if isinstance(error, AuthError):
        error = error.for_query()
    code = _QUERY_CODES.get(error.code, error.code)
    return ApiResponse(error.status, WRITER.error(error, request_id, code), {"Content-Type": CONTENT_TYPE})


class QueryProtocol:
    def __init__(self, dispatcher: Dispatcher, authenticator: Authenticator) -> None:
        self.dispatcher = dispatcher
        self.auth = authenticator

    @staticmethod
    def error_response(error: EmrError, request_id: str) -> ApiResponse:
        return error_response(error, request_id)

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request; blocking (the core is called here), so run it off the reactor."""
        try:
            return self._answer(request)
        except EmrError as exc:
            return error_response(exc, request.request_id)
        except Exception:
            log.exception("request %s: unexpected failure", request.request_id)
            return error_response(InternalFailure(), request.request_id)

    def _params(self, request: ApiRequest) -> list[tuple[str, str]]:
        if request.method not in ("GET", "POST"):
            raise MethodNotAllowed(f"The Query protocol accepts GET and POST, not {request.method}.")
        pairs = decode_form(request.raw_query, "query string")
        if request.body:
            media = request.header("content-type").split(";")[0].strip().lower()
            if request.method != "POST" or media != FORM_TYPE:
                raise UnsupportedMediaType(
                    f"Content-Type {media or '(none)'!r} is not supported; send {FORM_TYPE} "
                    "or the JSON protocol's application/x-amz-json-1.1 with X-Amz-Target."
                )
            try:
                text = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise SerializationError("The request body is not UTF-8 text.") from None
            pairs += decode_form(text, "request body")
        return pairs

    def _authenticate(self, request: ApiRequest, pairs: list[tuple[str, str]]) -> Signed:
        names = {name for name, _ in pairs}
        if "SignatureVersion" in names or "Signature" in names:
            version = dict(pairs).get("SignatureVersion")
            if version != "2":
                raise AuthError(
                    f"SignatureVersion {version!r} is not supported: sign with version 2 or 4.",
                    Failure.MALFORMED,
                )
            return self.auth.sigv2(request, pairs)
        return self.auth.sigv4(request)

    def _answer(self, request: ApiRequest) -> ApiResponse:
        pairs = self._params(request)
        signed = self._authenticate(request, pairs)
        values = dict(pairs)
        for once in ("Action", "Version"):
            if sum(1 for key, _ in pairs if key == once) > 1:
                raise MalformedQueryString(f"The parameter {once} is given more than once.")
        name = values.get("Action")
        if not name:
            raise MissingAction("The request must contain the parameter Action.")
        if values.get("Version", API_VERSION) != API_VERSION:
            raise NoSuchVersion(
                f"The requested version ({values['Version']}) of service ElasticMapReduce does not exist; "
                f"use {API_VERSION}."
            )
        try:
            operation = model.operation(name)
        except UnknownOperation:
            raise UnknownOperation(f"The action {name} is not valid for this web service.") from None
        with self.auth.once(signed, name):
            ignored = LEGACY_IGNORED.get(name, frozenset())
            params = DECODER.decode((p for p in pairs if p[0] not in ignored), operation.input_shape)
            caller = Caller(signed.credentials.account_id, signed.credentials.access_key)
            result = self.dispatcher.execute(caller, name, params, XML_SCALARS, request_id=request.request_id)
        body = WRITER.response(operation, result, request.request_id)
        return ApiResponse(200, body, {"Content-Type": CONTENT_TYPE})
