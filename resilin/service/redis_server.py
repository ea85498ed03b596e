"""A private Redis server owned by Resilin.

With no ``redis_url`` configured, Resilin runs its own ``redis-server`` with its
data (append-only file on) in Resilin's home, listening only on a Unix socket
there, and stops it on exit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import redis
from twisted.application.service import Service

from resilin.service.children import Child, ChildFailed
from resilin.settings.private_files import PRIVATE_UMASK, private_dir


class RedisServerError(Exception):
    pass


# redis-server's line once it serves (its own, as it cannot print ours); the socket is known already.
READY = re.compile(r"ready to accept connections", re.IGNORECASE)


class PrivateRedis:
    """Start and stop one ``redis-server`` process whose files live in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.socket = self.directory / "redis.sock"
        self.child: Child | None = None
        self.adopted_pid: int | None = None  # a server left running by a previous run, now ours

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process if self.child is not None else None

    def client(self, **kwargs: Any) -> redis.Redis:
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
        ]  # fmt: skip
        # Its log goes to stdout, which the child harness appends to redis.log.
        self.child = Child(
            "redis-server",
            args,
            self.directory / "redis.log",
            ready=READY,
            new_session=True,
            umask=PRIVATE_UMASK,
        )
        try:
            self.child.start(timeout)
        except ChildFailed as exc:
            self.child = None
            raise RedisServerError(str(exc)) from None
        return self

    def stop(self) -> None:
        if self.adopted_pid is not None:
            try:
                self.client().shutdown(nosave=True)  # the append-only file already has everything
            except redis.ConnectionError:
                pass  # shutting down closes the connection
            self.adopted_pid = None
        if self.child is not None:
            self.child.stop()
            self.child = None


def connect(redis_url: str, home: Path) -> tuple[redis.Redis, PrivateRedis | None]:
    """A client for the configured Redis, or for a private server started in ``home``."""
    if redis_url:
        return redis.Redis.from_url(redis_url, decode_responses=True), None
    server = PrivateRedis(home / "redis").start()
    return server.client(), server


class RedisService(Service):
    """The configured Redis (``redis_url``), else a private server in ``home``, started and stopped with it."""

    def __init__(self, redis_url: str, home: Path) -> None:
        self.setName("redis")
        self.redis_url = redis_url
        self.home = home
        self._client: redis.Redis | None = None
        self.private: PrivateRedis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("Redis is used before its service started")
        return self._client

    @property
    def url(self) -> str:
        return self.private.url if self.private is not None else self.redis_url

    def startService(self) -> None:
        self._client, self.private = connect(self.redis_url, self.home)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self.private is not None:
            self.private.stop()
