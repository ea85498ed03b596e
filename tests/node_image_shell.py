"""The node image's shell libraries (docker/node/libexec), read by a real bash on this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

LIBEXEC = Path(__file__).resolve().parents[1] / "docker/node/libexec"


def sourced(script: str, command: str, *args: str | Path) -> str:
    """What ``command`` prints once bash has sourced ``script`` of the image's libexec, with
    ``args`` as ``$1``, ``$2``…; stripped."""
    done = subprocess.run(
        ["bash", "-c", f'. "$0" >/dev/null && {command}', LIBEXEC / script, *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()
