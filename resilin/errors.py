"""Errors the EMR service answers with, shaped as EMR shapes them."""

from __future__ import annotations

from resilin.aws.errors import AwsError


class EmrError(AwsError):
    """An error returned to the client: EMR's error code, a message and the HTTP status."""

    code = "InternalServerError"
    status = 500
    error_code: str | None = None  # the error's own ErrorCode member, where its shape has one


class InvalidRequest(EmrError):
    """EMR's InvalidRequestException: the request is well formed but cannot be done (unknown id, bad state).

    ``error_code`` is the exception's ``ErrorCode`` member, which EMR sets for some causes
    (``NoSuchCluster``, ``ResourceNotFound``) and SDKs expose beside the code."""

    code = "InvalidRequestException"
    status = 400

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


def no_such_cluster(cid: str) -> InvalidRequest:
    return InvalidRequest(f"Cluster id '{cid}' is not valid.", "NoSuchCluster")


class ValidationError(EmrError):
    """A request that does not match the operation's shape or limits."""

    code = "ValidationException"
    status = 400
