"""Bootstrap actions: the scripts a cluster runs on every node, in order, before Hadoop starts.

Scripts on ``s3://`` are read by Resilin from its own storage and carried inside the
node's configuration script (one SSH session per node, no extra fetch on the node);
``file:/`` scripts are already on the node.  Each runs as the ``hadoop`` user (who
may sudo, so package installs work) from its own directory, its output kept under
``/var/log/bootstrap-actions/<n>/`` as on EMR, then fetched by Resilin and shipped
to LogUri.
"""

from __future__ import annotations

import gzip
import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from resilin.aws.sigv4 import Credentials
from resilin.clouds.ssh import Node, SshError
from resilin.cluster import node_data
from resilin.jobflows.documents import BootstrapActionDoc

log = logging.getLogger(__name__)

LOG_ROOT = "/var/log/bootstrap-actions"
WORK_ROOT = "/var/lib/bootstrap-actions"
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
# Exit status of the node script when a bootstrap action failed (see configure-node.sh.j2).
FAILED_EXIT_STATUS = 90

Fetch = Callable[[str, str], bytes]  # (bucket, key) → bytes


class BootstrapError(Exception):
    pass


def split_s3(uri: str) -> tuple[str, str] | None:
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("s3", "s3n", "s3a"):
        return None
    bucket, _, key = rest.partition("/")
    return bucket, key


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if uri.startswith("file:"):
        return uri[len("file:") :]
    return uri if uri.startswith("/") else None


def render(actions: list[BootstrapActionDoc], fetch: Fetch) -> str:
    """The bash that runs ``actions`` in order; it exits non-zero on the first that fails."""
    if not actions:
        return ""
    lines = [f"sudo mkdir -p {LOG_ROOT} {WORK_ROOT} && sudo chown hadoop:hadoop {LOG_ROOT} {WORK_ROOT}"]
    for n, action in enumerate(actions, start=1):
        script = action["ScriptBootstrapAction"]
        path, args = script["Path"], script.get("Args", [])
        name = action.get("Name", f"action {n}")
        work, logs = f"{WORK_ROOT}/{n}", f"{LOG_ROOT}/{n}"
        lines.append(f"# bootstrap action {n}: {node_data.comment_text(name)}")
        lines.append(f"mkdir -p {work} {logs}")
        s3 = split_s3(path)
        if s3 is not None:
            try:
                body = fetch(*s3)
            except Exception as exc:
                raise BootstrapError(f"Bootstrap action {n} ({name}): could not read {path}: {exc}") from None
            if len(body) > MAX_SCRIPT_BYTES:
                raise BootstrapError(f"Bootstrap action {n} ({name}): {path} is larger than 4 MiB")
            lines.append(node_data.write_file(f"{work}/script", body))
            lines.append(f"chmod 755 {work}/script")
            command = f"{work}/script"
        else:
            local = _local_path(path)
            if local is None:
                raise BootstrapError(
                    f"Bootstrap action {n} ({name}): {path} is neither an s3:// nor a file:/ location"
                )
            command = f"{shlex.quote(local)}"
        argv = " ".join(shlex.quote(a) for a in args)
        lines.append(
            f"(cd {work} && {command} {argv}) >{logs}/stdout 2>{logs}/stderr </dev/null"
            f" || {{ rc=$?; echo {shlex.quote(f'bootstrap action {n} ({name}) failed')}"
            f'" with exit status $rc: $(tail -c 400 {logs}/stderr)" >&2; exit $rc; }}'
        )
    return "\n".join(lines)


def keep_logs(node: Node, count: int, local_dir: Path, upload: Callable[[str, bytes], None] | None) -> None:
    """Copy each bootstrap action's stdout/stderr from the node into ``local_dir`` and to LogUri.

    ``upload(relative_name, gzipped_bytes)`` ships one file; actions that never ran have no logs.
    """
    for n in range(1, count + 1):
        for name in ("stdout", "stderr"):
            try:
                data = node.read_file(f"{LOG_ROOT}/{n}/{name}")
            except (OSError, SshError):
                continue
            target = local_dir / str(n) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if upload is not None:
                try:
                    upload(f"{n}/{name}.gz", gzip.compress(data))
                except Exception as exc:  # logs are a courtesy; the cluster's fate does not hang on them
                    log.warning("could not ship bootstrap action log %s/%s: %s", n, name, exc)


def storage_client(
    endpoint: str, credentials: Credentials, region: str, path_style: bool = True
) -> Any:  # boto3 is untyped
    """boto3's S3 client on the cluster's storage, as the cluster's account."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path" if path_style else "virtual"}, retries={"max_attempts": 3}
        ),
    )


def fetcher(s3: Any) -> Fetch:
    return lambda bucket, key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def log_uploader(s3: Any, log_uri: str | None, prefix: str) -> Callable[[str, bytes], None] | None:
    """Ships files under ``<LogUri>/<prefix>/bootstrap-actions/``, EMR's layout; None without a LogUri."""
    where = split_s3(log_uri) if log_uri else None
    if where is None:
        return None
    bucket, base = where
    base = "/".join(p for p in (base.strip("/"), prefix.strip("/"), "bootstrap-actions") if p)
    return lambda name, data: s3.put_object(Bucket=bucket, Key=f"{base}/{name}", Body=data)
