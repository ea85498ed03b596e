"""What the local cloud's tests share: the node image, a free subnet, a cloud of their own, boto3
clients, and waits for states, console host keys and SSH with pinned keys."""

from __future__ import annotations

import base64
import ipaddress
import random
import secrets
import subprocess
import time
from pathlib import Path

import boto3
import paramiko
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from resilin.aws.sigv4 import Credentials
from resilin.provisioners.localcloud.machines import container_name
from resilin.provisioners.localcloud.podman import Podman, PodmanError
from resilin.provisioners.localcloud.process import LocalCloudProcess, remove_cloud

ALICE = Credentials("AKIALOCALCLOUDALICE0", "alice-secret-0123456789abcdefghijklmnopq", "111111111111")
BOB = Credentials("AKIALOCALCLOUDBOB000", "bob-secret-0123456789abcdefghijklmnopqrs", "222222222222")


def free_subnet() -> str:
    """A /24 no podman network uses yet."""
    taken = [ipaddress.ip_network(s) for s in _podman_subnets()]
    while True:
        candidate = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)


def free_wan_subnet() -> str:
    """A /24 of the shared address space (100.64.0.0/10) that no podman network uses yet."""
    taken = [ipaddress.ip_network(s) for s in _podman_subnets()]
    while True:
        candidate = ipaddress.ip_network(f"100.{random.randint(64, 127)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)


def _podman_subnets() -> list[str]:
    found = []
    for name in Podman().list_networks():
        try:
            found += [s["subnet"] for s in Podman().network_inspect(name).get("subnets", [])]
        except PodmanError:  # removed since it was listed
            continue
    return found


def exec_python(cloud: str, instance_id: str, code: str, timeout: float = 60) -> str:
    """Run ``python3 -c code`` inside an instance's container (as root, through podman); its output."""
    done = subprocess.run(
        ["podman", "exec", container_name(cloud, instance_id), "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"in {instance_id}: {done.stderr}"
    return done.stdout.strip()


def tcp_probe(cloud: str, instance_id: str, address: str, port: int, source: str = "") -> str:
    """From inside an instance (from its address ``source``, if given): "open", "refused" (nothing
    listens) or "timeout" (a firewall drops it)."""
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('{address}', {port}), 3, ('{source}', 0)).close(); print('open')\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
        "except OSError:\n"
        "    print('timeout')\n"
    )
    return exec_python(cloud, instance_id, code)


def cloud_process(redis_server, images, log_dir: Path, prefix: str = "test", **options) -> LocalCloudProcess:
    """A local cloud of its own (containers labelled resilin.cloud=<prefix>-…, so leaks are findable)."""
    return LocalCloudProcess(
        cloud=f"{prefix}-{secrets.token_hex(3)}",
        subnet=free_subnet(),
        images=images,
        redis_url=redis_server.url,
        accounts=[ALICE, BOB],
        log_path=log_dir / "localcloud.log",
        **options,
    )


def discard_cloud(proc: LocalCloudProcess, redis_server) -> list[str]:
    """Stop the cloud and remove its containers, network and records; returns containers that were left."""
    proc.stop()
    leaked = remove_cloud(proc.cloud)
    client = redis_server.client()
    for key in client.scan_iter(match=f"localcloud:{proc.cloud}:*"):
        client.delete(key)
    return leaked


def ec2_client(cloud, creds=ALICE):
    return boto3.client(
        "ec2",
        endpoint_url=cloud.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def image_of(ec2, ref: str) -> str:
    return next(i["ImageId"] for i in ec2.describe_images()["Images"] if i["Name"] == ref)


def instances(ec2, **kwargs) -> list[dict]:
    return [i for r in ec2.describe_instances(**kwargs)["Reservations"] for i in r["Instances"]]


def wait_state(ec2, ids, state, timeout=120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = instances(ec2, InstanceIds=ids)
        if all(i["State"]["Name"] == state for i in found) and len(found) == len(ids):
            return found
        assert time.monotonic() < deadline, f"not {state}: {[(i['InstanceId'], i['State']) for i in found]}"
        time.sleep(0.5)


def console_host_keys(ec2, instance_id, timeout=90) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        text = ec2.get_console_output(InstanceId=instance_id).get("Output", "")  # boto3 decodes the base64
        if "-----END SSH HOST KEY KEYS-----" in text:
            block = text.split("-----BEGIN SSH HOST KEY KEYS-----")[-1].split(
                "-----END SSH HOST KEY KEYS-----"
            )[0]
            return [line.split()[:2] for line in block.strip().splitlines()]
        assert time.monotonic() < deadline, f"no host keys on the console of {instance_id}: {text!r}"
        time.sleep(0.5)


def ssh_run(host, host_keys, pkey, command, timeout=60) -> str:
    """Run ``command`` as hadoop, trusting only ``host_keys`` (no trust on first use)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    for key_type, b64 in host_keys:
        client.get_host_keys().add(
            host, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.connect(
                    host, username="hadoop", pkey=pkey, look_for_keys=False, allow_agent=False, timeout=10
                )
                break
            except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionError, TimeoutError):
                # The keys are printed just before sshd starts listening.
                assert time.monotonic() < deadline, f"sshd on {host} never answered"
                time.sleep(0.3)
        _, stdout, _ = client.exec_command(command, timeout=30)
        return stdout.read().decode().strip()
    finally:
        client.close()


def error_code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as err:
        call(*args, **kwargs)
    return err.value.response["Error"]["Code"]
