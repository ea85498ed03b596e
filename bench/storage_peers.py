"""The S3 servers the storage benchmark compares, each started on 127.0.0.1.

* ``resilin``: this project's storage service (``python -m resilin.storage``).
* ``moto``: moto's standalone server (``moto_server`` from the venv).
* ``s3rver``: the npm package, installed on first use into a cache directory
  outside the work tree (``$RESILIN_BENCH_CACHE`` or ``~/.cache/resilin-bench``).
* ``minio``: MinIO's server, built on first use from the Go module proxy by
  scripts/setup-minio.sh (MinIO publishes no semantic versions: it pins a pseudo-version of its
  main branch) into the same cache.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from resilin.aws.sigv4 import Credentials
from resilin.service.children import Child
from resilin.storage.testing import StorageProcess

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
S3RVER_VERSION = "3.7.1"
MINIO_CREDS = Credentials("minio-bench", "minio-bench-secret", "")
S3RVER_CREDS = Credentials("S3RVER", "S3RVER", "123456789000")
BENCH_CREDS = Credentials("AKIABENCH00000000001", "bench/secret/key/000000000000000000000", "111111111111")


@dataclass
class Peer:
    name: str
    endpoint: str
    creds: Credentials
    pid: int


def cache_dir() -> Path:
    return Path(os.environ.get("RESILIN_BENCH_CACHE", Path.home() / ".cache" / "resilin-bench"))


def s3rver_script() -> Path:
    """The s3rver command, installing the npm package (once) if needed."""
    base = cache_dir()
    script = base / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if script.exists():
        return script
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to install s3rver for the benchmark")
    base.mkdir(parents=True, exist_ok=True)
    if not (base / "package.json").exists():
        (base / "package.json").write_text('{"name": "resilin-bench-peers", "private": true}\n')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", f"s3rver@{S3RVER_VERSION}"],
        cwd=base,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return script


def minio_binary() -> Path:
    """The minio command, built (once, a few minutes) by scripts/setup-minio.sh if needed."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "setup-minio.sh")],
        capture_output=True,
        text=True,
        env=dict(os.environ, RESILIN_TOOLS_CACHE=str(cache_dir())),
    )
    if built.returncode != 0:
        raise RuntimeError(f"building MinIO failed: {built.stderr.strip()[-300:]}")
    return Path(built.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _child(
    name: str, command: list[str], log: Path, ready: re.Pattern[str], env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """A peer on port 0, serving once it prints ``ready`` (whose group 1 says where): (where, pid)."""
    child = Child(name, command, log, ready=ready, env=env)
    where = child.start(timeout=30)
    try:
        yield where, child.process.pid  # type: ignore[union-attr]
    finally:
        child.stop()


@contextlib.contextmanager
def resilin(workdir: Path) -> Iterator[Peer]:
    data = workdir / "resilin-data"
    data.mkdir()
    with StorageProcess(data, [BENCH_CREDS], host=HOST) as service:
        assert service.process is not None
        yield Peer("resilin", service.endpoint, BENCH_CREDS, service.process.pid)


@contextlib.contextmanager
def moto(workdir: Path) -> Iterator[Peer]:
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", HOST, "-p", "0"]
    ready = re.compile(r"Running on (http://\S+)")  # werkzeug's line, with the port it got
    with _child("moto_server", command, workdir / "moto.log", ready) as (url, pid):
        yield Peer("moto", url, BENCH_CREDS, pid)


@contextlib.contextmanager
def s3rver(workdir: Path) -> Iterator[Peer]:
    data = workdir / "s3rver-data"
    data.mkdir()
    # s3rver 3.7 encrypts continuation tokens with a cipher OpenSSL 3 keeps in its legacy provider.
    command = ["node", "--openssl-legacy-provider", str(s3rver_script()), "--directory", str(data)]
    command += ["--address", HOST, "--port", "0", "--silent"]
    ready = re.compile(r"S3rver listening on (\S+)")  # ADDRESS:PORT, printed even when silent
    with _child("s3rver", command, workdir / "s3rver.log", ready) as (address, pid):
        yield Peer("s3rver", f"http://{address}", S3RVER_CREDS, pid)


@contextlib.contextmanager
def minio(workdir: Path) -> Iterator[Peer]:
    data = workdir / "minio-data"
    data.mkdir()
    port = free_port()
    command = [str(minio_binary()), "server", str(data), "--address", f"{HOST}:{port}",
               "--console-address", f"{HOST}:{free_port()}"]  # fmt: skip
    env = dict(os.environ, MINIO_ROOT_USER=MINIO_CREDS.access_key, MINIO_ROOT_PASSWORD=MINIO_CREDS.secret_key)
    ready = re.compile(r"API: (http://\S+)")
    with _child("minio", command, workdir / "minio.log", ready, env) as (_url, pid):
        yield Peer("minio", f"http://{HOST}:{port}", MINIO_CREDS, pid)


PEERS = {"resilin": resilin, "moto": moto, "s3rver": s3rver, "minio": minio}
