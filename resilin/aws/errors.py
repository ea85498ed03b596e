"""The one error base of every AWS-shaped service here: EMR, the local cloud's EC2 and storage's S3.

An error carries the service's code, a message and the HTTP status; each protocol's writer
renders it the way that protocol does (JSON ``__type``, Query ``ErrorResponse``, EC2
``Response/Errors``, S3 ``Error``).
"""

from __future__ import annotations


class AwsError(Exception):
    """An error returned to the client: its code, a message and the HTTP status."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
