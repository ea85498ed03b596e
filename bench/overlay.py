"""Overlay benchmark: two local clouds on this machine, the overlay against the raw bridge, in one run.

Starts its own ``resilin server`` with local clouds A and B and measures, side by side:

- node-to-node TCP throughput (iperf3, ``--seconds`` each): two nodes on one cloud's bridge
  (raw) against a node in A and a node in B, neither of them a gateway, so that the traffic
  crosses both gateways and the WireGuard tunnel between them; and the tunnel's CPU: the
  gateway daemons' (``resilin-overlay``) user+system seconds per GB carried;
- goodput through the overlay with both gateways' WAN links shaped to ``--shaped-mbit``
  (the local cloud's admin fault; ``tc tbf``), as a share of that rate;
- overlay set-up: SSH-ready → overlay up (all-to-all probe passed), as the cluster records it;
- the word count of ``resilin demo`` on a cluster in one cloud against the same cluster with its
  core nodes in the other cloud, unshaped, then shaped: both gateways' WAN links limited to
  ``--shaped-mbit`` and delayed so that a round trip between the gateways takes ``--rtt-ms``
  more (each gateway's link adds a quarter of it each way: out of one and into the other, there
  and back; the local cloud's delay lines, in user space, as this kernel has no netem).  The
  round trip measured between the gateways (a TCP connect through the tunnel) is printed.

Targets (the issue's): ≥ 1 Gbit/s and ≤ 12 CPU-s/GB unshaped; ≥ 90 % of a shaped link; set-up
≤ 5 s; split word count within 1.15× of the single-cloud one.

Usage: .venv/bin/python bench/overlay.py [--seconds 10] [--repeat 3] [--shaped-mbit 100] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resilin import demo
from resilin.jobflows.store import JobFlowStore
from resilin.provisioners.localcloud.admin_client import AdminClient
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service import local_runtime
from resilin.service.ports import free_port
from resilin.service.process import ResilinProcess
from resilin.service.redis_server import PrivateRedis
from resilin.settings.config import new_credentials

PID = os.getpid() % 250
CLOUD_A, CLOUD_B = f"oba{PID}", f"obb{PID}"
SUBNETS = {CLOUD_A: f"10.90.{PID}.0/24", CLOUD_B: f"10.91.{PID}.0/24"}
WAN = f"resilin-wan-ob{PID}"
WAN_SUBNET = f"100.73.{PID}.0/24"
BUCKET = "overlay-bench"


def start_server(home: Path) -> ResilinProcess:
    proc = ResilinProcess(home, free_port(), free_port(), [new_credentials("000000000001")], CLOUD_A)
    creds = proc.accounts[0]
    clouds = "".join(
        f'[[clouds]]\nname = "{name}"\nkind = "local"\nsubnet = "{subnet}"\n'
        + ("" if name == CLOUD_A else f"port = {free_port()}\n")
        + "\n"
        for name, subnet in SUBNETS.items()
    )
    (home / "resilin.toml").write_text(
        f"api_port = {proc.api_port}\nstorage_port = {proc.storage_port}\nlocalcloud_port = {free_port()}\n"
        f'default_cloud = "{CLOUD_A}"\nwan_network = "{WAN}"\nwan_subnet = "{WAN_SUBNET}"\n\n'
        f'[[accounts]]\naccount_id = "{creds.account_id}"\naccess_key = "{creds.access_key}"\n'
        f'secret_key = "{creds.secret_key}"\n\n{clouds}'
    )
    proc.start()
    return proc


def wait_state(emr, cid: str, wanted: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while (state := emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]) != wanted:
        if state.startswith("TERMINATED") or time.monotonic() > deadline:
            raise SystemExit(f"{cid} is {state}, not {wanted}")
        time.sleep(1)


def run_cluster(emr, name: str, groups: list[tuple[str, str, int]]) -> str:
    cid = emr.run_job_flow(
        Name=name,
        ReleaseLabel="emr-7.5.0",
        Instances={
            "InstanceGroups": [
                {"InstanceRole": role, "InstanceType": itype, "InstanceCount": count}
                for role, itype, count in groups
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]
    wait_state(emr, cid, "WAITING")
    return cid


def terminate(emr, cid: str) -> None:
    emr.terminate_job_flows(JobFlowIds=[cid])
    wait_state(emr, cid, "TERMINATED", timeout=600)


def nodes(emr, cid: str) -> list[dict]:
    roles = {
        g["Id"]: g["InstanceGroupType"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    }
    found = []
    for inst in emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]:
        cloud = next(
            c
            for c in SUBNETS
            if subprocess.run(
                ["podman", "container", "exists", f"resilin-{c}-{inst['Ec2InstanceId']}"]
            ).returncode
            == 0
        )
        found.append(
            {
                "role": roles[inst["InstanceGroupId"]],
                "cloud": cloud,
                "id": inst["Ec2InstanceId"],
                "container": f"resilin-{cloud}-{inst['Ec2InstanceId']}",
                "ip": inst["PrivateIpAddress"],
            }
        )
    return found


def on(container: str, command: str) -> str:
    return subprocess.run(
        ["podman", "exec", container, "bash", "-c", command], capture_output=True, text=True, check=True
    ).stdout


def gateway_cpu(gateways: list[dict]) -> float:
    """User+system seconds the gateways' resilin-overlay daemons have used so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for g in gateways:
        fields = (
            on(g["container"], "cat /proc/$(cat /run/resilin-overlay.pid)/stat").rsplit(")", 1)[1].split()
        )
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def iperf(client: dict, server: dict, seconds: int) -> tuple[float, float]:
    """(Gbit/s, GB) of one TCP transfer from ``client`` to ``server``."""
    on(server["container"], "pkill iperf3; iperf3 -s -D -1")
    time.sleep(0.5)
    out = json.loads(on(client["container"], f"iperf3 -J -t {seconds} -c {server['ip']}"))
    received = out["end"]["sum_received"]
    return received["bits_per_second"] / 1e9, received["bytes"] / 1e9


