"""Errors of the protocol layer itself: they are answered before a request reaches the core."""

from __future__ import annotations

from resilin.errors import EmrError


class UnknownOperation(EmrError):
    code = "UnknownOperationException"
    status = 400


class SerializationError(EmrError):
    """A body that is not the JSON document the protocol expects."""

    code = "SerializationException"
    status = 400


class UnsupportedMediaType(EmrError):
    code = "UnsupportedMediaTypeException"
    status = 415


class MethodNotAllowed(EmrError):
    code = "MethodNotAllowedException"
    status = 405


class RequestTooLarge(EmrError):
    code = "RequestEntityTooLargeException"
    status = 413


class InternalFailure(EmrError):
    """A bug on our side; the message never says more than this."""

    code = "InternalServerError"
    status = 500

    def __init__(self) -> None:
        super().__init__("An internal error occurred while processing the request.")


class MalformedQueryString(EmrError):
    """A Query-protocol request whose parameters cannot be read."""

    code = "MalformedQueryString"
    status = 400


class MissingAction(EmrError):
    code = "MissingAction"
    status = 400


class NoSuchVersion(EmrError):
    code = "NoSuchVersion"
    status = 400
