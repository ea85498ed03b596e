"""Container calls through podman's REST service rather than one ``podman`` process each.

Every ``podman`` command is a fresh process that loads its configuration, storage
and database before doing anything: about 50 ms of CPU, which is most of what a
launch costs when many instances start at once on a small host.  The local cloud
therefore runs ``podman system service`` as its own child and sends the calls made
per instance (create, init, start, inspect, list, kill, remove) to it; the rare
ones (networks, images, logs) stay on the CLI.  Should the service be gone, each
call falls back to the CLI, so the cloud keeps working, only slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import requests
from podman import PodmanClient

from resilin.provisioners.localcloud.fence_hook import FenceHook
from resilin.provisioners.localcloud.podman import (
    Container,
    Limits,
    Podman,
    PodmanError,
    initialised_pids,
    removal_attempts,
)
from resilin.service.children import stop_child

log = logging.getLogger(__name__)

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before exec: the service must not outlive the cloud that started it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PodmanService:
    """A ``podman system service`` child listening on a private Unix socket.

    Start it from the process's main thread: the kernel's parent-death signal
    follows the thread that forked, and a pool thread may end before the process.
    """

    def __init__(self, binary: str = "podman", fence_hook: FenceHook | None = None) -> None:
        self.binary = binary
        self.fence_hook = fence_hook
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = ""

    @property
    def socket(self) -> str:
        return str(Path(self._dir) / "podman.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 30) -> PodmanService:
        self._dir = tempfile.mkdtemp(prefix="resilin-podman-")
        self.process = subprocess.Popen(
            [
                self.binary,
                *Podman(self.binary, self.fence_hook).global_flags(),
                "system",
                "service",
                "--time=0",
                self.url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PodmanError(f"podman system service exited with status {self.process.returncode}")
            if self.answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise PodmanError(f"podman system service did not answer on {self.socket} within {timeout:.0f} s")

    def answers(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        with contextlib.suppress(Exception), PodmanClient(base_url=self.url, timeout=2) as client:
            return bool(client.ping())
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process, 10)
            self.process = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


class PodmanApi(Podman):
    """:class:`Podman` whose per-instance calls go to a :class:`PodmanService`."""

    def __init__(self, service: PodmanService, binary: str = "podman") -> None:
        super().__init__(binary, service.fence_hook)  # the service's hooks, for the CLI fallback too
        self.service = service
        self._local = threading.local()  # one HTTP session per thread: sessions are not thread-safe
        # Long-lived threads for calls on many containers at once, so that their sessions (and the
        # connections these keep open) serve every launch rather than being made anew for each.
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="podman-api")

    def close(self) -> None:
        """Let the threads go (the service itself is its owner's to stop)."""
        self._pool.shutdown(wait=False)

    # Transport ----------------------------------------------------------------

    def _client(self) -> PodmanClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = PodmanClient(base_url=self.service.url, timeout=300)
        return client

    def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: object) -> object:
        """One API call; its JSON answer (None if empty, or if missing and ``missing_ok``)."""
        response = getattr(self._client().api, method)(path, **kwargs)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text
            raise PodmanError(f"podman {method.upper()} {path} failed ({response.status_code}): {message}")
        return response.json() if response.content else None

    def _or_cli(self, via_api: Callable[[], T], via_cli: Callable[[], T]) -> T:
        """``via_api``, or ``via_cli`` if the service cannot be reached."""
        if self.service.alive():
            try:
                return via_api()
            except requests.ConnectionError as exc:
                log.warning("podman service unreachable (%s); using the podman command", exc)
        return via_cli()

    # Containers ---------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        image: str,
        hostname: str,
        network: str,
        labels: Mapping[str, str],
        env: Mapping[str, str],
        ip: str = "",
        limits: Limits | None = None,
        command: Sequence[str] = (),
        devices: Sequence[str] = (),
        annotations: Mapping[str, str] = {},
    ) -> str:
        spec: dict[str, object] = {
            "name": name,
            "image": image,
            "hostname": hostname,
            "labels": dict(labels),
            "env": dict(env),
        }
        if network:
            spec["netns"] = {"nsmode": "bridge"}
            spec["Networks"] = {network: {"static_ips": [ip]} if ip else {}}
        else:
            spec["netns"] = {"nsmode": "none"}
        if limits is not None:
            spec["resource_limits"] = limits.oci_resources()
        if command:
            spec["command"] = list(command)
        if devices:
            spec["devices"] = [{"path": d} for d in devices]
        if annotations:
            spec["annotations"] = dict(annotations)

        def via_api() -> str:
            return str(self._call("post", "/containers/create", data=json.dumps(spec))["Id"])  # type: ignore[index]

        def via_cli() -> str:
            return Podman.create(
                self, name=name, image=image, hostname=hostname, network=network,
                labels=labels, env=env, ip=ip, limits=limits, command=command, devices=devices,
                annotations=annotations,
            )  # fmt: skip

        return self._or_cli(via_api, via_cli)

    def _inspect(self, container: str) -> dict:
        return self._call("get", f"/containers/{container}/json")  # type: ignore[return-value]

    def _each(self, action: Callable[[str], T], containers: Sequence[str]) -> list[T]:
        """``action`` for every container at once: the service works on them side by side."""
        if len(containers) <= 1:
            return [action(c) for c in containers]
        return list(self._pool.map(action, containers))

    def init(self, container: str) -> int:
        return self.init_all([container])[container]

    def init_all(self, containers: Sequence[str]) -> dict[str, int]:
        def init_one(container: str) -> None:
            self._call("post", f"/containers/{container}/init")

        def via_api() -> dict[str, int]:
            self._each(init_one, containers)
            # One listing for every PID: a container's full inspection is many times its size.
            names = [f"^{re.escape(c)}$" for c in containers]
            query = {"all": "true", "filters": json.dumps({"name": names})}
            items = cast(list[dict[str, Any]], self._call("get", "/containers/json", params=query) or [])
            listed = [Container.from_listing(item) for item in items]
            return initialised_pids(containers, {c.name: c.pid for c in listed})

        return self._or_cli(via_api, lambda: Podman.init_all(self, containers))

    def start(self, container: str) -> None:
        self.start_all([container])

    def start_all(self, containers: Sequence[str]) -> None:
        def start_one(container: str) -> None:
            self._call("post", f"/containers/{container}/start")

        self._or_cli(lambda: self._each(start_one, containers), lambda: Podman.start_all(self, containers))

    def pid(self, container: str) -> int:
        return self._or_cli(
            lambda: int(self._inspect(container)["State"]["Pid"]), lambda: Podman.pid(self, container)
        )

    def annotations(self, container: str) -> dict[str, str]:
        return self._or_cli(
            lambda: dict(self._inspect(container)["Config"].get("Annotations") or {}),
            lambda: Podman.annotations(self, container),
        )

    def status(self, container: str) -> str:
        return self._or_cli(
            lambda: str(self._inspect(container)["State"]["Status"]), lambda: Podman.status(self, container)
        )

    def stop(self, container: str, timeout: int = 10) -> None:
        def via_api() -> None:
            self._call("post", f"/containers/{container}/stop", params={"timeout": timeout}, missing_ok=True)

        self._or_cli(via_api, lambda: Podman.stop(self, container, timeout))

    def kill(self, container: str) -> None:
        def via_api() -> None:
            self._call("post", f"/containers/{container}/kill", params={"signal": "KILL"})

        self._or_cli(via_api, lambda: Podman.kill(self, container))

    def list(self, labels: Mapping[str, str]) -> list[Container]:
        # Several label filters must all match, as with ``podman ps --filter``.
        query = {"all": "true", "filters": json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})}

        def via_api() -> list[Container]:
            items = cast(list[dict[str, Any]], self._call("get", "/containers/json", params=query) or [])
            return [Container.from_listing(item) for item in items]

        return self._or_cli(via_api, lambda: Podman.list(self, labels))

    def ip_address(self, container: str, network: str) -> str:
        def via_api() -> str:
            networks = self._inspect(container)["NetworkSettings"].get("Networks") or {}
            return (networks.get(network) or {}).get("IPAddress", "")

        return self._or_cli(via_api, lambda: Podman.ip_address(self, container, network))

    def log_config(self, container: str) -> tuple[str, str]:
        def via_api() -> tuple[str, str]:
            config = self._inspect(container)["HostConfig"].get("LogConfig") or {}
            return config.get("Type", ""), config.get("Path", "")

        return self._or_cli(via_api, lambda: Podman.log_config(self, container))

    def remove(self, containers: Sequence[str], stop_timeout: int = 5) -> None:
        def remove_one(container: str) -> None:
            params = {"force": "true", "timeout": stop_timeout}
            removal_attempts(
                lambda: self._call("delete", f"/containers/{container}", params=params, missing_ok=True)
            )

        self._or_cli(
            lambda: self._each(remove_one, containers), lambda: Podman.remove(self, containers, stop_timeout)
        )
