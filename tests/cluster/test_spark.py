"""Spark on a real cluster, as EMR users run it: one Spark cluster (a master and a core node)
shared by every check, its steps submitted together up front so they run back to back.

SparkPi through ``spark-example``; a PySpark word count read from and written to ``s3://`` in
client mode, checked through boto3 against the input; the same job in cluster mode with
``--py-files`` and ``--conf``; a JAR on ``s3://`` run with ``--class``; a failing PySpark step
that ends FAILED and leaves nothing in its output (the S3A committer publishes only on success);
DescribeCluster's Spark version, the image's; a cancelled Spark step whose YARN application is
killed; and the refusal of an application Resilin does not run.
"""

from __future__ import annotations

import collections
import csv
import io
import re
import shutil
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from resilin import demo
from resilin.service.process import cloud_containers
from tests.clusters import NODE_IMAGE, cloud_and_subnet, running_resilin, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD, SUBNET = cloud_and_subnet("spk", 84)
BUCKET = "spark"
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED")

WORD_COUNT = """
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

source, output = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.appName("word count").getOrCreate()
words = spark.read.text(source).select(F.explode(F.split(F.lower("value"), "[^a-z']+")).alias("word"))
counts = words.where(F.col("word") != "").groupBy("word").count()
counts.write.mode("overwrite").csv(output)
spark.stop()
"""

# Cluster mode, with a helper module shipped by --py-files and a setting passed by --conf.
WORD_COUNT_WITH_HELPER = """
import sys

from pyspark.sql import SparkSession

import helpers

source, output = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.getOrCreate()
assert spark.conf.get("spark.resilin.test.marker") == "from --conf", spark.conf.get("spark.resilin.test.marker")
lines = spark.sparkContext.textFile(source)
counts = lines.flatMap(helpers.words).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
spark.createDataFrame(counts, ["word", "count"]).write.csv(output)
spark.stop()
"""
HELPERS = """
import re


def words(line):
    return re.findall(r"[a-z']+", line.lower())
"""

FAILING = """
from pyspark.sql import SparkSession
from pyspark.sql.functions import udf

spark = SparkSession.builder.appName("failing").getOrCreate()


@udf("long")
def explode_on_57(n):
    if n == 57:
        raise ValueError("no fifty-seven here")
    return n


spark.range(100).select(explode_on_57("id").alias("n")).write.csv("s3://spark/failed-output/")
"""

# Runs until cancelled: one task that sleeps (in cluster mode, so the application outlives the
# killed spark-submit and only Resilin's `yarn application -kill` stops it).
SLEEPER = """
import time

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("sleeper").getOrCreate()
spark.sparkContext.parallelize([1], 1).foreach(lambda _: time.sleep(3600))
"""


def command_step(name: str, *args: str, on_failure: str = "CONTINUE") -> dict:
    return {
        "Name": name,
        "ActionOnFailure": on_failure,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": list(args)},
    }


def wait_step(emr, cid: str, sid: str, timeout: float = 1200) -> dict:
    return wait_for(
        f"step {sid}",
        lambda: (s := emr.describe_step(ClusterId=cid, StepId=sid)["Step"])["Status"]["State"] in FINAL and s,
        timeout=timeout,
        interval=3,
    )


def step_log(resilin, cid: str, sid: str, name: str) -> str:
    return (resilin.home / "logs" / cid / "steps" / sid / name).read_text(errors="replace")


def csv_counts(s3, prefix: str) -> dict[str, int]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    counts: dict[str, int] = {}
    for obj in listed:
        if obj["Key"].rsplit("/", 1)[-1].startswith("part-"):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
            for word, count in csv.reader(io.StringIO(body)):
                counts[word] = counts.get(word, 0) + int(count)
    return counts


@pytest.fixture(scope="module")
def resilin():
    yield from running_resilin(CLOUD, SUBNET)


