"""EC2's ``Filter.N.Name`` / ``Filter.N.Value.M`` matching, with ``*`` and ``?`` wildcards."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from resilin.provisioners.localcloud.errors import EC2Error

T = TypeVar("T")
# A filter name → the values an object has for it; "tag:" filters are handled generically.
Getters = Mapping[str, Callable[[T], Iterable[str]]]


def check(
    filters: list[dict[str, Any]], getters: Getters, tags: Callable[[Any], Mapping[str, str]] | None
) -> None:
    """Refuse filter names we do not understand rather than silently matching everything."""
    for f in filters:
        name = f.get("Name", "")
        if name in getters or (tags is not None and (name == "tag-key" or name.startswith("tag:"))):
            continue
        raise EC2Error("InvalidParameterValue", f"The filter '{name}' is invalid")


def matches(
    obj: T,
    filters: list[dict[str, Any]],
    getters: Getters,
    tags: Callable[[T], Mapping[str, str]] | None = None,
) -> bool:
    """All filters must match; within one filter any value may match."""
    for f in filters:
        name, patterns = f.get("Name", ""), f.get("Values") or []
        if tags is not None and name.startswith("tag:"):
            have: Iterable[str] = [v for k, v in tags(obj).items() if k == name[4:]]
        elif tags is not None and name == "tag-key":
            have = tags(obj).keys()
        else:
            have = getters[name](obj)
        have = list(have)
        if not any(fnmatch.fnmatchcase(v, p) for v in have for p in patterns):
            return False
    return True
