"""Errors the EMR service answers with, shaped as EMR shapes them."""

from __future__ import annotations


class EmrError(Exception):
    """An error returned to the client: EMR's error code, a message and the HTTP status."""

    code = "InternalServerError"
    status = 500

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequest(EmrError):
    """EMR's InvalidRequestException: the request is well formed but cannot be done (unknown id, bad state)."""

    code = "InvalidRequestException"
    status = 400


class ValidationError(EmrError):
    """A request that does not match the operation's shape or limits."""

    code = "ValidationException"
    status = 400
