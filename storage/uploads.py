"""Taking in an upload's body (PutObject, UploadPart) as a new object file.

A raw body that Twisted spooled to disk is checked and finished in place (one
write of the data in all); an aws-chunked or small in-memory body is decoded
into a new temp file.  Either way the result is a complete object file in
``tmp/``, ready to be renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from resilin.storage import chunked, objfile
from resilin.storage.context import Call
from resilin.storage.ingest import BodySpec, Ingested, ingest
from resilin.storage.objfile import ObjectMeta
from resilin.storage.writes import finish_in_place, write_temp


async def take_body(
    call: Call, spec: BodySpec, describe: Callable[[Ingested], ObjectMeta], kind: str = "obj"
) -> tuple[Path, ObjectMeta]:
    """Check the body against ``spec`` and write the object file; ``describe`` makes its metadata."""
    if spec.payload_hash not in chunked.STREAMING_MODES:
        spooled = call.claim_spool()
        if spooled is not None:

            def in_place(f: BinaryIO) -> ObjectMeta:
                meta = describe(ingest(f, None, spec))
                f.seek(0, os.SEEK_END)
                objfile.finish(f, meta)
                return meta

            return await finish_in_place(spooled, in_place)

    body = call.body_file()

    def copy(out: BinaryIO) -> ObjectMeta:
        with body:
            got = ingest(body, out, spec)
        meta = describe(got)
        objfile.finish(out, meta)
        return meta

    return await write_temp(call.store, copy, kind)
