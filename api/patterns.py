"""The model's ``pattern`` constraints, translated from Java regex syntax to Python's."""

from __future__ import annotations

import functools
import logging
import re

log = logging.getLogger(__name__)

# Java writes "any supplementary character" as a range between surrogate pairs, which Python
# (working on code points, not UTF-16) reads as a reversed range.  Both spellings occur.
_SURROGATE_RANGES = (r"\uD800\uDC00-\uDBFF\uDFFF", r"\uD800\uDBFF-\uDC00\uDFFF")
_SUPPLEMENTARY = r"\U00010000-\U0010FFFF"


@functools.cache
def compiled(pattern: str) -> re.Pattern[str] | None:
    """The compiled pattern, or None when it cannot be expressed (then it is not enforced)."""
    text = pattern
    for java in _SURROGATE_RANGES:
        text = text.replace(java, _SUPPLEMENTARY)
    try:
        return re.compile(text)
    except re.error as exc:
        log.warning("model pattern %r cannot be compiled (%s); not enforced", pattern, exc)
        return None


def matches(pattern: str, value: str) -> bool:
    regex = compiled(pattern)
    # The model's patterns must match the whole value, as Java's String.matches does.
    return regex is None or regex.fullmatch(value) is not None
