"""Storage benchmark: Resilin's storage service side by side with moto and s3rver.

Each server runs on 127.0.0.1 and is driven by the same boto3 client setup
(path-style, SigV4, botocore's default checksums).  Rows:

* PUT and GET of a 64 MiB object (MB/s)
* random 1 MiB ranged GETs of a 256 MiB object (requests/s, median and p99 latency)
* 4 KiB PUT, HEAD and GET (ops/s), one client one request at a time, and GETs
  from 4 client processes at once
* ListObjectsV2 with a delimiter over 10,000 keys, paged (full listings/s)
* 4 parallel readers of one 256 MiB object (aggregate MB/s, Jain's fairness index)

Every row is printed with Resilin's ratio to each peer (above 1: Resilin is
better; for latencies the ratio is peer / Resilin).  Medians of repeated runs.

Usage: .venv/bin/python bench/storage_bench.py [--peers resilin moto s3rver] [--quick]
       [--workloads big ranged small list readers]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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
    readers: int = 4
    reader_rounds: int = 2
    reader_seconds: float = 4.0
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
    return {"PUT 64 MiB": mb / put, "GET 64 MiB": mb / get}


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


def ranged_round(s3, sizes: Sizes, seed: int) -> tuple[float, list[float]]:
    """(elapsed seconds, latencies) of ``ranged_requests`` random 1 MiB ranged GETs."""
    rng = random.Random(seed)
    latencies = []
    start = time.perf_counter()
    for _ in range(sizes.ranged_requests):
        if time.perf_counter() - start > sizes.budget_seconds:
            break
        first = rng.randrange(0, sizes.ranged_object - MiB)
        header = f"bytes={first}-{first + MiB - 1}"
        latencies.append(
            _timed(lambda h=header: s3.get_object(Bucket=BUCKET, Key="big-256", Range=h)["Body"].read())
        )
    return time.perf_counter() - start, latencies


def small_round(s3, sizes: Sizes, data: bytes, round_no: int) -> tuple[dict[str, float], int]:
    """ops/s of 4 KiB PUTs, then HEADs and GETs of what was put; and how many keys were put."""
    keys = [f"small/{round_no}/{i:05d}" for i in range(sizes.small_ops)]
    rates = {}
    for name, action in [
        ("PUT 4 KiB", lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=data)),
        ("HEAD 4 KiB", lambda k: s3.head_object(Bucket=BUCKET, Key=k)),
        ("GET 4 KiB", lambda k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()),
    ]:
        start = time.perf_counter()
        done = 0
        for key in keys:
            action(key)
            done += 1
            if time.perf_counter() - start > sizes.budget_seconds:
                break
        rates[name] = done / (time.perf_counter() - start)
        if name == "PUT 4 KiB":
            keys = keys[:done]
    return rates, len(keys)


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


def _reader(args: tuple[str, str, str, str, float, float]) -> Trace:
    endpoint, access, secret, account, start_at, stop_at = args
    from resilin.sigv4 import Credentials

    s3 = client_for(Peer("", endpoint, Credentials(access, secret, account), 0))
    s3.head_object(Bucket=BUCKET, Key="big-256")  # connect before the start
    time.sleep(max(0.0, start_at - time.time()))
    started, done = time.time(), []
    while time.time() < stop_at:
        body = s3.get_object(Bucket=BUCKET, Key="big-256")["Body"]
        for chunk in body.iter_chunks(MiB):
            done.append((time.time(), len(chunk)))
            if done[-1][0] >= stop_at:
                body.close()
                break
    return started, done


def _small_getter(args: tuple[str, str, str, str, float, float, int]) -> Trace:
    endpoint, access, secret, account, start_at, stop_at, count = args
    from resilin.sigv4 import Credentials

    s3 = client_for(Peer("", endpoint, Credentials(access, secret, account), 0))
    s3.head_object(Bucket=BUCKET, Key="small/0/00000")
    time.sleep(max(0.0, start_at - time.time()))
    started, done = time.time(), []
    while time.time() < stop_at:
        s3.get_object(Bucket=BUCKET, Key=f"small/0/{len(done) % count:05d}")["Body"].read()
        done.append((time.time(), 1))
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


def concurrent_small_round(peer: Peer, sizes: Sizes, pool: concurrent.futures.Executor, count: int) -> float:
    """ops/s of 4 KiB GETs (of the ``count`` keys of small/0/) from ``readers`` client processes at once."""
    start_at = time.time() + 2.0
    stop_at = start_at + sizes.reader_seconds
    c = peer.creds
    args = [(peer.endpoint, c.access_key, c.secret_key, c.account_id, start_at, stop_at, count)]
    return sum(overlap_rates(list(pool.map(_small_getter, args * sizes.readers)), stop_at))


def _warm(_: int) -> None:
    import boto3  # noqa: F401  (the first import in a fresh process takes a while)


def readers_round(peer: Peer, sizes: Sizes, pool: concurrent.futures.Executor) -> tuple[float, float]:
    """(aggregate MB/s, Jain's fairness index) of parallel readers of one object."""
    start_at = time.time() + 2.0
    stop_at = start_at + sizes.reader_seconds
    c = peer.creds
    args = [(peer.endpoint, c.access_key, c.secret_key, c.account_id, start_at, stop_at)] * sizes.readers
    rates = [rate / 1e6 for rate in overlap_rates(list(pool.map(_reader, args)), stop_at)]
    fairness = sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates)) if any(rates) else 0.0
    return sum(rates), fairness


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
        for s3 in self.clients.values():
            s3.create_bucket(Bucket=BUCKET)

    def add(self, peer: str, row: str, value: float) -> None:
        self.samples.setdefault((row, peer), []).append(value)

    def run(self, rows: dict[str, Row], workloads: list[str]) -> None:
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

    def _big(self) -> None:
        sizes = self.sizes
        data = os.urandom(sizes.big)
        self._phase("PUT/GET 64 MiB")
        for _ in range(sizes.big_rounds):
            for peer in self.peers:
                for row, value in big_round(self.clients[peer.name], sizes, data).items():
                    self.add(peer.name, row, value)

    def _ranged(self) -> None:
        sizes = self.sizes
        self._phase("ranged GETs")
        elapsed: dict[str, float] = {}
        latencies: dict[str, list[float]] = {}
        for round_no in range(sizes.ranged_rounds):
            for peer in self.peers:
                took, lat = ranged_round(self.clients[peer.name], sizes, seed=round_no)
                elapsed[peer.name] = elapsed.get(peer.name, 0.0) + took
                latencies.setdefault(peer.name, []).extend(lat)
        for peer in self.peers:
            lat = sorted(latencies[peer.name])
            self.add(peer.name, "ranged GET 1 MiB of 256 MiB", len(lat) / elapsed[peer.name])
            self.add(peer.name, "ranged GET median latency", statistics.median(lat) * 1000)
            self.add(peer.name, "ranged GET p99 latency", lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000)

    def _small(self) -> None:
        sizes = self.sizes
        self._phase("4 KiB objects")
        small = os.urandom(sizes.small)
        stored: dict[str, int] = {}
        for round_no in range(sizes.small_rounds):
            for peer in self.peers:
                rates, count = small_round(self.clients[peer.name], sizes, small, round_no)
                stored.setdefault(peer.name, count)
                for row, value in rates.items():
                    self.add(peer.name, row, value)

        concurrent_row = f"GET 4 KiB, {sizes.readers} client processes"
        for _ in range(sizes.reader_rounds):
            for peer in self.peers:
                rate = concurrent_small_round(peer, sizes, self.pool, stored[peer.name])
                self.add(peer.name, concurrent_row, rate)

    def _listing(self) -> None:
        sizes = self.sizes
        self._phase("listing")
        list_row = f"ListObjectsV2 {sizes.list_keys} keys, delimiter"
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
                aggregate, fairness = readers_round(peer, sizes, self.pool)
                self.add(peer.name, f"{sizes.readers} parallel readers, aggregate", aggregate)
                self.add(peer.name, f"{sizes.readers} parallel readers, Jain fairness", fairness)

    def _phase(self, name: str) -> None:
        print(f"  {name} ...", flush=True)


