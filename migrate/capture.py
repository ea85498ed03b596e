"""Taking a node's manifest over SSH (what the capture program is: :mod:`resilin.migrate.manifest`)."""

from __future__ import annotations

from resilin.clouds.ssh import Node
from resilin.migrate.manifest import CAPTURE_PROGRAM, Manifest, ManifestError, capture_command, parse

# A DataNode's state set lists two files per block; a megabyte of manifest is about 7,000 files.
# Past the output bound Resilin keeps of a command (node_files.OUTPUT_LIMIT), parse() refuses it.
CAPTURE_TIMEOUT_S = 3600.0  # digests are read at disk speed: a full DataNode takes minutes


def capture(node: Node, node_id: str, paths: list[str]) -> Manifest:
    """The manifest of ``paths`` on ``node`` (paths that do not exist are skipped)."""
    done = node.run(capture_command(paths), timeout=CAPTURE_TIMEOUT_S, stdin_data=CAPTURE_PROGRAM)
    if done.exit_status != 0:
        raise ManifestError(f"{node_id}: capture failed ({done.exit_status}): {done.stderr.strip()[-500:]}")
    return parse(node_id, done.stdout)
