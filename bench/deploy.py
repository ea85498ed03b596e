"""Deployment benchmark: RunJobFlow → cluster ready, by phase, a word-count step, a PySpark step
and teardown, beside the same Hadoop and Spark started without Resilin, in the same run.

Starts its own ``resilin server`` on a fresh home and local cloud, runs one job flow per cluster
size (``--repeat`` times; Hadoop and Spark, a streaming word count then a PySpark word count), and
for each also the baseline of deploy_baseline.py (the same node image, configuration scripts and
step commands, run through podman directly).  Prints medians per phase, Resilin beside baseline
with their ratio:

- instances running: RunJobFlow → every instance reported running by the cloud's EC2 API
- SSH reachable: → every instance answers SSH with its pinned host key
- Hadoop configured: → every node's configuration script has run and started its daemons
- Hadoop ready: → HDFS out of safe mode with every DataNode, YARN with every NodeManager
- word count / pyspark: the step's StartDateTime → EndDateTime as DescribeStep reports it
- teardown: the last step's end → TERMINATED (Resilin ships the nodes' logs to LogUri first)

and, for the configuration phase, Resilin's own time beyond waiting for daemons.

Usage: .venv/bin/python bench/deploy.py [--sizes 1 2 4] [--repeat 1] [--no-baseline]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from resilin import demo
from resilin.jobflows.store import JobFlowStore
from resilin.service.process import new_process
from resilin.service.redis_server import PrivateRedis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_baseline  # noqa: E402

SUBNET = "10.78.21.0/24"
PYSPARK_WORD_COUNT = """
import sys
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

