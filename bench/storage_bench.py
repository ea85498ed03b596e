"""Storage benchmark: Resilin's storage service side by side with moto and s3rver.

Each server runs on 127.0.0.1 and is driven by the same boto3 client setup
(path-style, SigV4, botocore's default checksums).  Two kinds of rows:

* "one client": one boto3 client in this process, one request at a time.  These
  rows are bound by latency, and boto3's own CPU per request (printed under the
  table) caps what any server can reach in them.
* "4 client processes": 4 processes of their own, each with its own client,
  issue requests back to back at once, as S3 load tools (warp, s3-benchmark)
  do; the rate counts the time all of them were running together.  These rows
  measure the server's throughput.  On a machine with few cores the client
  processes also take CPU from the server, so each of these rows comes with the
  server's own CPU per request over the round (ms/req, for information; read
  from /proc), which does not depend on the clients.

Rows:

* PUT and GET of a 64 MiB object, one client (MB/s)
* random 1 MiB ranged GETs of a 256 MiB object, one client (requests/s, median
  and p99 latency), and from 4 client processes, each with its own random ranges
  (requests/s)
* 4 KiB PUT, HEAD and GET, one client and from 4 client processes (ops/s; the
  processes PUT keys of their own and HEAD/GET what the one client put)
* ListObjectsV2 with a delimiter over 10,000 keys, paged, one client (full listings/s)
* 4 client processes each reading the whole 256 MiB object (aggregate MB/s,
  Jain's fairness index)
* the server's peak RSS (for information)

Every row is printed with Resilin's ratio to each peer (above 1: Resilin is
better; for latencies, CPU and memory the ratio is peer / Resilin).  Medians of
repeated runs.  Last comes each row's target, met or not: at least as fast as
both peers on every row (latencies included), at least 3x s3rver on the ranged
GET rates and the 4 KiB rows, and a fairness index of at least 0.95.

Usage: .venv/bin/python bench/storage_bench.py [--peers resilin moto s3rver] [--quick]
       [--workloads big ranged small list readers]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import itertools
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage_peers import PEERS, Peer  # noqa: E402

from resilin.storage.testing import boto3_client  # noqa: E402

MiB = 1024 * 1024
BUCKET = "bench"


@dataclass
class Sizes:
    big: int = 64 * MiB
    big_rounds: int = 4
    ranged_object: int = 256 * MiB
    ranged_rounds: int = 3
    ranged_requests: int = 100  # per round
    small: int = 4096
    small_rounds: int = 3
    small_ops: int = 200  # per round and operation
    list_keys: int = 10_000
    list_rounds: int = 3
    readers: int = 4  # client processes in the concurrent rows
    reader_rounds: int = 2  # rounds of each concurrent row
    reader_seconds: float = 4.0  # how long the processes of a concurrent round run together
    budget_seconds: float = 6.0  # a round of one workload on one peer stops early after this long


QUICK = Sizes(
    big_rounds=3, ranged_rounds=2, ranged_requests=50, small_rounds=2, small_ops=100,
    list_keys=2000, list_rounds=3, reader_rounds=1, reader_seconds=3,
)  # fmt: skip


@dataclass
class Row:
    name: str
    unit: str
    higher_is_better: bool = True
    vs_s3rver: float = 1.0  # the target: Resilin's ratio to s3rver at least this, to every other peer 1
    at_least: float | None = None  # the target instead: Resilin's own value at least this
    informational: bool = False  # no target
    values: dict[str, float] = field(default_factory=dict)


def client_for(peer: Peer):
    return boto3_client(peer.endpoint, peer.creds, max_pool_connections=16)


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _drain(body) -> int:
    total = 0
    for chunk in body.iter_chunks(MiB):
        total += len(chunk)
    return total


def big_round(s3, sizes: Sizes, data: bytes) -> dict[str, float]:
    mb = sizes.big / 1e6
    put = _timed(lambda: s3.put_object(Bucket=BUCKET, Key="big-64", Body=data))
    get = _timed(lambda: _drain(s3.get_object(Bucket=BUCKET, Key="big-64")["Body"]))
    return {"PUT 64 MiB, one client": mb / put, "GET 64 MiB, one client": mb / get}


def put_large(s3, key: str, size: int) -> None:
    """A large object, uploaded in 64 MiB multipart parts so that every peer takes it."""
    piece = os.urandom(64 * MiB)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, size, len(piece)), start=1):
        body = piece[: min(len(piece), size - offset)]
        etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


SMALL_OPS = ("PUT", "HEAD", "GET")


@dataclass(frozen=True)
class Op:
    """A kind of request, made again and again by ``requests``.

    ``name``: PUT, HEAD or GET of 4 KiB objects, ``ranged`` (a random 1 MiB
    range of big-256) or ``stream`` (the whole of big-256, counted a chunk at a time).
    """

    name: str
    prefix: str = "small/0"  # PUT, HEAD, GET: the keys are <prefix>/00000, <prefix>/00001, ...
    count: int = 0  # HEAD, GET: how many keys there are; they are gone over again and again
    seed: int = 0  # ranged: where the random ranges start


def requests(s3, sizes: Sizes, op: Op) -> Iterator[int]:
    """Requests of one kind, one after the other, without end; yields what each completed
    (one request, or for ``stream`` a chunk's bytes)."""
    if op.name == "PUT":
        data = os.urandom(sizes.small)
        for n in itertools.count():
            s3.put_object(Bucket=BUCKET, Key=f"{op.prefix}/{n:05d}", Body=data)
            yield 1
    elif op.name in ("HEAD", "GET"):
        for n in itertools.count():
            key = f"{op.prefix}/{n % op.count:05d}"
            if op.name == "HEAD":
                s3.head_object(Bucket=BUCKET, Key=key)
            else:
                s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            yield 1
    elif op.name == "ranged":
        rng = random.Random(op.seed)
        while True:
            first = rng.randrange(0, sizes.ranged_object - MiB)
            header = f"bytes={first}-{first + MiB - 1}"
            s3.get_object(Bucket=BUCKET, Key="big-256", Range=header)["Body"].read()
            yield 1
    elif op.name == "stream":
        while True:
            body = s3.get_object(Bucket=BUCKET, Key="big-256")["Body"]
            with contextlib.closing(body):
                for chunk in body.iter_chunks(MiB):
                    yield len(chunk)
    else:
        raise ValueError(op.name)


@dataclass
class OneClient:
    """What requests made one at a time by this process took."""

    latencies: list[float]
    elapsed: float
    cpu: float  # this process's CPU seconds meanwhile: the client's own cost

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / len(self.latencies)


def one_client(made: Iterator[int], limit: int, budget_seconds: float) -> OneClient:
    """Up to ``limit`` requests one at a time, stopping early after ``budget_seconds``."""
    cpu, start = time.process_time(), time.perf_counter()
    latencies, last = [], start
    for _ in made:
        now = time.perf_counter()
        latencies.append(now - last)
        last = now
        if len(latencies) >= limit or now - start > budget_seconds:
            break
    made.close()
    return OneClient(latencies, last - start, time.process_time() - cpu)


LIST_SUBDIRS = 100


def list_keys(sizes: Sizes) -> list[str]:
    keys = [f"list/part-{i:05d}" for i in range(sizes.list_keys - LIST_SUBDIRS)]
    return keys + [f"list/sub-{i:03d}/x" for i in range(LIST_SUBDIRS)]


def fill_listing(s3, sizes: Sizes) -> None:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b""), list_keys(sizes)))


