"""Spark on a real cluster, as EMR users run it: one Spark cluster (a master and a core node)
shared by every check, its steps submitted together up front so they run back to back.

The cluster is made as Amazon's getting-started tutorial makes it, through the AWS CLI
(``create-cluster --applications Name=Spark --use-default-roles``, with a configurations file
setting ``spark-defaults``, ``spark-env`` and ``spark-log4j2``), and the tutorial's PySpark
aggregation of a CSV runs as an ``add-steps Type=Spark`` step through the CLI and as a
command-runner step through boto3; its output is compared with the same aggregation in plain
Python, and the ``spark-defaults`` property is read back from the application's environment on
the history server's REST API.  Besides: SparkPi through ``spark-example``; a PySpark word count
on ``s3://`` in client mode (seeing ``spark-env``'s export); the same job in cluster mode with
``--py-files`` and ``--conf``; a Java JAR built here, put on ``s3://`` and run with ``--class``;
a failing PySpark step that ends FAILED with its error in the step's stderr and leaves nothing
in its output (the S3A committer publishes only on success); DescribeCluster's Spark version, the
image's; a cancelled Spark step whose YARN application is killed; and the refusal of an
application Resilin does not run.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import random
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from resilin import demo
from resilin.applications.spark import config as spark_config
from resilin.service.process import cloud_containers
from tests.clusters import NODE_IMAGE, aws_cli, cloud_and_subnet, running_resilin, user_key_pair, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD, SUBNET = cloud_and_subnet("spk", 84)
BUCKET = "spark"
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED")

DEFAULTS_MARKER = "set-by-spark-defaults"
ENV_MARKER = "set-by-spark-env"
LOG4J2_MARKER = "[spark-log4j2]"
CONFIGURATIONS = [
    {"Classification": "spark-defaults", "Properties": {"spark.resilin.marker": DEFAULTS_MARKER}},
    {"Classification": "spark-env", "Configurations": [
        {"Classification": "export", "Properties": {"RESILIN_SPARK_ENV": ENV_MARKER}}]},
    {"Classification": "spark-log4j2", "Properties": {
        "appender.console.layout.pattern": f"%d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: {LOG4J2_MARKER} %m%n%ex"}},
]  # fmt: skip

LINE_STATS_JAVA = """
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.SparkSession;

public class LineStats {
    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().appName("line stats").getOrCreate();
        Dataset<String> lines = spark.read().textFile(args[0]);
        long count = lines.count();
        long chars = lines.javaRDD().map(String::length).reduce(Integer::sum);
        System.out.println("lines=" + count + " chars=" + chars);
        spark.stop();
    }
}
"""

WORD_COUNT = """
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

source, output = sys.argv[1], sys.argv[2]
print("spark-env:", os.environ.get("RESILIN_SPARK_ENV"))
spark = SparkSession.builder.appName("word count").getOrCreate()
words = spark.read.text(source).select(F.explode(F.split(F.lower("value"), "[^a-z']+")).alias("word"))
counts = words.where(F.col("word") != "").groupBy("word").count()
counts.write.mode("overwrite").csv(output)
spark.stop()
"""

# Cluster mode, with a helper module shipped by --py-files and a setting passed by --conf.  It
# also writes, to its third argument, whether its driver's JVM and its executors' map the image's
# class-data sharing archive.
WORD_COUNT_WITH_HELPER = """
import json
import sys

from pyspark.sql import SparkSession

import helpers

source, output, jvms = sys.argv[1], sys.argv[2], sys.argv[3]
spark = SparkSession.builder.getOrCreate()
assert spark.conf.get("spark.resilin.test.marker") == "from --conf", spark.conf.get("spark.resilin.test.marker")
lines = spark.sparkContext.textFile(source)
counts = lines.flatMap(helpers.words).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
spark.createDataFrame(counts, ["word", "count"]).write.csv(output)
mapped = {
    "driver": helpers.jvm_maps_archive(),
    "executors": lines.mapPartitions(lambda _: [helpers.jvm_maps_archive()]).collect(),
}
spark.sparkContext.parallelize([json.dumps(mapped)], 1).saveAsTextFile(jvms)
spark.stop()
"""
HELPERS = f"""
import os
import re


def words(line):
    return re.findall(r"[a-z']+", line.lower())


