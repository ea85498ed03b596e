"""Rendering of the node script: sizing, EMR classifications, bootstrap actions, step commands.

The rules that need no shell; the rendered shell itself is checked by bash in
tests/service/test_hadoop_config.py and run on clusters in tests/cluster/test_hadoop_cluster.py.
"""

from __future__ import annotations

import pytest

from resilin.applications.hadoop_config import check_configurations, env_files, overrides_from, sizing_for
from resilin.errors import ValidationError
from resilin.jobflows import releases
from resilin.steps import commands as steps


def test_sizing_follows_the_instance_type():
    xl, large = sizing_for("m5.xlarge"), sizing_for("m5.large")
    assert (xl.nodemanager_memory_mb, xl.map_memory_mb, xl.reduce_memory_mb) == (12288, 3072, 6144)
    assert (large.nodemanager_memory_mb, large.nodemanager_vcores) == (6144, 2)
    assert sizing_for("t3.micro").map_memory_mb >= 512


def test_env_exports_are_quoted_for_the_shell():
    files = env_files(overrides_from([{"Classification": "yarn-env", "Configurations": [
        {"Classification": "export", "Properties": {"YARN_OPTS": 'a "b" `c` $HOME'}}]}]))  # fmt: skip
    assert files == {"yarn-env.sh": 'export YARN_OPTS="a \\"b\\" \\`c\\` $HOME"\n'}


@pytest.mark.parametrize(
    "bad",
    [
        [{"Classification": "hive-site", "Properties": {}}],
        [{"Classification": "spark-defaults", "Configurations": [{"Classification": "export"}]}],
        [{"Classification": "core-site", "Configurations": [{"Classification": "export"}]}],
        [{"Classification": "hadoop-env", "Properties": {"X": "1"}}],
    ],
)
def test_unknown_or_misplaced_classifications_are_refused(bad):
    with pytest.raises(ValidationError):
        check_configurations(bad)


def test_step_commands():
    jar_step = {"jar": "s3://b/app.jar", "args": ["in", "out"], "main_class": "org.example.Main"}
    command = steps.step_command(jar_step, "/w")
    assert command.startswith("hadoop fs -copyToLocal -f s3://b/app.jar /w/app.jar && ")
    assert (
        'HADOOP_CLASSPATH=/w/app.jar"${HADOOP_CLASSPATH:+' in command
        and "hadoop org.example.Main in out" in command
    )
    runner = {"jar": "command-runner.jar", "args": ["s3-dist-cp", "--src", "s3://b/x"], "main_class": None}
    assert steps.step_command(runner, "/w") == "s3-dist-cp --src s3://b/x"
    assert steps.application_ids(
        "Submitted application application_1_0002\n", "application_1_0002 application_1_0003"
    ) == [
        "application_1_0002",
        "application_1_0003",
    ]


def test_release_catalogue():
    assert releases.release("emr-4.0.0").hadoop == releases.release("emr-7.5.0").hadoop == "3.5.0"
    assert releases.release("emr-5.7.0").version == (5, 7, 0)
    releases.check_custom_ami(False, None)  # nothing asked
    releases.check_custom_ami(True, "emr-5.7.0")
    for label in (None, "emr-5.6.1", "emr-4.9.6"):
        with pytest.raises(ValidationError, match="Custom AMI is not allowed"):
            releases.check_custom_ami(True, label)
    assert releases.applications([{"Name": "Hadoop"}], "emr-6.15.0") == [
        {"Name": "Hadoop", "Version": "3.5.0"}
    ]
    assert releases.check_ami_version("3.11") == "3.11.0"
    for bad in ("emr-1.0.0", "emr-7.99.0", "foo"):
        with pytest.raises(ValidationError):
            releases.release(bad)
    assert releases.applications([{"Name": "hadoop"}, {"Name": "spark"}], "emr-7.5.0") == [
        {"Name": "Hadoop", "Version": "3.5.0"},
        {"Name": "Spark"},
    ]
    with pytest.raises(ValidationError, match="Specified application: Hive is invalid"):
        releases.applications([{"Name": "Spark"}, {"Name": "Hive"}], "emr-7.5.0")
    with pytest.raises(ValidationError):
        releases.applications([{"Name": "Spark"}], "")  # a legacy AMI version runs Hadoop alone
    with pytest.raises(ValidationError):
        releases.check_ami_version("9.9")
