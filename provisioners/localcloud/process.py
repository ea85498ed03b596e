"""Run a local cloud as a child process, and clean a cloud's containers and network away.

Used by tests and by anything that wants a local cloud of its own without a
Twisted reactor in its own process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from resilin.aws.sigv4 import Credentials
from resilin.provisioners.localcloud import delayline, host_shield
from resilin.provisioners.localcloud.podman import Podman
from resilin.provisioners.localcloud.wan import Wan
from resilin.service.children import Child


class LocalCloudProcess:
    """``python -m resilin.provisioners.localcloud`` on loopback, its output in ``log_path``.

    With no ``port`` it listens on one it picks and says which (:attr:`port` once started).
    """

    def __init__(
        self,
        *,
        cloud: str,
        subnet: str,
        images: Sequence[str],
        redis_url: str,
        accounts: Sequence[Credentials],
        log_path: Path,
        port: int | None = None,
        region: str = "us-east-1",
        max_instances: int | None = None,
        max_vcpus: int | None = None,
        limits: Sequence[str] = (),
        wan: Wan | None = None,
    ) -> None:
        self.cloud, self.subnet, self.images = cloud, subnet, list(images)
        self.max_instances, self.max_vcpus = max_instances, max_vcpus
        self.limits = list(limits)  # NAME=VALUE connection limits (resilin/aws/httplimits.py)
        self.redis_url, self.accounts, self.region = redis_url, list(accounts), region
        self.log_path = Path(log_path)
        self.port = port or 0
        self.wan = wan  # the WAN it shares with other clouds (public addresses); None: none
        self.child: Child | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30) -> LocalCloudProcess:
        first, *others = self.accounts
        args = [
            sys.executable, "-m", "resilin.provisioners.localcloud",
            "--cloud", self.cloud, "--subnet", self.subnet, "--port", str(self.port),
            "--redis-url", self.redis_url, "--region", self.region,
            "--access-key", first.access_key, "--secret-key", first.secret_key,
            "--account-id", first.account_id,
        ]  # fmt: skip
        for image in self.images:
            args += ["--image", image]
        for creds in others:
            args += ["--account", f"{creds.access_key}:{creds.secret_key}:{creds.account_id}"]
        if self.max_instances:
            args += ["--max-instances", str(self.max_instances)]
        if self.max_vcpus:
            args += ["--max-vcpus", str(self.max_vcpus)]
        if self.wan:
            args += self.wan.args()
        for limit in self.limits:
            args += ["--limit", limit]
        self.child = Child("local cloud", args, self.log_path, stop_grace=15)
        url = self.child.start(timeout)
        self.port = int(url.rstrip("/").rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        self.child = None


def remove_cloud(cloud: str, podman: Podman | None = None) -> list[str]:
    """Remove every container of ``cloud`` and its network; returns the containers removed."""
    podman = podman or Podman()
    delayline.clear_leftovers(cloud)  # the WAN wired as it was, should the cloud have died with delays
    containers = podman.list({"resilin.cloud": cloud})
    podman.remove([c.id for c in containers], stop_timeout=1)
    network = f"resilin-{cloud}"
    if podman.network_exists(network):
        bridge = podman.network_inspect(network).get("network_interface", "")
        podman.remove_network(network)
        if bridge:
            host_shield.remove(bridge)
    return [c.name for c in containers]