def jvm_maps_archive():
    \"\"\"Whether the JVM this Python process runs under (its nearest java ancestor) has the
    class-data sharing archive mapped; None outside a JVM.\"\"\"
    pid = os.getpid()
    while pid > 1:
        with open(f"/proc/{{pid}}/comm") as comm:
            if comm.read().strip() == "java":
                with open(f"/proc/{{pid}}/maps") as maps:
                    return "{spark_config.CDS_ARCHIVE}" in maps.read()
        with open(f"/proc/{{pid}}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return None
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


def inspections_csv() -> tuple[str, dict[str, int]]:
    """A CSV shaped like the tutorial's food establishment data, and its RED violations by name
    (distinct counts, so the top ten is one answer)."""
    rng = random.Random(17)
    rows, red = [], {}
    for i in range(40):
        name = f"Establishment {i:02d}, Seattle"  # a comma: the CSV quoting must hold
        red[name] = i + 1
        rows += [(name, "RED")] * (i + 1) + [
            (name, rng.choice(["BLUE", "WHITE"])) for _ in range(rng.randrange(30))
        ]
    rng.shuffle(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(demo.INSPECTION_COLUMNS)
    for name, kind in rows:
        writer.writerow([name, rng.choice(["Complete", "Incomplete"]), "FALSE", kind, rng.randrange(5, 30)])
    return out.getvalue(), red


def tutorial_output(s3, prefix: str) -> list[tuple[str, int]]:
    """The rows the aggregation wrote under ``prefix`` (header lines skipped), in file order."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    rows = []
    for obj in sorted(listed, key=lambda o: o["Key"]):
        if obj["Key"].rsplit("/", 1)[-1].startswith("part-"):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
            reader = csv.reader(io.StringIO(body))
            assert next(reader, None) in (None, ["name", "total_red_violations"])
            rows += [(name, int(count)) for name, count in reader]
    return rows


def emr_cli(resilin, *args: str) -> dict:
    done = aws_cli(
        resilin, "emr", args[0], "--endpoint-url", f"http://127.0.0.1:{resilin.api_port}", *args[1:]
    )
    return json.loads(done.stdout) if done.stdout.strip() else {}


@pytest.fixture(scope="module")
def spark(resilin):
    """The cluster, made as the tutorial makes it; its steps all added at once; their inputs."""
    endpoints = resilin.endpoints()
    s3, emr = endpoints.client("s3"), endpoints.client("emr")
    s3.create_bucket(Bucket=BUCKET)
    texts = demo.corpus(files=3)
    for name, text in texts.items():
        s3.put_object(Bucket=BUCKET, Key=f"input/{name}", Body=text.encode())
    inspections, red = inspections_csv()
    for key, text in {
        "jobs/health_violations.py": demo.SPARK_RED_VIOLATIONS,
        "data/food_establishment_data.csv": inspections,
        "jobs/wordcount.py": WORD_COUNT,
        "jobs/wordcount_cluster.py": WORD_COUNT_WITH_HELPER,
        "jobs/helpers.py": HELPERS,
        "jobs/failing.py": FAILING,
        "jobs/sleeper.py": SLEEPER,
    }.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    configurations = resilin.home / "spark-configurations.json"
    configurations.write_text(json.dumps(CONFIGURATIONS))
    key_pair = "spark-tutorial"
    user_key_pair(resilin, resilin.home, key_pair)
    started = time.monotonic()
    cid = emr_cli(
        resilin, "create-cluster",
        "--name", "My First EMR Cluster",
        "--release-label", "emr-7.5.0",
        "--applications", "Name=Spark",
        "--ec2-attributes", f"KeyName={key_pair}",
        "--instance-type", "m5.xlarge",
        "--instance-count", "2",
        "--use-default-roles",
        "--log-uri", f"s3://{BUCKET}/logs/",
        "--configurations", f"file://{configurations}",
    )["ClusterId"]  # fmt: skip
    tutorial_args = [
        f"s3://{BUCKET}/jobs/health_violations.py",
        "--data_source", f"s3://{BUCKET}/data/food_establishment_data.csv",
    ]  # fmt: skip
    emr_cli(
        resilin, "add-steps", "--cluster-id", cid, "--steps",
        "Type=Spark,Name=My Spark Application,ActionOnFailure=CONTINUE,"
        f"Args=[{','.join(tutorial_args)},--output_uri,s3://{BUCKET}/myOutputFolder]",
    )  # fmt: skip
    emr.add_job_flow_steps(
        JobFlowId=cid,
        Steps=[
            command_step(
                "tutorial through boto3", "spark-submit", "--deploy-mode", "cluster",
                *tutorial_args, "--output_uri", f"s3://{BUCKET}/boto3Output",
            ),
            command_step("pi", "spark-example", "SparkPi", "10"),
            command_step(
                "word count", "spark-submit", "--deploy-mode", "client",
                f"s3://{BUCKET}/jobs/wordcount.py", f"s3://{BUCKET}/input/", f"s3://{BUCKET}/output/",
            ),
            command_step(
                "word count, cluster mode", "spark-submit", "--master", "yarn", "--deploy-mode", "cluster",
                "--py-files", f"s3://{BUCKET}/jobs/helpers.py", "--conf", "spark.resilin.test.marker=from --conf",
                f"s3a://{BUCKET}/jobs/wordcount_cluster.py", f"s3a://{BUCKET}/input/", f"s3a://{BUCKET}/output-cluster/",
                f"s3a://{BUCKET}/jvms-cluster/",
            ),
            command_step("failing", "spark-submit", f"s3://{BUCKET}/jobs/failing.py"),
        ],
    )  # fmt: skip
    steps = {s["Name"]: s["Id"] for s in emr.list_steps(ClusterId=cid)["Steps"]}
    yield {"cid": cid, "steps": steps, "texts": texts, "red": red, "started": started}


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


def test_the_getting_started_tutorial_through_the_aws_cli(resilin, spark):
    emr, s3 = resilin.endpoints().client("emr"), resilin.endpoints().client("s3")
    sid = spark["steps"]["My Spark Application"]
    step = emr_cli(resilin, "describe-step", "--cluster-id", spark["cid"], "--step-id", sid)["Step"]
    # The CLI's Type=Spark shorthand: command-runner.jar and spark-submit before the Args (client
    # mode, the deploy mode EMR's spark-defaults set).
    assert step["Config"]["Jar"] == "command-runner.jar"
    assert step["Config"]["Args"][:2] == ["spark-submit", f"s3://{BUCKET}/jobs/health_violations.py"]
    step = wait_step(emr, spark["cid"], sid)
    assert step["Status"]["State"] == "COMPLETED", (
        step["Status"],
        step_log(resilin, spark["cid"], sid, "stderr")[-3000:],
    )
    expected = sorted(spark["red"].items(), key=lambda item: -item[1])[:10]
    assert tutorial_output(s3, "myOutputFolder/") == expected


def test_the_getting_started_tutorial_through_boto3(resilin, spark):
    emr, s3 = resilin.endpoints().client("emr"), resilin.endpoints().client("s3")
    sid = spark["steps"]["tutorial through boto3"]
    step = wait_step(emr, spark["cid"], sid)
    assert step["Status"]["State"] == "COMPLETED", (
        step["Status"],
        step_log(resilin, spark["cid"], sid, "stderr")[-3000:],
    )
    expected = sorted(spark["red"].items(), key=lambda item: -item[1])[:10]
    assert tutorial_output(s3, "boto3Output/") == expected
    # spark-log4j2's pattern is the one the client logged with.
    assert LOG4J2_MARKER in step_log(resilin, spark["cid"], sid, "stderr")


def test_spark_defaults_reach_the_application_seen_on_the_history_server(resilin, spark):
    emr = resilin.endpoints().client("emr")
    wait_step(emr, spark["cid"], spark["steps"]["tutorial through boto3"])
    master = emr.describe_cluster(ClusterId=spark["cid"])["Cluster"]["MasterPublicDnsName"]
    history = f"http://{master}:18080/api/v1"

    def finished_tutorial_apps() -> list[dict]:
        apps = http_json(f"{history}/applications?status=completed")
        return [a for a in apps if a["name"] == "red violations"]

    apps = wait_for(
        "the tutorial's applications on the history server",
        lambda: len(finished_tutorial_apps()) == 2 and finished_tutorial_apps(),
        timeout=180,
        interval=5,
    )
    for app in apps:
        # A cluster-mode application has attempts (its driver runs in a YARN container); the REST
        # API names an attempt's environment under its attempt id.
        attempt = app["attempts"][-1].get("attemptId")
        path = f"{app['id']}/{attempt}" if attempt else app["id"]
        environment = http_json(f"{history}/applications/{path}/environment")
        properties = dict(environment["sparkProperties"])
        assert properties["spark.resilin.marker"] == DEFAULTS_MARKER
        assert properties["spark.master"] == "yarn"
        assert properties["spark.dynamicAllocation.enabled"] == "true"
        assert properties["spark.executor.defaultJavaOptions"].startswith(spark_config.JOB_JIT_OPTIONS)
        assert app["attempts"][-1]["completed"] is True


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
    assert f"spark-env: {ENV_MARKER}" in step_log(resilin, spark["cid"], step["Id"], "stdout")
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


def test_spark_jvms_map_the_images_class_data_archive(resilin, spark):
    """The history server, and a cluster-mode application's driver and executors, map Spark's
    classes from the image's archive (the archive is mapped only when Java accepted it for the
    JVM's class path)."""
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    step = wait_step(emr, spark["cid"], spark["steps"]["word count, cluster mode"])
    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    part = s3.get_object(Bucket=BUCKET, Key="jvms-cluster/part-00000")["Body"].read().decode()
    mapped = json.loads(part)
    assert mapped["driver"] is True, mapped
    assert mapped["executors"] and all(e is True for e in mapped["executors"]), mapped
    # As the history server's user: reading another user's /proc/<pid>/maps takes CAP_SYS_PTRACE.
    master = next(c for c in _containers() if _is_master(c))
    history = _podman_exec(
        master, "grep -c spark.jsa /proc/$(pgrep -f '[d]eploy.history.HistoryServer')/maps"
    )
    assert history.strip().isdigit() and int(history) > 0, history


def test_a_failing_pyspark_step_fails_and_publishes_nothing(resilin, spark):
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    step = wait_step(emr, spark["cid"], spark["steps"]["failing"])
    assert step["Status"]["State"] == "FAILED", step["Status"]
    assert "no fifty-seven here" in step_log(resilin, spark["cid"], step["Id"], "stderr")
    # ... and in the step's logs under the cluster's LogUri, as EMR keeps them.
    key = f"logs/{spark['cid']}/steps/{step['Id']}/stderr.gz"
    pushed = wait_for(
        "the step's stderr in the LogUri", lambda: _object_or_none(s3, key), timeout=300, interval=5
    )
    assert "no fifty-seven here" in gzip.decompress(pushed).decode(errors="replace")
    # Nothing but the empty marker S3A makes for the output directory when the job sets up.
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="failed-output/").get("Contents", [])
    assert [(o["Key"], o["Size"]) for o in listed if o["Key"] != "failed-output/"] == [], listed
    assert all(o["Size"] == 0 for o in listed), listed
    # The cluster goes on (ActionOnFailure CONTINUE).
    assert emr.describe_cluster(ClusterId=spark["cid"])["Cluster"]["Status"]["State"] in (
        "RUNNING",
        "WAITING",
    )


def test_a_java_jar_built_here_runs_from_s3_with_class(resilin, spark, tmp_path):
    endpoints = resilin.endpoints()
    emr, s3 = endpoints.client("emr"), endpoints.client("s3")
    s3.put_object(Bucket=BUCKET, Key="jars/line-stats.jar", Body=build_line_stats_jar(tmp_path))
    sid = emr.add_job_flow_steps(
        JobFlowId=spark["cid"],
        Steps=[command_step(
            "jar on s3", "spark-submit", "--class", "LineStats", "--conf", "spark.dynamicAllocation.maxExecutors=1",
            f"s3://{BUCKET}/jars/line-stats.jar", f"s3://{BUCKET}/input/",
        )],
    )["StepIds"][0]  # fmt: skip
    step = wait_step(emr, spark["cid"], sid)
    assert step["Status"]["State"] == "COMPLETED", (
        step["Status"],
        step_log(resilin, spark["cid"], sid, "stderr")[-3000:],
    )
    lines = [line for text in spark["texts"].values() for line in text.splitlines()]
    expected = f"lines={len(lines)} chars={sum(map(len, lines))}"
    assert expected in step_log(resilin, spark["cid"], sid, "stdout")


def build_line_stats_jar(directory: Path) -> bytes:
    """LineStats compiled with the host's JDK against the Spark jars of the node image."""
    jars = directory / "spark-jars"
    container = subprocess.run(
        ["podman", "create", NODE_IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(["podman", "cp", f"{container}:/usr/lib/spark/jars", str(jars)], check=True)
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True)
    source = directory / "LineStats.java"
    source.write_text(LINE_STATS_JAVA)
    classes = directory / "classes"
    subprocess.run(
        ["javac", "--release", "17", "-cp", f"{jars}/*", "-d", str(classes), str(source)],
        check=True,
        capture_output=True,
    )
    jar = directory / "line-stats.jar"
    subprocess.run(["jar", "--create", "--file", str(jar), "-C", str(classes), "."], check=True)
    return jar.read_bytes()


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


def _object_or_none(s3, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except ClientError:
        return None


def http_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


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
