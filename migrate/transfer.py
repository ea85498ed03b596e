"""Moving a relocation's state sets, as planned (:mod:`.plan`), node to node.

Each destination node runs a receiver (``migrate/node/receive.py``) on its own address; senders
(``migrate/node/send.py``) run on the source nodes for the contents they won, then on destination
nodes holding a content for the others that need it, so each distinct content crosses the WAN
once.  Everything is zstd-compressed on the way and checked against its digest on arrival; a
content that arrives wrong is fetched again — from its source node when a destination copy was the
bad one — and the move fails, naming the file, if it never arrives right.  Each verified arrival
is recorded in the move's index, so a retried move sends only what is still missing.
"""

from __future__ import annotations

import secrets
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from resilin.clouds.ssh import Node
from resilin.migrate.index import MoveIndex
from resilin.migrate.manifest import Manifest
from resilin.migrate.plan import TransferPlan
from resilin.migrate.remote import RemoteProgram

ATTEMPTS = 3  # tries of one content before the move fails
SENDERS_AT_ONCE = 4
TRANSFER_TIMEOUT_S = 6 * 3600.0


class TransferError(Exception):
    """Some content could not be brought to a destination node intact."""


@dataclass
class Endpoint:
    """A node of the move: how Resilin reaches it, and the address other nodes reach it at."""

    node: Node
    address: str


@dataclass
class TransferReport:
    wan_raw: int = 0  # bytes read for WAN sends
    wan_wire: int = 0  # compressed bytes sent over the WAN
    local_wire: int = 0  # compressed bytes copied inside the destination cloud
    files_sent: int = 0
    refetched: list[str] = field(default_factory=list)  # digests that arrived wrong once


Progress = Callable[[str, TransferReport], None]


class _Receiver:
    """One destination node's receiver, and what it reported."""

    def __init__(self, dest: str, endpoint: Endpoint, manifest: Manifest, token: str) -> None:
        files: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in manifest.files:
            files[entry.digest].append(
                {"path": entry.path, "mode": entry.mode, "uid": entry.uid, "gid": entry.gid}
            )
        settings = {
            "address": endpoint.address,
            "token": token,
            "files": files,
            "dirs": [vars(e) for e in manifest.entries if e.kind == "d"],
            "links": [vars(e) for e in manifest.entries if e.kind == "l"],
        }
        self.dest = dest
        self.program = RemoteProgram(
            endpoint.node, "receive.py", settings, TRANSFER_TIMEOUT_S, announces=True
        )
        first = next(self.program.lines(), None)
        if first is None or "port" not in first:
            raise TransferError(f"{dest}: the receiver did not start: {self.program.stderr().strip()}")
        self.port: int = first["port"]
        self.outcomes: dict[str, str | None] = {}  # digest -> None when verified, else why not
        self.changed = threading.Condition()
        self.problems: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.program.lines():
            with self.changed:
                if "ok" in line:
                    self.outcomes[line["ok"]] = None
                elif "bad" in line:
                    self.outcomes[line["bad"]] = line.get("why", "arrived wrong")
                elif "refused" in line or "lost" in line:
                    self.problems.append(line.get("refused") or line.get("lost") or "")
                self.changed.notify_all()

    def finish(self) -> None:
        self.program.close_stdin()
        self.reader.join(timeout=120)
        status = self.program.wait()
        if status != 0:
            raise TransferError(
                f"{self.dest}: the receiver failed ({status}): {self.program.stderr().strip()}"
            )
        self.program.close()


