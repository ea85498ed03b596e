"""What Resilin needs of its host, checked before anything starts (``resilin doctor``, ``resilin server``).

A missing prerequisite must show up as one clear line with its fix, never later as a cluster that
cannot reach its instances.  Each check is small and independent; ``check`` runs those that apply
to the configuration (the local cloud's only when a local cloud is configured).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from resilin.settings.config import Settings, local_cloud_ports, local_images

SETUP = "run `make setup` (scripts/setup.sh) as root"


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``problem`` is empty when it passed."""

    what: str
    problem: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def line(self) -> str:
        if self.ok:
            return f"ok       {self.what}"
        return f"PROBLEM  {self.what}: {self.problem}; fix: {self.fix}"


def _program(name: str, package: str, why: str) -> Finding:
    if shutil.which(name) is None:
        return Finding(
            f"{name} ({why})", f"{name} is not installed", f"{SETUP}, or apt-get install {package}"
        )
    return Finding(f"{name} ({why})")


def _podman_engine() -> list[Finding]:
    """podman answers, with the runc runtime and the netavark network backend."""
    what = "podman's runtime and network backend"
    try:
        done = subprocess.run(
            ["podman", "info", "--format", "json"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Finding(what, f"`podman info` failed ({exc})", SETUP)]
    if done.returncode != 0:
        return [Finding(what, f"`podman info` failed: {done.stderr.strip()[-300:]}", SETUP)]
    host = json.loads(done.stdout).get("host", {})
    found = []
    runtime = host.get("ociRuntime", {}).get("name", "?")
    if runtime != "runc":
        found.append(
            Finding(
                "podman's OCI runtime", f"it is {runtime}, Resilin needs runc", "run scripts/setup-podman.sh"
            )
        )
    backend = host.get("networkBackend", "?")
    if backend != "netavark":
        found.append(
            Finding(
                "podman's network backend",
                f"it is {backend}; with it the host cannot reach the instances of an internal network",
                'run scripts/setup-podman.sh (it pins network_backend = "netavark" in containers.conf)',
            )
        )
    return found or [Finding(f"podman with runtime {runtime} and network backend {backend}")]


def _images(images: list[str]) -> list[Finding]:
    found = []
    for image in images:
        done = subprocess.run(["podman", "image", "exists", image], capture_output=True, timeout=60)
        if done.returncode != 0:
            found.append(
                Finding(
                    f"node image {image}", "it is not in podman's image store", "run docker/node/build.sh"
                )
            )
        else:
            found.append(Finding(f"node image {image}"))
    return found


def _tun() -> Finding:
    what = "/dev/net/tun (the multi-cloud overlay's interfaces)"
    if not os.path.exists("/dev/net/tun"):
        return Finding(what, "the TUN device is missing", "load the tun module (modprobe tun)")
    return Finding(what)


def _writable(directory: os.PathLike[str] | str) -> Finding:
    what = f"data directory {directory}"
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".preflight-"):
            pass
    except OSError as exc:
        return Finding(what, f"it is not writable ({exc.strerror})", "give Resilin's user a writable --home")
    return Finding(what)


def _port(host: str, port: int, role: str) -> Finding:
    what = f"{role} port {host}:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return Finding(
                    what,
                    "another program listens there (a Resilin already running?)",
                    "stop it or set another port in resilin.toml",
                )
            return Finding(
                what, f"cannot listen there ({exc.strerror})", "set bind_host to an address of this host"
            )
    return Finding(what)


def check(settings: Settings, ports: bool = True) -> list[Finding]:
    """Every check that applies to ``settings``; ``ports=False`` leaves out the free-port checks."""
    found: list[Finding] = []
    if not settings.redis_url:
        found.append(_program("redis-server", "redis-server", "Resilin's state store"))
    found.append(_writable(settings.data_dir / "storage"))
    local = [c for c in settings.clouds if c.kind == "local"]
    if local:
        programs = [
            ("podman", "podman", "the local cloud's container engine"),
            ("runc", "runc", "the container runtime"),
            ("nft", "nftables", "instances' security-group firewalls"),
            ("nsenter", "util-linux", "reaching an instance's network namespace"),
        ]
        checked = [_program(*p) for p in programs]
        found += checked
        if checked[0].ok:
            found += _podman_engine()
            images = list(dict.fromkeys(i for c in local for i in local_images(settings, c)))
            found += _images(images)
        found.append(_tun())
    if ports:
        wanted = [
            (settings.api_host, settings.api_port, "EMR API"),
            (settings.bind_host, settings.storage_port, "storage"),
        ]
        if settings.console_port:
            wanted += [
                (settings.api_host, settings.console_port, "web console"),
                (settings.api_host, settings.console_ui, "clusters' web UIs (console)"),
            ]
        wanted += [
            (settings.localcloud_host, p, f"local cloud {name}")
            for name, p in local_cloud_ports(settings).items()
        ]
        found += [_port(host, port, role) for host, port, role in wanted]
    return found


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok]


def report(findings: list[Finding], say: Callable[[str], None]) -> bool:
    """Print every finding; True when none is a problem."""
    for finding in findings:
        say(finding.line())
    return not problems(findings)
