"""A whole Resilin (API, orchestrator, storage, one local cloud) for a benchmark, in a home of its own,
stopped and its cloud removed afterwards whatever happened."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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
