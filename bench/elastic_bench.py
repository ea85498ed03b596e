"""Elastic extension benchmark: a word count finishing sooner when task nodes join mid-job.

Starts its own ``resilin server`` and local cloud, and one keep-alive cluster (1 master +
1 core).  Container sizes are set through Configurations so that one node runs only a few
containers at once and the input (many files, one map each) makes map tasks queue.  Then,
``--repeat`` times, the same streaming word count runs:

- static: on the cluster as it is;
- elastic: AddInstanceGroups adds ``--task-nodes`` TASK instances as soon as the step runs;
  they join while the job runs, take queued maps, and are removed again after the step.

Prints each run's step duration (DescribeStep StartDateTime → EndDateTime), the medians and
their ratio.  The core and task nodes are ``--node-type`` instances (default m1.medium: one
vCPU each, which the local cloud enforces as the container's CPU limit), so that, as on a
real cloud, a node added brings CPU of its own; on a machine with few cores, nodes without
such limits would all share the same cores and adding one could not speed anything up.

Usage: .venv/bin/python bench/elastic_bench.py [--files 48] [--task-nodes 2] [--repeat 1]
       [--node-type m1.medium]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from resilin import demo
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service.process import cloud_containers, new_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_resilin import wait  # noqa: E402

CLOUD = "elastic"
SUBNET = "10.78.23.0/24"
BUCKET = "elastic"
SMALL_CONTAINERS = [
    {"Classification": "yarn-site", "Properties": {"yarn.nodemanager.resource.memory-mb": "1536",
                                                   "yarn.scheduler.minimum-allocation-mb": "128"}},
    {"Classification": "mapred-site", "Properties": {
        "mapreduce.map.memory.mb": "512", "mapreduce.map.java.opts": "-Xmx400m",
        "mapreduce.reduce.memory.mb": "512", "mapreduce.reduce.java.opts": "-Xmx400m",
        "yarn.app.mapreduce.am.resource.mb": "512", "yarn.app.mapreduce.am.command-opts": "-Xmx400m"}},
]  # fmt: skip


def step_seconds(step: dict) -> float:
    timeline = step["Status"]["Timeline"]
    return (timeline["EndDateTime"] - timeline["StartDateTime"]).total_seconds()


def run_word_count(emr, s3, cid: str, label: str) -> str:
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="output/").get("Contents", [])]:
        s3.delete_object(Bucket=BUCKET, Key=key)
    step = demo.streaming_step(BUCKET, name=label)
    step["ActionOnFailure"] = "CONTINUE"
    return emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]


def finished(emr, cid: str, sid: str) -> dict | None:
    step = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
    if step["Status"]["State"] in ("COMPLETED", "FAILED", "CANCELLED"):
        if step["Status"]["State"] != "COMPLETED":
            raise SystemExit(f"step {sid} {step['Status']}")
        return step
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=48, help="input files (one map task each)")
    parser.add_argument("--task-nodes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--node-type", default="m1.medium", help="instance type of core and task nodes")
    args = parser.parse_args()

    static: list[float] = []
    elastic: list[float] = []
    with tempfile.TemporaryDirectory(prefix="resilin-elastic-") as tmp:
        proc = new_process(Path(tmp), CLOUD, SUBNET, accounts=1)
        proc.start()
        try:
            endpoints = proc.endpoints()
            emr, s3 = endpoints.client("emr"), endpoints.client("s3")
            texts = demo.corpus(files=args.files, modules=("collections", "json", "re", "pathlib", "argparse",
                                                           "typing", "subprocess", "os", "logging", "asyncio"))  # fmt: skip
            demo.upload_inputs(s3, BUCKET, texts)
            expected = demo.python_count(texts)
            print(
                f"input: {args.files} files, {sum(len(t) for t in texts.values()) / 1e6:.1f} MB", flush=True
            )
            cid = emr.run_job_flow(
                Name="elastic bench",
                ReleaseLabel="emr-7.5.0",
                Configurations=SMALL_CONTAINERS,
                Instances={
                    "InstanceGroups": [
                        {"InstanceRole": "MASTER", "InstanceType": "m5.large", "InstanceCount": 1},
                        {"InstanceRole": "CORE", "InstanceType": args.node_type, "InstanceCount": 1},
                    ],
                    "KeepJobFlowAliveWhenNoSteps": True,
                },
            )["JobFlowId"]
            wait(
                "the cluster",
                lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "WAITING",
            )
            print(f"cluster {cid} waiting", flush=True)
            task_group = None
            for i in range(args.repeat):
                sid = run_word_count(emr, s3, cid, f"static {i + 1}")
                step = wait("the static word count", lambda s=sid: finished(emr, cid, s))
                assert demo.read_output(s3, BUCKET) == expected, "static word count is wrong"
                static.append(step_seconds(step))
                print(f"static  run {i + 1}: {static[-1]:7.1f} s", flush=True)

                sid = run_word_count(emr, s3, cid, f"elastic {i + 1}")
                wait("the step to run", lambda s=sid: emr.describe_step(ClusterId=cid, StepId=s)["Step"]["Status"]["State"] == "RUNNING")  # fmt: skip
                if task_group is None:
                    task_group = emr.add_instance_groups(
                        JobFlowId=cid,
                        InstanceGroups=[
                            {
                                "InstanceRole": "TASK",
                                "InstanceType": args.node_type,
                                "InstanceCount": args.task_nodes,
                            }
                        ],  # fmt: skip
                    )["InstanceGroupIds"][0]
                else:
                    emr.modify_instance_groups(ClusterId=cid, InstanceGroups=[
                        {"InstanceGroupId": task_group, "InstanceCount": args.task_nodes}])  # fmt: skip
                added = time.monotonic()
                step = wait("the elastic word count", lambda s=sid: finished(emr, cid, s))
                groups = emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
                task = next(g for g in groups if g["Id"] == task_group)
                assert demo.read_output(s3, BUCKET) == expected, "elastic word count is wrong"
                elastic.append(step_seconds(step))
                print(f"elastic run {i + 1}: {elastic[-1]:7.1f} s (task nodes running at the end: "
                      f"{task['RunningInstanceCount']}, requested {time.monotonic() - added:.0f} s before)",
                      flush=True)  # fmt: skip
                # Back to the static size for the next round (graceful YARN decommission).
                emr.modify_instance_groups(ClusterId=cid, InstanceGroups=[
                    {"InstanceGroupId": task_group, "InstanceCount": 0}])  # fmt: skip
                wait("the task nodes to leave", lambda tg=task_group: next(
                    g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["Id"] == tg
                )["RunningInstanceCount"] == 0, every=2)  # fmt: skip
            emr.terminate_job_flows(JobFlowIds=[cid])
            wait("termination", lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"].startswith("TERMINATED"))  # fmt: skip
        finally:
            proc.stop()
            left = cloud_containers(CLOUD)
            remove_cloud(CLOUD)
            if left:
                print(f"warning: containers left behind: {left}", file=sys.stderr)

    s, e = statistics.median(static), statistics.median(elastic)
    print()
    print(
        f"word count, {args.files} input files, 1 {args.node_type} core node; "
        f"elastic: +{args.task_nodes} {args.node_type} task nodes added mid-job"
    )
    print(f"{'static (s)':>12} {'elastic (s)':>12} {'elastic/static':>15}")
    print(f"{s:12.1f} {e:12.1f} {e / s:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
