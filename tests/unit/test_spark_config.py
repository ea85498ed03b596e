"""Spark's configuration on the nodes (spark-defaults, yarn-site's shuffle service) and its steps' commands."""

from __future__ import annotations

import base64
import re

import pytest

from resilin.applications import hadoop_config
from resilin.applications.hadoop_config import ClusterSpec, NodeSpec
from resilin.applications.spark import config
from resilin.applications.spark.application import history_server_script, runs_spark
from resilin.errors import ValidationError
from resilin.steps import commands as steps
from resilin.steps import yarn_apps
from tests.node_image_shell import sourced


def _spec(spark: bool, configurations: list | None = None) -> ClusterSpec:
    nodes = [
        NodeSpec("ip-10-0-0-2", "10.0.0.2", "MASTER", "m-host", "m5.xlarge", "ig-M"),
        NodeSpec("ip-10-0-0-3", "10.0.0.3", "CORE", "c-host", "m5.xlarge", "ig-C"),
    ]
    spec = ClusterSpec("j-1", nodes, "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge")
    spec.spark = spark
    spec.configurations = configurations or []
    return spec


def _written(script: str) -> dict[str, str]:
    """The files a node script writes (path → text), from its base64 heredocs."""
    found = re.findall(
        r"base64 -d >>? ?\"?([^\"\s]+)\"? <<'RESILIN_EOF_B64'\n(.*?)\nRESILIN_EOF_B64", script, re.S
    )
    return {path: base64.b64decode(data).decode() for path, data in found}


