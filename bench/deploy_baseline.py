"""The deployment benchmark's baseline: the same Hadoop, configuration and job, without Resilin.

Containers of the node image are started directly with podman (no EC2 API, no SSH, no cluster
worker) on the local cloud's network, at addresses its instances do not get; each node's
configuration script, rendered by the same templates Resilin uses, runs through ``podman exec``
on every node at once, as Resilin runs them; the same readiness check and Spark history server
start follow, then the same word-count and PySpark step commands on the master, reading and writing the same storage; teardown is
``podman rm``.  What remains between the two is what Resilin adds: provisioning through the
cloud's API, SSH, bookkeeping, log shipping and the state machine.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from resilin import demo
from resilin.applications.hadoop_config import (
    ClusterSpec,
    NodeSpec,
    render_node_script,
    render_wait_ready,
)
from resilin.applications.spark.application import history_server_script
from resilin.steps.commands import step_command

READY_TIMEOUT = 600


def _podman(*args: str, stdin: str | None = None, timeout: float = 900) -> str:
    done = subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}…: {done.stderr.strip()[-800:]}")
    return done.stdout


def _exec(container: str, script: str, timeout: float = 900) -> str:
    return _podman("exec", "-i", "-u", "hadoop", container, "bash", "-s", stdin=script, timeout=timeout)


def _step(master: str, step_id: str, args: list[str]) -> float:
    """Runs a command-runner.jar step's command on the master as Resilin would; its duration."""
    step = {"id": step_id, "jar": "command-runner.jar", "args": args, "properties": {}}
    workdir = f"/tmp/{step_id}"
    command = step_command(step, workdir)  # type: ignore[arg-type]
    started = time.monotonic()
    _exec(master, f"set -e\nmkdir -p {workdir}\ncd {workdir}\n{command} >{workdir}/out 2>&1\n")
    return time.monotonic() - started


def one_run(
    image: str,
    network: str,
    subnet: str,
    storage_port: int,
    access_key: str,
    secret_key: str,
    nodes: int,
    bucket: str,
    spark_args: list[str],
    instance_type: str = "m5.xlarge",
) -> dict[str, float]:
    """Phases in seconds since the start, and the word count's duration, as deploy.py reports them."""
    net = ipaddress.ip_network(subnet)
    gateway = str(next(net.hosts()))
    # From the top of the subnet down: the local cloud hands its instances addresses from the bottom.
    ips = [str(net.broadcast_address - 10 - i) for i in range(nodes)]
    names = [f"resilin-baseline-{i}" for i in range(nodes)]
    specs = [
        NodeSpec(
            name="ip-" + ip.replace(".", "-"),
            ip=ip,
            role="MASTER" if i == 0 else "CORE",
            hostname=names[i],
            instance_type=instance_type,
            group_id="ig-MASTER" if i == 0 else "ig-CORE",
        )
        for i, ip in enumerate(ips)
    ]
    spec = ClusterSpec(
        cluster_id="j-BASELINE",
        nodes=specs,
        storage_endpoint=f"http://{gateway}:{storage_port}",
        region="us-east-1",
        access_key=access_key,
        secret_key=secret_key,
        worker_type=instance_type,
        spark=True,
    )
    spec.replication = spec.dfs_replication
    _podman("rm", "--force", "--ignore", *names)
    result: dict[str, float] = {}
    t0 = time.monotonic()

    def start(i: int) -> None:
        _podman(
            "run", "--detach", "--name", names[i], "--hostname", names[i],
            "--network", f"{network}:ip={ips[i]}", image,
        )  # fmt: skip

    try:
        with ThreadPoolExecutor(max_workers=nodes) as pool:
            list(pool.map(start, range(nodes)))
        result["instances_running"] = time.monotonic() - t0
        result["ssh_ready"] = result["instances_running"]  # no SSH: podman exec
        with ThreadPoolExecutor(max_workers=nodes) as pool:
            list(pool.map(lambda i: _exec(names[i], render_node_script(spec, specs[i])), range(nodes)))
        result["hadoop_configured"] = time.monotonic() - t0
        # The readiness check and Spark's history server side by side, as Resilin runs them.
        with ThreadPoolExecutor(max_workers=2) as pool:
            waits = [
                pool.submit(_exec, names[0], render_wait_ready(spec, READY_TIMEOUT), READY_TIMEOUT + 30),
                pool.submit(_exec, names[0], history_server_script(ips[0])),
            ]
            for wait in waits:
                wait.result()
        result["hadoop_ready"] = time.monotonic() - t0
        streaming = [
            a.replace(f"s3://{bucket}/output/", f"s3://{bucket}/baseline-output/")
            for a in demo.streaming_step(bucket)["HadoopJarStep"]["Args"]
        ]  # the same command as Resilin's step, its output beside Resilin's
        result["word count"] = _step(names[0], "s-BASELINE1", streaming)
        result["pyspark"] = _step(names[0], "s-BASELINE2", spark_args)
    finally:
        ended = time.monotonic()
        _podman("rm", "--force", "--time", "1", *names)
        result["teardown"] = time.monotonic() - ended
    return result


def clear_output(s3, bucket: str, prefixes: Sequence[str]) -> None:
    for prefix in prefixes:
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
