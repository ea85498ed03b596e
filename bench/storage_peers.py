"""The S3 servers the storage benchmark compares, each started on 127.0.0.1.

* ``resilin``: this project's storage service (``python -m resilin.storage``).
* ``moto``: moto's standalone server (``moto_server`` from the venv).
* ``s3rver``: the npm package, installed on first use into a cache directory
  outside the work tree (``$RESILIN_BENCH_CACHE`` or ``~/.cache/resilin-bench``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from resilin.aws.sigv4 import Credentials
from resilin.service.children import stop_child
from resilin.storage.testing import StorageProcess

HOST = "127.0.0.1"
S3RVER_VERSION = "3.7.1"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not open port {port}")


@contextlib.contextmanager
def _child(command: list[str], port: int, **kwargs) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    try:
        _wait_port(port, process)
        yield process
    finally:
        stop_child(process, 10)


@contextlib.contextmanager
def resilin(workdir: Path) -> Iterator[Peer]:
    data = workdir / "resilin-data"
    data.mkdir()
    with StorageProcess(data, [BENCH_CREDS], host=HOST) as service:
        assert service.process is not None
        yield Peer("resilin", service.endpoint, BENCH_CREDS, service.process.pid)


@contextlib.contextmanager
def moto(workdir: Path) -> Iterator[Peer]:
    port = _free_port()
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", HOST, "-p", str(port)]
    with _child(command, port) as process:
        yield Peer("moto", f"http://{HOST}:{port}", BENCH_CREDS, process.pid)


@contextlib.contextmanager
def s3rver(workdir: Path) -> Iterator[Peer]:
    data = workdir / "s3rver-data"
    data.mkdir()
    port = _free_port()
    # s3rver 3.7 encrypts continuation tokens with a cipher OpenSSL 3 keeps in its legacy provider.
    command = ["node", "--openssl-legacy-provider", str(s3rver_script()), "--directory", str(data)]
    command += ["--address", HOST, "--port", str(port), "--silent"]
    with _child(command, port) as process:
        yield Peer("s3rver", f"http://{HOST}:{port}", S3RVER_CREDS, process.pid)


PEERS = {"resilin": resilin, "moto": moto, "s3rver": s3rver}
