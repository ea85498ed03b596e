"""MinIO's real server for the tests of external S3 storage: built once by scripts/setup-minio.sh
(which `make test` runs), started on every address of the host so that a local cloud's nodes
reach it through their network's gateway as Resilin reaches it on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from resilin.service.ports import free_port
from tests.clusters import wait_for

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running_minio(user: str, secret: str) -> Iterator[str]:
    """A MinIO server whose root keys are ``user``/``secret``; yields its endpoint URL."""
    built = subprocess.run([ROOT / "scripts" / "setup-minio.sh"], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"MinIO is missing and could not be built: {built.stderr[-500:]}")
    binary = built.stdout.strip().splitlines()[-1]
    data = Path(tempfile.mkdtemp(prefix="resilin-minio-"))
    port = free_port()
    env = os.environ | {"MINIO_ROOT_USER": user, "MINIO_ROOT_PASSWORD": secret}
    log = open(data.with_suffix(".log"), "wb")
    proc = subprocess.Popen(
        [binary, "server", str(data / "export"), "--address", f":{port}",
         "--console-address", f"127.0.0.1:{free_port()}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for("MinIO to serve", lambda: _live(endpoint), timeout=60, interval=0.5)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        data.with_suffix(".log").unlink(missing_ok=True)


def _live(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def s3_client(endpoint: str, key: str, secret: str, token: str | None = None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(s3={"addressing_style": "path"}),
    )
