"""``resilin doctor`` and the preflight of ``resilin server``: a host that lacks something is told so at once.

Each test takes one real prerequisite away from the real commands — a program off PATH, podman
configured with the CNI backend, a port already taken, a node image that does not exist — and
checks for the one line that names the problem and its fix.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resilin.service.process import new_process

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

NODE_IMAGE = os.environ.get("RESILIN_TEST_NODE_IMAGE", "localhost/resilin-node:latest")


def _resilin(
    home: Path, *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resilin", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | (env or {}),
    )


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    proc = new_process(
        tmp_path / "home", "pre" + str(os.getpid() % 10000), "10.79.250.0/24", node_image=NODE_IMAGE
    )
    return proc


def _path_without(tmp_path: Path, program: str) -> str:
    """A PATH with every program of this host's PATH except ``program``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = bin_dir / name
            if name != program and not target.exists():
                target.symlink_to(os.path.join(folder, name))
    return str(bin_dir)


def test_doctor_passes_on_a_host_that_setup_prepared(home):
    if subprocess.run(["podman", "image", "exists", NODE_IMAGE]).returncode != 0:
        pytest.fail(f"the node image {NODE_IMAGE} is missing: run docker/node/build.sh (make test does)")
    done = _resilin(home.home, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROBLEM" not in done.stdout
    assert "podman with runtime runc and network backend netavark" in done.stdout
    assert done.stdout.rstrip().endswith("this host is ready to run Resilin")


def test_doctor_names_a_missing_program_and_its_package(home, tmp_path):
    done = _resilin(home.home, "doctor", "--no-ports", env={"PATH": _path_without(tmp_path, "nft")})
    assert done.returncode == 1
    problems = [line for line in done.stdout.splitlines() if line.startswith("PROBLEM")]
    assert problems == [
        "PROBLEM  nft (instances' security-group firewalls): nft is not installed; "
        "fix: run `make setup` (scripts/setup.sh) as root, or apt-get install nftables"
    ]


def test_doctor_refuses_podman_with_the_cni_backend(home, tmp_path):
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\nruntime = "runc"\n\n[network]\nnetwork_backend = "cni"\n')
    done = _resilin(home.home, "doctor", "--no-ports", env={"CONTAINERS_CONF": str(conf)})
    assert done.returncode == 1
    assert (
        "PROBLEM  podman's network backend: it is cni; with it the host cannot reach the instances of an "
        "internal network; fix: run scripts/setup-podman.sh" in done.stdout
    ), done.stdout


def test_server_refuses_to_start_without_its_node_image_or_a_free_port(tmp_path):
    (tmp_path / "home").mkdir()
    proc = new_process(
        tmp_path / "home", "pre2", "10.79.251.0/24", node_image="localhost/resilin-node:no-such-tag"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", proc.api_port))
        taken.listen(1)
        started = time.monotonic()
        done = _resilin(proc.home, "server", timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert elapsed < 30  # refused at once, not after an SSH timeout
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("resilin: this host is not ready to run Resilin")
    assert (
        "  PROBLEM  node image localhost/resilin-node:no-such-tag: it is not in podman's image store; "
        "fix: run docker/node/build.sh" in lines
    )
    assert any(
        line.startswith(f"  PROBLEM  EMR API port 127.0.0.1:{proc.api_port}: another program listens there")
        for line in lines
    ), lines
    # Nothing was started: no network of the cloud, no Redis.
    assert subprocess.run(["podman", "network", "exists", "resilin-pre2"]).returncode != 0
    assert not (proc.home / "redis" / "redis.sock").exists()
