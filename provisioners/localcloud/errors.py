"""The one exception type the local cloud's operations raise for the client to see."""

from __future__ import annotations

from resilin.aws.errors import AwsError


class EC2Error(AwsError):
    """An error answered as EC2 does: a code such as ``InvalidParameterValue`` and a message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message, code, status)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def missing(name: str) -> EC2Error:
    return EC2Error("MissingParameter", f"The request must contain the parameter {name}")


def invalid(name: str, value: object, why: str = "") -> EC2Error:
    message = f"Value ({value}) for parameter {name} is invalid."
    return EC2Error("InvalidParameterValue", f"{message} {why}".strip())
