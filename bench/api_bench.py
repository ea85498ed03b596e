"""EMR API benchmark: DescribeCluster, ListClusters and ListSteps, Resilin beside moto's server.

Both services get the same 1,000 clusters (2 steps each) through boto3's RunJobFlow, then
each operation is sent by 16 concurrent clients for a fixed time, first to one service then
to the other, in the same run.  Resilin's API runs as ``python -m resilin.api`` over a
private Redis, without the orchestrator (so the clusters are only recorded, never
provisioned); moto runs as ``moto_server``.  The clients are plain HTTP/1.1 keep-alive
connections signing every request with SigV4 (JSON protocol), spread over a few processes so
that the client side is not what limits the figures.

Prints requests per second, median and p99 latency for each operation and service, and the
ratio of Resilin's throughput to moto's.  Target: at least 5x moto with p99 under 50 ms.

Usage: .venv/bin/python bench/api_bench.py [--clusters 1000] [--clients 16] [--seconds 10]
       [--workers 2] [--client-processes 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from resilin.service.children import Child
from resilin.service.redis_server import PrivateRedis
from resilin.settings.config import new_credentials

REGION = "us-east-1"
OPERATIONS = ("DescribeCluster", "ListClusters", "ListSteps")


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    access_key: str
    secret_key: str


class Signer:
    """SigV4 for JSON-protocol EMR requests, kept small so the client costs little per request."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.host = f"127.0.0.1:{target.port}"
        self._keys: dict[str, bytes] = {}

    def _key(self, day: str) -> bytes:
        if day not in self._keys:
            key = ("AWS4" + self.target.secret_key).encode()
            for part in (day, REGION, "elasticmapreduce", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys[day] = key
        return self._keys[day]

    def headers(self, operation: str, body: bytes) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        target = f"ElasticMapReduce.{operation}"
        content_type = "application/x-amz-json-1.1"
        signed = "content-type;host;x-amz-date;x-amz-target"
        canonical = (
            f"POST\n/\n\ncontent-type:{content_type}\nhost:{self.host}\nx-amz-date:{amz_date}\n"
            f"x-amz-target:{target}\n\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{day}/{REGION}/elasticmapreduce/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Content-Type": content_type,
            "X-Amz-Target": target,
            "X-Amz-Date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self.target.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}",
        }


class RawConnection:
    """A keep-alive HTTP/1.1 connection that only sends POSTs and reads Content-Length answers.

    http.client parses every answer's headers with the email package, which costs more than
    the requests being measured; this reads just the status and the body's length.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, headers: dict[str, str], body: bytes) -> int:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.sock.sendall(
            f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        header_block, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = header_block.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise OSError("chunked answers are not expected here")
        while len(self.buffer) < length:
            self._fill()
        self.buffer = self.buffer[length:]
        if close:
            self.close()
        return status

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise OSError("connection closed by the server")
        self.buffer += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def request_body(operation: str, cluster_ids: list[str], rng: random.Random) -> bytes:
    if operation == "ListClusters":
        return b"{}"
    return json.dumps({"ClusterId": rng.choice(cluster_ids)}).encode()


def client_process(target: Target, operation: str, cluster_ids: list[str], threads: int,
                   start_at: float, seconds: float, queue) -> None:  # fmt: skip
    """One client process: ``threads`` keep-alive connections sending requests until time is up."""
    results: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads

    def run(n: int) -> None:
        rng = random.Random(n * 7919 + os.getpid())
        signer = Signer(target)
        conn = RawConnection(target.port)
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        latencies = results[n]
        while True:
            began = time.perf_counter()
            if time.time() >= end:
                break
            body = request_body(operation, cluster_ids, rng)
            try:
                ok = conn.post(signer.headers(operation, body), body) == 200
            except (OSError, ValueError, IndexError):
                conn.close()
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                errors[n] += 1
        conn.close()

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(([x for r in results for x in r], sum(errors)))


@dataclass
class Figures:
    requests_per_second: float
    median_ms: float
    p99_ms: float
    errors: int


@dataclass
class Samples:
    latencies: list[float]
    seconds: float = 0.0
    errors: int = 0

    def figures(self) -> Figures:
        ordered = sorted(self.latencies)
        if not ordered:
            return Figures(0.0, float("nan"), float("nan"), self.errors)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return Figures(
            len(ordered) / self.seconds, statistics.median(ordered) * 1000, p99 * 1000, self.errors
        )


def measure(target: Target, operation: str, cluster_ids: list[str], clients: int, processes: int,
            seconds: float, into: Samples) -> None:  # fmt: skip
    """Send ``operation`` from ``clients`` concurrent clients for ``seconds``; add what happened to ``into``."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    start_at = time.time() + 0.5
    procs = [
        ctx.Process(target=client_process, args=(target, operation, cluster_ids, n, start_at, seconds, queue))
        for n in per_process
        if n
    ]
    for p in procs:
        p.start()
    for _ in procs:
        got, failed = queue.get()
        into.latencies.extend(got)
        into.errors += failed
    for p in procs:
        p.join()
    into.seconds += seconds


def load_clusters(target: Target, count: int, steps: int) -> list[str]:
    emr = boto3.client(
        "emr",
        endpoint_url=f"http://127.0.0.1:{target.port}",
        region_name=REGION,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}, max_pool_connections=8),
    )

    def one(i: int) -> str:
        return emr.run_job_flow(
            Name=f"bench-{i}",
            ReleaseLabel="emr-7.5.0",
            Instances={
                "MasterInstanceType": "m5.xlarge",
                "SlaveInstanceType": "m5.xlarge",
                "InstanceCount": 3,
                "KeepJobFlowAliveWhenNoSteps": True,
            },
            Steps=[
                {
                    "Name": f"step-{n}",
                    "ActionOnFailure": "CONTINUE",
                    "HadoopJarStep": {
                        "Jar": "command-runner.jar",
                        "Args": ["hadoop-streaming", "-input", "in"],
                    },
                }
                for n in range(steps)
            ],
            VisibleToAllUsers=True,
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
        )["JobFlowId"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def start_resilin(home: Path, redis: PrivateRedis, workers: int, threads: int) -> tuple[Target, Child]:
    creds = new_credentials("123456789012")
    (home / "resilin.toml").write_text(
        f'bind_host = "127.0.0.1"\nregion = "{REGION}"\nredis_url = "{redis.url}"\n\n'
        f'[[accounts]]\naccount_id = "{creds.account_id}"\naccess_key = "{creds.access_key}"\n'
        f'secret_key = "{creds.secret_key}"\n'
    )
    command = [sys.executable, "-m", "resilin.api", "--home", str(home), "--port", "0",
               "--workers", str(workers), "--threads", str(threads)]  # fmt: skip
    child = Child("the EMR API", command, home / "api.log", new_session=True, stop_grace=20)
    port = int(child.start(60).rsplit(":", 1)[1])
    return Target("resilin", port, creds.access_key, creds.secret_key), child


def start_moto(home: Path) -> tuple[Target, Child]:
    moto_server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    child = Child(
        "moto_server",
        [moto_server, "-H", "127.0.0.1", "-p", "0"],
        home / "moto.log",
        ready=re.compile(r"Running on http://127.0.0.1:(\d+)"),  # werkzeug's line, with the port it got
        new_session=True,
        stop_grace=20,
    )
    port = int(child.start(60))
    return Target("moto", port, "AKIAMOTOBENCH0000000", "moto-does-not-check-this-secret"), child


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2, help="steps per cluster")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measuring time per operation and service"
    )
    parser.add_argument("--workers", type=int, default=2, help="Resilin API processes")
    parser.add_argument("--threads", type=int, default=4, help="core threads per Resilin API process")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--only", choices=OPERATIONS, action="append", help="measure only these operations")
    args = parser.parse_args()
    operations = args.only or list(OPERATIONS)

    with tempfile.TemporaryDirectory(prefix="resilin-api-bench-") as tmp:
        home = Path(tmp)
        redis = PrivateRedis(home / "redis").start()
        resilin, resilin_process = start_resilin(home, redis, args.workers, args.threads)
        moto, moto_process = start_moto(home)
        try:
            print(
                f"loading {args.clusters} clusters ({args.steps} steps each) into Resilin and moto "
                f"through boto3 RunJobFlow ...",
                flush=True,
            )
            ids = {}
            for target in (resilin, moto):
                began = time.monotonic()
                ids[target.name] = load_clusters(target, args.clusters, args.steps)
                print(f"  {target.name}: {time.monotonic() - began:.1f}s", flush=True)
            print(
                f"\n{args.clients} concurrent clients for {args.seconds:g}s per operation and service; "
                f"Resilin: {args.workers} API process(es), no orchestrator; moto: moto_server\n",
                flush=True,
            )
            header = (
                f"{'operation':<16} {'service':<8} {'req/s':>9} {'median ms':>10} {'p99 ms':>8} {'errors':>7}"
            )
            print(header)
            print("-" * len(header))
            summary = []
            for operation in operations:
                # Short turns, alternating which service goes first, so that the rest of the
                # machine's load weighs on both alike.
                samples = {"resilin": Samples([]), "moto": Samples([])}
                turns = max(1, round(args.seconds / 2))
                for turn in range(turns):
                    order = (resilin, moto) if turn % 2 == 0 else (moto, resilin)
                    for target in order:
                        measure(target, operation, ids[target.name], args.clients, args.client_processes,
                                args.seconds / turns, samples[target.name])  # fmt: skip
                figures = {name: sample.figures() for name, sample in samples.items()}
                for name, f in figures.items():
                    print(
                        f"{operation:<16} {name:<8} {f.requests_per_second:>9.0f} {f.median_ms:>10.2f} "
                        f"{f.p99_ms:>8.2f} {f.errors:>7}",
                        flush=True,
                    )
                ratio = figures["resilin"].requests_per_second / max(
                    figures["moto"].requests_per_second, 1e-9
                )
                summary.append((operation, ratio, figures["resilin"].p99_ms))
            print()
            ok = True
            for operation, ratio, p99 in summary:
                met = ratio >= 5 and p99 < 50
                ok &= met
                print(
                    f"{operation:<16} Resilin/moto throughput {ratio:5.1f}x, Resilin p99 {p99:.1f} ms "
                    f"({'meets' if met else 'misses'} the target: >= 5x, p99 < 50 ms)"
                )
            return 0 if ok else 1
        finally:
            moto_process.stop()
            resilin_process.stop()
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