@pytest.fixture(scope="module")
def spark(resilin):
    """The cluster, its steps all added at once, and the input the word counts read."""
    endpoints = resilin.endpoints()
    s3, emr = endpoints.client("s3"), endpoints.client("emr")
    s3.create_bucket(Bucket=BUCKET)
    texts = demo.corpus(files=3)
    for name, text in texts.items():
        s3.put_object(Bucket=BUCKET, Key=f"input/{name}", Body=text.encode())
    for key, text in {
        "jobs/wordcount.py": WORD_COUNT,
        "jobs/wordcount_cluster.py": WORD_COUNT_WITH_HELPER,
        "jobs/helpers.py": HELPERS,
        "jobs/failing.py": FAILING,
        "jobs/sleeper.py": SLEEPER,
    }.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    started = time.monotonic()
    cid = emr.run_job_flow(
        Name="spark",
        ReleaseLabel="emr-7.5.0",
        Applications=[{"Name": "Hadoop"}, {"Name": "Spark"}],
        LogUri=f"s3://{BUCKET}/logs/",
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        Steps=[
            command_step("pi", "spark-example", "SparkPi", "10"),
            command_step(
                "word count", "spark-submit", "--deploy-mode", "client",
                f"s3://{BUCKET}/jobs/wordcount.py", f"s3://{BUCKET}/input/", f"s3://{BUCKET}/output/",
            ),
            command_step(
                "word count, cluster mode", "spark-submit", "--master", "yarn", "--deploy-mode", "cluster",
                "--py-files", f"s3://{BUCKET}/jobs/helpers.py", "--conf", "spark.resilin.test.marker=from --conf",
                f"s3a://{BUCKET}/jobs/wordcount_cluster.py", f"s3a://{BUCKET}/input/", f"s3a://{BUCKET}/output-cluster/",
            ),
            command_step("failing", "spark-submit", f"s3://{BUCKET}/jobs/failing.py"),
        ],
    )["JobFlowId"]  # fmt: skip
    steps = {s["Name"]: s["Id"] for s in emr.list_steps(ClusterId=cid)["Steps"]}
    yield {"cid": cid, "steps": steps, "texts": texts, "started": started}


def test_describe_cluster_reports_the_spark_version_the_image_carries(resilin, spark):
    emr = resilin.endpoints().client("emr")
    cluster = wait_for(
        "the Spark cluster to be ready",
        lambda: (
            (c := emr.describe_cluster(ClusterId=spark["cid"])["Cluster"])["Status"]["State"]
            in ("RUNNING", "WAITING", "TERMINATED_WITH_ERRORS")
            and c
        ),
        timeout=900,
        interval=3,
    )
    assert cluster["Status"]["State"] in ("RUNNING", "WAITING"), cluster["Status"]
    print(f"Spark cluster ready in {time.monotonic() - spark['started']:.0f}s")
    image_version = subprocess.run(
        ["podman", "image", "inspect", "--format", '{{index .Labels "io.resilin.node.spark-version"}}', NODE_IMAGE],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert re.fullmatch(r"\d+\.\d+\.\d+", image_version), image_version
    assert {"Name": "Spark", "Version": image_version} in cluster["Applications"]
    assert {"Name": "Hadoop", "Version": "3.5.0"} in cluster["Applications"]


def test_spark_pi_runs_through_spark_example(resilin, spark):
    emr = resilin.endpoints().client("emr")
    step = wait_step(emr, spark["cid"], spark["steps"]["pi"])
    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    assert re.search(r"Pi is roughly 3\.1\d*", step_log(resilin, spark["cid"], step["Id"], "stdout"))
    # The YARN application of the step, named in its log, as for MapReduce.
    assert re.search(
        r"Submitted application application_\d+_\d+", step_log(resilin, spark["cid"], step["Id"], "stderr")
    )


def test_pyspark_word_count_reads_and_writes_s3(resilin, spark):
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    step = wait_step(emr, spark["cid"], spark["steps"]["word count"])
    assert step["Status"]["State"] == "COMPLETED", (
        step["Status"],
        step_log(resilin, spark["cid"], step["Id"], "stderr")[-3000:],
    )
    expected = collections.Counter(
        w for t in spark["texts"].values() for w in re.findall(r"[a-z']+", t.lower())
    )
    assert csv_counts(s3, "output/") == dict(expected)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="output/")["Contents"]]
    assert "output/_SUCCESS" in keys
    assert not [k for k in keys if "_temporary" in k or "__magic" in k], keys


def test_cluster_mode_with_py_files_and_conf(resilin, spark):
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    step = wait_step(emr, spark["cid"], spark["steps"]["word count, cluster mode"])
    assert step["Status"]["State"] == "COMPLETED", (
        step["Status"],
        step_log(resilin, spark["cid"], step["Id"], "stderr")[-3000:],
    )
    expected = collections.Counter(
        w for t in spark["texts"].values() for w in re.findall(r"[a-z']+", t.lower())
    )
    assert csv_counts(s3, "output-cluster/") == dict(expected)


