"""Plain request/response values, so that protocols can be written and tested without Twisted."""

from __future__ import annotations

from dataclasses import dataclass, field

from resilin.aws.request import RequestHead


@dataclass(frozen=True)
class ApiRequest(RequestHead):
    """A request's head (see resilin/aws/request.py) and its whole body."""

    body: bytes = b""


@dataclass
class ApiResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
