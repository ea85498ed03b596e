"""An instance's console: its container's output, read from podman's log file.

Callers poll consoles for host keys while instances boot, many at once; spawning
``podman logs`` for every poll competes for the CPU with the very instances
being waited for.  So the ``k8s-file`` log (``<time> <stream> <F|P> <text>``
lines) is read directly, its path asked of podman once per container; ``podman
logs`` remains the fallback for other log drivers.
"""

from __future__ import annotations

import os
import threading

from resilin.provisioners.localcloud.podman import Podman

HEAD = 256 * 1024  # bytes of the log's start kept when it is long: the boot, with the host keys
TAIL = 1024 * 1024  # and of its end: the most recent output


def parse_k8s_file(raw: bytes) -> bytes:
    """The output recorded in a k8s-file log: each line's text, partial lines (P) joined."""
    out = bytearray()
    for line in raw.splitlines():
        parts = line.split(b" ", 3)
        if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
            continue  # a line cut where the head and tail of a long log meet
        out += parts[3] if len(parts) == 4 else b""
        if parts[2] != b"P":
            out += b"\n"
    return bytes(out)


class Consoles:
    def __init__(self, podman: Podman) -> None:
        self.podman = podman
        self._paths: dict[str, str] = {}
        self._lock = threading.Lock()

    def _path(self, container: str) -> str:
        with self._lock:
            path = self._paths.get(container)
        if path is None:
            driver, path = self.podman.log_config(container)
            path = path if driver == "k8s-file" else ""
            with self._lock:
                self._paths[container] = path
        return path

    def read(self, container: str) -> bytes:
        """The container's console so far (blocking: run it off the reactor thread)."""
        path = self._path(container)
        if not path:
            return self.podman.logs(container)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size <= HEAD + TAIL:
                    return parse_k8s_file(fh.read())
                head = fh.read(HEAD)
                fh.seek(size - TAIL)
                tail = fh.read(TAIL)
        except FileNotFoundError:
            self.forget(container)
            return self.podman.logs(container)
        return parse_k8s_file(head) + b"\n[...]\n" + parse_k8s_file(tail)

    def forget(self, container: str) -> None:
        with self._lock:
            self._paths.pop(container, None)
