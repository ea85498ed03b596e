"""A bucket's settings documents (its CORS rules, and the like): one JSON file each in the bucket's
directory, written atomically, read once and kept in memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resilin.storage.jsonfiles import write_json_atomically


class BucketSettings:
    def __init__(self, buckets_dir: Path, tmp: Path) -> None:
        self.buckets_dir = buckets_dir
        self.tmp = tmp
        self._cache: dict[tuple[str, str], Any] = {}

    def _path(self, bucket: str, name: str) -> Path:
        return self.buckets_dir / bucket / f"{name}.json"

    def get(self, bucket: str, name: str) -> Any:
        """The document, or None when the bucket has none."""
        key = (bucket, name)
        if key not in self._cache:
            try:
                self._cache[key] = json.loads(self._path(bucket, name).read_text())
            except FileNotFoundError:
                self._cache[key] = None
        return self._cache[key]

    def put(self, bucket: str, name: str, document: Any) -> None:
        write_json_atomically(self._path(bucket, name), document, self.tmp)
        self._cache[(bucket, name)] = document

    def delete(self, bucket: str, name: str) -> None:
        self._path(bucket, name).unlink(missing_ok=True)
        self._cache[(bucket, name)] = None

    def forget(self, bucket: str) -> None:
        """Drop what is cached of a bucket that is gone (or made anew)."""
        for key in [k for k in self._cache if k[0] == bucket]:
            del self._cache[key]
