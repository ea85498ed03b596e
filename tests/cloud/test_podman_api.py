"""The local cloud's podman calls through podman's REST service: the same containers as the CLI
makes them, a CLI fallback when the service is gone, and no service left behind its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from resilin.provisioners.localcloud.podman import Limits, Podman
from resilin.provisioners.localcloud.podman_api import PodmanApi, PodmanService
from tests.localcloud_helpers import free_subnet


@pytest.fixture
def network():
    name = f"resilin-apitest-{uuid.uuid4().hex[:8]}"
    subnet = free_subnet()
    Podman().ensure_network(name, subnet)
    yield name, subnet
    Podman().remove_network(name)


@pytest.fixture
def service():
    svc = PodmanService().start()
    yield svc
    svc.stop()


def _inspect(container: str) -> dict:
    out = subprocess.run(
        ["podman", "inspect", "--type", "container", container], capture_output=True, text=True
    )
    return json.loads(out.stdout)[0] if out.returncode == 0 else {}


def test_containers_made_through_the_service_match_the_request(service, network, node_image):
    net, subnet = network
    api = PodmanApi(service)
    tag = uuid.uuid4().hex[:8]
    names = [f"resilin-apitest-{tag}-{i}" for i in range(3)]
    ip = subnet.rsplit(".", 1)[0] + ".7"
    try:
        for i, name in enumerate(names):
            api.create(
                name=name,
                image=node_image,
                hostname=f"host-{i}",
                network=net,
                labels={"resilin.apitest": tag, "index": str(i)},
                env={"SECRET_VALUE": "s3cr3t"},
                ip=ip if i == 0 else "",
                limits=Limits(1, 256),
                devices=("/dev/net/tun",),
            )
        pids = api.init_all(names)
        assert set(pids) == set(names) and all(pid > 0 for pid in pids.values())
        api.start_all(names)

        info = _inspect(names[0])  # what podman itself says, through its CLI
        assert info["State"]["Status"] == "running"
        assert info["State"]["Pid"] == pids[names[0]]
        assert info["Config"]["Hostname"] == "host-0"
        assert info["Config"]["Labels"]["index"] == "0"
        assert "SECRET_VALUE=s3cr3t" in info["Config"]["Env"]
        assert info["HostConfig"]["Memory"] == 256 * 1024 * 1024
        assert info["HostConfig"]["NanoCpus"] == 10**9
        assert info["NetworkSettings"]["Networks"][net]["IPAddress"] == ip
        assert [d["PathOnHost"] for d in info["HostConfig"]["Devices"]] == ["/dev/net/tun"]
        assert api.ip_address(names[0], net) == ip
        assert api.log_config(names[0]) == (
            info["HostConfig"]["LogConfig"]["Type"],
            info["HostConfig"]["LogConfig"]["Path"],
        )
        assert api.status(names[1]) == "running"

        listed = api.list({"resilin.apitest": tag})
        assert sorted(c.name for c in listed) == names
        assert [c.name for c in api.list({"resilin.apitest": tag, "index": "2"})] == [names[2]]
        assert api.list({"resilin.apitest": tag, "index": "nope"}) == []

        api.kill(names[2])
        deadline = time.monotonic() + 20
        while api.status(names[2]) == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.status(names[2]) != "running"
        api.remove(names + ["resilin-apitest-never-existed"], stop_timeout=1)
        assert api.list({"resilin.apitest": tag}) == []
    finally:
        Podman().remove(names, stop_timeout=0)


def test_a_stopped_service_falls_back_to_the_cli(network, node_image):
    net, _ = network
    svc = PodmanService().start()
    api = PodmanApi(svc)
    name = f"resilin-apitest-{uuid.uuid4().hex[:8]}"
    svc.stop()
    try:
        api.create(
            name=name, image=node_image, hostname="h", network=net, labels={"x": name}, env={},
            devices=("/dev/net/tun",),
        )  # fmt: skip
        assert [c.name for c in api.list({"x": name})] == [name]
        assert _inspect(name)["State"]["Status"] == "created"
        assert [d["PathOnHost"] for d in _inspect(name)["HostConfig"]["Devices"]] == ["/dev/net/tun"]
    finally:
        Podman().remove([name], stop_timeout=0)


def test_the_service_ends_with_the_process_that_started_it():
    code = (
        "from resilin.provisioners.localcloud.podman_api import PodmanService\n"
        "import time\n"
        "svc = PodmanService().start()\n"
        "print(svc.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        service_pid = int(parent.stdout.readline())
        os.kill(service_pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(service_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("podman's service outlived the process that started it")
    finally:
        parent.kill()
