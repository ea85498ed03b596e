"""Helpers for tests that run real clusters: a Resilin server of the module's own, waiting, ssh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import boto3
import pytest

from resilin.provisioners.localcloud import wan
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service import local_runtime
from resilin.service.ports import free_port
from resilin.service.process import ResilinProcess, cloud_containers, new_process
from resilin.settings.config import new_credentials

# docker/node/build.sh's own variable, to test an image built under another name.
NODE_IMAGE = os.environ.get("RESILIN_NODE_IMAGE", "localhost/resilin-node") + ":latest"
# mrjob's word count, as a user writes it (the tests compare it with Python's own count).
MRJOB_WORD_COUNT = """
import re

from mrjob.job import MRJob

WORD = re.compile(r"[a-z']+")


class MRWordCount(MRJob):
    def mapper(self, _, line):
        for word in WORD.findall(line.lower()):
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == "__main__":
    MRWordCount.run()
"""

ACTIVE = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING")


def cloud_and_subnet(prefix: str, second_octet: int) -> tuple[str, str]:
    """A cloud name and subnet of this test run's own, so concurrent runs on one machine never collide."""
    pid = os.getpid()
    return f"{prefix}{pid % 100000}", f"10.{second_octet}.{pid % 250}.0/24"


def running_resilin(cloud: str, subnet: str, console: bool = False):
    """Start a ``resilin server`` for a test module (with its web console if ``console``); end its
    clusters, stop it, check nothing leaked.

    Its home is a directory of its own rather than pytest's temporary directories, which
    other pytest runs on the machine prune while a long cluster test still uses them.
    """
    if subprocess.run(["podman", "image", "exists", NODE_IMAGE]).returncode != 0:
        pytest.fail("the node image is missing: run docker/node/build.sh (make test does)")
    home = Path(tempfile.mkdtemp(prefix=f"resilin-{cloud}-"))
    yield from serving(new_process(home, cloud, subnet, node_image=NODE_IMAGE, console=console), [cloud])


def serving(proc: ResilinProcess, clouds: Iterable[str]):
    """Start ``proc`` for a test module; at the end, end its clusters as a user would, stop it,
    remove its home and check that no instance of ``clouds`` was left behind (a generator)."""
    proc.start()
    try:
        yield proc
    finally:
        try:
            if proc.process is None:
                proc.start()  # a test that stopped Resilin failed before starting it again
            end_clusters(proc)
        finally:
            proc.stop()
            print(proc.log_tail(200))
            leaked = [c for cloud in clouds for c in remove_cloud(cloud)]
            remove_wan(proc.home)
            shutil.rmtree(proc.home, ignore_errors=True)
        assert leaked == [], f"containers left behind: {leaked}"


def running_multicloud_resilin(
    clouds: dict[str, str],
    wan_network: str,
    wan_subnet: str,
    accounts: int = 1,
    extra: dict[str, str] | None = None,
):
    """A ``resilin server`` with local clouds (name → subnet; the first the default) on a WAN of
    its own, ``accounts`` accounts, and ``extra`` TOML lines per cloud; stopped at the end, with a
    check that no instance was left behind (a generator for a module's fixture)."""
    if subprocess.run(["podman", "image", "exists", NODE_IMAGE]).returncode != 0:
        pytest.fail("the node image is missing: run docker/node/build.sh (make test does)")
    default = next(iter(clouds))
    home = Path(tempfile.mkdtemp(prefix=f"resilin-{default}-"))
    proc = ResilinProcess(
        home,
        free_port(),
        free_port(),
        [new_credentials(f"{i + 1:012d}") for i in range(accounts)],
        default,
        NODE_IMAGE,
    )
    listed = "".join(
        f'[[accounts]]\naccount_id = "{c.account_id}"\naccess_key = "{c.access_key}"\n'
        f'secret_key = "{c.secret_key}"\n\n'
        for c in proc.accounts
    )
    listed += "".join(
        f'[[clouds]]\nname = "{name}"\nkind = "local"\nsubnet = "{subnet}"\n'
        + (f"port = {free_port()}\n" if name != default else "")
        + (extra or {}).get(name, "")
        + "\n"
        for name, subnet in clouds.items()
    )
    (home / "resilin.toml").write_text(
        f"api_port = {proc.api_port}\nstorage_port = {proc.storage_port}\nlocalcloud_port = {free_port()}\n"
        f'default_cloud = "{default}"\nreconcile_interval = 5\n'
        f'wan_network = "{wan_network}"\nwan_subnet = "{wan_subnet}"\n\n{listed}'
    )
    yield from serving(proc, clouds)


