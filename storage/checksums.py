"""The additional checksums S3 accepts (x-amz-checksum-*): CRC32, CRC32C, CRC64NVME, SHA1, SHA256.

CRC32 and the SHAs come from the standard library.  CRC32C and CRC64NVME use
awscrt when it is installed (it is optional: botocore only needs it to *send*
them) and fall back to a table-driven pure-Python implementation otherwise,
which is slow but correct; clients rarely choose these.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Protocol

try:  # pragma: no cover - depends on the optional package
    from awscrt import checksums as _crt  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    _crt = None

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
# Size in bytes of each algorithm's digest, to validate values sent by clients.
DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


class Hasher(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


def _reflected_table(poly: int, width: int) -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC32C_TABLE = _reflected_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5, 64)


def _py_crc(data: bytes, crc: int, table: list[int], mask: int) -> int:
    crc ^= mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


class _Crc:
    def __init__(self, name: str) -> None:
        self.name = name
        self.value = 0

    def update(self, data: bytes) -> None:
        if self.name == "crc32":
            self.value = zlib.crc32(data, self.value)
        elif self.name == "crc32c":
            if _crt is not None:
                self.value = _crt.crc32c(data, self.value)
            else:
                self.value = _py_crc(data, self.value, _CRC32C_TABLE, 0xFFFFFFFF)
        elif _crt is not None and hasattr(_crt, "crc64nvme"):
            self.value = _crt.crc64nvme(data, self.value)
        else:
            self.value = _py_crc(data, self.value, _CRC64NVME_TABLE, 0xFFFFFFFFFFFFFFFF)

    def digest(self) -> bytes:
        return self.value.to_bytes(DIGEST_SIZES[self.name], "big")


def new_hasher(algorithm: str) -> Hasher:
    algorithm = algorithm.lower()
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    if algorithm in ("crc32", "crc32c", "crc64nvme"):
        return _Crc(algorithm)
    raise ValueError(algorithm)


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def decode(algorithm: str, value: str) -> bytes | None:
    """The raw digest a client sent, or None when it is not valid base64 of the right size."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw if len(raw) == DIGEST_SIZES[algorithm] else None


def compute(algorithm: str, data: bytes) -> str:
    h = new_hasher(algorithm)
    h.update(data)
    return encode(h.digest())
