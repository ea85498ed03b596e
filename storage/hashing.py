"""Feeding one piece of data to several hashers at once.

MD5 is the slowest digest an upload needs (for its ETag) and often runs beside
SHA-256 (a signed payload) and a CRC (botocore's default checksum).  hashlib
and zlib release the GIL on large buffers, so the others run in a small
thread pool while MD5 runs in the calling thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

PARALLEL_MIN = 256 * 1024  # below this, threads cost more than they save
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hash")


class Hasher(Protocol):
    def update(self, data: bytes) -> None: ...


def update_all(hashers: Sequence[Hasher], data: bytes) -> None:
    if len(hashers) == 1 or len(data) < PARALLEL_MIN:
        for hasher in hashers:
            hasher.update(data)
        return
    others = [_pool.submit(hasher.update, data) for hasher in hashers[1:]]
    hashers[0].update(data)
    for future in others:
        future.result()
