"""Managed scaling benchmark: a multi-wave job on a static cluster against the same job under a
managed scaling policy, with the job's time and the nodes it paid for.

Starts its own ``resilin server`` and local cloud.  Each round runs one cluster per mode
(a master, one core node, an empty task group) and the same Hadoop streaming job on it:
``--maps`` map tasks of ``--task-seconds`` each, more than one node runs at once (YARN's
containers are sized by Configurations so that a node holds ``--slots`` maps), so the maps
run in waves.  The tasks' work is time, not CPU: on a two-core host more nodes cannot add CPU,
and what is measured here is how soon the scaling answers the queue and what the nodes cost.

- static: the cluster stays at its one core node;
- managed: PutManagedScalingPolicy (instances, minimum 1, maximum ``--max-nodes``) before the
  job; the cluster grows while containers pend and shrinks back when YARN is idle.

Prints per round and as medians: the step's time (DescribeStep start → end) and the core and
task nodes' node-seconds from the step's start until the cluster is back at its static size
(for static, the step's end): each instance counted from its creation to its end
(ListInstances' timeline), clipped to that window.  Also the managed cluster's peak size.

Usage: .venv/bin/python bench/managed_scaling.py [--maps 36] [--task-seconds 20] [--slots 3]
       [--max-nodes 3] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_resilin import running_resilin, wait, wait_terminated  # noqa: E402

CLOUD = "mscale"
SUBNET = "10.78.41.0/24"
NODE_TYPE = "m5.xlarge"
CONTAINER_MB = 512
STARTED = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")


def wave_job(maps: int, seconds: int) -> str:
    """A streaming job of ``maps`` maps, each ``seconds`` long (one input file per map)."""
    return f"""set -e
rm -rf /tmp/waves && mkdir -p /tmp/waves && for i in $(seq 1 {maps}); do echo $i > /tmp/waves/part-$i; done
hdfs dfs -rm -r -f /waves-in /waves-out && hdfs dfs -put -f /tmp/waves /waves-in
printf '#!/bin/sh\\nsleep {seconds}\\ncat\\n' > /tmp/wave.sh && chmod +x /tmp/wave.sh
hadoop jar /usr/lib/hadoop-mapreduce/hadoop-streaming.jar -D mapreduce.job.reduces=0 \\
  -files /tmp/wave.sh -input /waves-in -output /waves-out -mapper wave.sh
