"""resilin-s3-put-tree, the nodes' log shipper without a JVM (hadoop_templates/s3_put_tree.py):
run as the nodes run it, with real curl against the real storage server, its settings read from
an S3A core-site.xml."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from resilin.hadoop_templates import s3_put_tree
from resilin.storage.testing import ALICE, StorageProcess, boto3_client

SCRIPT = str(resources.files("resilin.hadoop_templates") / "s3_put_tree.py")


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    with StorageProcess(tmp_path_factory.mktemp("s3"), [ALICE]) as running:
        boto3_client(running.endpoint, ALICE).create_bucket(Bucket="put-tree")
        yield running


def core_site(conf: Path, settings: dict[str, str]) -> None:
    conf.mkdir(parents=True, exist_ok=True)
    props = "".join(f"<property><name>{k}</name><value>{v}</value></property>" for k, v in settings.items())
    (conf / "core-site.xml").write_text(f'<?xml version="1.0"?><configuration>{props}</configuration>')


def put_tree(conf: Path, *args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HADOOP_CONF_DIR": str(conf)}
    command = [sys.executable, SCRIPT, *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True)


def settings(endpoint: str, secret: str = ALICE.secret_key) -> dict[str, str]:
    return {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": "us-east-1",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.access.key": ALICE.access_key,
        "fs.s3a.secret.key": secret,
    }


def test_every_file_of_the_tree_lands_under_the_prefix_byte_for_byte(storage, tmp_path):
    tree = tmp_path / "logs"
    (tree / "node/i-1/applications/hadoop").mkdir(parents=True)
    (tree / "containers/application_1_0001/container_1_0001_01_000001").mkdir(parents=True)
    files = {
        "node/i-1/applications/hadoop/namenode.log.gz": gzip.compress(b"namenode says hello\n" * 500),
        "containers/application_1_0001/container_1_0001_01_000001/stdout.gz": gzip.compress(b"out\n"),
        "containers/application_1_0001/container_1_0001_01_000001/syslog.gz": os.urandom(300_000),
    }
    for name, data in files.items():
        (tree / name).write_bytes(data)
    os.symlink("/etc/passwd", tree / "node/i-1/link.gz")  # a link a job planted is not followed
    core_site(tmp_path / "conf", settings(storage.endpoint))
    done = put_tree(tmp_path / "conf", tree, "s3://put-tree/logs/j-TREE/")
    assert done.returncode == 0, done.stderr
    s3 = boto3_client(storage.endpoint, ALICE)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="put-tree", Prefix="logs/j-TREE/")["Contents"]}
    assert keys == {f"logs/j-TREE/{name}" for name in files}
    for name, data in files.items():
        assert s3.get_object(Bucket="put-tree", Key=f"logs/j-TREE/{name}")["Body"].read() == data


def test_a_refused_upload_is_reported_so_the_caller_falls_back(storage, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/controller.gz").write_bytes(b"x")
    core_site(tmp_path / "conf", settings(storage.endpoint, secret="not-the-secret"))
    done = put_tree(tmp_path / "conf", tmp_path / "logs", "s3://put-tree/refused/")
    assert done.returncode == 1
    assert "403" in done.stderr
    s3 = boto3_client(storage.endpoint, ALICE)
    assert "Contents" not in s3.list_objects_v2(Bucket="put-tree", Prefix="refused/")


def test_a_nodes_logs_are_compressed_and_chosen_by_pattern_from_two_trees(storage, tmp_path):
    # As a node ships its logs at termination (resilin/cluster/node_logs.py): daemon logs at the
    # top of one folder, containers' logs two folders down in another.
    logs = tmp_path / "hadoop"
    container = logs / "yarn/containers/application_1_0001/container_1_0001_01_000002"
    container.mkdir(parents=True)
    daemon_log = b"2026-12-07 INFO DataNode: registered\n" * 2000
    (logs / "hadoop-datanode.log").write_bytes(daemon_log)
    (logs / "hadoop-datanode.out").write_bytes(b"ulimit -a\n")
    (logs / "gc.tmp").write_bytes(b"not a log")  # no pattern names it
    (logs / ".hidden.log").write_bytes(b"as the shell's * leaves it")
    (container / "stdout").write_bytes(b"the task's own output\n")
    (container / "deeper").mkdir()
    (container / "deeper/file").write_bytes(b"below the pattern's depth")
    os.symlink("/etc/passwd", container / "syslog")  # a link the task planted is not followed
    os.mkfifo(container / "stderr")  # nor is a pipe read (it would never end)
    core_site(tmp_path / "conf", settings(storage.endpoint))
    done = put_tree(
        tmp_path / "conf", "--gzip",
        "--include", "*.log", "--include", "*.out", logs, "s3://put-tree/gz/node/i-1/applications/hadoop/",
        "--include", "application_*/container_*/*", logs / "yarn/containers", "s3://put-tree/gz/containers",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    s3 = boto3_client(storage.endpoint, ALICE)
    stored = {
        o["Key"]: gzip.decompress(s3.get_object(Bucket="put-tree", Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket="put-tree", Prefix="gz/")["Contents"]
    }
    assert stored == {
        "gz/node/i-1/applications/hadoop/hadoop-datanode.log.gz": daemon_log,
        "gz/node/i-1/applications/hadoop/hadoop-datanode.out.gz": b"ulimit -a\n",
        "gz/containers/application_1_0001/container_1_0001_01_000002/stdout.gz": b"the task's own output\n",
    }


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--gzip"],
        ["only-a-folder"],
        ["folder", "/not/s3"],
        ["--include", "*.log"],
        ["folder", "s3://b/p", "--include", "*.log"],
        ["--unknown", "folder", "s3://b/p"],
    ],
)
def test_a_command_line_that_names_no_tree_is_refused_with_the_usage(tmp_path, args):
    done = put_tree(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: resilin-s3-put-tree")


def test_nothing_to_ship_succeeds_without_settings(tmp_path):
    (tmp_path / "logs").mkdir()
    done = put_tree(
        tmp_path / "no-conf",
        "--gzip",
        tmp_path / "logs",
        "s3://put-tree/none/",
        tmp_path / "gone",
        "s3://put-tree/none/",
    )
    assert done.returncode == 0, done.stderr


def test_without_s3a_settings_it_fails_without_trying(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/a.gz").write_bytes(b"x")
    core_site(tmp_path / "conf", {"fs.defaultFS": "hdfs://10.0.0.1:8020"})
    done = put_tree(tmp_path / "conf", tmp_path / "logs", "s3://put-tree/none/")
    assert done.returncode == 1
    assert "no usable S3A settings" in done.stderr


def test_secrets_reach_curl_on_its_standard_input_not_its_command_line(storage, tmp_path):
    # curl through a wrapper that records its command line, then runs the real curl
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = subprocess.run(["which", "curl"], capture_output=True, text=True, check=True).stdout.strip()
    (bin_dir / "curl").write_text(f'#!/bin/sh\necho "$@" >{tmp_path}/argv\nexec {real} "$@"\n')
    (bin_dir / "curl").chmod(0o755)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/stderr.gz").write_bytes(b"x")
    core_site(tmp_path / "conf", settings(storage.endpoint))
    env = {**os.environ, "HADOOP_CONF_DIR": str(tmp_path / "conf"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path / "logs"), "s3://put-tree/argv/"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "argv").read_text()
    assert "--config -" in argv
    assert ALICE.secret_key not in argv and ALICE.access_key not in argv


@pytest.mark.parametrize(
    ("endpoint", "path_style", "ssl", "url"),
    [
        ("http://10.0.0.1:9000", "true", "false", "http://10.0.0.1:9000/bkt/a/b%20c.gz"),
        ("s3.eu-west-1.amazonaws.com", "false", "true", "https://bkt.s3.eu-west-1.amazonaws.com/a/b%20c.gz"),
        ("minio.local:9000", "true", "false", "http://minio.local:9000/bkt/a/b%20c.gz"),
    ],
)
def test_object_urls_follow_the_addressing_style(endpoint, path_style, ssl, url):
    conf = {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.path.style.access": path_style,
        "fs.s3a.connection.ssl.enabled": ssl,
    }
    assert s3_put_tree.object_url(conf, "bkt", "a/b c.gz") == url
