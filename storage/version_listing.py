"""The listing walk of ListObjectVersions: each key's versions, newest first, in key order.

Keys come from two sorted indexes merged (keys with a current object, keys with older versions or
delete markers).  As in ``listing``, a delimiter collapses keys into CommonPrefixes and the walk
jumps past them; ``max_keys`` counts versions, delete markers and CommonPrefixes alike, so a page
may end inside a key's versions, and the next one goes on from the key and version-id markers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from resilin.storage.keyindex import KeyIndex, prefix_end
from resilin.storage.versioning import Version


class MergedKeys:
    """Two key indexes read as one, each key once."""

    def __init__(self, *indexes: KeyIndex) -> None:
        self.indexes = indexes

    def iter_from(self, start: str, inclusive: bool = True) -> Iterator[str]:
        last = None
        for key in heapq.merge(*(i.iter_from(start, inclusive) for i in self.indexes)):
            if key != last:
                yield key
                last = key


@dataclass
class VersionListing:
    versions: list[tuple[Version, bool]] = field(default_factory=list)  # (version, is latest)
    common_prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_key: str | None = None
    next_version: str | None = None


def list_versions(
    keys: MergedKeys,
    versions_of: Callable[[str], list[Version]],
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str | None = None,
    version_marker: str | None = None,
    max_keys: int = 1000,
) -> VersionListing:
    result = VersionListing()
    if max_keys <= 0:
        return result
    if key_marker is not None and key_marker >= prefix:
        walk = keys.iter_from(key_marker, inclusive=version_marker is not None)
    else:
        walk = keys.iter_from(prefix)
        key_marker = None if key_marker is None or key_marker < prefix else key_marker
    count = 0

    def full() -> bool:
        return count == max_keys

    while True:
        key = next(walk, None)
        if key is None or not key.startswith(prefix):
            return result
        if delimiter:
            found = key.find(delimiter, len(prefix))
            if found >= 0:
                common = key[: found + len(delimiter)]
                if key_marker is None or common > key_marker:
                    if full():
                        result.truncated = True
                        return result
                    result.common_prefixes.append(common)
                    result.next_key, result.next_version = common, None
                    count += 1
                end = prefix_end(common)
                if end is None:
                    return result
                walk = keys.iter_from(end)
                continue
        versions = versions_of(key)
        start = 0
        if key == key_marker and version_marker is not None:
            ids = [v.version_id for v in versions]
            start = ids.index(version_marker) + 1 if version_marker in ids else len(versions)
        for position in range(start, len(versions)):
            if full():
                result.truncated = True
                return result
            version = versions[position]
            result.versions.append((version, position == 0))
            result.next_key, result.next_version = key, version.version_id
            count += 1
