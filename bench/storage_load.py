"""Storage load benchmark: each S3 server driven by wrk, pinned to its own core.

What a server costs per request, measured so that the client is not the limit: boto3 spends
1.7–4 ms of CPU per request, more than a fast server does, so here the load comes from ``wrk``
(a C load generator from Debian) replaying presigned URLs, which need no signing per request.
The server runs on core 0 and wrk on core 1 (``taskset``), the same for every server, one
server at a time.

Per row and server: requests/s (or MB/s), median and p99 latency as wrk measured them, and the
**server's own CPU per request** (its processes' user+system time over the run, from /proc,
divided by the requests served) — the figure that does not depend on the machine's cores.
Then Resilin's ratio to each peer (above 1: Resilin is better) and each row's targets: server
CPU per request at most a third of s3rver's, throughput at least both moto's and s3rver's.

Rows: GET and PUT of 4 KiB objects; random 1 MiB ranged GETs of a 256 MiB object; GET of a
64 MiB object (MB/s).  (wrk cannot time HEAD: its parser waits for the body that a HEAD answer's
Content-Length announces; bench/storage_bench.py has HEAD rows.)  Peers: moto, s3rver (npm) and MinIO (built from the Go module
proxy on first use; skipped, saying why, when it cannot be).

Usage: .venv/bin/python bench/storage_load.py [--peers resilin moto s3rver minio]
       [--seconds 8] [--repeat 3] [--connections 8]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage_peers import PEERS, Peer  # noqa: E402

from resilin.storage.testing import boto3_client  # noqa: E402

MiB = 1024 * 1024
BUCKET = "load"
SMALL_KEYS = 256
LUA = Path(__file__).resolve().parent / "wrk_requests.lua"
SERVER_CORE, CLIENT_CORE = "0", "1"
RESULT = re.compile(r"RESULT (.*)")


@dataclass(frozen=True)
class Workload:
    name: str
    method: str
    keys: str  # which objects' URLs: "small" or a single key
    unit: str = "req/s"
    body: bool = False  # PUT a 4 KiB body
    ranged: bool = False


WORKLOADS = (
    Workload("GET 4 KiB", "GET", "small"),
    Workload("PUT 4 KiB", "PUT", "small-put", body=True),
    Workload("ranged GET 1 MiB of 256 MiB", "GET", "big-256", ranged=True),
    Workload("GET 64 MiB", "GET", "big-64", unit="MB/s"),
)


@dataclass
class Measure:
    rate: float  # req/s, or MB/s
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int


@dataclass
class Table:
    rows: dict[str, dict[str, list[Measure]]] = field(default_factory=dict)

    def add(self, row: str, peer: str, measure: Measure) -> None:
        self.rows.setdefault(row, {}).setdefault(peer, []).append(measure)


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of ``pid`` and every process under it (threads included)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    wanted, todo = set(), [pid]
    while todo:
        current = todo.pop()
        wanted.add(current)
        todo += [child for child, parent in parents.items() if parent == current and child not in wanted]
    return sum(times.get(p, 0.0) for p in wanted)


def pin(pid: int, core: str) -> None:
    """Every thread of ``pid`` and of its descendants on ``core``."""
    subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], check=True, capture_output=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pin(int(entry.name), core)


def prepare(peer: Peer, workdir: Path) -> dict[str, Path]:
    """The objects, and for each workload a file of presigned request paths."""
    s3 = boto3_client(peer.endpoint, peer.creds)
    s3.create_bucket(Bucket=BUCKET)
    small = os.urandom(4096)
    for n in range(SMALL_KEYS):
        s3.put_object(Bucket=BUCKET, Key=f"small/{n:04d}", Body=small)
    s3.put_object(Bucket=BUCKET, Key="big-64", Body=os.urandom(64 * MiB))
    piece = os.urandom(64 * MiB)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="big-256")["UploadId"]
    parts = []
    for number in range(1, 5):
        etag = s3.upload_part(Bucket=BUCKET, Key="big-256", UploadId=upload, PartNumber=number, Body=piece)[
            "ETag"
        ]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="big-256", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    (workdir / "body").write_bytes(small)

    def urls(method: str, keys: list[str]) -> Path:
        operation = {"GET": "get_object", "PUT": "put_object"}[method]
        path = workdir / f"paths-{method}-{keys[0].replace('/', '_')}"
        lines = []
        for key in keys:
            url = s3.generate_presigned_url(operation, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=7200)
            lines.append(url.split(peer.endpoint.rstrip("/"), 1)[1])
        path.write_text("\n".join(lines) + "\n")
        return path

    smalls = [f"small/{n:04d}" for n in range(SMALL_KEYS)]
    return {
        "GET 4 KiB": urls("GET", smalls),
        "PUT 4 KiB": urls("PUT", [f"small-put/{n:04d}" for n in range(SMALL_KEYS)]),
        "ranged GET 1 MiB of 256 MiB": urls("GET", ["big-256"]),
        "GET 64 MiB": urls("GET", ["big-64"]),
    }


def run_wrk(
    peer: Peer, workload: Workload, paths: Path, workdir: Path, seconds: float, connections: int
) -> Measure:
    env = dict(os.environ, WRK_PATHS=str(paths), WRK_METHOD=workload.method)
    if workload.body:
        env["WRK_BODY"] = str(workdir / "body")
    if workload.ranged:
        env["WRK_RANGE"] = f"{256 * MiB} {MiB}"
    big = workload.unit == "MB/s"
    command = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{2 if big else connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "30s", "-s", str(LUA), peer.endpoint]  # fmt: skip
    before = tree_cpu_seconds(peer.pid)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    cpu = tree_cpu_seconds(peer.pid) - before
    found = RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk against {peer.name}: {done.stdout[-500:]} {done.stderr[-500:]}")
    result = {k: int(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    elapsed = result["duration_us"] / 1e6
    served = max(result["requests"], 1)
    rate = result["bytes"] / 1e6 / elapsed if big else result["requests"] / elapsed
    return Measure(
        rate, result["p50_us"] / 1000, result["p99_us"] / 1000, cpu * 1000 / served, result["errors"]
    )


def bench_peer(name: str, table: Table, seconds: float, repeat: int, connections: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"load-{name}-") as tmp:
        workdir = Path(tmp)
        with PEERS[name](workdir) as peer:
            paths = prepare(peer, workdir)
            pin(peer.pid, SERVER_CORE)
            for workload in WORKLOADS:
                for _ in range(repeat):
                    measure = run_wrk(peer, workload, paths[workload.name], workdir, seconds, connections)
                    table.add(workload.name, name, measure)
                    print(f"  {name:8} {workload.name:30} {measure.rate:10.1f} {workload.unit:6} "
                          f"p50 {measure.p50_ms:7.2f} ms  p99 {measure.p99_ms:7.2f} ms  "
                          f"server {measure.cpu_ms_per_request:7.3f} ms CPU/req  errors {measure.errors}",
                          flush=True)  # fmt: skip


def median(measures: list[Measure], attribute: str) -> float:
    return statistics.median(getattr(m, attribute) for m in measures)


def report(table: Table, peers: list[str]) -> bool:
    print()
    print(f"{'row':32} {'server':8} {'rate':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} "
          f"{'rate ratio':>11} {'CPU ratio':>10}")  # fmt: skip
    met = True
    for workload in WORKLOADS:
        row = table.rows.get(workload.name, {})
        ours = row.get("resilin")
        for peer in peers:
            if peer not in row:
                continue
            rate, cpu = median(row[peer], "rate"), median(row[peer], "cpu_ms_per_request")
            ratio = cpu_ratio = ""
            if ours and peer != "resilin":
                ratio = f"{median(ours, 'rate') / rate:.2f}x"
                cpu_ratio = f"{cpu / median(ours, 'cpu_ms_per_request'):.2f}x"
            print(f"{workload.name:32} {peer:8} {rate:10.1f} {median(row[peer], 'p50_ms'):8.2f} "
                  f"{median(row[peer], 'p99_ms'):8.2f} {cpu:11.3f} {ratio:>11} {cpu_ratio:>10}")  # fmt: skip
        if ours:
            for peer in ("moto", "s3rver"):
                if peer in row and median(ours, "rate") < median(row[peer], "rate"):
                    print(f"  target missed: {workload.name} slower than {peer}")
                    met = False
            if "s3rver" in row and median(ours, "cpu_ms_per_request") * 3 > median(
                row["s3rver"], "cpu_ms_per_request"
            ):
                print(f"  target missed: {workload.name} server CPU per request above a third of s3rver's")
                met = False
    print(
        "(ratios: Resilin's rate / the peer's, and the peer's CPU per request / Resilin's; above 1: Resilin is better)"
    )
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers", nargs="+", default=["resilin", "moto", "s3rver", "minio"], choices=sorted(PEERS)
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: `make setup` installs it")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two cores: one for the server, one for wrk")
    table = Table()
    ran = []
    for name in args.peers:
        started = time.monotonic()
        try:
            bench_peer(name, table, args.seconds, args.repeat, args.connections)
            ran.append(name)
        except Exception as exc:  # a peer that cannot run is said, the others go on
            print(f"  {name}: skipped ({exc})", flush=True)
        print(f"  ({name}: {time.monotonic() - started:.0f} s)")
    met = report(table, ran) and "resilin" in ran
    print("targets met" if met else "targets NOT met")


if __name__ == "__main__":
    main()
