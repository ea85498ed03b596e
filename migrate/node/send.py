"""Relocation sender, run as root on a source node (or on a destination node holding content another
one needs) by Resilin (see ``migrate/transfer.py``; ``SETTINGS`` is defined by the line Resilin puts
before this program).  Not imported by Resilin.

It connects to a receiver, proves the move's token, and sends each file as a header line and
zstd-compressed frames (raw ones when told not to compress; a zero-length frame ends a file), then waits for the receiver to have dealt
with all of them.  It prints one JSON line of totals: files, bytes read, bytes on the wire.
"""

import json
import socket
import struct

import zstandard

SETTINGS = globals()["SETTINGS"]
FRAME = struct.Struct(">Q")
CHUNK = 1 << 20


def main() -> None:
    compress = SETTINGS.get("compress", True)  # False: raw bytes (a baseline of the benchmark)
    compressor = zstandard.ZstdCompressor(level=SETTINGS.get("level", 3))
    raw = wire = 0
    with socket.create_connection((SETTINGS["address"], SETTINGS["port"]), timeout=600) as conn:
        conn.sendall(SETTINGS["token"].encode() + b"\n")
        for digest, path in SETTINGS["files"]:
            conn.sendall(json.dumps({"digest": digest, "raw": not compress}).encode() + b"\n")
            stream = compressor.compressobj() if compress else None
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    raw += len(chunk)
                    data = stream.compress(chunk) if stream else chunk
                    if data:
                        conn.sendall(FRAME.pack(len(data)) + data)
                        wire += len(data)
            data = stream.flush() if stream else b""
            if data:
                conn.sendall(FRAME.pack(len(data)) + data)
                wire += len(data)
            conn.sendall(FRAME.pack(0))
        conn.shutdown(socket.SHUT_WR)
        answer = conn.makefile("rb").readline()
    print(
        json.dumps(
            {"files": len(SETTINGS["files"]), "raw": raw, "wire": wire, "acknowledged": answer == b"done\n"}
        )
    )


main()
