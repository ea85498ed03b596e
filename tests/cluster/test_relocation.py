"""RelocateCluster on real clusters: a WAITING cluster of a master and three core nodes, with data
written to HDFS by a step, moved from one local cloud to another over the overlay.  Real parts
throughout: two local clouds of one ``resilin server`` and their WAN, the gateways' WireGuard,
Hadoop, Redis (the move's index), boto3 with the model Resilin ships.  One cluster is shared by
the tests, in file order; the last one tears it down and checks that nothing is left."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import boto3
import pytest

from resilin.api.models import emr_session
from resilin.service.process import cloud_containers
from tests.clusters import cloud_ec2, running_multicloud_resilin, terminate_and_check_nothing_left, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

PID = os.getpid() % 100000
CLOUD_A, CLOUD_B, CLOUD_SMALL = f"ra{PID}", f"rb{PID}", f"rs{PID}"
CLOUDS = {
    CLOUD_A: f"10.81.{PID % 250}.0/24",
    CLOUD_B: f"10.82.{PID % 250}.0/24",
    CLOUD_SMALL: f"10.83.{PID % 250}.0/24",
}
WAN = f"resilin-wan-rl{PID}"
WAN_SUBNET = f"100.74.{PID % 250}.0/24"
# The headers around a byte the move sends, per packet on a WAN interface: Ethernet 14, IP 20,
# UDP 8, WireGuard 32 and up to 15 of padding, then the tunnelled IP 20 and TCP 32.
WAN_PACKET_HEADERS = 141
DATA_MIB = 24  # at replication 3 on three DataNodes: every block is on each of them


@pytest.fixture(scope="module")
def resilin():
    yield from running_multicloud_resilin(
        CLOUDS, WAN, WAN_SUBNET, extra={CLOUD_SMALL: "quota = { instances = 2 }\n"}
    )


@pytest.fixture(scope="module")
def emr(resilin):
    """An EMR client that knows RelocateCluster from the model file Resilin ships, as a user's
    boto3 does once AWS_DATA_PATH names that directory."""
    endpoints = resilin.endpoints()
    return boto3.Session(botocore_session=emr_session()).client(
        "emr",
        endpoint_url=endpoints.api,
        region_name="us-east-1",
        aws_access_key_id=endpoints.access_key,
        aws_secret_access_key=endpoints.secret_key,
    )


def _step(emr, cid: str, name: str, script: str) -> str:
    return emr.add_job_flow_steps(JobFlowId=cid, Steps=[{
        "Name": name, "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }])["StepIds"][0]  # fmt: skip


def _stdout(resilin, emr, cid: str, sid: str, timeout: float = 600) -> str:
    def ended() -> str | None:
        state = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"]
        assert state not in ("FAILED", "CANCELLED", "INTERRUPTED"), _logs(resilin, cid, sid)
        return state if state == "COMPLETED" else None

    wait_for(f"step {sid}", ended, timeout=timeout, interval=1)
    return (resilin.home / "logs" / cid / "steps" / sid / "stdout").read_text()


def _logs(resilin, cid: str, sid: str) -> str:
    folder = resilin.home / "logs" / cid / "steps" / sid
    return str({f.name: f.read_text(errors="replace")[-1500:] for f in folder.glob("std*")})


CHECKSUMS = "hdfs dfs -checksum /data/* | sort"


@pytest.fixture(scope="module")
def cluster(resilin, emr) -> dict:
    """A master and three core nodes in cloud A, WAITING, with DATA_MIB of random data in HDFS."""
    cid = emr.run_job_flow(
        Name="to be moved",
        ReleaseLabel="emr-7.5.0",
        Instances={"MasterInstanceType": "m5.large", "SlaveInstanceType": "m5.large", "InstanceCount": 4,
                   "KeepJobFlowAliveWhenNoSteps": True},
        Applications=[{"Name": "Hadoop"}],
    )["JobFlowId"]  # fmt: skip
    wait_for(
        f"{cid} to wait", lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "WAITING",
        timeout=900, interval=1,
    )  # fmt: skip
    write = _step(
        emr, cid, "write data",
        f"set -e; hadoop fs -mkdir -p /data; for i in 1 2; do head -c {DATA_MIB // 2}M /dev/urandom > /tmp/part$i; "
        "hadoop fs -D dfs.replication=3 -put -f /tmp/part$i /data/part$i; done; "
        "yes 'the same line again' | head -c 8M | hadoop fs -put -f - /data/text; " + CHECKSUMS,
    )  # fmt: skip
    before = _stdout(resilin, emr, cid, write)
    assert before.count("/data/") == 3, before
    groups = {g["Id"]: g["InstanceType"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]}
    return {"id": cid, "checksums": before, "groups": groups}


def test_a_destination_without_room_is_refused_before_anything_stops(resilin, emr, cluster):
    cid = cluster["id"]
    emr.relocate_cluster(ClusterId=cid, TargetCloud=CLOUD_SMALL)
    wait_for("the refusal", lambda: not emr.describe_cluster_relocation(ClusterId=cid).get("Relocation"),
             timeout=120, interval=1)  # fmt: skip
    [past] = emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"]
    assert past["Outcome"] == "FAILED" and "Refused before anything stopped" in past["Message"], past
    assert "quota of 2" in past["Message"], past
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "WAITING"
    # HDFS never stopped: the data reads as before.
    assert _stdout(resilin, emr, cid, _step(emr, cid, "read", CHECKSUMS)) == cluster["checksums"]


@pytest.mark.parametrize("phase", ["QUIESCING", "STARTING"])
def test_destination_instances_that_die_during_the_move_roll_it_back(resilin, emr, cluster, phase):
    """The destination's instances are terminated by their cloud while the source quiesces (the
    transfer cannot reach them), or while they start as the cluster's, after the swap: the move
    rolls back, and the source runs again with its data, its instances RUNNING again."""
    cid = cluster["id"]
    before = {
        i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]
    }
    emr.relocate_cluster(ClusterId=cid, TargetCloud=CLOUD_B)

    def reached() -> bool:
        now = emr.describe_cluster_relocation(ClusterId=cid).get("Relocation")
        assert now is not None, "the move ended before the fault"
        return now["Phase"] == phase

    wait_for(f"the move's {phase.lower()} phase", reached, timeout=300, interval=0.1)
    ec2 = cloud_ec2(resilin, CLOUD_B)
    ec2.terminate_instances(InstanceIds=sorted(_running_in(resilin, CLOUD_B)))
    wait_for("the roll-back", lambda: not emr.describe_cluster_relocation(ClusterId=cid).get("Relocation"),
             timeout=900, interval=1)  # fmt: skip
    past = emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"][0]
    assert past["Outcome"] == "ROLLED_BACK", past
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "WAITING"
    now = {
        i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]
    }
    assert now == before and now <= _running_in(resilin, CLOUD_A)
    assert _running_in(resilin, CLOUD_B) == set()
    after = _stdout(
        resilin, emr, cid, _step(emr, cid, "after the roll-back", "hdfs fsck / | tail -n 30; " + CHECKSUMS)
    )
    assert "is HEALTHY" in after and after.endswith(cluster["checksums"]), after


def test_a_move_cut_short_by_a_restart_of_resilin_rolls_back_with_the_source_intact(resilin, emr, cluster):
    """Resilin is killed (SIGKILL) once the source has stopped for the move: after its restart the
    cluster is taken back, the move is rolled back, the destination's instances are released and
    the source runs again with its data, the same instances as before."""
    cid = cluster["id"]
    before = {
        i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]
    }
    emr.relocate_cluster(ClusterId=cid, TargetCloud=CLOUD_B)
    seen: list[str] = []

    def source_stopped() -> bool:
        now = emr.describe_cluster_relocation(ClusterId=cid).get("Relocation")
        assert now is not None, f"the move ended before Resilin was killed, after {seen}"
        seen.append(now["Phase"])
        return now["Phase"] in ("CAPTURING", "TRANSFERRING", "REBUILDING", "STARTING")

    wait_for("the move to stop the source", source_stopped, timeout=300, interval=0.1)
    resilin.process.send_signal(signal.SIGKILL)
    resilin.process.wait()
    resilin.process = None
    assert cloud_containers(CLOUD_B), "the destination's instances outlive Resilin"
    print(f"killed in phase {seen[-1]}")

    resilin.start()
    wait_for("the roll-back", lambda: not emr.describe_cluster_relocation(ClusterId=cid).get("Relocation"),
             timeout=900, interval=1)  # fmt: skip
    past = emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"][0]
    assert past["Outcome"] == "ROLLED_BACK" and "restarted" in past["Message"], past
    wait_for(
        f"{cid} to wait again",
        lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "WAITING",
        timeout=300, interval=1,
    )  # fmt: skip
    now = {
        i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]
    }
    assert now == before and now <= _running_in(resilin, CLOUD_A)
    assert _running_in(resilin, CLOUD_B) == set()
    after = _stdout(
        resilin, emr, cid, _step(emr, cid, "after the restart", "hdfs fsck / | tail -n 30; " + CHECKSUMS)
    )
    assert "is HEALTHY" in after and after.endswith(cluster["checksums"]), after
    # The move's index in Redis went with it.
    assert not list(_redis(resilin).scan_iter(match=f"*{cid}-relocation*"))


def test_the_cluster_moves_with_its_data_and_each_distinct_content_crosses_once(resilin, emr, cluster):
    cid = cluster["id"]
    old = {i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid)["Instances"]}
    emr.relocate_cluster(ClusterId=cid, TargetCloud=CLOUD_B)
    # A step added during the move waits for it.
    waiting = _step(emr, cid, "after the move", "hdfs fsck / | tail -n 30; " + CHECKSUMS)
    phases: list[str] = []
    wan = {"before": (0, 0), "last": (0, 0)}  # cloud A's WAN interfaces: (bytes, packets)

    def moved() -> bool:
        now = emr.describe_cluster_relocation(ClusterId=cid).get("Relocation")
        if now is None:
            return True
        if not phases or phases[-1] != now["Phase"]:
            phases.append(now["Phase"])
            reason = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["StateChangeReason"]["Message"]
            assert reason.startswith(f"Relocating to {CLOUD_B}: "), reason
            # Read as the source stops (the overlay joined A and B at the launch) and once the
            # transfer is over (A's instances go at RELEASING), and not in between: the transfer
            # is short, and its phase must be seen.
            if now["Phase"] == "QUIESCING":
                wan["before"] = _wan_counters(CLOUD_A)
            if now["Phase"] == "STARTING":
                wan["last"] = _wan_counters(CLOUD_A)
        return False

    started = time.monotonic()
    wait_for("the move", moved, timeout=1200, interval=0.5)
    print(f"moved in {time.monotonic() - started:.0f} s through {phases}")
    past = emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"][0]  # newest first
    assert past["Outcome"] == "COMPLETED", past
    assert {"QUIESCING", "TRANSFERRING", "STARTING"} <= set(phases), phases

    cluster_now = emr.describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster_now["Status"]["State"] in ("WAITING", "RUNNING")
    groups = {g["Id"]: g["InstanceType"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]}
    assert groups == cluster["groups"]
    running = emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]
    new = {i["Ec2InstanceId"] for i in running}
    assert len(new) == 4 and not new & old
    in_b = {i["InstanceId"] for r in cloud_ec2(resilin, CLOUD_B).describe_instances()["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] == "running"}  # fmt: skip
    assert new <= in_b
    in_a = [i for r in cloud_ec2(resilin, CLOUD_A).describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]  # fmt: skip
    assert in_a == []

    # The step added meanwhile ran after the move, on the moved data: every block there, every
    # checksum as before.
    after = _stdout(resilin, emr, cid, waiting)
    assert "is HEALTHY" in after and re.search(r"Missing blocks:\s+0", after), after
    assert after.endswith(cluster["checksums"]), after
    step = emr.describe_step(ClusterId=cid, StepId=waiting)["Step"]
    assert step["Status"]["Timeline"]["StartDateTime"] >= past["EndDateTime"]

    # Each distinct content crossed the WAN once: with every block on all three DataNodes,
    # about a third of the state's bytes were read for sending.
    record = _record(resilin, cid)
    assert record["setnx_winners"] == record["distinct_contents"], record
    assert record["wan_raw"] == record["distinct_bytes"] < 0.4 * record["bytes_total"], record
    # What cloud A's WAN interfaces counted, less the headers of each packet, is what the move
    # sent compressed, within 10 %.
    sent, packets = (last - first for last, first in zip(wan["last"], wan["before"], strict=True))
    print(f"WAN: {sent} bytes in {packets} packets; the move sent {record['wan_wire']} bytes compressed")
    assert 0.9 * record["wan_wire"] <= sent - packets * WAN_PACKET_HEADERS, (sent, packets, record)
    assert sent - packets * WAN_PACKET_HEADERS <= 1.1 * record["wan_wire"], (sent, packets, record)


def test_the_core_group_moves_back_while_the_master_stays(resilin, emr, cluster):
    """A partial move: only the core group goes (back to cloud A); the master stays in B, and the
    overlay joins them during and after the move."""
    cid = cluster["id"]
    core = next(g["Id"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
                if g["InstanceGroupType"] == "CORE")  # fmt: skip
    emr.relocate_cluster(ClusterId=cid, TargetCloud=CLOUD_A, InstanceGroups=[{"InstanceGroupId": core}])
    wait_for("the partial move", lambda: not emr.describe_cluster_relocation(ClusterId=cid).get("Relocation"),
             timeout=1200, interval=1)  # fmt: skip
    past = emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"][0]
    assert past["Outcome"] == "COMPLETED", past

    running = emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]
    by_group: dict[str, set[str]] = {}
    for instance in running:
        by_group.setdefault(instance["InstanceGroupId"], set()).add(instance["Ec2InstanceId"])
    in_a, in_b = _running_in(resilin, CLOUD_A), _running_in(resilin, CLOUD_B)
    assert len(by_group[core]) == 3 and by_group[core] <= in_a
    [master] = [ids for gid, ids in by_group.items() if gid != core]
    assert len(master) == 1 and master <= in_b and len(in_b) == 1

    after = _stdout(
        resilin, emr, cid, _step(emr, cid, "after the partial move", "hdfs fsck / | tail -n 30; " + CHECKSUMS)
    )
    assert "is HEALTHY" in after and after.endswith(cluster["checksums"]), after


def _running_in(resilin, cloud: str) -> set[str]:
    return {i["InstanceId"] for r in cloud_ec2(resilin, cloud).describe_instances()["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] == "running"}  # fmt: skip


def _wan_counters(cloud: str) -> tuple[int, int]:
    """Bytes and packets both ways through the WAN interfaces of a cloud's instances (its
    gateway's; instances without one count nothing)."""
    prefix = WAN_SUBNET.rsplit(".", 1)[0] + "."
    script = (
        f"for i in $(ls /sys/class/net); do ip -o -4 addr show dev $i | grep -q ' {prefix}' && "
        "cat /sys/class/net/$i/statistics/{rx_bytes,tx_bytes,rx_packets,tx_packets}; done; true"
    )
    names = subprocess.run(["podman", "ps", "--format", "{{.Names}}", "--filter", f"name=resilin-{cloud}-"],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    sent = packets = 0
    for name in names:
        done = subprocess.run(["podman", "exec", name, "bash", "-c", script], capture_output=True, text=True)
        numbers = [int(n) for n in done.stdout.split()]
        for at in range(0, len(numbers) - 3, 4):
            sent += numbers[at] + numbers[at + 1]
            packets += numbers[at + 2] + numbers[at + 3]
    return sent, packets


def _redis(resilin):
    import redis

    return redis.Redis(unix_socket_path=str(resilin.home / "redis" / "redis.sock"))


def _record(resilin, cid: str) -> dict:
    from resilin.jobflows.store import JobFlowStore

    store = JobFlowStore(_redis(resilin))
    cluster = store.get_cluster(cid)
    assert cluster is not None
    return cluster["relocations"][-1]


def test_nothing_is_left_in_either_cloud(resilin, emr, cluster):
    terminate_and_check_nothing_left(resilin, emr, cluster["id"], CLOUDS)