def _properties(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_executors_are_sized_from_the_workers_map_container():
    assert config.executor_sizing(3072, 4) == (2688, 384, 2)
    assert config.executor_sizing(6144, 8) == (5530, 614, 2)
    assert config.executor_sizing(512, 1) == (512, 384, 1)


def test_spark_defaults_are_emrs_and_the_classification_wins():
    props = config.defaults("10.0.0.2", (2688, 384, 2), {"spark.executor.cores": "1", "spark.x": "y"})
    assert props["spark.master"] == "yarn"
    assert (
        props["spark.eventLog.dir"] == props["spark.history.fs.logDirectory"] == "hdfs:///var/log/spark/apps"
    )
    assert props["spark.yarn.historyServer.address"] == "10.0.0.2:18080"
    assert props["spark.dynamicAllocation.enabled"] == props["spark.shuffle.service.enabled"] == "true"
    assert props["spark.executor.memory"] == "2688m" and props["spark.executor.cores"] == "1"
    assert props["spark.x"] == "y"
    assert props["spark.hadoop.fs.s3a.committer.name"] == "directory"
    assert props["spark.sql.sources.commitProtocolClass"].endswith("PathOutputCommitProtocol")
    for scheme in ("s3", "s3a"):
        assert props[f"spark.hadoop.mapreduce.outputcommitter.factory.scheme.{scheme}"] == (
            "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory"
        )


def test_spark_jobs_jvms_take_the_jit_options_of_hadoops_job_jvms():
    """Spark's driver and executors get the node image's JIT options of a job's JVMs, which a
    job's extraJavaOptions (after them) or the classification can override."""
    image = sourced("jvm-jit.sh", 'echo "$HADOOP_JOB_JIT_OPTS"')
    assert "-XX:Tier4InvocationThreshold=100000" in image.split()
    props = config.defaults("10.0.0.2", (2688, 384, 2), {})
    expected = f"{image} {config.CDS_OPTIONS}"
    assert props["spark.driver.defaultJavaOptions"] == props["spark.executor.defaultJavaOptions"] == expected
    props = config.defaults("10.0.0.2", (2688, 384, 2), {"spark.executor.defaultJavaOptions": ""})
    assert props["spark.executor.defaultJavaOptions"] == ""


def test_spark_jvms_map_the_images_class_data_archive_with_its_jars_first():
    """Drivers, ApplicationMasters and executors get the archive's options, and Spark's jars at
    the front of their class path (where Java needs them to use the archive); a job's own
    extraClassPath, or Spark's switch that puts its jars right after that, keeps them off."""
    props = config.defaults("10.0.0.2", (2688, 384, 2), {})
    assert (
        props["spark.driver.extraClassPath"]
        == props["spark.executor.extraClassPath"]
        == "/usr/lib/spark/jars/*"
    )
    assert props["spark.yarn.am.extraJavaOptions"] == config.CDS_OPTIONS
    assert "-XX:SharedArchiveFile=/usr/lib/spark/spark.jsa" in config.CDS_OPTIONS.split()
    own = config.defaults("10.0.0.2", (2688, 384, 2), {"spark.driver.extraClassPath": "/opt/lib/*"})
    assert own["spark.driver.extraClassPath"] == "/opt/lib/*"
    first = config.defaults("10.0.0.2", (2688, 384, 2), {config.USER_CLASS_PATH_FIRST: "true"})
    assert "spark.driver.extraClassPath" not in first and "spark.executor.extraClassPath" not in first


def test_spark_jvms_take_the_class_data_sharing_options_the_image_gives_its_shells(tmp_path):
    """The options in spark-defaults are those the image's jvm-cds.sh gives Hadoop's launchers and
    Spark's history server for the same archive; without the archive file there are none."""
    archive = tmp_path / "spark.jsa"
    assert sourced("jvm-cds.sh", 'cds_options "$1"', archive) == ""
    archive.write_bytes(b"")
    expected = config.CDS_OPTIONS.replace(config.CDS_ARCHIVE, str(archive))
    assert sourced("jvm-cds.sh", 'cds_options "$1"', archive) == expected


def test_spark_defaults_file_escapes_as_java_properties():
    text = config.defaults_file({"spark.a": "x y", "spark.b": " lead", "a=b": "c\nd", "spark.c": "C:\\tmp"})
    lines = text.splitlines()[1:]
    assert lines == ["spark.a x y", "spark.b \\ lead", "a\\=b c\\nd", "spark.c C:\\\\tmp"]


def test_a_spark_cluster_gets_spark_defaults_and_the_shuffle_service_on_every_node():
    spec = _spec(True, [{"Classification": "spark-defaults", "Properties": {"spark.executor.cores": "3"}}])
    for node in spec.nodes:
        written = _written(hadoop_config.render_node_script(spec, node))
        defaults = _properties(written["/etc/spark/conf/spark-defaults.conf"])
        assert defaults["spark.master"] == "yarn" and defaults["spark.executor.cores"] == "3"
        yarn_site = written["$conf/yarn-site.xml"]
        assert "<value>mapreduce_shuffle,spark_shuffle</value>" in yarn_site
        assert "<value>io.resilin.spark.YarnShuffleService</value>" in yarn_site
        assert "<value>/usr/lib/spark/yarn/lib/*</value>" in yarn_site


def test_a_hadoop_cluster_has_no_spark_configuration():
    spec = _spec(False)
    written = _written(hadoop_config.render_node_script(spec, spec.nodes[1]))
    assert not any(path.startswith("/etc/spark") for path in written)
    assert "spark_shuffle" not in written["$conf/yarn-site.xml"]


def test_the_cluster_runs_spark_when_its_applications_name_it():
    assert runs_spark({"applications": [{"Name": "Hadoop"}, {"Name": "Spark"}]})  # type: ignore[typeddict-item]
    assert not runs_spark({"applications": [{"Name": "Hadoop", "Version": "3.5.0"}]})  # type: ignore[typeddict-item]


def test_the_history_server_script_makes_the_event_log_directory_and_prints_the_version_last():
    script = history_server_script("10.0.0.2")
    # through WebHDFS (no JVM), the event log directory open to every user as EMR has it
    assert (
        "http://10.0.0.2:9870/webhdfs/v1/var/log/spark/apps?op=MKDIRS&user.name=hadoop&permission=1777"
        in script
    )
    assert "start-history-server.sh" in script and "http://10.0.0.2:18080/" in script
    assert script.rstrip().endswith("cat /usr/lib/spark/VERSION")


def test_spark_submit_steps_run_their_arguments_as_given():
    args = [
        "spark-submit", "--deploy-mode", "cluster", "--conf", "spark.app.name=a b; rm -rf /",
        "--py-files", "s3://b/lib.zip", "s3://b/job.py", "--output_uri", "s3://b/out $(x)",
    ]  # fmt: skip
    step = {"jar": "command-runner.jar", "args": args, "main_class": None}
    command = steps.step_command(step, "/w")  # type: ignore[arg-type]
    assert command == (
        "spark-submit --deploy-mode cluster --conf 'spark.app.name=a b; rm -rf /' "
        "--py-files s3://b/lib.zip s3://b/job.py --output_uri 's3://b/out $(x)'"
    )
    example = {"jar": "command-runner.jar", "args": ["spark-example", "SparkPi", "10"], "main_class": None}
    assert steps.step_command(example, "/w") == "spark-example SparkPi 10"  # type: ignore[arg-type]


def test_spark_clients_log_names_the_applications_a_step_submitted():
    stderr = (
        "26/12/04 18:00:01 INFO Client: Submitted application application_1733330000000_0003\n"
        "26/12/04 18:00:02 INFO Client: Application report for application_1733330000000_0003 (state: ACCEPTED)\n"
    )
    assert yarn_apps.submitted_applications(stderr) == ["application_1733330000000_0003"]


def test_maximize_resource_allocation_gives_each_worker_one_executor_as_emr_does():
    spec = _spec(True, [{"Classification": "spark", "Properties": {"maximizeResourceAllocation": "true"}}])
    spec.nodes.append(NodeSpec("ip-10-0-0-4", "10.0.0.4", "CORE", "c2-host", "m5.xlarge", "ig-C"))
    written = _written(hadoop_config.render_node_script(spec, spec.nodes[0]))
    defaults = _properties(written["/etc/spark/conf/spark-defaults.conf"])
    sizing = hadoop_config.sizing_for("m5.xlarge")  # 12 GiB and 4 vCPUs for YARN on each worker
    memory = int(defaults["spark.executor.memory"].removesuffix("m"))
    overhead = int(defaults["spark.executor.memoryOverhead"].removesuffix("m"))
    assert memory + overhead == sizing.nodemanager_memory_mb and overhead >= memory // 10
    assert defaults["spark.executor.cores"] == "4"
    assert defaults["spark.executor.instances"] == "2"  # the two core nodes
    assert defaults["spark.default.parallelism"] == "16"  # twice the vCPUs YARN has
    assert int(defaults["spark.driver.memory"].removesuffix("m")) < sizing.am_memory_mb


def test_maximize_leaves_the_executor_count_to_dynamic_allocation_asked_for_explicitly():
    hardware = config.Hardware(worker_memory_mb=6144, worker_vcores=2, workers=3, driver_room_mb=3072)
    assert config.maximized(hardware, {})["spark.executor.instances"] == "3"
    assert "spark.executor.instances" not in config.maximized(
        hardware, {"spark.dynamicAllocation.enabled": "true"}
    )
    # spark-defaults still wins over what maximizing computed.
    props = config.defaults(
        "10.0.0.2", (2688, 384, 2), {"spark.executor.cores": "1"}, config.maximized(hardware, {})
    )
    assert props["spark.executor.cores"] == "1" and props["spark.executor.memory"] == "5585m"


def test_maximize_off_or_absent_changes_nothing():
    off = _spec(True, [{"Classification": "spark", "Properties": {"maximizeResourceAllocation": "False"}}])
    plain = _spec(True)
    assert hadoop_config.render_node_script(off, off.nodes[1]) == hadoop_config.render_node_script(
        plain, plain.nodes[1]
    )


def test_spark_env_exports_and_log4j2_lines_follow_the_images_files():
    spec = _spec(
        True,
        [
            {"Classification": "spark-env", "Configurations": [
                {"Classification": "export", "Properties": {"PYSPARK_PYTHON": "/usr/bin/python3", "X": "a b"}}]},
            {"Classification": "spark-log4j2", "Properties": {"logger.spark.level": "warn"}},
        ],
    )  # fmt: skip
    script = hadoop_config.render_node_script(spec, spec.nodes[1])
    written = _written(script)
    assert written["/etc/spark/conf/spark-env.sh"] == (
        '# spark-env classification\nexport PYSPARK_PYTHON="/usr/bin/python3"\nexport X="a b"\n'
    )
    assert (
        written["/etc/spark/conf/log4j2.properties"]
        == "# spark-log4j2 classification\nlogger.spark.level=warn\n"
    )
    # Each time from the image's copy, so a later reconfiguration does not pile lines up.
    assert 'cp "/etc/spark/conf/spark-env.sh.image" "/etc/spark/conf/spark-env.sh"' in script
    assert 'base64 -d >>"/etc/spark/conf/spark-env.sh"' in script


def test_spark_classifications_are_checked_as_emr_checks_them():
    check = hadoop_config.check_configurations
    check([{"Classification": "spark", "Properties": {"maximizeResourceAllocation": "TRUE"}}])
    refused = [
        ([{"Classification": "spark", "Properties": {"maximizeResourceAllocation": "yes"}}], "true or false"),
        ([{"Classification": "spark", "Properties": {"spark.executor.memory": "2g"}}], "not valid in classification 'spark'"),
        ([{"Classification": "spark-env", "Properties": {"A": "b"}}], "nested 'export'"),
        ([{"Classification": "spark-log4j2", "Configurations": [{"Classification": "export"}]}], "not valid within"),
    ]  # fmt: skip
    for configurations, message in refused:
        with pytest.raises(ValidationError, match=message):
            check(configurations)
    with pytest.raises(ValidationError, match="Spark, which is not among"):
        check([{"Classification": "spark-defaults", "Properties": {"spark.x": "1"}}], ["Hadoop"])