def list_round(s3, sizes: Sizes) -> float:
    """Seconds for one full, paged listing of list/ with delimiter /."""
    paginator = s3.get_paginator("list_objects_v2")

    def full_listing() -> None:
        seen = 0
        for page in paginator.paginate(Bucket=BUCKET, Prefix="list/", Delimiter="/"):
            seen += len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        assert seen == sizes.list_keys, seen

    return _timed(full_listing)


# A worker process's record of its run: when it started, and (time, amount) for every
# request or chunk it completed.
Trace = tuple[float, list[tuple[float, int]]]


@dataclass(frozen=True)
class Job:
    """One client process's part in a concurrent round."""

    peer: Peer
    sizes: Sizes
    op: Op
    start_at: float
    stop_at: float


def _client_process(job: Job) -> Trace:
    s3 = client_for(job.peer)
    warm_key = "big-256" if job.op.name in ("ranged", "stream") else "small/0/00000"
    s3.head_object(Bucket=BUCKET, Key=warm_key)  # connect before the start
    made = requests(s3, job.sizes, job.op)
    time.sleep(max(0.0, job.start_at - time.time()))
    started, done = time.time(), []
    for amount in made:
        done.append((time.time(), amount))
        if done[-1][0] >= job.stop_at:
            break
    made.close()
    return started, done


def overlap_rates(traces: list[Trace], stop_at: float) -> list[float]:
    """Each worker's rate over the time all of them were running.

    On a loaded machine a worker may get going well after the agreed start
    (making a client takes a while); counting from the agreed start would
    then report idle time as slowness.
    """
    begin = max(started for started, _ in traces)
    window = stop_at - begin
    if window < 0.5:
        raise RuntimeError(f"the workers ran together for only {window:.2f} s")
    return [sum(n for t, n in done if begin <= t <= stop_at) / window for _, done in traces]


