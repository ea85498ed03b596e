"""Deployment benchmark: RunJobFlow → cluster ready, by phase, for 1, 2 and 4 nodes, and the word-count step.

Starts its own ``resilin server`` on a fresh home and local cloud, runs one word-count
job flow per cluster size (``--repeat`` times), and prints medians per phase:

- instances running: RunJobFlow → every instance reported running by the cloud's EC2 API
- SSH reachable: → every instance answers SSH with its pinned host key
- Hadoop configured: → every node's configuration script has run and started its daemons
- Hadoop ready: → HDFS out of safe mode with every DataNode, YARN with every NodeManager
- word count: the step's StartDateTime → EndDateTime as DescribeStep reports it

and, for the configuration phase, Resilin's own time beyond waiting for daemons: the phase
less the slowest node's daemon starts, bootstrap actions and the readiness wait.

Usage: .venv/bin/python bench/deploy.py [--sizes 1 2 4] [--repeat 1]
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

PHASES = ("instances_running", "ssh_ready", "hadoop_configured", "hadoop_ready")


def one_run(proc, store: JobFlowStore, nodes: int, bucket: str) -> dict[str, float]:
    endpoints = proc.endpoints()
    emr = endpoints.client("emr")
    cid = demo.run_job_flow(emr, bucket, core=nodes - 1, name=f"bench {nodes} nodes")
    cluster, step, _ = demo.watch(emr, cid, lambda line: print("   ", line, flush=True))
    if step["Status"]["State"] != "COMPLETED":
        raise SystemExit(f"the word count failed on {nodes} node(s): {step['Status']}")
    doc = store.get_cluster(cid)
    created = doc["timeline"]["created"]
    phases = doc.get("phases", {})
    result = {name: phases[name] - created for name in PHASES}
    # Of the configuration phase, what Resilin itself spent (rendering, SSH, bookkeeping), beyond
    # waiting for Hadoop's daemons to start and register (see resilin/cluster/lifecycle.py, configure).
    timing = doc.get("configure_timing", {})
    result["configure"] = phases["hadoop_ready"] - phases["ssh_ready"]
    result["resilin own"] = timing.get("resilin_seconds", float("nan"))
    result["daemon waits"] = timing.get("daemon_start_seconds", 0.0) + timing.get("ready_wait_seconds", 0.0)
    timeline = step["Status"]["Timeline"]
    result["word count"] = (timeline["EndDateTime"] - timeline["StartDateTime"]).total_seconds()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="resilin-bench-") as tmp:
        proc = new_process(Path(tmp), "bench", "10.78.21.0/24", accounts=1)
        proc.start()
        try:
            store = JobFlowStore(PrivateRedis(Path(tmp) / "redis").client())
            s3 = proc.endpoints().client("s3")
            demo.upload_inputs(s3, "bench", demo.corpus())
            results: dict[int, list[dict[str, float]]] = {}
            for nodes in args.sizes:
                for i in range(args.repeat):
                    print(f"-- {nodes} node(s), run {i + 1}/{args.repeat}", flush=True)
                    for key in [
                        o["Key"]
                        for o in s3.list_objects_v2(Bucket="bench", Prefix="output/").get("Contents", [])
                    ]:
                        s3.delete_object(Bucket="bench", Key=key)
                    results.setdefault(nodes, []).append(one_run(proc, store, nodes, "bench"))
        finally:
            proc.stop()

    columns = [*PHASES, "word count"]
    own = ["configure", "daemon waits", "resilin own"]
    print()
    print(
        "Deployment time, seconds since RunJobFlow (median of",
        args.repeat,
        "run(s)); word count: step duration",
    )
    print(f"{'nodes':>5} " + " ".join(f"{c:>18}" for c in columns))
    for nodes, runs in results.items():
        print(f"{nodes:>5} " + " ".join(f"{statistics.median(r[c] for r in runs):18.1f}" for c in columns))
    print()
    print(
        "Configuration phase (SSH ready -> Hadoop ready), seconds: Resilin's own time beyond waiting for daemons"
    )
    print(f"{'nodes':>5} " + " ".join(f"{c:>18}" for c in own))
    for nodes, runs in results.items():
        print(f"{nodes:>5} " + " ".join(f"{statistics.median(r[c] for r in runs):18.2f}" for c in own))
    return 0


if __name__ == "__main__":
    sys.exit(main())