RTT = (
    "import socket, statistics, time\n"
    "samples = []\n"
    "for _ in range(10):\n"
    "    start = time.monotonic()\n"
    "    try:\n"
    "        socket.create_connection(('{ip}', 22), 5).close()\n"
    "    except ConnectionRefusedError:\n"
    "        pass  # refused is answered: a round trip all the same\n"
    "    except OSError:\n"
    "        continue\n"
    "    samples.append((time.monotonic() - start) * 1000)\n"
    "print(statistics.median(samples) if samples else 'nan')\n"
)


def rtt_ms(client: dict, server: dict) -> float:
    """The median round trip of a TCP connect from one node to another's sshd (ms; NaN: no answer)."""
    return float(on(client["container"], f'python3 -c "{RTT.format(ip=server["ip"])}"'))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shaped-mbit", type=float, default=100.0)
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=50.0,
        help="round-trip time added between the gateways for the shaped word count (0: none)",
    )
    args = parser.parse_args()
    if not 0 <= args.rtt_ms <= 4 * 5000:
        parser.error("--rtt-ms must be between 0 and 20000")
    if shutil.which("podman") is None:
        raise SystemExit("needs podman (make test sets it up)")
    home = Path(tempfile.mkdtemp(prefix="resilin-overlay-bench-"))
    proc = start_server(home)
    store = JobFlowStore(PrivateRedis(home / "redis").client())
    try:
        endpoints = proc.endpoints()
        emr, s3 = endpoints.client("emr"), endpoints.client("s3")
        demo.upload_inputs(s3, BUCKET, demo.corpus())
        access = {c: local_runtime.read(home)[c] for c in SUBNETS}
        admins = {c: AdminClient(a.endpoint, a.access_key, a.secret_key, a.region) for c, a in access.items()}
        rows: list[tuple[str, str]] = []

        print("cluster: master and a task node in A, two core nodes in B", flush=True)
        cid = run_cluster(
            emr,
            "overlay throughput",
            [
                ("MASTER", f"m5.large@{CLOUD_A}", 1),
                ("CORE", f"m5.large@{CLOUD_B}", 2),
                ("TASK", f"m5.large@{CLOUD_A}", 1),
            ],
        )
        found = nodes(emr, cid)
        gateways = [
            n
            for n in found
            if on(n["container"], "test -e /run/resilin-overlay.pid && echo y || true").strip()
        ]
        plain = [n for n in found if n not in gateways]
        a_node = next(n for n in plain if n["cloud"] == CLOUD_A)
        b_nodes = [n for n in found if n["cloud"] == CLOUD_B]
        b_plain = next(n for n in plain if n["cloud"] == CLOUD_B)
        b_other = next(n for n in b_nodes if n is not b_plain)
        raw, tunnel, cpu_per_gb = [], [], []
        for _ in range(args.repeat):
            raw.append(iperf(b_other, b_plain, args.seconds)[0])
            before = gateway_cpu(gateways)
            gbps, gb = iperf(a_node, b_plain, args.seconds)
            tunnel.append(gbps)
            cpu_per_gb.append((gateway_cpu(gateways) - before) / gb)
        raw_m, tun_m = statistics.median(raw), statistics.median(tunnel)
        rows.append(("raw bridge, node to node (Gbit/s)", f"{raw_m:.2f}"))
        rows.append(
            ("overlay, node to node across 2 gateways (Gbit/s)", f"{tun_m:.2f}  ({tun_m / raw_m:.2f}× raw)")
        )
        rows.append(("overlay tunnel CPU (s per GB, both gateways)", f"{statistics.median(cpu_per_gb):.1f}"))

        for g in gateways:
            admins[g["cloud"]].shape_wan(g["id"], args.shaped_mbit)
        shaped = [iperf(a_node, b_plain, args.seconds)[0] * 1000 for _ in range(args.repeat)]
        shaped_m = statistics.median(shaped)
        rows.append(
            (
                f"overlay on a WAN shaped to {args.shaped_mbit:g} Mbit/s (Mbit/s)",
                f"{shaped_m:.1f}  ({shaped_m / args.shaped_mbit:.0%} of the link)",
            )
        )
        for g in gateways:
            admins[g["cloud"]].clear_wan_shaping(g["id"])
        doc = store.get_cluster(cid)
        phases = doc.get("phases", {}) if doc else {}
        rows.append(
            ("overlay set-up after SSH-ready (s)", f"{phases['network_joined'] - phases['ssh_ready']:.1f}")
        )
        terminate(emr, cid)

        def word_count(name: str, core_cloud: str, shape: bool) -> float:
            cid = run_cluster(
                emr, name, [("MASTER", f"m5.large@{CLOUD_A}", 1), ("CORE", f"m5.large@{core_cloud}", 2)]
            )
            try:
                if shape:
                    gateways = [
                        n
                        for n in nodes(emr, cid)
                        if on(n["container"], "test -e /run/resilin-overlay.pid && echo y || true").strip()
                    ]
                    before = rtt_ms(gateways[0], gateways[1])
                    for g in gateways:
                        admins[g["cloud"]].shape_wan(g["id"], args.shaped_mbit, args.rtt_ms / 4)
                    after = rtt_ms(gateways[0], gateways[1])
                    print(f"RTT between the gateways: {before:.1f} ms, {after:.1f} ms shaped", flush=True)
                    rows.append(
                        ("RTT between the gateways, unshaped → shaped (ms)", f"{before:.1f} → {after:.1f}")
                    )
                step = demo.streaming_step(BUCKET, name)
                step["HadoopJarStep"]["Args"][-1] = f"s3://{BUCKET}/out-{name.replace(' ', '-')}/"
                sid = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]
                while (st := emr.describe_step(ClusterId=cid, StepId=sid)["Step"])["Status"]["State"] not in (
                    "COMPLETED",
                    "FAILED",
                    "CANCELLED",
                ):
                    time.sleep(1)
                if st["Status"]["State"] != "COMPLETED":
                    raise SystemExit(f"word count {name}: {st['Status']}")
                tl = st["Status"]["Timeline"]
                return (tl["EndDateTime"] - tl["StartDateTime"]).total_seconds()
            finally:
                terminate(emr, cid)

        single = word_count("one cloud", CLOUD_A, False)
        split = word_count("two clouds", CLOUD_B, False)
        split_shaped = word_count("two clouds shaped", CLOUD_B, True)
        rows.append(("word count, one cloud (s)", f"{single:.1f}"))
        rows.append(
            ("word count, core nodes in the other cloud (s)", f"{split:.1f}  ({split / single:.2f}×)")
        )
        rows.append(
            (
                f"word count, split, WAN shaped to {args.shaped_mbit:g} Mbit/s, +{args.rtt_ms:g} ms RTT (s)",
                f"{split_shaped:.1f}  ({split_shaped / single:.2f}×)",
            )
        )
        width = max(len(name) for name, _ in rows)
        print()
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        return 0
    finally:
        proc.stop()
        for cloud in SUBNETS:
            remove_cloud(cloud)
        subprocess.run(["podman", "network", "rm", WAN], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
