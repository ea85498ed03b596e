"""Spark benchmark: the getting-started tutorial's PySpark aggregation over a generated CSV of a few
hundred MB, on a Resilin cluster and, side by side, with ``spark-submit --master local[*]``.

- local: the same script, Spark and Python (a container of the node image, no cluster, every core
  of this machine) reading the CSV from a local file: the floor a user compares a cluster with;
- cluster: Resilin's own ``resilin server`` and local cloud, one cluster of a master and
  ``--core`` core nodes (m5.xlarge, Applications Spark) made with RunJobFlow; its ready time
  (RunJobFlow → WAITING), the upload of the CSV to Resilin's storage, then ``--repeat`` steps
  ``spark-submit --deploy-mode cluster`` reading it from ``s3://`` through S3A; each step's time
  is DescribeStep's StartDateTime → EndDateTime.

Both outputs are compared (the same ten rows).  Prints each run, the medians and the ratio
cluster / local.  On one machine the cluster's nodes share its cores: the ratio is what
Resilin's cluster costs over a local run on the same hardware, not a speed-up.

Usage: .venv/bin/python bench/spark_aggregation.py [--mb 300] [--repeat 3] [--core 2]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resilin import demo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_resilin import running_resilin, wait_terminated  # noqa: E402

CLOUD = "bspark"
SUBNET = "10.78.31.0/24"
BUCKET = "bench-spark"
NODE_IMAGE = "localhost/resilin-node:latest"
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED")


def write_inspections(path: Path, megabytes: int, seed: int = 7) -> int:
    """A CSV of inspections like the tutorial's, about ``megabytes`` MB; returns its row count."""
    rng = random.Random(seed)
    names = [f"Establishment {i:04d}" for i in range(2000)]
    weights = [1 + (i % 97) for i in range(len(names))]  # some establishments far worse than others
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(demo.INSPECTION_COLUMNS)
        while out.tell() < megabytes * 1_000_000:
            batch = io.StringIO()
            chunk = csv.writer(batch)
            for name in rng.choices(names, weights, k=10_000):
                kind = rng.choice(("RED", "BLUE", "BLUE", "WHITE"))
                chunk.writerow(
                    (name, rng.choice(("Complete", "Incomplete")), "FALSE", kind, rng.randrange(0, 30))
                )
            out.write(batch.getvalue())
            rows += 10_000
    return rows


