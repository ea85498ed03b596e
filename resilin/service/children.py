"""Child processes: start one, wait until it says where it listens, stop it.

One readiness protocol for every service Resilin or its tests start: the child (its stdout and
stderr appended to a log file) prints a line ``listening on URL`` once it serves, usually after
binding port 0, and the parent reads the URL from that line.  A child that exits, or stays
silent past the timeout, is reported with the end of its log.  Programs that print another line
when ready (redis-server) are given that line's pattern instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# What a Resilin service prints once it serves; group 1 is where.
LISTENING = re.compile(r"listening on (\S+)")


class ChildFailed(RuntimeError):
    """A child process exited, or stayed silent, before it said it was ready."""


def stop_child(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; the child is reaped either way."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Child:
    """One child process, its output appended to ``log_path`` (made readable by this user only)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        *,
        ready: re.Pattern[str] = LISTENING,
        env: Mapping[str, str] | None = None,
        stop_grace: float = 10,
        new_session: bool = False,
        umask: int = -1,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = Path(log_path)
        self.ready = ready
        self.env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        self.stop_grace = stop_grace
        self.new_session = new_session  # outside the parent's process group: a terminal's ^C is the parent's
        self.umask = umask
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._offset = 0  # where this run's output starts in the log

    def start(self, timeout: float = 60) -> str:
        """Start the child and return the URL of its ready line (the whole line if it names none)."""
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._offset = os.fstat(fd).st_size
        with os.fdopen(fd, "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=self.new_session,
                umask=self.umask,
            )
        deadline = time.monotonic() + timeout
        while True:
            found = self.ready.search(self.output())
            if found:
                self.url = found.group(1) if found.groups() else found.group(0)
                return self.url
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise ChildFailed(f"{self.name} exited with {code} before it was ready:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ChildFailed(f"{self.name} was not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def output(self) -> str:
        """What the child has written so far (this run's part of the log)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM, then SIGKILL after the grace period; nothing if it is not running."""
        if self.process is None:
            return
        stop_child(self.process, self.stop_grace if grace is None else grace)
        self.process = None
