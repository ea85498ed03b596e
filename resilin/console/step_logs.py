"""A step's four logs (controller, stdout, stderr, syslog) for the console, from a byte offset.

While the cluster runs they are read on its master, where the step writes them, so a running
step's output is tailed live over the cluster's own SSH session; once the cluster is gone they
are read from LogUri, where the step shipped them gzipped when it ended (as EMR keeps them).
"""

from __future__ import annotations

import base64
import gzip
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from resilin.clouds.ssh import Node, SshError
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, StepDoc
from resilin.steps import commands
from resilin.steps.yarn_apps import submitted_applications

NAMES = ("controller", "stdout", "stderr", "syslog")
CHUNK = 256 * 1024  # bytes per answer: a long log arrives over several polls


class LogUnavailable(Exception):
    """Nothing to show (yet); the message says why."""


@dataclass
class LogChunk:
    data: bytes
    offset: int  # where the next read starts
    complete: bool  # the step has ended and this is the end of its log
    source: str  # "master" or "LogUri"
    applications: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "Data": self.data.decode("utf-8", errors="replace"),
            "Offset": self.offset,
            "Complete": self.complete,
            "Source": self.source,
            "Applications": self.applications,
        }


def _ended(step: StepDoc) -> bool:
    return step["state"] in states.FINAL_STEP_STATES


def from_master(master: Node, step: StepDoc, name: str, offset: int) -> LogChunk:
    """The log as the step writes it on the master, from ``offset``."""
    path = commands.log_paths(step["id"])[name]
    quoted = shlex.quote(path)
    ended = _ended(step)  # read before the log: an end seen now means the log is whole
    # The size first, then the bytes in base64 (SSH output is read as text; offsets count bytes).
    script = (
        f"[ -f {quoted} ] || exit 3; stat -c %s {quoted}; "
        f"tail -c +{offset + 1} {quoted} | head -c {CHUNK} | base64 -w0"
    )
    try:
        result = master.run(script, timeout=20)
    except SshError as exc:
        raise LogUnavailable(f"The cluster's master did not answer: {exc}") from None
    if result.exit_status == 3:
        raise LogUnavailable(f"The step has not written its {name} yet.")
    if result.exit_status != 0:
        raise LogUnavailable(f"Reading the {name} on the master failed: {result.stderr.strip()[:200]}")
    size_line, _, encoded = result.stdout.partition("\n")
    size, data = int(size_line or "0"), base64.b64decode(encoded.strip())
    next_offset = offset + len(data)
    return LogChunk(data, next_offset, ended and next_offset >= size, "master")


def from_log_uri(client: object, log_uri: str, step: StepDoc, name: str, offset: int) -> LogChunk:
    """The log the step shipped to LogUri when it ended (gzipped), from ``offset``."""
    bucket, _, prefix = log_uri.removeprefix("s3://").removeprefix("s3a://").partition("/")
    key = f"{prefix.rstrip('/')}/{step['cluster_id']}/steps/{step['id']}/{name}.gz".lstrip("/")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
    except (ClientError, BotoCoreError) as exc:
        raise LogUnavailable(f"s3://{bucket}/{key} could not be read: {exc}") from None
    whole = gzip.decompress(body)
    data = whole[offset : offset + CHUNK]
    next_offset = offset + len(data)
    return LogChunk(data, next_offset, next_offset >= len(whole), "LogUri")


def read(
    cluster: ClusterDoc,
    step: StepDoc,
    name: str,
    offset: int,
    master: Callable[[], Node | None],
    storage: Callable[[ClusterDoc], object],
) -> LogChunk:
    """``name`` of ``step`` from ``offset``: on the live master if there is one, else from LogUri.

    The YARN applications the step submitted come with it (from its stderr and syslog, where
    the Hadoop client logs each submission).
    """
    if name not in NAMES:
        raise LogUnavailable(f"A step has no log named {name!r}; its logs are {', '.join(NAMES)}.")
    if step["state"] == states.PENDING:
        raise LogUnavailable("The step has not started.")
    node = master()
    if node is not None:
        chunk = from_master(node, step, name, offset)
    elif cluster.get("log_uri"):
        chunk = from_log_uri(storage(cluster), cluster["log_uri"] or "", step, name, offset)
    else:
        raise LogUnavailable("The cluster has ended and had no LogUri, so its step logs are gone.")
    chunk.applications = list(step.get("yarn_application_ids") or []) or submitted_applications(
        chunk.data.decode("utf-8", errors="replace")
    )
    return chunk
