"""Request bodies spooled to a named file in the data directory's ``tmp/``.

A large body is written to disk once, as it arrives.  When it needs no
decoding (not aws-chunked), the handler *claims* the spool file: it is hashed
in place, the object metadata is appended to it and it is renamed into the
bucket, so the data is never copied a second time.  A spool file nobody
claimed is removed as soon as Twisted closes it (after the response, or when
the connection drops mid-body); anything a crash leaves behind is removed with
the rest of ``tmp/`` at the next start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from resilin.storage.ingest import Digests
from resilin.storage.spool_digest import PIECE, SpoolDigest


class SpoolFile:
    """The file-like object Twisted writes a request body to (``request.content``).

    With ``digests``, the body is hashed in the background as it arrives (see spool_digest).
    """

    def __init__(self, directory: str | os.PathLike[str], digests: Digests | None = None) -> None:
        self.path = Path(directory) / f"spool-{secrets.token_hex(12)}"
        self._file = open(self.path, "w+b")  # noqa: SIM115 - closed by close()
        self._claimed = False
        self._written = 0
        self._advanced = 0
        self.digest = SpoolDigest(self._file.fileno(), digests) if digests is not None else None

    # The parts of the file interface Twisted and the handlers use.
    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        self._written += written
        if self.digest is not None and self._written - self._advanced >= PIECE:
            self._file.flush()
            self._advanced = self._written
            self.digest.advance(self._written)
        return written

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._file.readline(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def flush(self) -> None:
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def claim(self) -> Path:
        """Take the file over (everything written so far is flushed); it is no longer removed on close."""
        self._file.flush()
        self._claimed = True
        return self.path

    def close(self) -> None:
        if self.digest is not None and not self._claimed:
            self.digest.abandon()
        if not self._file.closed:
            self._file.close()
        if not self._claimed:
            self.path.unlink(missing_ok=True)
