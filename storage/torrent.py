"""GetObjectTorrent (``GET /bucket/key?torrent``): a BitTorrent metainfo file for an object.

S3 answers with a ``.torrent`` whose pieces are the object's bytes; S3 named its own tracker in
it.  This server runs no tracker, so the file names the object's own URL as a web seed (BEP 19,
``url-list``): a BitTorrent client downloads the pieces from storage with range GETs and checks
each against its SHA-1, and shares them with other peers.  As on S3, only an object anyone may
read can be seeded that way, and objects over 5 GB get no torrent.  The file layout is BEP 3's.
"""

from __future__ import annotations

import hashlib
import time
from typing import BinaryIO
from urllib.parse import quote

import bencodepy
from twisted.internet.threads import deferToThread

from resilin.storage import objfile, versioning
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, no_such_key
from resilin.storage.names import check_key

PIECE_BYTES = 256 * 1024  # the usual size for files up to a few GB (BEP 3 leaves it to the maker)
LARGEST = 5 * 10**9  # S3's limit for torrents


def piece_hashes(data: BinaryIO, size: int) -> bytes:
    """The SHA-1 of each PIECE_BYTES of the first ``size`` bytes of ``data``, concatenated."""
    digests, left = [], size
    while left > 0:
        piece = data.read(min(PIECE_BYTES, left))
        if not piece:
            raise OSError("the object's file ended early")
        digests.append(hashlib.sha1(piece, usedforsecurity=False).digest())
        left -= len(piece)
    return b"".join(digests)


def metainfo(name: str, size: int, pieces: bytes, web_seed: str, created: int) -> bytes:
    """A single-file torrent (BEP 3) with ``web_seed`` as its HTTP source (BEP 19)."""
    return bencodepy.encode(
        {
            b"created by": b"Resilin storage",
            b"creation date": created,
            b"url-list": [web_seed.encode()],
            b"info": {
                b"length": size,
                b"name": name.encode(),
                b"piece length": PIECE_BYTES,
                b"pieces": pieces,
            },
        }
    )


async def get_object_torrent(call: Call) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    version = versioning.object_version(call.store, bucket, key, call.query.get("versionId"), call.method)

    def sizes_and_hashes() -> tuple[int, bytes]:
        # The metadata is read from the file opened, so a PUT replacing the object meanwhile
        # cannot pair one version's size with another's bytes.
        with open(version.path, "rb") as data:  # the object's data, then its metadata
            size = objfile.read_meta(data).size
            if size > LARGEST:
                raise S3Error("InvalidRequest", "Torrents are served for objects of 5 GB or less.", 400)
            data.seek(0)
            return size, piece_hashes(data, size)

    try:
        size, pieces = await deferToThread(sizes_and_hashes)
    except FileNotFoundError:  # deleted between finding it and opening it
        if "versionId" in call.query:
            raise versioning.no_such_version(key, version.version_id) from None
        raise no_such_key(key) from None
    name = key.rsplit("/", 1)[-1] or bucket
    host = call.header("host") or "localhost"
    seed = f"http://{host}/{quote(bucket)}/{quote(key)}"
    body = metainfo(name, size, pieces, seed, int(time.time()))
    return Response(
        200,
        {
            "Content-Type": "application/x-bittorrent",
            "Content-Disposition": f'attachment; filename="{quote(name)}.torrent"',
            "Content-Length": str(len(body)),
        },
        body,
    )