# Workloads that can be chosen on the command line, and the rows each measures.
WORKLOADS = {
    "big": "PUT and GET 64 MiB",
    "ranged": "1 MiB ranged GETs of a 256 MiB object",
    "small": "4 KiB PUT, HEAD, GET; GETs from several processes",
    "list": "ListObjectsV2 with a delimiter",
    "readers": "parallel readers of one object",
}


def make_rows(sizes: Sizes) -> dict[str, Row]:
    rows = [
        Row("PUT 64 MiB", "MB/s"),
        Row("GET 64 MiB", "MB/s"),
        Row("ranged GET 1 MiB of 256 MiB", "req/s"),
        Row("ranged GET median latency", "ms", higher_is_better=False),
        Row("ranged GET p99 latency", "ms", higher_is_better=False),
        Row("PUT 4 KiB", "ops/s"),
        Row("HEAD 4 KiB", "ops/s"),
        Row("GET 4 KiB", "ops/s"),
        Row(f"GET 4 KiB, {sizes.readers} client processes", "ops/s"),
        Row(f"ListObjectsV2 {sizes.list_keys} keys, delimiter", "lists/s"),
        Row(f"{sizes.readers} parallel readers, aggregate", "MB/s"),
        Row(f"{sizes.readers} parallel readers, Jain fairness", "index"),
        Row("server peak RSS", "MiB", higher_is_better=False),
    ]
    return {row.name: row for row in rows}


def print_table(rows: dict[str, Row], peers: list[str]) -> None:
    others = [p for p in peers if p != "resilin"]
    header = f"{'row':42s} {'unit':6s}" + "".join(f"{p:>10s}" for p in peers)
    header += "".join(f"{'vs ' + p:>12s}" for p in others if "resilin" in peers)
    print()
    print(header)
    print("-" * len(header))
    for row in rows.values():
        if not row.values:
            continue  # a workload not asked for
        line = f"{row.name:42s} {row.unit:6s}"
        for p in peers:
            value = row.values.get(p)
            line += f"{value:10.2f}" if value is not None and value < 10 else f"{value or 0:10.1f}"
        if "resilin" in peers:
            ours = row.values.get("resilin")
            for p in others:
                theirs = row.values.get(p)
                if not ours or not theirs or row.unit == "index":
                    line += f"{'':>12s}"
                    continue
                ratio = ours / theirs if row.higher_is_better else theirs / ours
                line += f"{ratio:11.2f}x"
        print(line)


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
        Runner(peers, sizes, pool).run(rows, args.workloads)
    print_table(rows, args.peers)
    print(f"\n(total {time.monotonic() - started:.0f} s; load average at the end: {_load()})")


if __name__ == "__main__":
    main()
