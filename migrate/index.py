"""The content index of one relocation, in Redis, as Shrinker kept it (Riteau's thesis, §6.4):

* coordination — ``SETNX`` on a digest decides the one source node that sends that content over
  the WAN; every other source node holding it sends nothing for it;
* indexing — a set per digest lists the destination nodes holding the content once it has arrived
  and been verified, so a destination node that needs it copies it from one of them inside the
  destination cloud.

Queries are pipelined (one round trip for a node's whole manifest), which is what let Shrinker's
coordination keep up with the network.  Everything lives under one key prefix per move, so a move
that Resilin resumes after a restart finds what was decided and what already arrived, and a move
that ends removes its keys in one sweep.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

PREFIX = "resilin:move"
BATCH = 5000  # commands per pipeline round trip


class MoveIndex:
    def __init__(self, client: redis.Redis, move_id: str) -> None:
        self.client = client
        self.move_id = move_id
        self._base = f"{PREFIX}:{move_id}"

    def _sender_key(self, digest: str) -> str:
        return f"{self._base}:sender:{digest}"

    def _holders_key(self, digest: str) -> str:
        return f"{self._base}:holders:{digest}"

    def claim(self, node: str, digests: Iterable[str]) -> set[str]:
        """The digests ``node`` is to send: those no other node claimed first (``SETNX``), and those
        it claimed itself in an earlier try of this move (a resumed move keeps its senders)."""
        ordered = sorted(set(digests))
        won: set[str] = set()
        for start in range(0, len(ordered), BATCH):
            batch = ordered[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            for digest in batch:
                pipe.setnx(self._sender_key(digest), node)
            fresh = pipe.execute()
            won |= {d for d, first in zip(batch, fresh, strict=True) if first}
            lost = [d for d, first in zip(batch, fresh, strict=True) if not first]
            if lost:
                owners = self.client.mget([self._sender_key(d) for d in lost])
                won |= {d for d, owner in zip(lost, owners, strict=True) if _text(owner) == node}
        return won

    def sender(self, digest: str) -> str | None:
        return _text(self.client.get(self._sender_key(digest)))

    def add_holder(self, digest: str, node: str) -> None:
        """``node`` holds the content, verified (``SADD``)."""
        self.client.sadd(self._holders_key(digest), node)

    def remove_holder(self, digest: str, node: str) -> None:
        """``node`` no longer holds it (its copy failed verification or the node is gone)."""
        self.client.srem(self._holders_key(digest), node)

    def holders(self, digests: Iterable[str]) -> dict[str, set[str]]:
        """For each digest, the destination nodes holding it (pipelined ``SMEMBERS``)."""
        ordered = sorted(set(digests))
        found: dict[str, set[str]] = {}
        for start in range(0, len(ordered), BATCH):
            batch = ordered[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            for digest in batch:
                pipe.smembers(self._holders_key(digest))
            for digest, members in zip(batch, pipe.execute(), strict=True):
                found[digest] = {m.decode() if isinstance(m, bytes) else m for m in members}
        return found

    def counts(self) -> tuple[int, int]:
        """(digests with a sender, digests held by at least one destination node)."""
        senders = sum(1 for _ in self.client.scan_iter(match=f"{self._base}:sender:*", count=1000))
        held = sum(1 for _ in self.client.scan_iter(match=f"{self._base}:holders:*", count=1000))
        return senders, held

    def forget(self) -> int:
        """Remove every key of this move; the number removed."""
        removed = 0
        batch: list[str | bytes] = []
        for key in self.client.scan_iter(match=f"{self._base}:*", count=1000):
            batch.append(key)
            if len(batch) >= BATCH:
                removed += self.client.unlink(*batch)
                batch = []
        if batch:
            removed += self.client.unlink(*batch)
        return removed


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