def concurrent_round(
    peer: Peer, sizes: Sizes, pool: concurrent.futures.Executor, ops: list[Op]
) -> tuple[list[float], float | None]:
    """Each client process's rate (per second: requests, or bytes for ``stream``), one process an
    op, all at once; and the server's CPU seconds per request (or chunk) over the whole round."""
    start_at = time.time() + 2.0
    stop_at = start_at + sizes.reader_seconds
    jobs = [Job(peer, sizes, op, start_at, stop_at) for op in ops]
    cpu_before = cpu_seconds(peer.pid)
    traces = list(pool.map(_client_process, jobs))
    cpu_after = cpu_seconds(peer.pid)
    completed = sum(len(done) for _, done in traces)
    server_cpu = None
    if cpu_before is not None and cpu_after is not None and completed:
        server_cpu = (cpu_after - cpu_before) / completed
    return overlap_rates(traces, stop_at), server_cpu


def _warm(_: int) -> None:
    import boto3  # noqa: F401  (the first import in a fresh process takes a while)


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds the process (all its threads) has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Runner:
    """Runs every workload on every peer, round after round, peers interleaved within a round.

    Interleaving keeps the comparison fair on a shared machine: a burst of
    load from elsewhere hits every peer's samples alike.
    """

    def __init__(self, peers: list[Peer], sizes: Sizes, pool: concurrent.futures.Executor) -> None:
        self.peers, self.sizes, self.pool = peers, sizes, pool
        self.clients = {p.name: client_for(p) for p in peers}
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.client_cpu: dict[str, list[float]] = {}  # one-client row: CPU seconds a request, all peers
        for s3 in self.clients.values():
            s3.create_bucket(Bucket=BUCKET)

    def add(self, peer: str, row: str, value: float) -> None:
        self.samples.setdefault((row, peer), []).append(value)

    def run(self, rows: dict[str, Row], workloads: list[str]) -> dict[str, float]:
        """Fills in the rows; returns the median client CPU seconds a request of each one-client row."""
        sizes = self.sizes
        if "big" in workloads:
            self._big()
        if "ranged" in workloads or "readers" in workloads:
            for peer in self.peers:
                put_large(self.clients[peer.name], "big-256", sizes.ranged_object)
        if "ranged" in workloads:
            self._ranged()
        if "small" in workloads:
            self._small()
        if "list" in workloads:
            self._listing()
        if "readers" in workloads:
            self._readers()
        for peer in self.peers:
            rss = peak_rss_mib(peer.pid)
            if rss is not None:
                self.add(peer.name, "server peak RSS", rss)
        for (row, peer), values in self.samples.items():
            rows[row].values[peer] = statistics.median(values)
        return {row: statistics.median(values) for row, values in self.client_cpu.items()}

    def _big(self) -> None:
        sizes = self.sizes
        data = os.urandom(sizes.big)
        self._phase("PUT/GET 64 MiB")
        for _ in range(sizes.big_rounds):
            for peer in self.peers:
                for row, value in big_round(self.clients[peer.name], sizes, data).items():
                    self.add(peer.name, row, value)

    def _one_client(self, peer: Peer, row: str, op: Op) -> OneClient:
        sizes = self.sizes
        made = requests(self.clients[peer.name], sizes, op)
        limit = sizes.small_ops if op.name in SMALL_OPS else sizes.ranged_requests
        run = one_client(made, limit, sizes.budget_seconds)
        self.add(peer.name, row, run.rate)
        self.client_cpu.setdefault(row, []).append(run.cpu_per_request)
        return run

    def _concurrent(self, row: str, ops: Callable[[Peer, int], list[Op]]) -> None:
        """The row from ``reader_rounds`` rounds of ``ops(peer, round)``, one client process an op."""
        for round_no in range(self.sizes.reader_rounds):
            for peer in self.peers:
                rates, server_cpu = concurrent_round(peer, self.sizes, self.pool, ops(peer, round_no))
                self.add(peer.name, row, sum(rates))
                if server_cpu is not None:
                    self.add(peer.name, f"{row}: server CPU", server_cpu * 1000)

    def _ranged(self) -> None:
        sizes = self.sizes
        self._phase("ranged GETs")
        latencies: dict[str, list[float]] = {}
        for round_no in range(sizes.ranged_rounds):
            for peer in self.peers:
                run = self._one_client(peer, "ranged GET 1 MiB, one client", Op("ranged", seed=round_no))
                latencies.setdefault(peer.name, []).extend(run.latencies)
        for peer in self.peers:
            lat = sorted(latencies[peer.name])
            self.add(peer.name, "ranged GET median latency, one client", statistics.median(lat) * 1000)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            self.add(peer.name, "ranged GET p99 latency, one client", p99 * 1000)
        readers = sizes.readers
        self._concurrent(
            f"ranged GET 1 MiB, {readers} client processes",
            lambda peer, round_no: [Op("ranged", seed=1000 + round_no * readers + i) for i in range(readers)],
        )

    def _small(self) -> None:
        sizes = self.sizes
        self._phase("4 KiB objects")
        stored: dict[str, int] = {}  # how many keys the first round put under small/0/
        for round_no in range(sizes.small_rounds):
            for peer in self.peers:
                put = self._one_client(peer, "PUT 4 KiB, one client", Op("PUT", f"small/{round_no}"))
                count = len(put.latencies)
                stored.setdefault(peer.name, count)
                for name in ("HEAD", "GET"):
                    self._one_client(peer, f"{name} 4 KiB, one client", Op(name, f"small/{round_no}", count))

        readers = sizes.readers
        self._concurrent(
            f"PUT 4 KiB, {readers} client processes",
            lambda peer, round_no: [Op("PUT", f"small-c/{round_no}/{i}") for i in range(readers)],
        )
        for name in ("HEAD", "GET"):
            self._concurrent(
                f"{name} 4 KiB, {readers} client processes",
                lambda peer, _, name=name: [Op(name, "small/0", stored[peer.name])] * readers,
            )

    def _listing(self) -> None:
        sizes = self.sizes
        self._phase("listing")
        list_row = f"ListObjectsV2 {sizes.list_keys} keys, delimiter, one client"
        for peer in self.peers:
            fill_listing(self.clients[peer.name], sizes)
        for _ in range(sizes.list_rounds):
            for peer in self.peers:
                self.add(peer.name, list_row, 1 / list_round(self.clients[peer.name], sizes))

    def _readers(self) -> None:
        sizes = self.sizes
        self._phase("parallel readers")
        for _ in range(sizes.reader_rounds):
            for peer in self.peers:
                ops = [Op("stream")] * sizes.readers
                rates = [r / 1e6 for r in concurrent_round(peer, sizes, self.pool, ops)[0]]
                fairness = sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates)) if any(rates) else 0.0
                self.add(peer.name, f"{sizes.readers} parallel readers, aggregate", sum(rates))
                self.add(peer.name, f"{sizes.readers} parallel readers, Jain fairness", fairness)

    def _phase(self, name: str) -> None:
        print(f"  {name} ...", flush=True)


