"""A Python program run as root on a node over SSH, talking to Resilin through its standard streams.

The program and its settings travel on standard input (never on a command line, where a process
list would show the move's token); standard input then stays open for the program to wait on, and
its standard output is read line by line as it comes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import paramiko

from resilin.clouds.ssh import Node, SshError

# Reads one JSON line {"program", "settings"} and runs the program with SETTINGS defined.
BOOTSTRAP = (
    "sudo -n python3 -c 'import json, sys; d = json.loads(sys.stdin.buffer.readline()); "
    'exec(compile(d["program"], d["name"], "exec"), {"SETTINGS": d["settings"], "__name__": "__main__"})\''
)
STDERR_KEPT = 64 * 1024


def node_program(name: str) -> str:
    """The text of a program in ``migrate/node/``."""
    return resources.files("resilin.migrate").joinpath("node", name).read_text()


START_TIMEOUT = 30.0  # opening the session (and, for a program that says so at once, its start):
# a node that died meanwhile (its SSH connection open but nothing answering) must fail the move,
# not hang it


class RemoteProgram:
    def __init__(
        self, node: Node, name: str, settings: dict[str, Any], timeout: float, announces: bool = False
    ) -> None:
        """``announces``: the program prints a first line as soon as it runs (the receiver's port),
        so that line is awaited START_TIMEOUT at most; ``timeout`` bounds every later wait."""
        self.name = name
        self.node = node
        self.timeout = timeout
        try:
            transport = node.connect().get_transport()
            if transport is None:
                raise SshError(f"{node.host}: no SSH transport")
            self.channel: paramiko.Channel = transport.open_session(timeout=START_TIMEOUT)
            self.channel.settimeout(START_TIMEOUT if announces else timeout)
            self.channel.exec_command(BOOTSTRAP)
            line = json.dumps({"program": node_program(name), "name": name, "settings": settings})
            self.channel.sendall(line.encode() + b"\n")
        except (paramiko.SSHException, OSError) as exc:
            raise SshError(f"{node.host}: {name} could not start: {exc}") from None
        self._stdout = self.channel.makefile("rb")
        self._started = False

    def lines(self) -> Iterator[dict[str, Any]]:
        """Each JSON line the program prints, until it exits (a line that is not JSON is an error)."""
        while True:
            try:
                raw = self._stdout.readline()
            except (TimeoutError, OSError, paramiko.SSHException) as exc:
                raise SshError(f"{self.node.host}: {self.name} did not answer: {exc}") from None
            if not raw:
                return
            if not self._started:  # it runs: from now on its own pace is the limit
                self._started = True
                self.channel.settimeout(self.timeout)
            try:
                yield json.loads(raw)
            except ValueError:
                raise SshError(f"{self.node.host}: {self.name} printed {raw[:200]!r}") from None

    def close_stdin(self) -> None:
        self.channel.shutdown_write()

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.channel.exit_status_ready():
            if time.monotonic() > deadline:
                self.channel.close()
                raise SshError(f"{self.node.host}: {self.name} did not end within {timeout:.0f}s")
            time.sleep(0.05)
        return self.channel.recv_exit_status()

    def stderr(self) -> str:
        chunks = []
        while self.channel.recv_stderr_ready():
            chunks.append(self.channel.recv_stderr(STDERR_KEPT))
        return b"".join(chunks)[-STDERR_KEPT:].decode(errors="replace")

    def close(self) -> None:
        self.channel.close()