def test_a_failing_pyspark_step_fails_and_publishes_nothing(resilin, spark):
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    step = wait_step(emr, spark["cid"], spark["steps"]["failing"])
    assert step["Status"]["State"] == "FAILED", step["Status"]
    assert "no fifty-seven here" in step_log(resilin, spark["cid"], step["Id"], "stderr")
    # Nothing but the empty marker S3A makes for the output directory when the job sets up.
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="failed-output/").get("Contents", [])
    assert [(o["Key"], o["Size"]) for o in listed if o["Key"] != "failed-output/"] == [], listed
    assert all(o["Size"] == 0 for o in listed), listed
    # The cluster goes on (ActionOnFailure CONTINUE).
    assert emr.describe_cluster(ClusterId=spark["cid"])["Cluster"]["Status"]["State"] in (
        "RUNNING",
        "WAITING",
    )


def test_a_jar_on_s3_runs_with_class(resilin, spark):
    """The examples JAR, taken from the image and put in storage, run as a user's own JAR."""
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    jar = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "cat", NODE_IMAGE, "/usr/lib/spark/examples/jars/spark-examples.jar"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="jars/pi.jar", Body=jar)
    sid = emr.add_job_flow_steps(
        JobFlowId=spark["cid"],
        Steps=[command_step(
            "jar on s3", "spark-submit", "--deploy-mode", "cluster", "--class", "org.apache.spark.examples.SparkPi",
            "--conf", "spark.dynamicAllocation.maxExecutors=1", f"s3://{BUCKET}/jars/pi.jar", "4",
        )],
    )["StepIds"][0]  # fmt: skip
    step = wait_step(emr, spark["cid"], sid)
    assert step["Status"]["State"] == "COMPLETED", (
        step["Status"],
        step_log(resilin, spark["cid"], sid, "stderr")[-3000:],
    )
    assert "final status: SUCCEEDED" in step_log(resilin, spark["cid"], sid, "stderr")


def test_cancelling_a_spark_step_kills_its_yarn_application(resilin, spark):
    emr = resilin.endpoints().client("emr")
    cid = spark["cid"]
    sid = emr.add_job_flow_steps(
        JobFlowId=cid,
        Steps=[
            command_step(
                "sleeper",
                "spark-submit",
                "--deploy-mode",
                "cluster",
                "--name",
                "sleeper",
                f"s3://{BUCKET}/jobs/sleeper.py",
            )
        ],
    )["StepIds"][0]
    master = next(c for c in _containers() if _is_master(c))

    def running_app() -> str | None:
        listed = _podman_exec(master, "yarn application -list -appStates RUNNING 2>/dev/null")
        found = re.findall(r"(application_\d+_\d+)\s+sleeper", listed)
        return found[0] if found else None

    app = wait_for("the sleeper's application to run", running_app, timeout=900, interval=5)
    emr.cancel_steps(ClusterId=cid, StepIds=[sid])
    step = wait_step(emr, cid, sid, timeout=300)
    assert step["Status"]["State"] == "CANCELLED", step["Status"]
    report = wait_for(
        "the sleeper's application to be killed",
        lambda: (
            (r := _podman_exec(master, f"yarn application -status {app} 2>/dev/null"))
            and re.search(r"State : (KILLED|FAILED|FINISHED)", r)
            and r
        ),
        timeout=300,
        interval=5,
    )
    assert "State : KILLED" in report, report


def test_an_application_resilin_does_not_run_is_refused(resilin):
    emr = resilin.endpoints().client("emr")
    with pytest.raises(ClientError) as refused:
        emr.run_job_flow(
            Name="hive",
            ReleaseLabel="emr-7.5.0",
            Applications=[{"Name": "Spark"}, {"Name": "Hive"}],
            Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1},
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "Hive" in error["Message"]


def _containers() -> list[str]:
    return cloud_containers(CLOUD)


def _podman_exec(container: str, command: str) -> str:
    done = subprocess.run(
        ["podman", "exec", "--user", "hadoop", container, "bash", "-lc", command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def _is_master(container: str) -> bool:
    return '"isMaster": true' in _podman_exec(container, "cat /var/lib/info/instance.json")
