"""What Resilin takes from a node is bounded: on a real local-cloud instance (a container with sshd),
logs that are symlinks to /dev/zero or FIFOs are refused, big logs come back as their head and tail,
and a command's endless output keeps only its end."""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

from resilin.clouds.ssh import KeyPair, Node, SshError
from resilin.cluster import node_files
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import ALICE, cloud_process, discard_cloud, ec2_client, image_of, wait_state

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

LOGS = "/tmp/step-logs"  # where the step below leaves its hostile "logs"
BIG_LINES = 3_000_000  # `seq` of these is about 21 MB, more than a log may keep


@pytest.fixture(scope="module")
def node(redis_server, node_image, tmp_path_factory):
    """One bare instance reached over SSH as Resilin reaches cluster nodes (pinned host keys)."""
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("localcloud"), prefix="nfl")
    proc.start()
    ec2 = ec2_client(proc)
    key = KeyPair.generate("node-files-test")
    ec2.import_key_pair(KeyName="resilin", PublicKeyMaterial=key.public_line.encode())
    [inst] = ec2.run_instances(
        ImageId=image_of(ec2, node_image), InstanceType="m5.large", MinCount=1, MaxCount=1, KeyName="resilin"
    )["Instances"]
    try:
        [running] = wait_state(ec2, [inst["InstanceId"]], "running")
        client = EC2Client(
            CloudConfig(
                name=proc.cloud,
                endpoint=proc.endpoint,
                access_key=ALICE.access_key,
                secret_key=ALICE.secret_key,
            )
        )
        node = Node(running["PrivateIpAddress"], client.host_keys(inst["InstanceId"], timeout=90), key)
        node.wait_reachable(90)
        yield node
        node.close()
        ec2.terminate_instances(InstanceIds=[inst["InstanceId"]])
        wait_state(ec2, [inst["InstanceId"]], "terminated")
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


def test_logs_that_are_not_regular_files_are_refused(node):
    # What a step can do to its own logs: point them at an endless device, a FIFO no one writes to,
    # or (through a symlink) anywhere else.
    made = node.run(
        f"mkdir -p {LOGS} && cd {LOGS} && echo fine >controller && ln -sf /dev/zero stdout"
        " && mkfifo stderr && ln -sf controller syslog",
        timeout=30,
    )
    assert made.exit_status == 0, made.stderr
    for name in ("stdout", "stderr", "syslog"):
        started = time.monotonic()
        with pytest.raises(SshError, match="not a regular file"):
            node.read_file(f"{LOGS}/{name}")
        assert time.monotonic() - started < 30
    assert node.read_file(f"{LOGS}/controller") == b"fine\n"  # a regular log still comes back whole


def test_a_big_log_comes_back_as_its_head_and_tail(node):
    made = node.run(f"mkdir -p {LOGS} && seq 1 {BIG_LINES} >{LOGS}/big", timeout=60)
    assert made.exit_status == 0, made.stderr
    whole = "".join(f"{i}\n" for i in range(1, BIG_LINES + 1)).encode()
    assert len(whole) > node_files.LOG_LIMIT

    got = node.read_file(f"{LOGS}/big")
    marker = node_files.omitted_marker(len(whole) - node_files.LOG_LIMIT)
    tail = node_files.LOG_LIMIT - node_files.LOG_HEAD
    assert got == whole[: node_files.LOG_HEAD] + marker + whole[-tail:]

    small = node.read_file(f"{LOGS}/big", limit=1000)  # a smaller limit keeps half of it from each end
    assert small == whole[:500] + node_files.omitted_marker(len(whole) - 1000) + whole[-500:]


def test_endless_command_output_keeps_only_its_end(node):
    # 40 MB on stdout and on stderr: Resilin keeps the last OUTPUT_LIMIT bytes of each.
    done = node.run(
        "head -c 40000000 /dev/zero | tr '\\0' x; printf OUT-END; "
        "head -c 40000000 /dev/zero | tr '\\0' y >&2; printf ERR-END >&2; exit 3",
        timeout=300,
    )
    assert done.exit_status == 3
    assert len(done.stdout) == len(done.stderr) == node_files.OUTPUT_LIMIT
    assert done.stdout.endswith("xxxxOUT-END") and set(done.stdout[:-7]) == {"x"}
    assert done.stderr.endswith("yyyyERR-END") and set(done.stderr[:-7]) == {"y"}


def test_the_connection_to_sshd_sends_small_messages_at_once(node):
    # Nagle's algorithm off: a session's open, a command and its exit status are small messages
    # that would otherwise wait for the peer's delayed ACK (tens of milliseconds each).
    transport = node.connect().get_transport()
    assert transport is not None
    assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_output_in_pieces_with_pauses_between_them_is_read_whole(node):
    # The channel is looked at every millisecond at first, less often while nothing comes.
    done = node.run("printf a; sleep 0.05; printf b >&2; sleep 0.3; printf c; exit 4", timeout=30)
    assert (done.exit_status, done.stdout, done.stderr) == (4, "ac", "b")
