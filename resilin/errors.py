"""Errors the EMR service answers with, shaped as EMR shapes them."""

from __future__ import annotations

from resilin.aws.errors import AwsError


class EmrError(AwsError):
    """An error returned to the client: EMR's error code, a message and the HTTP status."""

    code = "InternalServerError"
    status = 500


class InvalidRequest(EmrError):
    """EMR's InvalidRequestException: the request is well formed but cannot be done (unknown id, bad state)."""

    code = "InvalidRequestException"
    status = 400


class ValidationError(EmrError):
    """A request that does not match the operation's shape or limits."""

    code = "ValidationException"
    status = 400
