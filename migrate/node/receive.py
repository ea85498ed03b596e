"""Relocation receiver, run as root on a destination node by Resilin (see ``migrate/transfer.py``;
``SETTINGS`` is defined by the line Resilin puts before this program).  Not imported by Resilin.

It creates the state set's directories, listens on the node's address, and accepts senders that
prove the move's token.  Each content arrives as a header line and zstd-compressed frames; it is
decompressed to a temporary file, its SHA-256 checked against the digest it was sent for, and only
then placed at every path that needs it (modes and owners as captured).  Each outcome is one JSON
line on standard output, read by Resilin as it comes: ``{"ok": digest}`` or ``{"bad": digest,
"why": ...}``.  When Resilin closes standard input it makes the links, says so, and exits.
"""

import hashlib
import hmac
import json
import os
import socket
import struct
import sys
import threading
from typing import BinaryIO

import zstandard

SETTINGS = globals()["SETTINGS"]
STAGING = "/var/lib/resilin-move"
FRAME = struct.Struct(">Q")
lock = threading.Lock()


def say(**fields: object) -> None:
    with lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def read_exactly(reader: BinaryIO, count: int) -> bytes:
    data = reader.read(count)
    if len(data) != count:
        raise EOFError("the sender went away mid-file")
    return data


def place(tmp: str, targets: list[dict]) -> None:
    """Put the verified file at each target: copied to all but the last, renamed to the last."""
    for n, target in enumerate(targets):
        os.makedirs(os.path.dirname(target["path"]), exist_ok=True)
        part = target["path"] + ".resilin-part"
        if n == len(targets) - 1:
            os.replace(tmp, part)
        else:
            with open(tmp, "rb") as src, open(part, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        os.chown(part, target["uid"], target["gid"])
        os.chmod(part, target["mode"])
        os.replace(part, target["path"])


def receive_one(reader: BinaryIO, digest: str, raw: bool) -> None:
    tmp = os.path.join(STAGING, f"{digest}.{threading.get_ident()}")
    hasher = hashlib.sha256()
    wire = 0
    problem: str | None = None
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    with open(tmp, "wb") as out:
        while length := FRAME.unpack(read_exactly(reader, FRAME.size))[0]:
            chunk = read_exactly(reader, length)
            wire += length
            if problem:
                continue  # read the rest of the file's frames, keep the connection in step
            try:
                data = chunk if raw else decompressor.decompress(chunk)
            except zstandard.ZstdError as exc:
                problem = f"not a zstd stream ({exc})"
                continue
            hasher.update(data)
            out.write(data)
    targets = SETTINGS["files"].get(digest)
    if targets is None:
        problem = "not a content this node needs"
    elif problem is None and hasher.hexdigest() != digest:
        problem = f"content arrived as {hasher.hexdigest()}"
    if problem:
        os.unlink(tmp)
        say(bad=digest, why=problem, wire=wire)
    else:
        place(tmp, targets)
        say(ok=digest, wire=wire)


def serve(conn: socket.socket) -> None:
    reader = conn.makefile("rb")
    try:
        token = reader.readline().strip().decode(errors="replace")
        if not hmac.compare_digest(token, SETTINGS["token"]):
            say(refused="a sender without the move's token")
            return
        while line := reader.readline():
            header = json.loads(line)
            receive_one(reader, header["digest"], bool(header.get("raw")))
        conn.sendall(b"done\n")
    except (OSError, EOFError, ValueError, KeyError) as exc:
        say(lost=str(exc))
    finally:
        conn.close()


def accept_forever(server: socket.socket) -> None:
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main() -> None:
    os.makedirs(STAGING, mode=0o700, exist_ok=True)
    for entry in SETTINGS["dirs"]:
        os.makedirs(entry["path"], exist_ok=True)
        os.chown(entry["path"], entry["uid"], entry["gid"])
        os.chmod(entry["path"], entry["mode"])
    server = socket.create_server((SETTINGS["address"], 0))
    say(port=server.getsockname()[1])
    threading.Thread(target=accept_forever, args=(server,), daemon=True).start()
    sys.stdin.buffer.read()  # closed by Resilin once every sender is done
    for entry in SETTINGS["links"]:
        if os.path.lexists(entry["path"]):
            os.unlink(entry["path"])
        os.symlink(entry["target"], entry["path"])
        os.lchown(entry["path"], entry["uid"], entry["gid"])
    say(finished=True)


main()
