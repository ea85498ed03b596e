"""Bucket and key names: S3's rules, and the safe mapping of keys to file paths.

Keys never become paths directly.  A key's UTF-8 bytes are written in hex and
cut into fixed-size pieces: every piece but the last is a directory, the last
is a file named ``<piece>.obj``.  Hex keeps every name inside ``[0-9a-f]`` (no
``..``, no ``/``, no NUL can reach the file system), keeps each name under the
255-byte file-name limit even for 1024-byte keys, and can be decoded back to
the key, so a bucket's keys can be recovered from file names alone.
"""

from __future__ import annotations

import ipaddress
import re

from resilin.storage.errors import S3Error, invalid_argument

MAX_KEY_BYTES = 1024
HEX_PIECE = 240  # hex characters per path component (120 key bytes)
OBJECT_SUFFIX = ".obj"

_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid bucket name under S3's current rules, or None."""
    if not 3 <= len(name) <= 63:
        return "Bucket name must be between 3 and 63 characters long"
    if not _BUCKET_CHARS.match(name):
        return (
            "Bucket name can consist only of lowercase letters, numbers, periods and hyphens, "
            "and must begin and end with a letter or number"
        )
    if ".." in name:
        return "Bucket name must not contain two adjacent periods"
    try:
        ipaddress.IPv4Address(name)
        return "Bucket name must not be formatted as an IP address"
    except ValueError:
        pass
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "Bucket name uses a reserved prefix or suffix"
    return None


def check_bucket_name(name: str) -> None:
    problem = bucket_name_problem(name)
    if problem:
        raise S3Error(
            "InvalidBucketName", "The specified bucket is not valid.", 400, extra={"BucketName": name}
        )


def check_key(key: str) -> None:
    """Refuse keys S3 refuses and keys that look like path tricks."""
    if not key:
        raise invalid_argument("Object key must not be empty", "key", key)
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument("Object key is not valid UTF-8", "key", "") from None
    if len(raw) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "Your key is too long", 400, extra={"MaxSizeAllowed": "1024"})
    if "\x00" in key:
        raise invalid_argument("Object key must not contain NUL characters", "key", "")
    if ".." in key.split("/"):
        raise invalid_argument("Object key must not contain a '..' path segment", "key", key)


def key_to_parts(key: str) -> list[str]:
    """Relative path components (directories then file) that store ``key``."""
    hexed = key.encode("utf-8").hex()
    pieces = [hexed[i : i + HEX_PIECE] for i in range(0, len(hexed), HEX_PIECE)]
    pieces[-1] += OBJECT_SUFFIX
    return pieces


def parts_to_key(parts: list[str]) -> str | None:
    """The key stored at these relative path components, or None if they are not one of ours."""
    if not parts or not parts[-1].endswith(OBJECT_SUFFIX):
        return None
    pieces = [*parts[:-1], parts[-1][: -len(OBJECT_SUFFIX)]]
    if any(len(p) != HEX_PIECE for p in pieces[:-1]) or not 0 < len(pieces[-1]) <= HEX_PIECE:
        return None
    try:
        return bytes.fromhex("".join(pieces)).decode("utf-8")
    except ValueError:
        return None


def is_hex_dir(name: str) -> bool:
    return len(name) == HEX_PIECE and all(c in "0123456789abcdef" for c in name)
