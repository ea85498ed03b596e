"""Stopping a child process the same way everywhere."""

from __future__ import annotations

import subprocess


def stop_child(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; the child is reaped either way."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