# Workloads that can be chosen on the command line, and the rows each measures.
WORKLOADS = {
    "big": "PUT and GET 64 MiB",
    "ranged": "1 MiB ranged GETs of a 256 MiB object, one client and several processes",
    "small": "4 KiB PUT, HEAD, GET, one client and several processes",
    "list": "ListObjectsV2 with a delimiter",
    "readers": "parallel readers of one object",
}


def concurrent_rows(name: str, unit: str) -> list[Row]:
    """A concurrent row, and the server's CPU per request in it: on a machine with few cores the
    client processes take much of the CPU, and this figure does not depend on them."""
    server_cpu = Row(f"{name}: server CPU", "ms/req", higher_is_better=False, informational=True)
    return [Row(name, unit, vs_s3rver=3), server_cpu]


def make_rows(sizes: Sizes) -> dict[str, Row]:
    procs = f"{sizes.readers} client processes"
    rows = [
        Row("PUT 64 MiB, one client", "MB/s"),
        Row("GET 64 MiB, one client", "MB/s"),
        Row("ranged GET 1 MiB, one client", "req/s", vs_s3rver=3),
        Row("ranged GET median latency, one client", "ms", higher_is_better=False),
        Row("ranged GET p99 latency, one client", "ms", higher_is_better=False),
        *concurrent_rows(f"ranged GET 1 MiB, {procs}", "req/s"),
        *(Row(f"{name} 4 KiB, one client", "ops/s", vs_s3rver=3) for name in SMALL_OPS),
        *(row for name in SMALL_OPS for row in concurrent_rows(f"{name} 4 KiB, {procs}", "ops/s")),
        Row(f"ListObjectsV2 {sizes.list_keys} keys, delimiter, one client", "lists/s"),
        Row(f"{sizes.readers} parallel readers, aggregate", "MB/s"),
        Row(f"{sizes.readers} parallel readers, Jain fairness", "index", at_least=0.95),
        Row("server peak RSS", "MiB", higher_is_better=False, informational=True),
    ]
    return {row.name: row for row in rows}


