"""The OCI hook that loads an instance's firewall while podman starts its container.

The OCI runtime runs it at the ``createRuntime`` stage: the container's namespaces exist (podman
has already given the network namespace its address) and nothing in the container has run yet.
It reads the container's state on stdin (its PID and annotations) and loads the nft script that
the container's annotation names into that PID's network namespace.  If it fails, the runtime
fails the start: an instance never runs unfenced.  A launch is then one ``start`` call per
container, instead of ``init``, the fence, then ``start``.

The runtime runs it as ``python -I -S fence_hook.py SCRIPTS_DIR``, so it imports nothing beyond
the standard library and starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ANNOTATION = "io.resilin.fence"  # its value: the name of the container's script in SCRIPTS_DIR
HOOK_FILE = "resilin-fence.json"
# The runtime gives a hook no environment beyond what its definition names.
HOOK_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOOK_TIMEOUT = 30  # seconds; the runtime kills the hook and fails the start after that
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FenceHook:
    """A hooks directory holding the fence hook, and the nft scripts it loads (one per container).

    Made private to the local cloud's process (mode 0700) and removed with it.  podman is told of
    the directory with ``--hooks-dir``, both its service and its command.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hooks_dir = root / "hooks"
        self.scripts = root / "scripts"

    @classmethod
    def create(cls) -> FenceHook:
        hook = cls(Path(tempfile.mkdtemp(prefix="resilin-fence-")))
        hook.hooks_dir.mkdir()
        hook.scripts.mkdir()
        definition = {
            "version": "1.0.0",
            "hook": {
                "path": sys.executable,
                "args": [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(hook.scripts)],
                "env": [HOOK_PATH],
                "timeout": HOOK_TIMEOUT,
            },
            "when": {"annotations": {f"^{re.escape(ANNOTATION)}$": ".+"}},
            "stages": ["createRuntime"],
        }
        (hook.hooks_dir / HOOK_FILE).write_text(json.dumps(definition, indent=1))
        return hook

    def prepare(self, container: str, script: str) -> dict[str, str]:
        """Keep ``script`` as the one to load when ``container`` next starts; the annotations that
        make the hook load it (to give the container when it is created)."""
        path = self.scripts / f"{container}.nft"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(script)
        temporary.replace(path)  # never half a ruleset, should a start read it meanwhile
        return {ANNOTATION: container}

    def forget(self, containers: list[str]) -> None:
        for container in containers:
            (self.scripts / f"{container}.nft").unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str]) -> int:
    """The hook itself: load the container's script into its network namespace."""
    if len(argv) != 2:
        print("usage: fence_hook.py SCRIPTS_DIR < OCI state", file=sys.stderr)
        return 2
    state = json.load(sys.stdin)
    name = (state.get("annotations") or {}).get(ANNOTATION, "")
    pid = state.get("pid")
    if not _NAME.match(name) or not isinstance(pid, int) or pid <= 0:
        print(f"fence hook: no usable {ANNOTATION} annotation or PID in {state.get('id')}", file=sys.stderr)
        return 1
    script = os.path.join(argv[1], f"{name}.nft")
    done = subprocess.run(
        ["nsenter", "--target", str(pid), "--net", "nft", "-f", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=HOOK_TIMEOUT - 5,
    )
    if done.returncode != 0:
        print(f"fence hook: loading {script} failed: {done.stderr.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