def read_output(directory: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for part in sorted(directory.glob("part-*")):
        rows += list(csv.reader(part.open()))[1:]
    return rows


def local_run(work: Path, index: int) -> tuple[float, list[list[str]]]:
    """One spark-submit --master local[*] in a container of the node image; wall seconds, output."""
    output = work / f"local-out-{index}"
    started = time.monotonic()
    subprocess.run(
        ["podman", "run", "--rm", "--user", "hadoop", "--network", "none", "-v", f"{work}:/work",
         "--entrypoint", "/usr/local/bin/spark-submit", NODE_IMAGE,
         "--master", "local[*]", "--conf", "spark.ui.enabled=false", "--conf", "spark.eventLog.enabled=false",
         "/work/job.py", "--data_source", "file:///work/inspections.csv", "--output_uri", f"file://{'/work/' + output.name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.monotonic() - started, read_output(output)


def wait_step(emr, cid: str, sid: str, timeout: float = 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
        if step["Status"]["State"] in FINAL:
            return step
        time.sleep(2)
    raise SystemExit(f"step {sid} did not end within {timeout:.0f}s")


def cluster_output(s3, prefix: str) -> list[list[str]]:
    rows: list[list[str]] = []
    for obj in sorted(
        s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []), key=lambda o: o["Key"]
    ):
        if obj["Key"].rsplit("/", 1)[-1].startswith("part-"):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
            rows += list(csv.reader(io.StringIO(body)))[1:]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="size of the generated CSV (MB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--core", type=int, default=2, help="core nodes besides the master")
    args = parser.parse_args()
    if shutil.which("podman") is None:
        raise SystemExit("needs podman")
    work = Path(tempfile.mkdtemp(prefix="resilin-bench-spark-"))
    work.chmod(0o777)  # the container's hadoop user writes its output here
    try:
        (work / "job.py").write_text(demo.SPARK_RED_VIOLATIONS)
        data = work / "inspections.csv"
        started = time.monotonic()
        rows = write_inspections(data, args.mb)
        size = data.stat().st_size
        print(
            f"input: {size / 1e6:.0f} MB, {rows} rows (generated in {time.monotonic() - started:.0f} s)",
            flush=True,
        )

        local_times, expected = [], None
        for i in range(args.repeat):
            seconds, output = local_run(work, i)
            expected = expected or output
            assert output == expected, (output, expected)
            local_times.append(seconds)
            print(f"local[*] run {i + 1}: {seconds:6.1f} s", flush=True)

        with running_resilin(CLOUD, SUBNET, "resilin-bench-spark-") as proc:
            endpoints = proc.endpoints()
            s3, emr = endpoints.client("s3"), endpoints.client("emr")
            s3.create_bucket(Bucket=BUCKET)
            started = time.monotonic()
            s3.upload_file(str(data), BUCKET, "data/inspections.csv")
            upload = time.monotonic() - started
            print(f"upload to Resilin's storage: {upload:.1f} s ({size / upload / 1e6:.0f} MB/s)", flush=True)
            s3.put_object(Bucket=BUCKET, Key="jobs/job.py", Body=demo.SPARK_RED_VIOLATIONS.encode())
            started = time.monotonic()
            cid = emr.run_job_flow(
                Name="bench spark",
                ReleaseLabel="emr-7.5.0",
                Applications=[{"Name": "Spark"}],
                Instances={
                    "InstanceGroups": [
                        {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                        {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": args.core},
                    ],
                    "KeepJobFlowAliveWhenNoSteps": True,
                },
            )["JobFlowId"]
            while (state := emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]) != "WAITING":
                if state.startswith("TERMINATED"):
                    raise SystemExit(f"cluster {cid} ended {state}")
                time.sleep(1)
            ready = time.monotonic() - started
            print(
                f"cluster ready (RunJobFlow → WAITING), 1 master + {args.core} core: {ready:.0f} s",
                flush=True,
            )
            cluster_times = []
            for i in range(args.repeat):
                (sid,) = emr.add_job_flow_steps(
                    JobFlowId=cid,
                    Steps=[{
                        "Name": f"red violations {i + 1}",
                        "ActionOnFailure": "CONTINUE",
                        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [
                            "spark-submit", "--deploy-mode", "cluster", f"s3://{BUCKET}/jobs/job.py",
                            "--data_source", f"s3://{BUCKET}/data/inspections.csv",
                            "--output_uri", f"s3://{BUCKET}/out-{i}/"]},
                    }],
                )["StepIds"]  # fmt: skip
                step = wait_step(emr, cid, sid)
                if step["Status"]["State"] != "COMPLETED":
                    raise SystemExit(f"step {sid} ended {step['Status']}")
                timeline = step["Status"]["Timeline"]
                seconds = (timeline["EndDateTime"] - timeline["StartDateTime"]).total_seconds()
                assert cluster_output(s3, f"out-{i}/") == expected, (
                    "the cluster's output differs from local[*]'s"
                )
                cluster_times.append(seconds)
                print(f"cluster run {i + 1}: {seconds:6.1f} s", flush=True)
            emr.terminate_job_flows(JobFlowIds=[cid])
            wait_terminated(emr, [cid])

        local, cluster = statistics.median(local_times), statistics.median(cluster_times)
        print(
            f"median local[*] {local:.1f} s, cluster {cluster:.1f} s: cluster / local = {cluster / local:.2f}×"
        )
        print(f"cluster ready {ready:.0f} s; input {size / 1e6:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
