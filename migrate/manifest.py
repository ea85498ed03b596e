"""A node's state set, as a manifest: every directory, file and link under the paths that hold
what a node cannot rebuild (HDFS name and data directories, …), with modes, owners and, for files,
a SHA-256 digest of the content.

The manifest is made on the node itself by a small Python program fed to ``python3`` over SSH (the
node image has Python; nothing is installed for it), so the same code captures an EC2 VM or a
local-cloud container.  Configuration is not part of it: the destination re-renders its own.

Digests are of whole files.  HDFS keeps each block replica as an identical file on several
DataNodes, so whole-file digests find all of the duplication across a cluster's nodes (measured:
972 MiB of state held 324 MiB of distinct content at replication 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Run on the node as ``python3 - PATH...``; prints one JSON object per entry, then a count line, so
# that a manifest cut short (an output limit, a lost connection) is never mistaken for a whole one.
CAPTURE_PROGRAM = r"""
import hashlib, json, os, stat, sys

def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)

count = 0
def emit(path, st, **extra):
    global count
    entry = {"path": path, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    entry.update(extra)
    print(json.dumps(entry, separators=(",", ":")))
    count += 1

for root in sys.argv[1:]:
    if not os.path.lexists(root):
        continue
    for top, dirs, files in os.walk(root):
        dirs.sort()
        emit(top, os.lstat(top), kind="d")
        for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(top, d))):
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                emit(path, st, kind="l", target=os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                emit(path, st, kind="f", size=st.st_size, digest=digest(path))
print(json.dumps({"entries": count}))
"""


class ManifestError(Exception):
    """A manifest that cannot be trusted: cut short, or not what the capture program prints."""


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str  # "d" directory, "f" regular file, "l" symbolic link
    mode: int
    uid: int
    gid: int
    size: int = 0
    digest: str = ""  # files: SHA-256 of the content, hex
    target: str = ""  # links


@dataclass(frozen=True)
class Manifest:
    node: str  # the node it describes (an instance id)
    entries: tuple[Entry, ...]

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "f"]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.files)

    def digests(self) -> set[str]:
        return {e.digest for e in self.files}


def capture_command(paths: list[str]) -> str:
    """The command that runs :data:`CAPTURE_PROGRAM` (given on standard input) over ``paths``."""
    for path in paths:
        if not path.startswith("/") or any(c in path for c in "'\n\0"):
            raise ValueError(f"not a plain absolute path: {path!r}")
    # As root (nodes log in as hadoop, with sudo): a state set may hold files of several users.
    return "sudo -n python3 - " + " ".join(f"'{p}'" for p in paths)


def parse(node: str, output: str) -> Manifest:
    """The manifest printed by :data:`CAPTURE_PROGRAM` on ``node``."""
    lines = output.splitlines()
    try:
        trailer = json.loads(lines[-1]) if lines else None
        if not isinstance(trailer, dict) or not isinstance(trailer.get("entries"), int):
            raise ValueError("no count line at the end")
        count = trailer["entries"]
        entries = tuple(_entry(json.loads(line)) for line in lines[:-1])
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{node}: unreadable manifest ({exc})") from None
    if count != len(entries):
        raise ManifestError(f"{node}: manifest cut short ({len(entries)} of {count} entries)")
    return Manifest(node, entries)


def _entry(data: dict) -> Entry:
    kind = data["kind"]
    if kind not in ("d", "f", "l"):
        raise ValueError(f"unknown entry kind {kind!r}")
    if kind == "f" and len(data["digest"]) != 64:
        raise ValueError(f"bad digest for {data['path']}")
    return Entry(**data)
