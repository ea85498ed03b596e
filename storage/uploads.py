"""Taking in an upload's body (PutObject, UploadPart) as a new object file.

A body that Twisted spooled to disk becomes the object file itself, so the
data is written once: a raw body is checked where it lies; an aws-chunked one
is decoded in place, each piece of data moved down over the framing that came
before it (the write position never passes the read position), and the file
is then cut to the data's length.  A small body kept in memory is written to
a new temp file.  Either way the result is a complete object file in
``tmp/``, ready to be renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from resilin.storage import chunked, objfile
from resilin.storage.context import Call
from resilin.storage.ingest import BodySpec, Ingested, check, ingest
from resilin.storage.objfile import ObjectMeta
from resilin.storage.spool_digest import SpoolDigest
from resilin.storage.store import PendingWrite
from resilin.storage.writes import finish_in_place, write_temp


async def take_body(
    call: Call,
    spec: BodySpec,
    describe: Callable[[Ingested], ObjectMeta],
    kind: str = "obj",
    publish: PendingWrite | None = None,
) -> tuple[Path, ObjectMeta]:
    """Check the body against ``spec`` and write the object file; ``describe`` makes its metadata.

    With ``publish`` the file is renamed into place in the same worker thread job.
    """
    precomputed = call.spool_digest()
    spooled = call.claim_spool()
    if spooled is not None:
        path = spooled

        def in_place(f: BinaryIO) -> ObjectMeta:
            if spec.payload_hash in chunked.STREAMING_MODES:
                if precomputed is not None:
                    precomputed.abandon()  # digests of the framing are of no use
                with open(path, "rb") as framed:
                    got = ingest(framed, f, spec)  # f writes from the start, behind the reads
                f.truncate(got.size)
            else:
                hashed = _hashed_while_spooling(precomputed, spec, os.fstat(f.fileno()).st_size)
                got = hashed if hashed is not None else ingest(f, None, spec)
            meta = describe(got)
            f.seek(got.size)
            objfile.finish(f, meta)
            return meta

        return await finish_in_place(spooled, in_place, publish)

    body = call.body_file()

    def copy(out: BinaryIO) -> ObjectMeta:
        with body:
            got = ingest(body, out, spec)
        meta = describe(got)
        objfile.finish(out, meta)
        return meta

    return await write_temp(call.store, copy, kind, publish)


def _hashed_while_spooling(precomputed: SpoolDigest | None, spec: BodySpec, size: int) -> Ingested | None:
    """The body checked with the digests computed as it arrived; None if there are none to use."""
    if precomputed is None:
        return None
    if not precomputed.digests.covers(spec):
        precomputed.abandon()
        return None
    digests = precomputed.wait(size)  # blocks: this runs in a worker thread
    return check(digests, spec) if digests is not None else None
