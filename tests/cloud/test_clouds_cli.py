"""``resilin clouds list|check`` for real: the CLI run as a user runs it, checking EC2-compatible clouds
served by a real local cloud (good keys, wrong keys, a missing image and type), one that is down,
and a local cloud whose server is not running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from resilin.service.ports import free_port
from tests.localcloud_helpers import ALICE, cloud_process, discard_cloud, ec2_client

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)


@pytest.fixture(scope="module")
def cloud(redis_server, node_image, tmp_path_factory):
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("localcloud"), prefix="cli")
    try:
        proc.start()
        yield proc
    finally:
        assert discard_cloud(proc, redis_server) == []


@pytest.fixture(scope="module")
def home(cloud, node_image, tmp_path_factory):
    group = ec2_client(cloud).create_security_group(GroupName="extra", Description="extra")["GroupId"]
    home = tmp_path_factory.mktemp("home")
    keys = f'access_key = "{ALICE.access_key}"\nsecret_key = "{ALICE.secret_key}"\n'
    (home / "resilin.toml").write_text(
        'default_cloud = "good"\n'
        '[[accounts]]\naccount_id = "111111111111"\naccess_key = "AKIAEXAMPLE000000000"\nsecret_key = "s"\n\n'
        f'[[clouds]]\nname = "good"\nendpoint = "{cloud.endpoint}"\n{keys}image_id = "{node_image}"\n'
        f'security_group_ids = ["{group}"]\nfallback = ["local-x"]\n'
        '[clouds.instance_types]\n"t3.micro" = { vcpus = 2, memory_mib = 1024, hourly_price = 0.0104 }\n\n'
        f'[[clouds]]\nname = "badkeys"\nendpoint = "{cloud.endpoint}"\n'
        f'access_key = "{ALICE.access_key}"\nsecret_key = "wrong-secret"\n\n'
        f'[[clouds]]\nname = "noimage"\nendpoint = "{cloud.endpoint}"\n{keys}image_id = "ami-00000000000000000"\n'
        '[clouds.instance_types]\n"x9.huge" = { vcpus = 96, memory_mib = 393216 }\n\n'
        f'[[clouds]]\nname = "down"\nendpoint = "http://127.0.0.1:{free_port()}"\n{keys}\n'
        '[[clouds]]\nname = "local-x"\nkind = "local"\nsubnet = "10.99.1.0/24"\n'
        '[clouds.storage]\nendpoint = "http://127.0.0.1:9000"\n'
        '[clouds.storage.accounts.111111111111]\naccess_key = "minio-user"\nsecret_key = "minio-secret-key"\n'
    )
    return home


def _cli(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resilin", "--home", str(home), "clouds", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _section(output: str, cloud: str) -> str:
    """The lines ``check`` printed for one cloud."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{cloud} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return "\n".join(lines[start:end])


def test_list_shows_every_cloud_and_its_settings(home, cloud):
    listed = _cli(home, "list")
    assert listed.returncode == 0, listed.stderr
    assert "good (default)" in listed.stdout and "t3.micro (2 vCPU, 1024 MiB $0.0104/h)" in listed.stdout
    assert (
        "fallback         local-x" in listed.stdout and f"access key {ALICE.access_key[:4]}…" in listed.stdout
    )
    assert ALICE.secret_key not in listed.stdout  # secrets are never shown
    assert "storage          http://127.0.0.1:9000 (keys for 111111111111)" in listed.stdout
    assert "minio-secret-key" not in listed.stdout
    as_json = json.loads(_cli(home, "list", "--output", "json").stdout)
    by_name = {c["Name"]: c for c in as_json["Clouds"]}
    assert list(by_name) == ["good", "badkeys", "noimage", "down", "local-x"]
    assert by_name["good"]["InstanceTypes"]["t3.micro"] == {
        "VCpus": 2,
        "MemoryMiB": 1024,
        "HourlyPrice": 0.0104,
    }
    assert by_name["local-x"]["Subnet"] == "10.99.1.0/24" and by_name["good"]["Default"] is True
    assert by_name["local-x"]["Storage"] == {
        "Endpoint": "http://127.0.0.1:9000",
        "Region": "us-east-1",
        "PathStyle": True,
        "Accounts": ["111111111111"],
        "SessionSeconds": 0,
    }
    assert by_name["good"]["Storage"] == "Resilin's storage"


def test_check_tells_what_works_and_what_does_not(home, cloud, node_image):
    checked = _cli(home, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    out = checked.stdout
    good = _section(out, "good")
    assert "ok    reachable at" in good and "credentials accepted (us-east-1a)" in good
    assert f"ok    image {node_image} (default): ami-" in good
    assert "ok    instance types t3.micro: all offered" in good and "ok    security groups" in good
    assert "FAIL" not in good
    assert "FAIL  credentials refused (AuthFailure" in _section(out, "badkeys")
    noimage = _section(out, "noimage")
    assert "FAIL  image ami-00000000000000000 (default): image ami-00000000000000000 not found" in noimage
    assert "FAIL  instance types x9.huge" in noimage
    assert "FAIL  unreachable" in _section(out, "down")
    assert "FAIL  not running: local clouds are served by `resilin server`" in _section(out, "local-x")
    assert "1 of 5 cloud(s) ready; failing: badkeys, noimage, down, local-x" in out

    one = _cli(home, "check", "good")
    assert one.returncode == 0 and "1 of 1 cloud(s) ready" in one.stdout
    unknown = _cli(home, "check", "nowhere")
    assert unknown.returncode == 2 and "unknown cloud(s): nowhere" in unknown.stdout
