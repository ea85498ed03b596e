"""Hadoop reading a big object: from Resilin's storage through S3A, and from HDFS, on one cluster.

A cluster of a master and one core node (m5.xlarge) runs steps that read a 1.8 GB object with
``hadoop fs -cat … > /dev/null``: once from ``s3a://`` (Resilin's storage, S3A's ranged GETs),
once from ``hdfs://`` after copying it in, then two readers of the S3A object at once (their rates
and Jain's fairness index).  Each step times its own read (bash's clock around the command), so the
step machinery is not counted.  The original Cumulus measured 83 MB/s for one reader and an
unfair share for two (Bresnahan et al., "Cumulus: an open source storage cloud for science").

Usage: .venv/bin/python bench/storage_hadoop_read.py [--size-mb 1800] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_resilin import running_resilin, wait_terminated  # noqa: E402

CLOUD = "bs3aread"
SUBNET = "10.78.23.0/24"
BUCKET = "bench-read"
TIMED = re.compile(r"READ (\S+) (\d+) bytes in (\d+) ms")


def timed_read(label: str, path: str) -> str:
    """Shell that reads ``path`` to /dev/null and prints how long it took."""
    return (
        f"s=${{EPOCHREALTIME/./}}; n=$(hadoop fs -cat {path} | wc -c); e=${{EPOCHREALTIME/./}}; "
        f'echo "READ {label} $n bytes in $(( (e - s) / 1000 )) ms"'
    )


def step(name: str, script: str) -> dict:
    return {
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }


def run_step(emr, home: Path, cid: str, name: str, script: str) -> list[tuple[str, int, float]]:
    sid = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step(name, script)])["StepIds"][0]
    while True:
        state = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"]
        if state in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(1)
    out = (home / "logs" / cid / "steps" / sid / "stdout").read_text()
    if state != "COMPLETED":
        err = (home / "logs" / cid / "steps" / sid / "stderr").read_text()
        raise SystemExit(f"step {name} {state}: {err[-800:]}")
    return [(m.group(1), int(m.group(2)), int(m.group(3)) / 1000) for m in TIMED.finditer(out)]


def jain(rates: list[float]) -> float:
    return sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1800)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1_000_000

    with running_resilin(CLOUD, SUBNET, "resilin-bench-s3a-") as proc:
        home = proc.home
        endpoints = proc.endpoints()
        emr, s3 = endpoints.client("emr"), endpoints.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        source = home / "big.bin"
        with source.open("wb") as f:
            block = os.urandom(8 * 1024 * 1024)
            for offset in range(0, size, len(block)):
                f.write(block[: min(len(block), size - offset)])
        s3.upload_file(
            str(source), BUCKET, "big.bin", Config=TransferConfig(multipart_chunksize=64 * 1024 * 1024)
        )
        source.unlink()
        cid = emr.run_job_flow(
            Name="bench s3a read",
            ReleaseLabel="emr-7.5.0",
            Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge",
                       "InstanceCount": 2, "KeepJobFlowAliveWhenNoSteps": True},
        )["JobFlowId"]  # fmt: skip
        print(f"cluster {cid} starting …", flush=True)
        emr.get_waiter("cluster_running").wait(ClusterId=cid, WaiterConfig={"Delay": 2, "MaxAttempts": 900})
        s3a = f"s3a://{BUCKET}/big.bin"
        run_step(emr, home, cid, "copy into HDFS", f"hadoop fs -cp {s3a} hdfs:///big.bin")

        rates: dict[str, list[float]] = {"S3A, one reader": [], "HDFS, one reader": []}
        pairs: list[list[float]] = []
        for _ in range(args.repeat):
            for label, path in (("S3A, one reader", s3a), ("HDFS, one reader", "hdfs:///big.bin")):
                [(_, got, seconds)] = run_step(emr, home, cid, label, timed_read("one", path))
                assert got == size, f"read {got} bytes of {size}"
                rates[label].append(got / 1e6 / seconds)
            both = run_step(emr, home, cid, "two readers",
                            f"({timed_read('a', s3a)}) & ({timed_read('b', s3a)}) & wait")  # fmt: skip
            pairs.append([got / 1e6 / seconds for _, got, seconds in both])
        print(f"\n{args.size_mb} MB object, hadoop fs -cat on a cluster node, median of {args.repeat}:")
        for label, values in rates.items():
            print(f"  {label:22} {statistics.median(values):8.1f} MB/s")
        ratio = statistics.median(rates["S3A, one reader"]) / statistics.median(rates["HDFS, one reader"])
        print(f"  S3A / HDFS             {ratio:8.2f}x")
        each = [statistics.median(sorted(p)[i] for p in pairs) for i in range(2)]
        fairness = statistics.median(jain(p) for p in pairs)
        print(
            f"  S3A, two readers       {each[0]:8.1f} and {each[1]:.1f} MB/s, Jain's fairness {fairness:.3f}"
        )
        print("  (Cumulus, for reference: 83 MB/s for one reader, an unfair share for two)")
        emr.terminate_job_flows(JobFlowIds=[cid])
        wait_terminated(emr, [cid])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
