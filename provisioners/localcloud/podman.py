"""A thin, blocking wrapper over the podman CLI (callers run it off the reactor thread)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from resilin.provisioners.localcloud import host_shield
from resilin.provisioners.localcloud.fence_hook import FenceHook

log = logging.getLogger(__name__)


class PodmanError(Exception):
    pass


@dataclass(frozen=True)
class Container:
    """What the local cloud needs from one container (``podman ps`` / ``inspect``)."""

    id: str
    name: str
    state: str  # created, running, exited, stopping, removing, ...
    labels: dict[str, str]
    exit_code: int = 0
    pid: int = 0  # of the process holding its namespaces; 0 before init and after it ends

    @classmethod
    def from_listing(cls, item: dict) -> Container:
        """One entry of a container listing (``podman ps --format json``, or the API's)."""
        return cls(
            id=item["Id"],
            name=(item.get("Names") or [""])[0],
            state=item.get("State", ""),
            labels=item.get("Labels") or {},
            exit_code=item.get("ExitCode", 0),
            pid=int(item.get("Pid") or 0),
        )


@dataclass(frozen=True)
class Limits:
    """A container's CPU and memory limits."""

    cpus: float
    memory_mib: int

    def flags(self) -> list[str]:
        return ["--cpus", f"{self.cpus:g}", "--memory", f"{self.memory_mib}m"]

    def oci_resources(self) -> dict:
        """The same limits as podman's API takes them (what ``--cpus`` and ``--memory`` become)."""
        period = 100_000
        return {
            "cpu": {"period": period, "quota": int(self.cpus * period)},
            "memory": {"limit": self.memory_mib * 1024 * 1024},
        }


def initialised_pids(containers: Sequence[str], pids: Mapping[str, int]) -> dict[str, int]:
    """``pids`` (container → PID after ``podman init``) for ``containers``; an error if one has none."""
    missing = [c for c in containers if pids.get(c, 0) <= 0]
    if missing:
        raise PodmanError(f"podman init left {', '.join(missing)} without a process")
    return {c: pids[c] for c in containers}


REMOVAL_ATTEMPTS = 3
REMOVAL_RETRY_DELAY = 0.2  # seconds


def removal_attempts(remove: Callable[[], object]) -> None:
    """``remove`` (a forced removal), tried again if podman fails it.  podman 4 fails a forced
    removal whose container exits of itself while it is being stopped ("could not be stopped …
    container state improper: stopped"); the container is stopped by then, and the next attempt
    removes it.  A terminated instance whose container stayed would be a leak."""
    for attempt in range(1, REMOVAL_ATTEMPTS + 1):
        try:
            remove()
            return
        except PodmanError as exc:
            if attempt == REMOVAL_ATTEMPTS:
                raise
            log.warning("podman removal failed (%s); again in %.1fs", exc, REMOVAL_RETRY_DELAY)
            time.sleep(REMOVAL_RETRY_DELAY)


class Podman:
    def __init__(self, binary: str = "podman", fence_hook: FenceHook | None = None) -> None:
        self.binary = binary
        # With a fence hook, starting a container also loads its firewall (see fence_hook.py).
        self.fence_hook = fence_hook

    def global_flags(self) -> list[str]:
        return ["--hooks-dir", str(self.fence_hook.hooks_dir)] if self.fence_hook else []

    def _run(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *self.global_flags(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise PodmanError(f"podman {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    # Networks -----------------------------------------------------------------

    def network_exists(self, name: str) -> bool:
        return self._run("network", "exists", name, check=False).returncode == 0

    def ensure_network(self, name: str, subnet: str, labels: Mapping[str, str] = {}) -> None:
        """Create the cloud's bridge network if it is missing.

        The network is internal: its instances get no default route, so they reach their
        own subnet and the host's address on it (the gateway) and nothing else; other
        clouds' networks stay out of reach without a firewall rule.  That is what spares
        every container start the ~20 ``iptables`` runs with which netavark maintains NAT
        and isolation rules for routed networks.  No DNS server either: Resilin writes
        the cluster's names into each node's hosts file.
        """
        if self.network_exists(name):
            found = self.network_inspect(name)
            have = [s["subnet"] for s in found.get("subnets", [])]
            if subnet and subnet not in have:
                raise PodmanError(f"network {name} exists with subnet(s) {have}, not {subnet}")
            if found.get("internal"):
                return
            # Made by an earlier version as a routed network: replace it unless instances use it.
            if self._run("network", "rm", name, check=False).returncode != 0:
                return
        label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        # Named explicitly: podman gives an internal network without DNS no gateway address.
        gateway = str(next(ipaddress.ip_network(subnet).hosts()))
        self._run(
            "network", "create", "--internal", "--disable-dns", "--subnet", subnet,
            "--gateway", gateway, *label_args, name,
        )  # fmt: skip
        # The bridge may be one a removed network had: no host shield of that network may apply.
        bridge = self.network_inspect(name).get("network_interface", "")
        if bridge:
            host_shield.remove(bridge)

    def list_networks(self) -> list[str]:
        return self._run("network", "ls", "--format", "{{.Name}}").stdout.split()

    def network_inspect(self, name: str) -> dict:
        return json.loads(self._run("network", "inspect", name).stdout)[0]

    def network_gateway(self, name: str) -> str:
        subnets = self.network_inspect(name).get("subnets") or []
        if not subnets or not subnets[0].get("gateway"):
            raise PodmanError(f"network {name} has no gateway")
        return subnets[0]["gateway"]

    def remove_network(self, name: str, force: bool = True) -> bool:
        """Remove a network (``force``: and its containers); False if podman refused."""
        args = ["--force"] if force else []
        return self._run("network", "rm", *args, name, check=False).returncode == 0

    def connect(self, network: str, container: str, ip: str) -> None:
        """Give a container (running or not) an interface on ``network`` with address ``ip``."""
        self._run("network", "connect", "--ip", ip, network, container)

    def disconnect(self, network: str, container: str) -> None:
        """Take the container's interface on ``network`` away (none: nothing to do)."""
        proc = self._run("network", "disconnect", network, container, check=False)
        if (
            proc.returncode != 0
            and "not connected" not in proc.stderr
            and "no such" not in proc.stderr.lower()
        ):
            raise PodmanError(f"podman network disconnect failed ({proc.returncode}): {proc.stderr.strip()}")

    # Images -------------------------------------------------------------------

    def image_exists(self, ref: str) -> bool:
        return self._run("image", "exists", ref, check=False).returncode == 0

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
        """Create a container (not started); returns its id.

        ``network`` "" leaves the container with a loopback interface only.  ``command``,
        if given, replaces the image's (the node image boots an instance).  ``devices``: host
        device paths the container may use (no capability comes with them).
        Environment values are handed over through podman's own environment
        (``-e NAME`` without a value) so that user data never shows up in argv.
        """
        # Never pull: node images are built locally, and a typo must fail fast, not hit a registry.
        args = ["create", "--pull", "never", "--name", name, "--hostname", hostname]
        args += ["--network", network or "none"]
        if ip:
            args += ["--ip", ip]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        for key in env:
            args += ["--env", key]
        if limits is not None:
            args += limits.flags()
        for device in devices:
            args += ["--device", device]
        for key, value in annotations.items():
            args += ["--annotation", f"{key}={value}"]
        args += [image, *command]
        return self._run(*args, env=env, timeout=300).stdout.strip()

    def init(self, container: str) -> int:
        """Set a created container up without starting its command; returns the PID holding its namespaces.

        Its network namespace then exists with its address, so a firewall can be put in
        place before anything in the container listens.
        """
        self._run("init", container, timeout=300)
        return self.pid(container)

    def init_all(self, containers: Sequence[str]) -> dict[str, int]:
        """:meth:`init` for several containers; container name → PID.

        podman initialises the containers of one call one after another (about 0.1 s of CPU
        each, most of it the runtime's and the network's set-up), so the containers are split
        into one call per CPU, run side by side."""
        self._in_parallel_calls("init", containers)
        fmt = "{{.Name}} {{.State.Pid}}"
        out = self._run("inspect", "--type", "container", "--format", fmt, *containers).stdout
        pids = {name: int(pid) for name, pid in (line.split() for line in out.splitlines() if line.strip())}
        return initialised_pids(containers, pids)

    def status(self, container: str) -> str:
        """created, initialized, running, exited, …"""
        return self._run(
            "inspect", "--type", "container", "--format", "{{.State.Status}}", container
        ).stdout.strip()

    def start_all(self, containers: Sequence[str]) -> None:
        self._in_parallel_calls("start", containers)

    def _in_parallel_calls(self, command: str, containers: Sequence[str]) -> None:
        calls = max(1, min(len(containers), os.cpu_count() or 1))
        shares = [list(containers[i::calls]) for i in range(calls)]
        if calls == 1:
            self._run(command, *containers, timeout=300)
            return
        with ThreadPoolExecutor(max_workers=calls) as pool:
            for done in [pool.submit(self._run, command, *share, timeout=300) for share in shares]:
                done.result()  # the first failure is raised, once every call has ended

    def pid(self, container: str) -> int:
        return int(
            self._run("inspect", "--type", "container", "--format", "{{.State.Pid}}", container).stdout
        )

    def annotations(self, container: str) -> dict[str, str]:
        """The annotations the container was created with."""
        found = self._run(
            "inspect", "--type", "container", "--format", "{{json .Config.Annotations}}", container
        ).stdout
        return dict(json.loads(found) or {})

    def start(self, container: str) -> None:
        self._run("start", container, timeout=300)

    def stop(self, container: str, timeout: int = 10) -> None:
        self._run("stop", "--ignore", "--time", str(timeout), container, timeout=timeout + 120)

    def kill(self, container: str) -> None:
        self._run("kill", "--signal", "KILL", container)

    def list(self, labels: Mapping[str, str]) -> list[Container]:
        args = ["ps", "--all", "--no-trunc", "--format", "json"]
        for key, value in labels.items():
            args += ["--filter", f"label={key}={value}"]
        return [Container.from_listing(item) for item in json.loads(self._run(*args).stdout or "[]")]

    def ip_address(self, container: str, network: str) -> str:
        proc = self._run("inspect", "--type", "container", container)
        networks = json.loads(proc.stdout)[0]["NetworkSettings"].get("Networks") or {}
        return (networks.get(network) or {}).get("IPAddress", "")

    def log_config(self, container: str) -> tuple[str, str]:
        """The container's log driver and log file."""
        fmt = "{{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Path}}"
        out = self._run("inspect", "--type", "container", "--format", fmt, container).stdout.split()
        return (out[0], out[1]) if len(out) == 2 else (out[0] if out else "", "")

    def logs(self, container: str) -> bytes:
        # A console interleaves stdout and stderr, so read both through one pipe.
        proc = subprocess.run(
            [self.binary, "logs", container],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise PodmanError(f"podman logs failed: {proc.stdout.decode(errors='replace').strip()}")
        return proc.stdout

    def remove(self, containers: Sequence[str], stop_timeout: int = 5) -> None:
        if containers:
            removal_attempts(
                lambda: self._run(
                    "rm", "--force", "--ignore", "--time", str(stop_timeout), *containers, timeout=300
                )
            )