def cloud_ec2(proc: ResilinProcess, cloud: str, account: int | None = None):
    """EC2 of a local cloud: as the cloud's operator (whose instances clusters run on), or as a user."""
    access = local_runtime.read(proc.home)[cloud]
    key, secret = (
        (access.access_key, access.secret_key)
        if account is None
        else (proc.accounts[account].access_key, proc.accounts[account].secret_key)
    )
    return boto3.client(
        "ec2",
        endpoint_url=access.endpoint,
        region_name=access.region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def terminate_and_check_nothing_left(proc: ResilinProcess, emr, cid: str, clouds: Iterable[str]) -> None:
    """Terminate a cluster over several clouds and check that each is left with no instance of it,
    no address and no route but the local one."""
    emr.terminate_job_flows(JobFlowIds=[cid])
    wait_for(
        "the cluster to end",
        lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "TERMINATED",
        timeout=600,
    )
    for cloud in clouds:
        assert cloud_containers(cloud) == [], cloud
        ec2 = cloud_ec2(proc, cloud)
        assert ec2.describe_addresses()["Addresses"] == [], cloud
        for table in ec2.describe_route_tables()["RouteTables"]:
            assert [r.get("GatewayId") for r in table["Routes"]] == ["local"], (cloud, table)


def remove_wan(home: Path) -> None:
    """Remove the server's WAN network, which it leaves when instances were still attached at its stop."""
    installation = home / "installation-id"
    if installation.exists():
        wan.remove_if_unused(wan.default_network(installation.read_text().strip()))


def end_clusters(proc: ResilinProcess, timeout: float = 600) -> None:
    """Terminate whatever a failed test left running, as a user would, and wait for it to end."""
    for account in range(len(proc.accounts)):
        emr = proc.endpoints(account).client("emr")
        active = [c["Id"] for c in emr.list_clusters(ClusterStates=list(ACTIVE))["Clusters"]]
        if not active:
            continue
        emr.set_termination_protection(JobFlowIds=active, TerminationProtected=False)
        emr.terminate_job_flows(JobFlowIds=active)
        for cid in active:
            wait_for(
                f"{cid} to terminate",
                lambda cid=cid, emr=emr: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"][
                    "State"
                ].startswith("TERMINATED"),
                timeout=timeout,
            )


def wait_for(what: str, check: Callable[[], Any], timeout: float = 600, interval: float = 2) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def aws_cli(proc: ResilinProcess, *args: str, check: bool = True, timeout: float = 900):
    """Run the AWS CLI (v1, from this venv) as account 0 of ``proc``."""
    aws = shutil.which("aws", path=os.path.dirname(sys.executable))
    assert aws, "the AWS CLI is not installed in the virtualenv"
    creds = proc.accounts[0]
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    done = subprocess.run([aws, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"aws {' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()}")
    return done


def user_key_pair(proc: ResilinProcess, directory: Path, name: str, account: int = 0) -> Path:
    """A fresh key pair of the user's, imported into the local cloud as EC2 users import theirs."""
    key = directory / f"{name}.pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    creds = proc.accounts[account]
    ec2 = boto3.client(
        "ec2",
        endpoint_url=f"http://127.0.0.1:{proc.localcloud_port}",
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
    )
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=key.with_suffix(".pem.pub").read_bytes())
    return key


def ssh(proc: ResilinProcess, key: Path, host: str, command: str, timeout: float = 120):
    """Plain OpenSSH as ``hadoop@host`` with the user's key, trusting only the host keys Resilin pinned."""
    return subprocess.run(
        [
            "ssh",
            "-o", f"UserKnownHostsFile={proc.home / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=20",
            "-i", str(key),
            f"hadoop@{host}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip
