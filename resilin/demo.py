"""The end-to-end word count: storage, RunJobFlow, Hadoop streaming, and the output checked.

Everything goes through the public APIs (boto3's S3 and EMR clients, and the AWS
CLI), exactly as a user would drive Amazon EMR.  Used by ``resilin demo`` and by
the end-to-end tests.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import pydoc
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
from botocore.config import Config

MAPPER = """#!/usr/bin/env python3
import re, sys
for line in sys.stdin:
    for word in re.findall(r"[a-z']+", line.lower()):
        print(f"{word}\\t1")
"""

REDUCER = """#!/usr/bin/env python3
import sys
current, total = None, 0
for line in sys.stdin:
    word, _, count = line.rstrip("\\n").partition("\\t")
    if word != current:
        if current is not None:
            print(f"{current}\\t{total}")
        current, total = word, 0
    total += int(count)
if current is not None:
    print(f"{current}\\t{total}")
"""

FAILING_MAPPER = "#!/usr/bin/env python3\nimport sys\nsys.exit(1)\n"

# A PySpark step in the shape of EMR's getting-started tutorial: from a CSV of food establishment
# inspections (name, ..., violation_type, ...), the ten establishments with the most RED
# violations, written as CSV with a header.  Its arguments are the tutorial's.
SPARK_RED_VIOLATIONS = """
import argparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

parser = argparse.ArgumentParser()
parser.add_argument("--data_source")
parser.add_argument("--output_uri")
args = parser.parse_args()
spark = SparkSession.builder.appName("red violations").getOrCreate()
inspections = spark.read.option("header", "true").csv(args.data_source)
top = (
    inspections.where(F.col("violation_type") == "RED")
    .groupBy("name")
    .agg(F.count("*").alias("total_red_violations"))
    .orderBy(F.desc("total_red_violations"))
    .limit(10)
)
top.write.option("header", "true").mode("overwrite").csv(args.output_uri)
spark.stop()
"""
INSPECTION_COLUMNS = (
    "name",
    "inspection_result",
    "inspection_closed_business",
    "violation_type",
    "violation_points",
)


def corpus(
    files: int = 4, modules: tuple[str, ...] = ("collections", "json", "re", "pathlib", "argparse")
) -> dict[str, str]:
    """A few files of English text, made from Python's own documentation so it is always at hand."""
    # pydoc.plaintext (the plain-text renderer) is missing from typeshed's pydoc.
    text = "\n".join(pydoc.render_doc(m, renderer=pydoc.plaintext) for m in modules)  # type: ignore[attr-defined]
    lines = text.splitlines()
    per = len(lines) // files + 1
    return {f"part-{i:02d}.txt": "\n".join(lines[i * per : (i + 1) * per]) + "\n" for i in range(files)}


def python_count(texts: dict[str, str]) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for text in texts.values():
        for line in text.splitlines():
            counts.update(re.findall(r"[a-z']+", line.lower()))
    return dict(counts)


@dataclass
class Endpoints:
    api: str
    storage: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.api if service == "emr" else self.storage,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )


@dataclass
class Timeline:
    """When each state was first seen, to print where the time went."""

    started: float = field(default_factory=time.monotonic)
    seen: dict[str, float] = field(default_factory=dict)

    def mark(self, what: str) -> None:
        self.seen.setdefault(what, time.monotonic() - self.started)


def upload_inputs(s3, bucket: str, texts: dict[str, str], mapper: str = MAPPER) -> None:
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    for key in _keys(s3, bucket, ""):
        s3.delete_object(Bucket=bucket, Key=key)
    for name, text in texts.items():
        s3.put_object(Bucket=bucket, Key=f"input/{name}", Body=text.encode())
    s3.put_object(Bucket=bucket, Key="mapper.py", Body=mapper.encode())
    s3.put_object(Bucket=bucket, Key="reducer.py", Body=REDUCER.encode())


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def streaming_step(bucket: str, name: str = "word count") -> dict:
    return {
        "Name": name,
        "ActionOnFailure": "TERMINATE_CLUSTER",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "hadoop-streaming",
                "-files", f"s3://{bucket}/mapper.py,s3://{bucket}/reducer.py",
                "-mapper", "mapper.py",
                "-reducer", "reducer.py",
                "-input", f"s3://{bucket}/input/",
                "-output", f"s3://{bucket}/output/",
            ],
        },
    }  # fmt: skip


def run_job_flow(
    emr, bucket: str, core: int = 2, name: str = "resilin word count", instance_type: str = "m5.xlarge"
) -> str:
    return emr.run_job_flow(
        Name=name,
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{bucket}/logs/",
        Instances={
            "MasterInstanceType": instance_type,
            "SlaveInstanceType": instance_type,
            "InstanceCount": 1 + core,
            "KeepJobFlowAliveWhenNoSteps": False,
        },
        Steps=[streaming_step(bucket)],
        Applications=[{"Name": "Hadoop"}],
        VisibleToAllUsers=True,
    )["JobFlowId"]


def watch(
    emr, cluster_id: str, say: Callable[[str], None], timeout: float = 1800
) -> tuple[dict, dict, Timeline]:
    """Poll DescribeCluster and DescribeStep until the cluster ends; report every state change."""
    timeline = Timeline()
    step_id = emr.list_steps(ClusterId=cluster_id)["Steps"][-1]["Id"]
    last_cluster = last_step = None
    deadline = time.monotonic() + timeout
    while True:
        cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        step = emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]
        status = cluster["Status"]
        reason = status.get("StateChangeReason", {})
        shown = (status["State"], reason.get("Message"))
        if shown != last_cluster:
            timeline.mark(status["State"])
            say(f"{_clock(timeline)} cluster {cluster_id} {status['State']:<22} {reason.get('Message', '')}")
            last_cluster = shown
        if step["Status"]["State"] != last_step:
            timeline.mark("step " + step["Status"]["State"])
            say(f"{_clock(timeline)} step    {step_id} {step['Status']['State']:<22} {step['Name']}")
            last_step = step["Status"]["State"]
        if status["State"] in ("TERMINATED", "TERMINATED_WITH_ERRORS"):
            return cluster, step, timeline
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster {cluster_id} still {status['State']} after {timeout:.0f}s")
        time.sleep(1)


def _clock(timeline: Timeline) -> str:
    return f"[{time.monotonic() - timeline.started:7.1f}s]"


def read_output(s3, bucket: str, prefix: str = "output/") -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in sorted(_keys(s3, bucket, prefix)):
        if not key.rsplit("/", 1)[-1].startswith("part-"):
            continue
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for line in io.StringIO(body):
            word, _, count = line.rstrip("\n").partition("\t")
            counts[word] = counts.get(word, 0) + int(count)
    return counts


CLUSTER_PHASES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING")
ENDED = ("TERMINATED", "TERMINATED_WITH_ERRORS")


def phases_reached(timeline: Timeline) -> list[str]:
    """The cluster states reached, in order: STARTING, in which RunJobFlow creates every cluster (a
    cluster that fails within the first poll is never seen in it), then the states polling saw."""
    seen = [state for state in timeline.seen if not state.startswith("step ")]
    return seen if seen[:1] == ["STARTING"] else ["STARTING", *seen]


def summary(cluster: dict, step: dict, timeline: Timeline) -> list[str]:
    """Where the time went, one line per phase the cluster reached."""
    t = timeline.seen
    ended = cluster["Status"]["State"]
    step_times = step["Status"].get("Timeline", {})
    rows: list[tuple[str, float | None]] = [
        ("instances launched and reachable (STARTING)", t.get("BOOTSTRAPPING")),
        (
            "Hadoop configured and started (BOOTSTRAPPING)",
            t["RUNNING"] - t["BOOTSTRAPPING"] if "RUNNING" in t and "BOOTSTRAPPING" in t else None,
        ),
        (
            "word-count step",
            (step_times["EndDateTime"] - step_times["StartDateTime"]).total_seconds()
            if "StartDateTime" in step_times and "EndDateTime" in step_times
            else None,
        ),
        (
            "teardown (TERMINATING)",
            t[ended] - t["TERMINATING"] if ended in t and "TERMINATING" in t else None,
        ),
        ("total", t.get(ended)),
    ]
    return [
        f"  {name:<48} {secs:7.1f} s" if secs is not None else f"  {name:<48} {'not reached':>9}"
        for name, secs in rows
    ]


def report(result: dict, say: Callable[[str], None] = print) -> bool:
    """Say how a word count went; True when its output matched Python's own count."""
    cluster, step = result["cluster"], result["step"]
    status = cluster["Status"]
    reason = status.get("StateChangeReason", {})
    say("time spent:")
    for line in summary(cluster, step, result["timeline"]):
        say(line)
    say(f"cluster ended {status['State']} ({reason.get('Code', '-')}: {reason.get('Message', '-')})")
    counts = result.get("counts")
    if counts is None:
        failure = step["Status"].get("FailureDetails", {}).get("Message") or "no failure details"
        say(f"phases the cluster reached: {' -> '.join(phases_reached(result['timeline'])) or 'none'}")
        say(f"FAILED: the step ended {step['Status']['State']} ({failure})")
        return False
    expected = result["expected"]
    if counts != expected:
        wrong = sorted(set(counts.items()) ^ set(expected.items()))[:10]
        say(f"FAILED: the output differs from Python's count, e.g. {wrong}")
        return False
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    say(
        f"output matches Python's count: {len(counts)} distinct words, {sum(counts.values())} in all; top {top}"
    )
    return True


def wordcount(
    endpoints: Endpoints,
    bucket: str = "demo",
    core: int = 2,
    say: Callable[[str], None] = print,
    instance_type: str = "m5.xlarge",
) -> dict:
    s3, emr = endpoints.client("s3"), endpoints.client("emr")
    texts = corpus()
    say(
        f"uploading {sum(len(t) for t in texts.values())} bytes of text and the streaming scripts to s3://{bucket}/"
    )
    upload_inputs(s3, bucket, texts)
    cluster_id = run_job_flow(emr, bucket, core=core, instance_type=instance_type)
    say(f"RunJobFlow -> {cluster_id} (1 master + {core} core instances, {instance_type})")
    cluster, step, timeline = watch(emr, cluster_id, say)
    result = {"cluster": cluster, "step": step, "timeline": timeline, "expected": python_count(texts)}
    if step["Status"]["State"] == "COMPLETED":
        result["counts"] = read_output(s3, bucket)
    return result


def now() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def _aws(endpoints: Endpoints, *args: str) -> str:
    import os
    import shutil
    import subprocess
    import sys

    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    if aws is None:
        raise RuntimeError("the AWS CLI is not installed (pip install awscli)")
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": endpoints.access_key,
        "AWS_SECRET_ACCESS_KEY": endpoints.secret_key,
        "AWS_DEFAULT_REGION": endpoints.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    done = subprocess.run([aws, *args], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"aws {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def wordcount_with_cli(
    endpoints: Endpoints,
    home,
    bucket: str = "demo-cli",
    core: int = 2,
    say: Callable[[str], None] = print,
    instance_type: str = "m5.xlarge",
) -> dict:
    """The same word count, with the cluster created and inspected through the AWS CLI."""
    import json
    import tempfile
    from pathlib import Path

    s3 = endpoints.client("s3")
    texts = corpus()
    upload_inputs(s3, bucket, texts)
    step = (
        f"Type=STREAMING,Name=word count,ActionOnFailure=TERMINATE_CLUSTER,"
        f"Args=[-files,s3://{bucket}/mapper.py\\,s3://{bucket}/reducer.py,-mapper,mapper.py,-reducer,reducer.py,"
        f"-input,s3://{bucket}/input/,-output,s3://{bucket}/output/]"
    )
    out = _aws(
        endpoints,
        "emr", "create-cluster", "--endpoint-url", endpoints.api,
        "--name", "resilin word count (AWS CLI)", "--release-label", "emr-7.5.0",
        "--applications", "Name=Hadoop", "--instance-type", instance_type, "--instance-count", str(1 + core),
        "--log-uri", f"s3://{bucket}/logs/", "--auto-terminate", "--steps", step,
    )  # fmt: skip
    cluster_id = json.loads(out)["ClusterId"]
    say(f"aws emr create-cluster -> {cluster_id}")
    cluster, step_doc, timeline = watch(endpoints.client("emr"), cluster_id, say)
    described = json.loads(_aws(endpoints, "emr", "describe-cluster", "--endpoint-url", endpoints.api,
                                "--cluster-id", cluster_id))  # fmt: skip
    say(f"aws emr describe-cluster: {described['Cluster']['Status']['State']}")
    result = {"cluster": cluster, "step": step_doc, "timeline": timeline, "expected": python_count(texts)}
    if step_doc["Status"]["State"] == "COMPLETED":
        with tempfile.TemporaryDirectory() as tmp:
            _aws(endpoints, "s3", "cp", "--endpoint-url", endpoints.storage, "--recursive",
                 f"s3://{bucket}/output/", tmp)  # fmt: skip
            counts: dict[str, int] = {}
            for part in sorted(Path(tmp).glob("part-*")):
                for line in part.read_text().splitlines():
                    word, _, count = line.partition("\t")
                    counts[word] = counts.get(word, 0) + int(count)
        result["counts"] = counts
    return result


def leftover_instances(clouds: list[str]) -> list[str]:
    """Names of the given local clouds' containers that still exist (none should, once clusters end)."""
    import subprocess

    names: list[str] = []
    for cloud in clouds:
        done = subprocess.run(
            ["podman", "ps", "-a", "--filter", f"label=resilin.cloud={cloud}", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
        )
        names.extend(name for name in done.stdout.split() if name)
    return names
