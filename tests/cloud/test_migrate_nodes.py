"""Relocation's data path on real instances of the local cloud (containers with sshd, reached over
SSH with pinned host keys): two source nodes holding replicas of the same HDFS blocks, as
DataNodes do, and two destination nodes.  Each node's state set is captured as a manifest, the
distinct contents are claimed in Redis by the nodes racing each other, the transfer is planned, and
the contents cross once, zstd-compressed, node to node, checked on arrival."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from resilin.clouds.ssh import KeyPair, Node
from resilin.migrate.capture import capture
from resilin.migrate.index import MoveIndex
from resilin.migrate.manifest import Manifest
from resilin.migrate.plan import plan_transfer
from resilin.migrate.transfer import Endpoint, TransferError, TransferReport, transfer
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import ALICE, cloud_process, discard_cloud, ec2_client, image_of, wait_state

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

DATA, NAME = "/var/lib/hadoop/dfs/data", "/var/lib/hadoop/dfs/name"
STATE = [DATA, NAME, "/var/lib/hadoop/absent"]
BLOCK_1 = os.urandom(1 << 20) * 2  # 2 MiB that compress to half: a replica on both source nodes
BLOCK_2 = b"block two " * 50_000  # only on the first
ON_BOTH = f"{DATA}/current/finalized/blk_1"


@dataclass
class Instance:
    instance_id: str
    node: Node
    address: str


@pytest.fixture(scope="module")
def instances(redis_server, node_image, tmp_path_factory):
    """Four bare instances: the sources s1 and s2, the destinations d1 and d2."""
    probe = ["podman", "run", "--rm", "--entrypoint", "python3", node_image, "-c", "import zstandard"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip(f"{node_image} lacks python3-zstandard (set RESILIN_TEST_NODE_IMAGE to the node image)")
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("localcloud"), prefix="mgn")
    proc.start()
    ec2 = ec2_client(proc)
    key = KeyPair.generate("migrate-nodes-test")
    ec2.import_key_pair(KeyName="resilin", PublicKeyMaterial=key.public_line.encode())
    launched = ec2.run_instances(
        ImageId=image_of(ec2, node_image), InstanceType="m5.large", MinCount=4, MaxCount=4, KeyName="resilin"
    )["Instances"]
    ids = [i["InstanceId"] for i in launched]
    try:
        running = wait_state(ec2, ids, "running")
        config = CloudConfig(
            name=proc.cloud, endpoint=proc.endpoint, access_key=ALICE.access_key, secret_key=ALICE.secret_key
        )
        client = EC2Client(config)
        found = {}
        for name, inst in zip(
            ("s1", "s2", "d1", "d2"), sorted(running, key=lambda i: i["InstanceId"]), strict=True
        ):
            node = Node(inst["PrivateIpAddress"], client.host_keys(inst["InstanceId"], timeout=90), key)
            node.wait_reachable(90)
            found[name] = Instance(inst["InstanceId"], node, inst["PrivateIpAddress"])
        _fill_sources(found["s1"].node, found["s2"].node)
        yield found
        for inst in found.values():
            inst.node.close()
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


def _sudo(node: Node, command: str, data: bytes | None = None) -> str:
    done = node.run(
        f"sudo -n sh -c '{command}'", timeout=60, stdin_data=None if data is None else data.decode("latin-1")
    )
    assert done.exit_status == 0, done.stderr
    return done.stdout


def _put(node: Node, path: str, data: bytes, mode: str = "644") -> None:
    # Through base64: the channel carries text.
    _sudo(node, f'mkdir -p "$(dirname {path})" && base64 -d > {path} && chmod {mode} {path}',
          base64.b64encode(data))  # fmt: skip


def _fill_sources(s1: Node, s2: Node) -> None:
    for node in (s1, s2):
        _put(node, ON_BOTH, BLOCK_1)
        _put(node, f"{DATA}/current/VERSION", b"storageID=DS-" + node.host.encode() + b"\n")
    _put(s1, f"{DATA}/current/finalized/blk_2", BLOCK_2)
    _put(s1, f"{NAME}/current/fsimage_0001", b"image", mode="600")
    _sudo(s1, f"ln -s finalized {DATA}/current/latest && chown -R 1000:1000 {DATA}")


def _sources(instances: dict[str, Instance]) -> dict[str, Manifest]:
    return {name: capture(instances[name].node, name, STATE) for name in ("s1", "s2")}


def _move(instances, manifests, index, progress=None, compress=True) -> tuple[TransferReport, int]:
    won = {n: index.claim(n, manifests[n].digests()) for n in manifests}
    destinations = {"s1": "d1", "s2": "d2"}
    plan = plan_transfer(manifests, destinations, won, index.holders(set().union(*won.values())))
    endpoints = {name: Endpoint(inst.node, inst.address) for name, inst in instances.items()}
    return transfer(plan, manifests, destinations, endpoints, index, progress, compress), plan.wan_bytes


def _digests_on(node: Node) -> dict[str, str]:
    listing = _sudo(node, f"find {DATA} {NAME} -type f -exec sha256sum {{}} + 2>/dev/null; true")
    return {path: digest for digest, path in (line.split() for line in listing.splitlines())}


def test_state_sets_are_captured_and_each_content_is_claimed_by_one_node(instances, redis_client):
    manifests = _sources(instances)
    by_path = {e.path: e for e in manifests["s1"].entries}
    assert by_path[ON_BOTH].digest == hashlib.sha256(BLOCK_1).hexdigest()
    assert by_path[ON_BOTH].size == len(BLOCK_1)
    assert (by_path[DATA].kind, by_path[DATA].uid) == ("d", 1000)
    assert (by_path[f"{NAME}/current/fsimage_0001"].mode, by_path[f"{NAME}/current/fsimage_0001"].uid) == (
        0o600,
        0,
    )
    assert (by_path[f"{DATA}/current/latest"].kind, by_path[f"{DATA}/current/latest"].target) == (
        "l",
        "finalized",
    )
    assert not any(e.path.startswith("/var/lib/hadoop/absent") for e in manifests["s1"].entries)
    assert len(manifests["s2"].files) == 2

    # Both nodes claim their contents at once; each distinct content gets exactly one sender.
    index = MoveIndex(redis_client, "mv-claims")
    with ThreadPoolExecutor(2) as pool:
        claims = pool.map(lambda n: index.claim(n, manifests[n].digests()), manifests)
        won = dict(zip(manifests, claims, strict=True))
    distinct = set().union(*(m.digests() for m in manifests.values()))
    assert len(distinct) == 5  # blk_1 once, blk_2, the image, and two VERSION files that differ
    assert sorted(d for won_by in won.values() for d in won_by) == sorted(distinct)
    assert index.counts() == (5, 0)
    assert index.claim("s1", manifests["s1"].digests()) == won["s1"]  # a retry keeps its claims
    assert index.forget() == 5 and index.counts() == (0, 0)


def _clear_destinations(instances: dict[str, Instance]) -> None:
    for name in ("d1", "d2"):
        _sudo(instances[name].node, "rm -rf /var/lib/hadoop/dfs")


def test_each_distinct_content_crosses_once_compressed_and_arrives_verified(instances, redis_client):
    _clear_destinations(instances)
    manifests = _sources(instances)
    index = MoveIndex(redis_client, "mv-whole")
    report, unique = _move(instances, manifests, index)
    state = manifests["s1"].size + manifests["s2"].size
    assert unique == state - len(BLOCK_1)  # the replica crossed once
    assert report.wan_raw == unique
    assert report.wan_wire < 0.6 * unique  # zstd halves the random block and squeezes the rest
    assert report.local_wire > 0 and report.files_sent == 6 and report.refetched == []
    assert index.counts() == (5, 5)
    for source, dest in (("s1", "d1"), ("s2", "d2")):
        assert _digests_on(instances[dest].node) == _digests_on(instances[source].node)
    modes = _sudo(instances["d1"].node, f'stat -c "%a %u %n" {NAME}/current/fsimage_0001 {DATA} {ON_BOTH}')
    assert modes.splitlines() == [
        f"600 0 {NAME}/current/fsimage_0001",
        f"755 1000 {DATA}",
        f"644 1000 {ON_BOTH}",
    ]
    assert _sudo(instances["d1"].node, f"readlink {DATA}/current/latest").strip() == "finalized"
    assert _sudo(instances["d1"].node, "ls -A /var/lib/resilin-move") == ""  # no staging file left

    # The same move tried again sends nothing that arrived.
    again = plan_transfer(manifests, {"s1": "d1", "s2": "d2"},
                          {n: index.claim(n, manifests[n].digests()) for n in manifests},
                          index.holders(set().union(*(m.digests() for m in manifests.values()))))  # fmt: skip
    assert again.sends == [] and again.copies == [] and again.already_there == 6
    index.forget()


def test_a_copy_that_arrives_wrong_is_fetched_again_from_its_source(instances, redis_client):
    _clear_destinations(instances)
    manifests = _sources(instances)
    index = MoveIndex(redis_client, "mv-corrupt")
    wan_sender = {d: n for n in manifests for d in index.claim(n, manifests[n].digests())}
    holder = "d1" if wan_sender[hashlib.sha256(BLOCK_1).hexdigest()] == "s1" else "d2"

    def corrupt_the_holders_copy(phase: str, _report: TransferReport) -> None:
        if phase == "sent over the WAN":  # between the WAN sends and the copies inside the destination
            _sudo(
                instances[holder].node, f"printf X | dd of={ON_BOTH} bs=1 seek=100 conv=notrunc 2>/dev/null"
            )

    report, _ = _move(instances, manifests, index, corrupt_the_holders_copy)
    assert report.refetched == [hashlib.sha256(BLOCK_1).hexdigest()]
    other = "d2" if holder == "d1" else "d1"
    assert _digests_on(instances[other].node)[ON_BOTH] == hashlib.sha256(BLOCK_1).hexdigest()
    assert index.holders([hashlib.sha256(BLOCK_1).hexdigest()]) == {
        hashlib.sha256(BLOCK_1).hexdigest(): {other}
    }
    index.forget()


def test_a_source_file_changed_after_its_capture_fails_the_move_naming_it(instances, redis_client):
    manifests = _sources(instances)
    _put(instances["s1"].node, f"{NAME}/current/fsimage_0001", b"changed", mode="600")
    try:
        with pytest.raises(TransferError, match=f"arrived wrong 3 times: {NAME}/current/fsimage_0001"):
            _move(instances, manifests, MoveIndex(redis_client, "mv-changed"))
    finally:
        _put(instances["s1"].node, f"{NAME}/current/fsimage_0001", b"image", mode="600")


def test_uncompressed_transfers_send_the_bytes_as_they_are(instances, redis_client):
    _clear_destinations(instances)
    manifests = _sources(instances)
    report, unique = _move(instances, manifests, MoveIndex(redis_client, "mv-raw"), compress=False)
    assert report.wan_wire == report.wan_raw == unique
    for source, dest in (("s1", "d1"), ("s2", "d2")):
        assert _digests_on(instances[dest].node) == _digests_on(instances[source].node)
