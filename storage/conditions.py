"""Conditional requests (If-Match and friends) and the Range header, as S3 applies them."""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Mapping, Sequence

from resilin.storage.errors import S3Error, precondition_failed

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()


@functools.lru_cache(maxsize=4096)  # every GET and HEAD formats its object's Last-Modified
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def http_date(timestamp: float) -> str:
    return _http_date(int(timestamp))


def etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def check_conditions(
    headers: Mapping[str, Sequence[str]], etag: str, last_modified: float, *, prefix: str = ""
) -> str | None:
    """Evaluate the conditional headers (``x-amz-copy-source-`` ones when ``prefix`` is given).

    Raises 412 PreconditionFailed; returns "not-modified" when the caller should
    answer 304 (for GET/HEAD) or None to go on.  Follows S3: a matching If-Match
    overrides If-Unmodified-Since, a failing If-None-Match overrides If-Modified-Since.
    """
    mtime = int(last_modified)

    def header(name: str) -> str | None:
        values = headers.get(prefix + name)
        return values[0] if values else None

    if_match = header("if-match")
    if_unmodified = header("if-unmodified-since")
    if_none_match = header("if-none-match")
    if_modified = header("if-modified-since")

    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise precondition_failed("If-Match")
    elif if_unmodified is not None:
        since = parse_http_date(if_unmodified)
        if since is not None and mtime > since:
            raise precondition_failed("If-Unmodified-Since")

    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            if prefix:
                raise precondition_failed("x-amz-copy-source-If-None-Match")
            return "not-modified"
    elif if_modified is not None:
        since = parse_http_date(if_modified)
        if since is not None and mtime <= since:
            if prefix:
                raise precondition_failed("x-amz-copy-source-If-Modified-Since")
            return "not-modified"
    return None


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte positions a Range header asks for, or None for the whole object.

    Syntactically invalid or multi-range headers are ignored (the whole object is
    sent), as S3 does; a valid range that selects nothing is a 416 InvalidRange.
    """
    if value is None:
        return None
    match = _RANGE.match(value.strip())
    if not match:
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
        if last_text and last < first:
            return None
        if first >= size:
            raise _unsatisfiable(value, size)
        return first, min(last, size - 1)
    if not last_text:
        return None
    suffix = int(last_text)
    if suffix == 0 or size == 0:
        raise _unsatisfiable(value, size)
    return max(0, size - suffix), size - 1


def _unsatisfiable(value: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        extra={"RangeRequested": value, "ActualObjectSize": str(size)},
        headers={"Content-Range": f"bytes */{size}"},
    )
