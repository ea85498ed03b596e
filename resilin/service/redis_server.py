"""A private Redis server owned by Resilin.

With no ``redis_url`` configured, Resilin runs its own ``redis-server`` with its
data (append-only file on) in Resilin's home, listening only on a Unix socket
there, and stops it on exit.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from resilin.service.children import stop_child
from resilin.settings.private_files import PRIVATE_UMASK, private_dir


class RedisServerError(Exception):
    pass


class PrivateRedis:
    """Start and stop one ``redis-server`` process whose files live in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.socket = self.directory / "redis.sock"
        self.process: subprocess.Popen | None = None
        self.adopted_pid: int | None = None  # a server left running by a previous run, now ours

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), decode_responses=True, **kwargs)

    def start(self, timeout: float = 15.0) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not installed (apt-get install redis-server)")
        private_dir(self.directory)  # the append-only file holds every account's data
        if self.socket.exists():
            try:  # a server of ours is already running (e.g. left by a crashed run): reuse it
                if self.client().ping():
                    self.adopted_pid = int(self.client().info("server")["process_id"])
                    return self
            except redis.ConnectionError:
                self.socket.unlink()
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, umask=PRIVATE_UMASK
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.process.returncode}; see {self.directory}/redis.log"
                )
            try:
                if self.socket.exists() and self.client().ping():
                    return self
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(f"redis-server did not answer within {timeout}s")

    def stop(self) -> None:
        if self.adopted_pid is not None:
            try:
                self.client().shutdown(nosave=True)  # the append-only file already has everything
            except redis.ConnectionError:
                pass  # shutting down closes the connection
            self.adopted_pid = None
        if self.process is None:
            return
        stop_child(self.process, 10)
        self.process = None


def connect(redis_url: str, home: Path) -> tuple[redis.Redis, PrivateRedis | None]:
    """A client for the configured Redis, or for a private server started in ``home``."""
    if redis_url:
        return redis.Redis.from_url(redis_url, decode_responses=True), None
    server = PrivateRedis(home / "redis").start()
    return server.client(), server
