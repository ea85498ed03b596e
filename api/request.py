"""Plain request/response values, so that protocols can be written and tested without Twisted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApiRequest:
    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, list[str]]  # lower-case names
    body: bytes
    request_id: str

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


@dataclass
class ApiResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