"""


def sized_containers(slots: int) -> list[dict]:
    """YARN memory for ``slots`` map containers per node (the ApplicationMaster takes one of them
    on the node it lands on)."""
    return [
        {"Classification": "yarn-site", "Properties": {
            "yarn.nodemanager.resource.memory-mb": str(slots * CONTAINER_MB),
            "yarn.scheduler.minimum-allocation-mb": "128"}},
        {"Classification": "mapred-site", "Properties": {
            "mapreduce.map.memory.mb": str(CONTAINER_MB), "mapreduce.map.java.opts": "-Xmx380m",
            "yarn.app.mapreduce.am.resource.mb": str(CONTAINER_MB),
            "yarn.app.mapreduce.am.command-opts": "-Xmx380m"}},
    ]  # fmt: skip


def worker_nodes(emr, cid: str) -> list[dict]:
    pages = emr.get_paginator("list_instances").paginate(ClusterId=cid, InstanceGroupTypes=["CORE", "TASK"])
    return [i for page in pages for i in page["Instances"]]


def running_workers(emr, cid: str) -> int:
    return sum(1 for i in worker_nodes(emr, cid) if i["Status"]["State"] == "RUNNING")


def node_seconds(instances: list[dict], start: datetime, end: datetime) -> float:
    total = 0.0
    for i in instances:
        timeline = i["Status"]["Timeline"]
        born = timeline.get("CreationDateTime")
        died = timeline.get("EndDateTime") or end
        if born is None:
            continue
        total += max(0.0, (min(died, end) - max(born, start)).total_seconds())
    return total


def one_run(emr, mode: str, args: argparse.Namespace) -> tuple[float, float, int]:
    """(step seconds, node-seconds, peak worker nodes) of one cluster in ``mode``."""
    cid = emr.run_job_flow(
        Name=f"managed scaling bench ({mode})",
        ReleaseLabel="emr-7.5.0",
        Configurations=sized_containers(args.slots),
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": NODE_TYPE, "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": NODE_TYPE, "InstanceCount": 1},
                {"InstanceRole": "TASK", "InstanceType": NODE_TYPE, "InstanceCount": 0},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]
    try:
        wait(
            "the cluster",
            lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "WAITING",
        )
        if mode == "managed":
            limits = {
                "UnitType": "Instances",
                "MinimumCapacityUnits": 1,
                "MaximumCapacityUnits": args.max_nodes,
            }
            emr.put_managed_scaling_policy(ClusterId=cid, ManagedScalingPolicy={"ComputeLimits": limits})
        step = {"Name": f"{args.maps} maps of {args.task_seconds} s", "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar",
                                  "Args": ["bash", "-c", wave_job(args.maps, args.task_seconds)]}}  # fmt: skip
        sid = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]
        peak = 1

        def ended() -> dict | None:
            nonlocal peak
            peak = max(peak, running_workers(emr, cid))
            s = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
            return s if s["Status"]["State"] in ("COMPLETED", "FAILED", "CANCELLED") else None

        done = wait("the job", ended)
        if done["Status"]["State"] != "COMPLETED":
            raise SystemExit(f"{mode}: the job ended {done['Status']}")
        timeline = done["Status"]["Timeline"]
        start, end = timeline["StartDateTime"], timeline["EndDateTime"]
        if mode == "managed":
            # The nodes are paid for until they are gone: wait for the cluster's static size.
            wait("the cluster to shrink back", lambda: running_workers(emr, cid) == 1
                 and all(i["Status"]["State"] in ("RUNNING", "TERMINATED") for i in worker_nodes(emr, cid)))  # fmt: skip
            end = max(
                [end]
                + [t for i in worker_nodes(emr, cid) if (t := i["Status"]["Timeline"].get("EndDateTime"))]
            )
        paid = node_seconds(worker_nodes(emr, cid), start, min(end, datetime.now(UTC)))
        return (timeline["EndDateTime"] - start).total_seconds(), paid, peak
    finally:
        emr.terminate_job_flows(JobFlowIds=[cid])
        wait_terminated(emr, [cid])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--maps", type=int, default=36)
    parser.add_argument("--task-seconds", type=int, default=20)
    parser.add_argument("--slots", type=int, default=3, help="map containers one node runs at once")
    parser.add_argument("--max-nodes", type=int, default=3, help="the policy's MaximumCapacityUnits")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    results: dict[str, list[tuple[float, float, int]]] = {"static": [], "managed": []}
    with running_resilin(CLOUD, SUBNET, "resilin-mscale-") as proc:
        emr = proc.endpoints().client("emr")
        for round_ in range(1, args.repeat + 1):
            for mode in ("static", "managed"):
                job, paid, peak = one_run(emr, mode, args)
                results[mode].append((job, paid, peak))
                print(f"round {round_} {mode:8} job {job:7.1f} s  node-seconds {paid:8.0f}  "
                      f"peak worker nodes {peak}", flush=True)  # fmt: skip

    def median(mode: str, k: int) -> float:
        return statistics.median(r[k] for r in results[mode])

    print()
    print(f"{args.maps} maps of {args.task_seconds} s, {args.slots} per node; static: 1 core node; "
          f"managed: 1..{args.max_nodes} worker nodes; medians of {args.repeat}")  # fmt: skip
    print(f"{'':16}{'static':>10}{'managed':>10}{'managed/static':>16}")
    for label, k in (("job time (s)", 0), ("node-seconds", 1)):
        s, m = median("static", k), median("managed", k)
        print(f"{label:16}{s:10.1f}{m:10.1f}{m / s:16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
