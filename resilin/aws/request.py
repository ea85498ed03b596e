"""What every service reads of a request before its body, as a plain value (no Twisted needed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestHead:
    method: str
    raw_path: str  # still percent-encoded
    raw_query: str
    headers: dict[str, list[str]]  # lower-case names
    request_id: str

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""
