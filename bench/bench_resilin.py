"""A whole Resilin (API, orchestrator, storage, one local cloud) for a benchmark, in a home of its own,
stopped and its cloud removed afterwards whatever happened."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service.process import ResilinProcess, new_process


@contextlib.contextmanager
def running_resilin(cloud: str, subnet: str, prefix: str) -> Iterator[ResilinProcess]:
    home = Path(tempfile.mkdtemp(prefix=prefix))
    proc = new_process(home, cloud, subnet, accounts=1)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        remove_cloud(cloud)
        shutil.rmtree(home, ignore_errors=True)


def wait_terminated(emr, cluster_ids: list[str], delay: float = 2.0) -> None:  # boto3's EMR client
    for cid in cluster_ids:
        while not emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"].startswith("TERMINATED"):
            time.sleep(delay)


def wait(what: str, check: Callable[[], Any], timeout: float = 3600, every: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; stop the benchmark with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)