source, output = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.appName("word count").getOrCreate()
words = spark.read.text(source).select(F.explode(F.split(F.lower("value"), "[^a-z']+")).alias("word"))
words.where(F.col("word") != "").groupBy("word").count().write.mode("overwrite").csv(output)
spark.stop()
"""


def pyspark_args(bucket: str, output: str) -> list[str]:
    return [
        "spark-submit", "--deploy-mode", "cluster",
        f"s3://{bucket}/jobs/wordcount.py", f"s3://{bucket}/input/", f"s3://{bucket}/{output}/",
    ]  # fmt: skip


PHASES = ("instances_running", "ssh_ready", "hadoop_configured", "hadoop_ready")


def one_run(proc, store: JobFlowStore, nodes: int, bucket: str) -> dict[str, float]:
    endpoints = proc.endpoints()
    emr = endpoints.client("emr")
    cid = emr.run_job_flow(
        Name=f"bench {nodes} nodes",
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{bucket}/logs/",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": nodes,
            "KeepJobFlowAliveWhenNoSteps": False,
        },
        Steps=[
            demo.streaming_step(bucket),
            {
                "Name": "pyspark",
                "ActionOnFailure": "TERMINATE_CLUSTER",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": pyspark_args(bucket, "spark-output")},
            },
        ],
        Applications=[{"Name": "Hadoop"}, {"Name": "Spark"}],
        VisibleToAllUsers=True,
    )["JobFlowId"]
    demo.watch(emr, cid, lambda line: print("   ", line, flush=True))
    steps = {s["Name"]: s for s in emr.list_steps(ClusterId=cid)["Steps"]}
    for step in steps.values():
        if step["Status"]["State"] != "COMPLETED":
            raise SystemExit(f"step {step['Name']} failed on {nodes} node(s): {step['Status']}")
    doc = store.get_cluster(cid)
    assert doc is not None
    created = doc["timeline"]["created"]
    phases = doc.get("phases", {})
    result = {name: phases[name] - created for name in PHASES}
    # Of the configuration phase, what Resilin itself spent (rendering, SSH, bookkeeping), beyond
    # waiting for Hadoop's daemons to start and register (see resilin/cluster/lifecycle.py, configure).
    timing = doc.get("configure_timing", {})
    result["configure"] = phases["hadoop_ready"] - phases["ssh_ready"]
    result["resilin own"] = timing.get("resilin_seconds", float("nan"))
    result["daemon waits"] = timing.get("daemon_start_seconds", 0.0) + timing.get("ready_wait_seconds", 0.0)
    for column, name in (("word count", "word count"), ("pyspark", "pyspark")):
        timeline = steps[name]["Status"]["Timeline"]
        result[column] = (timeline["EndDateTime"] - timeline["StartDateTime"]).total_seconds()
    last_end = max(s["Status"]["Timeline"]["EndDateTime"] for s in steps.values()).timestamp()
    result["teardown"] = phases["terminated"] - last_end
    return result


def baseline_run(proc, nodes: int, bucket: str) -> dict[str, float]:
    endpoints = proc.endpoints()
    return deploy_baseline.one_run(
        image=proc.node_image,
        network=f"resilin-{proc.cloud}",
        subnet=SUBNET,
        storage_port=proc.storage_port,
        access_key=endpoints.access_key,
        secret_key=endpoints.secret_key,
        nodes=nodes,
        bucket=bucket,
        spark_args=pyspark_args(bucket, "baseline-spark-output"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="Resilin's figures only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="resilin-bench-") as tmp:
        proc = new_process(Path(tmp), "bench", SUBNET, accounts=1)
        proc.start()
        try:
            store = JobFlowStore(PrivateRedis(Path(tmp) / "redis").client())
            s3 = proc.endpoints().client("s3")
            demo.upload_inputs(s3, "bench", demo.corpus())
            s3.put_object(Bucket="bench", Key="jobs/wordcount.py", Body=PYSPARK_WORD_COUNT.encode())
            outputs = ["output/", "spark-output/", "baseline-output/", "baseline-spark-output/"]
            results: dict[int, list[dict[str, float]]] = {}
            baselines: dict[int, list[dict[str, float]]] = {}
            for nodes in args.sizes:
                for i in range(args.repeat):
                    print(f"-- {nodes} node(s), run {i + 1}/{args.repeat}: Resilin", flush=True)
                    deploy_baseline.clear_output(s3, "bench", outputs)
                    results.setdefault(nodes, []).append(one_run(proc, store, nodes, "bench"))
                    if args.no_baseline:
                        continue
                    print(f"-- {nodes} node(s), run {i + 1}/{args.repeat}: baseline (no Resilin)", flush=True)
                    deploy_baseline.clear_output(s3, "bench", outputs)
                    baselines.setdefault(nodes, []).append(baseline_run(proc, nodes, "bench"))
        finally:
            proc.stop()

    print()
    print(f"Seconds, median of {args.repeat} run(s): phases since RunJobFlow (baseline: since the first")
    print("podman run); steps: their own duration; teardown: last step's end -> instances gone")
    columns = [*PHASES, "word count", "pyspark", "teardown"]
    print(f"{'nodes':>5} {'phase':<18} {'Resilin':>9} {'baseline':>9} {'ratio':>7}")
    for nodes, runs in results.items():
        for column in columns:
            ours = statistics.median(r[column] for r in runs)
            base_runs = baselines.get(nodes)
            if base_runs:
                base = statistics.median(r[column] for r in base_runs)
                ratio = f"{ours / base:7.2f}" if base > 0.05 else f"{'-':>7}"
                print(f"{nodes:>5} {column:<18} {ours:9.1f} {base:9.1f} {ratio}")
            else:
                print(f"{nodes:>5} {column:<18} {ours:9.1f} {'':>9} {'':>7}")
    print()
    print(
        "Configuration phase (SSH ready -> Hadoop ready), seconds: Resilin's own time beyond waiting for daemons"
    )
    own = ["configure", "daemon waits", "resilin own"]
    print(f"{'nodes':>5} " + " ".join(f"{c:>18}" for c in own))
    for nodes, runs in results.items():
        print(f"{nodes:>5} " + " ".join(f"{statistics.median(r[c] for r in runs):18.2f}" for c in own))
    return 0


if __name__ == "__main__":
    sys.exit(main())
