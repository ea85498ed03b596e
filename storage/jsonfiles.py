"""Small JSON documents written so that a crash leaves the old one or the new one, never half."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, data: Any, tmp_dir: Path) -> None:
    tmp = tmp_dir / f"json-{secrets.token_hex(8)}"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
