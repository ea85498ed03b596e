"""Start a real storage service in a child process, for tests and local experiments.

with StorageProcess(tmp_path, accounts=[Credentials("AK", "SK", "111111111111")]) as s3:
    boto3.client("s3", endpoint_url=s3.endpoint, ...)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resilin.aws.sigv4 import Credentials
from resilin.service.children import Child


class StorageProcess:
    """The service on port 0 of ``host``; its output goes to ``log_path`` (default: beside ``data_dir``)."""

    def __init__(
        self,
        data_dir: Path,
        accounts: Sequence[Credentials],
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.accounts = list(accounts)
        self.region = region
        self.host = host
        self.extra_args = list(extra_args)
        self.log_path = log_path or self.data_dir.with_name(self.data_dir.name + "-storage.log")
        self.child: Child | None = None
        self.endpoint = ""
        self.port = 0

    @property
    def process(self) -> subprocess.Popen[bytes] | None:  # while it runs (tests kill it)
        return self.child.process if self.child is not None else None

    def start(self, timeout: float = 30) -> StorageProcess:
        command = [sys.executable, "-m", "resilin.storage", "--data-dir", str(self.data_dir)]
        command += ["--host", self.host, "--port", "0", "--region", self.region, *self.extra_args]
        for creds in self.accounts:
            command += ["--account", f"{creds.access_key}:{creds.secret_key}:{creds.account_id}"]
        self.child = Child("storage service", command, self.log_path)
        self.endpoint = self.child.start(timeout)
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        self.child = None

    def __enter__(self) -> StorageProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def boto3_client(endpoint: str, creds: Credentials, region: str = "us-east-1", **config: object) -> Any:
    """A boto3 S3 client for the service: path-style, SigV4 (also for presigned URLs)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name=region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            **config,
        ),
    )


# Two accounts for tests that check per-account ownership.
ALICE = Credentials("AKIAALICE00000000001", "alice/secret+key0000000000000000000000000", "111111111111")
BOB = Credentials("AKIABOB0000000000002", "bob/secret+key00000000000000000000000000", "222222222222")
