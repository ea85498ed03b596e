"""Relocation's first steps on real instances of the local cloud (containers with sshd, reached over
SSH with pinned host keys): each node's state set captured as a manifest, the distinct contents
claimed in Redis by the nodes racing each other, and the transfer planned from both — as for a
NameNode and DataNodes holding replicas of the same HDFS blocks."""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from resilin.clouds.ssh import KeyPair, Node
from resilin.migrate.capture import capture
from resilin.migrate.index import MoveIndex
from resilin.migrate.plan import plan_transfer
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import ALICE, cloud_process, discard_cloud, ec2_client, image_of, wait_state

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

STATE = ["/var/lib/hadoop/dfs/data", "/var/lib/hadoop/dfs/name", "/var/lib/hadoop/absent"]
BLOCK_1 = b"block one " * 100_000  # 1 MB, a replica on both nodes
BLOCK_2 = b"block two " * 50_000  # only on the first


@pytest.fixture(scope="module")
def nodes(redis_server, node_image, tmp_path_factory):
    """Two bare instances reached over SSH as Resilin reaches cluster nodes."""
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("localcloud"), prefix="mgc")
    proc.start()
    ec2 = ec2_client(proc)
    key = KeyPair.generate("migrate-capture-test")
    ec2.import_key_pair(KeyName="resilin", PublicKeyMaterial=key.public_line.encode())
    instances = ec2.run_instances(
        ImageId=image_of(ec2, node_image), InstanceType="m5.large", MinCount=2, MaxCount=2, KeyName="resilin"
    )["Instances"]
    ids = [i["InstanceId"] for i in instances]
    try:
        running = wait_state(ec2, ids, "running")
        client = EC2Client(
            CloudConfig(
                name=proc.cloud,
                endpoint=proc.endpoint,
                access_key=ALICE.access_key,
                secret_key=ALICE.secret_key,
            )
        )
        found = {}
        for inst in running:
            node = Node(inst["PrivateIpAddress"], client.host_keys(inst["InstanceId"], timeout=90), key)
            node.wait_reachable(90)
            found[inst["InstanceId"]] = node
        yield found
        for node in found.values():
            node.close()
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


def _put(node: Node, path: str, data: bytes, mode: str = "644") -> None:
    made = node.run(f"sudo -n sh -c \"mkdir -p \\$(dirname '{path}') && cat > '{path}' && chmod {mode} '{path}'\"",
                    timeout=60, stdin_data=data.decode())  # fmt: skip
    assert made.exit_status == 0, made.stderr


def test_state_sets_are_captured_claimed_once_and_planned(nodes, redis_client):
    (first_id, first), (second_id, second) = sorted(nodes.items())
    for node in (first, second):
        _put(node, "/var/lib/hadoop/dfs/data/current/finalized/blk_1", BLOCK_1)
        _put(node, "/var/lib/hadoop/dfs/data/current/VERSION", b"storageID=DS-" + node.host.encode() + b"\n")
    _put(first, "/var/lib/hadoop/dfs/data/current/finalized/blk_2", BLOCK_2)
    _put(first, "/var/lib/hadoop/dfs/name/current/fsimage_0001", b"image", mode="600")
    assert (
        first.run(
            "sudo -n sh -c 'ln -s finalized /var/lib/hadoop/dfs/data/current/latest && chown -R 1000:1000 /var/lib/hadoop/dfs/data'"
        ).exit_status
        == 0
    )

    manifests = {node_id: capture(node, node_id, STATE) for node_id, node in nodes.items()}
    one = manifests[first_id]
    by_path = {e.path: e for e in one.entries}
    assert (
        by_path["/var/lib/hadoop/dfs/data/current/finalized/blk_1"].digest
        == hashlib.sha256(BLOCK_1).hexdigest()
    )
    assert by_path["/var/lib/hadoop/dfs/data/current/finalized/blk_1"].size == len(BLOCK_1)
    assert (by_path["/var/lib/hadoop/dfs/data"].kind, by_path["/var/lib/hadoop/dfs/data"].uid) == ("d", 1000)
    assert (
        by_path["/var/lib/hadoop/dfs/name/current/fsimage_0001"].mode,
        by_path["/var/lib/hadoop/dfs/name"].uid,
    ) == (0o600, 0)
    assert (by_path["/var/lib/hadoop/dfs/data/current/latest"].kind, by_path["/var/lib/hadoop/dfs/data/current/latest"].target) == (
        "l", "finalized")  # fmt: skip
    assert not any(e.path.startswith("/var/lib/hadoop/absent") for e in one.entries)
    assert len(manifests[second_id].files) == 2

    # Both nodes claim their contents at once; each distinct content gets exactly one sender.
    index = MoveIndex(redis_client, "mv-test")
    with ThreadPoolExecutor(2) as pool:
        won = dict(
            zip(manifests, pool.map(lambda n: index.claim(n, manifests[n].digests()), manifests), strict=True)
        )
    distinct = set().union(*(m.digests() for m in manifests.values()))
    assert len(distinct) == 5  # blk_1 once, blk_2, the image, and two VERSION files that differ
    assert sorted(d for won_by in won.values() for d in won_by) == sorted(distinct)
    assert index.counts() == (5, 0)
    assert index.claim(first_id, manifests[first_id].digests()) == won[first_id]  # a retry keeps its claims

    plan = plan_transfer(manifests, {first_id: "d1", second_id: "d2"}, won, index.holders(distinct))
    assert len(plan.sends) == 5 and len(plan.copies) == 1  # blk_1 crosses once, then is copied
    state = manifests[first_id].size + manifests[second_id].size
    assert plan.wan_bytes == state - len(BLOCK_1)

    index.add_holder(hashlib.sha256(BLOCK_1).hexdigest(), "d1")
    assert index.counts() == (5, 1)
    assert index.forget() == 6
    assert index.counts() == (0, 0)
