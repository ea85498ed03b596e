"""SSH to cluster instances with pinned host keys (paramiko).

Host keys are learnt from the instance's console output through the cloud's
EC2 API before the first connection, then pinned: a server presenting any other
key is refused (no trust on first use).
"""

from __future__ import annotations

import base64
import io
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from resilin.cluster import node_files

SSH_USER = "hadoop"


@dataclass(frozen=True)
class KeyPair:
    """A cluster's SSH key: the private key in OpenSSH format and its public line."""

    private_openssh: str
    public_line: str

    @classmethod
    def generate(cls, comment: str) -> KeyPair:
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return cls(private, f"{public.decode()} {comment}")

    def pkey(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_openssh))


POLL_FIRST, POLL_MOST = 0.001, 0.02  # seconds between looks at a running command's channel
EOF_GRACE = 2.0  # seconds a command's output is awaited after it exited, without its EOF (see Node.run)


@dataclass
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


class SshError(Exception):
    pass


def pinned_host_keys(host: str, public_lines: list[str]) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    for line in public_lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            key = paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
        except (paramiko.SSHException, ValueError):
            continue
        keys.add(host, parts[0], key)
    return keys


def pinned_client(host: str, public_lines: list[str]) -> paramiko.SSHClient:
    """An SSH client that accepts only these host keys for ``host`` and refuses any other."""
    client = paramiko.SSHClient()
    for hostname, entries in pinned_host_keys(host, public_lines).items():
        for keytype, key in entries.items():
            client.get_host_keys().add(hostname, keytype, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


class Node:
    """One instance reachable over SSH as the ``hadoop`` user.

    ``via`` is the node to jump through (SSH ProxyJump) to reach ``host``, which is then an address
    only that node reaches; a callable is asked for it at every (re)connection, so that a node
    whose jump host was replaced reconnects through the new one.  Both hops pin their host keys."""

    def __init__(
        self,
        host: str,
        host_keys: list[str],
        key: KeyPair,
        port: int = 22,
        via: Node | Callable[[], Node] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.host_keys = host_keys
        self.key = key
        self.via = via
        self._client: paramiko.SSHClient | None = None
        self._connecting = threading.Lock()  # threads sharing a node open one connection

    def connected(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def connect(self, timeout: float = 10.0) -> paramiko.SSHClient:
        with self._connecting:
            return self._connect(timeout)

    def _connect(self, timeout: float) -> paramiko.SSHClient:
        if self._client is not None and self.connected():
            return self._client
        if self._client is not None:
            self._client.close()  # a dead connection (and, for a jump, its channel) goes first
            self._client = None
        sock = (
            _jump_channel(self, self.via, timeout)
            if self.via is not None
            else _direct_socket(self.host, self.port, timeout)
        )
        client = pinned_client(self.host if self.port == 22 else f"[{self.host}]:{self.port}", self.host_keys)
        try:
            client.connect(
                self.host,
                port=self.port,
                username=SSH_USER,
                pkey=self.key.pkey(),
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
                sock=sock,
            )
        except BaseException:
            client.close()
            if sock is not None:
                sock.close()  # the jump host keeps no half-open channel
            raise
        self._client = client
        return client

    def wait_reachable(self, timeout: float) -> None:
        """Retry until sshd answers and accepts our key, with backoff.

        The first retries come quickly (20 ms, growing by half): an instance prints its host
        keys just before sshd listens, so the first attempt is often refused by a few
        milliseconds, and a refused connection costs next to nothing."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.connect(timeout=min(10.0, max(1.0, deadline - time.monotonic())))
                return
            except paramiko.BadHostKeyException as exc:
                raise SshError(f"{self.host}: host key does not match the one the cloud reported") from exc
            except (OSError, paramiko.SSHException, EOFError) as exc:
                last = exc
                time.sleep(delay)
                delay = min(delay * 1.5, 5.0)
        raise SshError(f"{self.host}: SSH did not answer within {timeout:.0f}s ({last})")

    def run(self, command: str, timeout: float | None = None, stdin_data: str | None = None) -> CommandResult:
        """Run ``command``; its stdout and stderr keep only their last ``node_files.OUTPUT_LIMIT``
        bytes each (a node's output never grows Resilin without bound)."""
        client = self.connect()
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session()
        channel.settimeout(timeout)
        channel.exec_command(command)
        if stdin_data is not None:
            channel.sendall(stdin_data.encode())
            channel.shutdown_write()
        out, err = node_files.TailBuffer(), node_files.TailBuffer()
        deadline = None if timeout is None else time.monotonic() + timeout
        quiet_since: float | None = None  # exited, nothing to read, no EOF yet: since when
        pause = POLL_FIRST
        while True:
            # Take what has arrived (up to a few MiB between deadline checks), so that paramiko's
            # buffer of the channel stays within its window.
            taken = _drain(channel.recv_ready, channel.recv, out)
            taken += _drain(channel.recv_stderr_ready, channel.recv_stderr, err)
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                # sshd may send the exit status while the end of a large output still waits in its
                # buffers for our window: the output ends at the channel's EOF.  A background child
                # that keeps the output open would hold the EOF back, so it is awaited only while
                # output keeps coming, and EOF_GRACE seconds after the last of it.
                if channel.eof_received:
                    break
                now = time.monotonic()
                quiet_since = None if taken else quiet_since or now
                if quiet_since is not None and now - quiet_since > EOF_GRACE:
                    break
            if deadline is not None and time.monotonic() > deadline:
                channel.close()
                raise SshError(f"{self.host}: command timed out after {timeout}s")
            # A short command is over in a few milliseconds: look again soon, then less often.
            pause = POLL_FIRST if taken else min(pause * 2, POLL_MOST)
            time.sleep(pause)
        status = channel.recv_exit_status()
        channel.close()
        return CommandResult(
            status, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")
        )

    def run_script(self, script: str, timeout: float | None = None) -> CommandResult:
        """Run a bash script fed on standard input, so it never appears in a process list or a log."""
        return self.run("bash -s", timeout=timeout, stdin_data=script)

    def read_file(self, path: str, limit: int = node_files.LOG_LIMIT) -> bytes:
        """A regular file of the node (never what a symlink points at), at most ``limit`` bytes of it:
        its head and tail when it is bigger (see :mod:`resilin.cluster.node_files`)."""
        client = self.connect()
        try:
            with client.open_sftp() as sftp:
                return node_files.read_regular_file(sftp, path, limit, min(node_files.LOG_HEAD, limit // 2))
        except node_files.NodeFileError as exc:
            raise SshError(f"{self.host}: {exc}") from None
        except (paramiko.SSHException, EOFError) as exc:  # e.g. a node whose sftp-server was removed
            raise SshError(f"{self.host}: reading {path}: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _QuickAckSocket(socket.socket):
    """A socket that acknowledges what it receives at once (TCP_QUICKACK, which Linux clears again
    after a few segments, so it is set before every read).

    sshd leaves Nagle's algorithm on for sessions without a terminal.  Right after authentication
    it sends the host-keys notice, then holds the channel's confirmation until that notice is
    acknowledged, and a delayed ACK takes about 40 ms: the first command on each connection took
    70 ms where the next took 9."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv(bufsize, flags)


def _direct_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to sshd with Nagle's algorithm off (SSH's small messages, a channel's open,
    a command's request, would otherwise wait for sshd's delayed ACK: opening a session took 28 ms
    instead of 1-2 ms) and, where the system has it, every segment acknowledged at once."""
    plain = socket.create_connection((host, port), timeout=timeout)
    try:
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not hasattr(socket, "TCP_QUICKACK"):
            return plain
        quick = _QuickAckSocket(fileno=plain.detach())
    except OSError:
        plain.close()
        raise
    quick.settimeout(timeout)
    return quick


def _jump_channel(node: Node, via: Node | Callable[[], Node], timeout: float) -> paramiko.Channel:
    """A TCP channel to ``node``'s address, opened by its jump host's sshd (``direct-tcpip``)."""
    jump = via if isinstance(via, Node) else via()
    if jump is node:
        raise SshError(f"{node.host}: a node cannot be its own jump host")
    transport = jump.connect(timeout).get_transport()
    if transport is None:
        raise paramiko.SSHException(f"{jump.host}: the jump host's connection is gone")
    return transport.open_channel("direct-tcpip", (node.host, node.port), ("127.0.0.1", 0), timeout=timeout)


def _drain(
    ready: Callable[[], bool], recv: Callable[[int], bytes], into: node_files.TailBuffer, most: int = 4 << 20
) -> int:
    """Read what has arrived, up to ``most`` bytes; how many were read."""
    taken = 0
    while taken < most and ready():
        chunk = recv(65536)
        into.write(chunk)
        taken += len(chunk)
    return taken


def quote_args(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
