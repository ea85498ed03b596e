"""A bucket's keys in sorted order, kept in memory for listings.

Python compares strings by code point, which is the same order as comparing
their UTF-8 bytes, so a sorted list of ``str`` is already in S3's listing order.
The index is rebuilt from file names (see ``names``) the first time a bucket is
listed, and updated by the store on every put and delete; the store is the only
writer of a data directory, and it only changes it from the reactor thread.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class KeyIndex:
    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = sorted(set(keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        i = bisect.bisect_left(self._keys, key)
        return i < len(self._keys) and self._keys[i] == key

    def add(self, key: str) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i == len(self._keys) or self._keys[i] != key:
            self._keys.insert(i, key)

    def remove(self, key: str) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i]

    def iter_from(self, start: str, inclusive: bool = True) -> Iterator[str]:
        """Keys >= start (or > start), in order; tolerant of changes made while iterating."""
        keys = self._keys
        i = bisect.bisect_left(keys, start) if inclusive else bisect.bisect_right(keys, start)
        while i < len(keys):
            key = keys[i]
            yield key
            # Re-find our place in case the list changed while the caller held the iterator.
            if i >= len(keys) or keys[i] != key:
                i = bisect.bisect_right(keys, key)
            else:
                i += 1

    def first_at_or_after(self, start: str) -> int:
        return bisect.bisect_left(self._keys, start)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be in keys
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None
