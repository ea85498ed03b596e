"""The listing walk shared by ListObjects (V1) and ListObjectsV2.

Keys come from the bucket's sorted index.  With a delimiter, keys that share a
prefix up to the delimiter collapse into one CommonPrefix, and the walk jumps
straight past all of them instead of visiting each.  ``after`` is exclusive: a
V1 marker, a V2 start-after, or where a continuation token left off.  A
CommonPrefix that sorts at or before ``after`` was already returned (S3 hands
a CommonPrefix out as NextMarker), so the keys under it are skipped too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from resilin.storage.keyindex import KeyIndex, prefix_end

Meta = TypeVar("Meta")  # what the listing shows of each key (an ObjectMeta, a ListEntry, ...)

MAX_KEYS = 1000


@dataclass
class Listing(Generic[Meta]):
    contents: list[tuple[str, Meta]] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None  # the last key or CommonPrefix returned


def list_keys(
    index: KeyIndex,
    meta_of: Callable[[str], Meta | None],
    *,
    prefix: str = "",
    delimiter: str = "",
    after: str | None = None,
    max_keys: int = MAX_KEYS,
) -> Listing[Meta]:
    result: Listing[Meta] = Listing()
    if max_keys <= 0:
        return result
    if after is not None and after >= prefix:
        keys = index.iter_from(after, inclusive=False)
    else:
        keys = index.iter_from(prefix)
    count = 0
    while True:
        key = next(keys, None)
        if key is None or not key.startswith(prefix):
            break  # keys with the prefix are contiguous: past them, we are done
        if delimiter:
            found = key.find(delimiter, len(prefix))
            if found >= 0:
                common = key[: found + len(delimiter)]
                if after is None or common > after:
                    if count == max_keys:
                        result.truncated = True
                        break
                    result.common_prefixes.append(common)
                    result.last = common
                    count += 1
                end = prefix_end(common)
                if end is None:
                    break
                keys = index.iter_from(end)
                continue
        if count == max_keys:
            result.truncated = True
            break
        meta = meta_of(key)
        if meta is None:
            continue  # vanished or unreadable; leave it out rather than fail the listing
        result.contents.append((key, meta))
        result.last = key
        count += 1
    return result
