"""Relocating a cluster between two clouds over the overlay: the whole RelocateCluster move, with
its data path beside each node's state sent on its own, raw and zstd-compressed, in one run.

A cluster with its master and three core nodes in local cloud A (HDFS at replication 3, filled
with ``--data-mb`` of text by Hadoop's randomtextwriter, then in safe mode with its namespace
saved) and four task nodes in cloud B standing in for destination nodes.  The WAN between the two
clouds' gateways is shaped to ``--shaped-mbit`` with ``--rtt-ms`` of round trip added.  First the
state sets of the four A nodes (the NameNode's directory on the master, the DataNodes' on the core
nodes) go to the four B nodes three ways:

- per node, raw: every node sends every file of its state set, as it is;
- per node, zstd: the same, each file zstd-compressed (what ``podman export | zstd`` per node gives);
- Resilin's data path: each distinct content once over the WAN (Redis SETNX picks its sender),
  zstd-compressed, then copied between the B nodes inside cloud B.

Every file is checked against its digest on arrival.  Per way: bytes on the wire as the senders
count them, bytes through the A gateway's WAN interface (its counters: WireGuard and TCP overhead
included), time, and the ratios to per-node zstd.

Then the task group is removed and the cluster itself is moved to cloud B with RelocateCluster
(through boto3 with the model file Resilin ships): the time of each phase, the downtime (from the
moment Hadoop stops until it runs in B), and the bytes through the A gateway's WAN interface during
the move.  Last, the cluster's full size (its nodes' image layers plus the state) and the issue's
targets: WAN bytes at least 60 % below per-node zstd and at most 10 % of the full size, transfer
time at least 50 % below per-node zstd, downtime at most the transfer time plus 40 s.

Usage: .venv/bin/python bench/relocation.py [--data-mb 320] [--shaped-mbit 100] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402

import overlay as two_clouds  # noqa: E402
from resilin.api.models import emr_session  # noqa: E402
from resilin.applications.hadoop import quiesce  # noqa: E402
from resilin.clouds.ssh import KeyPair, Node  # noqa: E402
from resilin.jobflows.store import JobFlowStore  # noqa: E402
from resilin.migrate.capture import capture  # noqa: E402
from resilin.migrate.index import MoveIndex  # noqa: E402
from resilin.migrate.manifest import Manifest  # noqa: E402
from resilin.migrate.plan import TransferPlan, WanSend, plan_transfer  # noqa: E402
from resilin.migrate.transfer import Endpoint, transfer  # noqa: E402
from resilin.provisioners.localcloud.admin_client import AdminClient  # noqa: E402
from resilin.provisioners.localcloud.process import remove_cloud  # noqa: E402
from resilin.service import local_runtime  # noqa: E402
from resilin.service.redis_server import PrivateRedis  # noqa: E402

STATE = quiesce.STATE_PATHS  # what a move carries of each node
EXAMPLES = "/opt/hadoop/share/hadoop/mapreduce/hadoop-mapreduce-examples-3.5.0.jar"


def run_step(emr, cid: str, name: str, command: str) -> None:
    step = {"Name": name, "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", command]}}  # fmt: skip
    sid = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]
    while (state := emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"]) not in (
        "COMPLETED", "FAILED", "CANCELLED"):  # fmt: skip
        time.sleep(1)
    if state != "COMPLETED":
        raise SystemExit(f"step {name!r} ended {state}")


def wan_bytes(gateway: dict) -> int:
    """rx+tx bytes of the gateway's WAN interface (the one with an address of the WAN's subnet)."""
    prefix = two_clouds.WAN_SUBNET.rsplit(".", 1)[0] + "."
    script = (
        f"for i in $(ls /sys/class/net); do ip -o -4 addr show dev $i | grep -q ' {prefix}' && "
        "echo $(( $(cat /sys/class/net/$i/statistics/rx_bytes) + $(cat /sys/class/net/$i/statistics/tx_bytes) )); "
        "done; true"
    )
    found = two_clouds.on(gateway["container"], script).split()
    return int(found[0]) if found else 0


def cloud_wan_bytes(cloud: str) -> int:
    """rx+tx bytes through the WAN interfaces of a cloud's instances (its gateway's, whichever
    instance that is now; 0 for instances that have none)."""
    names = subprocess.run(["podman", "ps", "--format", "{{.Names}}", "--filter", f"name=resilin-{cloud}-"],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    total = 0
    for name in names:
        try:
            total += wan_bytes({"container": name})
        except subprocess.CalledProcessError:  # let go meanwhile
            pass
    return total


def per_node_plan(manifests: dict[str, Manifest], destinations: dict[str, str]) -> TransferPlan:
    """Every file of every node sent to its destination, as if no other node held it."""
    plan = TransferPlan()
    for source, manifest in manifests.items():
        for entry in manifest.files:
            plan.sends.append(
                WanSend(entry.digest, entry.size, source, entry.path, destinations[source], (entry.path,))
            )
    return plan


def relocate(proc, emr, cid: str, destination: str, gateway_a: dict, store: JobFlowStore) -> dict:
    """The task group removed, then the cluster moved to ``destination``; what the move took."""
    task = next(g["Id"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
                if g["InstanceGroupType"] == "TASK")  # fmt: skip
    emr.modify_instance_groups(ClusterId=cid, InstanceGroups=[{"InstanceGroupId": task, "InstanceCount": 0}])
    while any(n["role"] == "TASK" for n in two_clouds.nodes(emr, cid)):
        time.sleep(1)
    endpoints = proc.endpoints()
    relocating = boto3.Session(botocore_session=emr_session()).client(
        "emr", endpoint_url=endpoints.api, region_name="us-east-1",
        aws_access_key_id=endpoints.access_key, aws_secret_access_key=endpoints.secret_key,
    )  # fmt: skip
    print(f"\nmoving the cluster to cloud {destination} with RelocateCluster", flush=True)
    source = gateway_a["cloud"]
    started, before, last = time.monotonic(), 0, 0
    relocating.relocate_cluster(ClusterId=cid, TargetCloud=destination)
    phase = ""
    while (now := relocating.describe_cluster_relocation(ClusterId=cid).get("Relocation")) is not None:
        if now["Phase"] != phase:
            phase = now["Phase"]
            print(f"  [{time.monotonic() - started:6.1f}s] {phase.lower()}", flush=True)
            if phase == "QUIESCING":  # the overlay joins A and B again from the launch on
                before = last = cloud_wan_bytes(source)
        if phase in ("QUIESCING", "CAPTURING", "TRANSFERRING", "REBUILDING", "STARTING"):
            last = max(last, cloud_wan_bytes(source))  # A's instances go at the end: the last reading counts
        time.sleep(0.5)
    seconds = time.monotonic() - started
    past = relocating.describe_cluster_relocation(ClusterId=cid)["PastRelocations"][0]
    if past["Outcome"] != "COMPLETED":
        raise SystemExit(f"the move ended {past['Outcome']}: {past.get('Message')}")
    cluster = store.get_cluster(cid)
    assert cluster is not None
    record = cluster["relocations"][-1]
    return {"seconds": seconds, "downtime": float(past.get("DowntimeSeconds", 0)), "wan": last - before,
            "phases": record["phase_seconds"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-mb", type=int, default=320)
    parser.add_argument("--shaped-mbit", type=float, default=100.0)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="resilin-relocation-bench-"))
    proc = two_clouds.start_server(home)
    store = JobFlowStore(PrivateRedis(home / "redis").client())
    try:
        emr = proc.endpoints().client("emr")
        access = {c: local_runtime.read(home)[c] for c in two_clouds.SUBNETS}
        admins = {c: AdminClient(a.endpoint, a.access_key, a.secret_key, a.region) for c, a in access.items()}
        a, b = two_clouds.CLOUD_A, two_clouds.CLOUD_B
        print("cluster: master and 3 core nodes in A, 4 task nodes in B (the destinations)", flush=True)
        cid = two_clouds.run_cluster(
            emr, "relocation bench", [("MASTER", f"m5.large@{a}", 1), ("CORE", f"m5.large@{a}", 3),
                                      ("TASK", f"m5.large@{b}", 4)])  # fmt: skip
        print(f"filling HDFS with {args.data_mb} MB of text at replication 3", flush=True)
        run_step(emr, cid, "fill", f"hadoop jar {EXAMPLES} randomtextwriter "
                 f"-D mapreduce.randomtextwriter.totalbytes={args.data_mb * 1024 * 1024} /bench/text")  # fmt: skip
        run_step(emr, cid, "quiesce", "hdfs dfsadmin -safemode enter && hdfs dfsadmin -saveNamespace")

        key = KeyPair((home / "keys" / f"{cid}.pem").read_text(), (home / "keys" / f"{cid}.pub").read_text())
        docs = [i for i in store.instances_of(cid) if i["state"] == "RUNNING"]
        sources = sorted((i for i in docs if i["role"] in ("MASTER", "CORE")), key=lambda i: i["ec2_id"])
        dests = sorted((i for i in docs if i["role"] == "TASK"), key=lambda i: i["ec2_id"])
        nodes = {i["ec2_id"]: Node(i["private_ip"], i["host_keys"], key) for i in sources + dests}
        endpoints = {i["ec2_id"]: Endpoint(nodes[i["ec2_id"]], i["private_ip"]) for i in sources + dests}
        destinations = {s["ec2_id"]: d["ec2_id"] for s, d in zip(sources, dests, strict=True)}
        manifests = {s["ec2_id"]: capture(nodes[s["ec2_id"]], s["ec2_id"], STATE) for s in sources}
        state = sum(m.size for m in manifests.values())
        distinct = len(set().union(*(m.digests() for m in manifests.values())))
        print(f"state: {state / 1e6:.0f} MB in {sum(len(m.files) for m in manifests.values())} files, "
              f"{distinct} distinct contents", flush=True)  # fmt: skip

        found = two_clouds.nodes(emr, cid)
        gateways = [n for n in found if two_clouds.on(n["container"], "test -e /run/resilin-overlay.pid && echo y || true").strip()]  # fmt: skip
        gateway_a = next(g for g in gateways if g["cloud"] == a)
        for g in gateways:
            admins[g["cloud"]].shape_wan(g["id"], args.shaped_mbit, args.rtt_ms / 4)

        rows = []
        redis = PrivateRedis(home / "redis").client()
        for name, compress, dedup in (("per node, raw", False, False), ("per node, zstd", True, False),
                                      ("Resilin (dedup + zstd)", True, True)):  # fmt: skip
            for d in dests:
                nodes[d["ec2_id"]].run("sudo -n rm -rf /var/lib/hadoop/dfs", timeout=300)
            index = MoveIndex(redis, f"bench-{name}-{time.time()}")
            if dedup:
                won = {n: index.claim(n, m.digests()) for n, m in manifests.items()}
                plan = plan_transfer(manifests, destinations, won, index.holders(set().union(*won.values())))
            else:
                plan = per_node_plan(manifests, destinations)
            before, started = wan_bytes(gateway_a), time.monotonic()
            report = transfer(plan, manifests, destinations, endpoints, index, compress=compress)
            seconds, crossed = time.monotonic() - started, wan_bytes(gateway_a) - before
            index.forget()
            rows.append((name, report.wan_wire, crossed, seconds, report.local_wire))
            print(f"  {name:24} wire {report.wan_wire / 1e6:8.1f} MB  WAN {crossed / 1e6:8.1f} MB  "
                  f"{seconds:6.1f} s  (inside B: {report.local_wire / 1e6:.1f} MB)", flush=True)  # fmt: skip

        move = relocate(proc, emr, cid, b, gateway_a, store)

        image = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", "localhost/resilin-node:latest"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        full = int(image) * len(sources) + state
        zstd_wan, zstd_time = rows[1][2], rows[1][3]
        ours = rows[2]
        print(f"\nWAN shaped to {args.shaped_mbit:g} Mbit/s, +{args.rtt_ms:g} ms round trip; "
              f"{len(sources)} source nodes, {state / 1e6:.0f} MB of state, full size {full / 1e6:.0f} MB")  # fmt: skip
        print(
            f"{'way':26} {'wire MB':>9} {'WAN MB':>9} {'time s':>8} {'WAN vs zstd':>12} {'time vs zstd':>13}"
        )
        for name, wire, crossed, seconds, _ in rows:
            print(f"{name:26} {wire / 1e6:9.1f} {crossed / 1e6:9.1f} {seconds:8.1f} "
                  f"{crossed / zstd_wan:11.2f}x {seconds / zstd_time:12.2f}x")  # fmt: skip
        print(f"\nRelocateCluster, A to B: {move['seconds']:.1f} s in all, downtime {move['downtime']:.1f} s, "
              f"{move['wan'] / 1e6:.1f} MB through A's WAN interface ({move['wan'] / zstd_wan:.2f}x per-node zstd)")  # fmt: skip
        for phase, seconds in move["phases"].items():
            print(f"  {phase.lower():14} {seconds:7.1f} s")
        transfer_s = move["phases"].get("TRANSFERRING", 0.0)
        targets = [
            ("WAN bytes at least 60 % below per-node zstd (data path)", ours[2] <= 0.4 * zstd_wan),
            ("WAN bytes at least 60 % below per-node zstd (the move)", move["wan"] <= 0.4 * zstd_wan),
            ("WAN bytes at most 10 % of the full size (the move)", move["wan"] <= 0.1 * full),
            ("transfer time at least 50 % below per-node zstd", transfer_s <= 0.5 * zstd_time),
            ("downtime at most the transfer time plus 40 s", move["downtime"] <= transfer_s + 40),
        ]
        for what, met in targets:
            print(f"  {'met' if met else 'NOT met':8} {what}")
        two_clouds.terminate(emr, cid)
        return 0
    finally:
        proc.stop()
        for cloud in two_clouds.SUBNETS:
            remove_cloud(cloud)
        subprocess.run(["podman", "network", "rm", two_clouds.WAN], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