def transfer(
    plan: TransferPlan,
    manifests: dict[str, Manifest],
    destinations: dict[str, str],
    endpoints: dict[str, Endpoint],
    index: MoveIndex,
    progress: Progress | None = None,
    compress: bool = True,
) -> TransferReport:
    """Carry out ``plan``: every destination node ends with its source's state set, verified."""
    token = secrets.token_urlsafe(32)
    report = TransferReport()
    receivers = {
        dest: _Receiver(dest, endpoints[dest], manifests[source], token)
        for source, dest in destinations.items()
    }
    try:
        # The WAN first: each distinct content from the one source node that won it.
        wanted: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for send in plan.sends:
            wanted[(send.source, send.dest)].append((send.digest, send.source_path))
        _run_senders(wanted, endpoints, receivers, token, index, report, wan=True, compress=compress)
        if progress:
            progress("sent over the WAN", report)
        # Then inside the destination cloud, from a node that holds each content by now.
        holders = index.holders({c.digest for c in plan.copies})
        path_on = {
            dest: {e.digest: e.path for e in manifests[src].files} for src, dest in destinations.items()
        }
        source_of = {s.digest: (s.source, s.source_path) for s in plan.sends}
        local: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for copy in plan.copies:
            holder = next((h for h in sorted(holders.get(copy.digest, ())) if h != copy.dest), None)
            if holder is None:
                raise TransferError(f"{copy.dest}: no destination node holds {copy.digest}")
            local[(holder, copy.dest)].append((copy.digest, path_on[holder][copy.digest]))
        failed = _run_senders(
            local, endpoints, receivers, token, index, report, wan=False, attempts=1, compress=compress
        )
        # A destination copy that arrived wrong: the holder's copy is bad; fetch from the source.
        retry: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for (holder, dest), digest in failed:
            index.remove_holder(digest, holder)
            if digest not in source_of:
                raise TransferError(f"{dest}: {digest} arrived wrong and its source is unknown")
            source, path = source_of[digest]
            retry[(source, dest)].append((digest, path))
            report.refetched.append(digest)
        _run_senders(retry, endpoints, receivers, token, index, report, wan=True, compress=compress)
        if progress:
            progress("copied inside the destination", report)
    finally:
        for receiver in receivers.values():
            receiver.finish()
    return report


def _run_senders(
    wanted: dict[tuple[str, str], list[tuple[str, str]]],
    endpoints: dict[str, Endpoint],
    receivers: dict[str, _Receiver],
    token: str,
    index: MoveIndex,
    report: TransferReport,
    wan: bool,
    attempts: int = ATTEMPTS,
    compress: bool = True,
) -> list[tuple[tuple[str, str], str]]:
    """Send each pair's files; what never arrived intact after ``attempts`` tries is returned when
    ``attempts`` is 1 (the caller fetches it elsewhere) and fails the move otherwise."""
    lock = threading.Lock()
    failed: list[tuple[tuple[str, str], str]] = []

    def one_pair(pair: tuple[str, str], files: list[tuple[str, str]]) -> None:
        sender, dest = pair
        receiver = receivers[dest]
        pending = list(files)
        for attempt in range(attempts):
            with receiver.changed:
                for digest, _ in pending:
                    receiver.outcomes.pop(digest, None)
            settings = {
                "address": endpoints[dest].address,
                "port": receiver.port,
                "token": token,
                "files": pending,
                "compress": compress,
            }
            program = RemoteProgram(endpoints[sender].node, "send.py", settings, TRANSFER_TIMEOUT_S)
            totals = next(program.lines(), None)
            status = program.wait()
            why = program.stderr().strip()
            program.close()
            if status != 0 or totals is None or not totals.get("acknowledged"):
                raise TransferError(f"{sender} -> {dest}: the sender failed ({status}): {why[-500:]}")
            with receiver.changed:
                todo = [d for d, _ in pending]
                receiver.changed.wait_for(partial(_all_answered, receiver.outcomes, todo), timeout=60)
                outcomes = {d: receiver.outcomes.get(d, "no answer") for d, _ in pending}
            good = [d for d, problem in outcomes.items() if problem is None]
            for digest in good:
                index.add_holder(digest, dest)
            with lock:
                report.files_sent += len(good)
                if wan:
                    report.wan_raw += totals["raw"]
                    report.wan_wire += totals["wire"]
                else:
                    report.local_wire += totals["wire"]
                if attempt and good:
                    report.refetched += good
            pending = [(d, p) for d, p in pending if outcomes[d] is not None]
            if not pending:
                return
        if attempts == 1:
            with lock:
                failed.extend((pair, d) for d, _ in pending)
            return
        names = ", ".join(f"{p} ({receiver.outcomes.get(d)})" for d, p in pending[:5])
        raise TransferError(f"{sender} -> {dest}: arrived wrong {attempts} times: {names}")

    with ThreadPoolExecutor(SENDERS_AT_ONCE) as pool:
        for future in [pool.submit(one_pair, pair, files) for pair, files in wanted.items()]:
            future.result()
    return failed


def _all_answered(outcomes: dict[str, str | None], digests: list[str]) -> bool:
    return all(d in outcomes for d in digests)