def _ratio(row: Row, peer: str) -> float | None:
    """Resilin's ratio to the peer, above 1 where Resilin is better."""
    ours, theirs = row.values.get("resilin"), row.values.get(peer)
    if not ours or not theirs or row.unit == "index":
        return None
    return ours / theirs if row.higher_is_better else theirs / ours


def print_table(rows: dict[str, Row], peers: list[str]) -> None:
    others = [p for p in peers if p != "resilin"]
    width = max((len(row.name) for row in rows.values() if row.values), default=20)
    header = f"{'row':{width}s} {'unit':6s}" + "".join(f"{p:>10s}" for p in peers)
    header += "".join(f"{'vs ' + p:>12s}" for p in others if "resilin" in peers)
    print()
    print(header)
    print("-" * len(header))
    for row in rows.values():
        if not row.values:
            continue  # a workload not asked for
        line = f"{row.name:{width}s} {row.unit:6s}"
        for p in peers:
            value = row.values.get(p)
            line += f"{value:10.2f}" if value is not None and value < 10 else f"{value or 0:10.1f}"
        if "resilin" in peers:
            for p in others:
                ratio = _ratio(row, p)
                line += f"{'':>12s}" if ratio is None else f"{ratio:11.2f}x"
        print(line)


def print_client_cpu(client_cpu: dict[str, float]) -> None:
    """What boto3 itself costs a one-client row: no server can be faster than that in it."""
    if client_cpu:
        print("\none client at a time:")
    for row, cpu in client_cpu.items():
        print(
            f"  {row}: boto3 spends {cpu * 1000:.2f} ms of CPU per request (median), "
            f"so one client cannot exceed ~{1 / cpu:.0f} req/s on any server"
        )


def print_targets(rows: dict[str, Row], peers: list[str], client_cpu: dict[str, float]) -> None:
    if "resilin" not in peers:
        return
    others = [p for p in peers if p != "resilin"]
    judged = [row for row in rows.values() if row.values.get("resilin") and not row.informational]
    if not judged:
        return
    width = max(len(row.name) for row in judged)
    print("\ntargets (Resilin's ratio to each peer; latencies: peer / Resilin):")
    met_count = 0
    for row in judged:
        checks = []  # (text, met)
        if row.at_least is not None:
            value = row.values["resilin"]
            ok = value >= row.at_least
            checks.append((f"{value:.2f} {'>=' if ok else '<'} {row.at_least:g}", ok))
        else:
            for p in others:
                ratio = _ratio(row, p)
                if ratio is None:
                    continue
                need = row.vs_s3rver if p == "s3rver" else 1.0
                ok = ratio >= need
                checks.append((f"{p} {ratio:.2f}x {'>=' if ok else '<'} {need:g}x", ok))
        if not checks:
            continue
        met = all(ok for _, ok in checks)
        met_count += met
        note = ", ".join(text for text, _ in checks)
        if not met and row.name in client_cpu:
            note += f" (one client's ceiling ~{1 / client_cpu[row.name]:.0f} req/s)"
        print(f"  {'met' if met else 'NOT MET':8s} {row.name:{width}s}  {note}")
    print(f"  {met_count} of {len(judged)} rows meet their targets")


def _load() -> str:
    """The machine's load averages: the rows compare peers measured side by side, but on a busy
    machine every absolute figure drops (a single-threaded server also gets a smaller share)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a quick look")
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=list(WORKLOADS),
        choices=list(WORKLOADS),
        help="which rows to measure (default: all)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    rows = make_rows(sizes)
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp,
        concurrent.futures.ProcessPoolExecutor(sizes.readers, mp_context=context) as pool,
        contextlib.ExitStack() as stack,
    ):
        peers = []
        for name in args.peers:
            workdir = Path(tmp) / name
            workdir.mkdir()
            peers.append(stack.enter_context(PEERS[name](workdir)))
        print(f"servers: {', '.join(f'{p.name} {p.endpoint}' for p in peers)}", flush=True)
        print(f"load average at start: {_load()} ({os.cpu_count()} CPUs)", flush=True)
        list(pool.map(_warm, range(sizes.readers)))
        client_cpu = Runner(peers, sizes, pool).run(rows, args.workloads)
    print_table(rows, args.peers)
    print_client_cpu(client_cpu)
    print_targets(rows, args.peers, client_cpu)
    print(f"\n(total {time.monotonic() - started:.0f} s; load average at the end: {_load()})")


if __name__ == "__main__":
    main()
