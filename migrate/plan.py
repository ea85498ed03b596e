"""Which bytes go where in a relocation, decided from the source nodes' manifests and the index.

Each source node has one destination node (its replacement in the destination cloud), which must
end up with every file of the source's manifest.  A distinct content crosses the WAN once, from
the source node that won its ``SETNX`` to that node's destination; every other destination node
needing it copies it from a destination node holding it, inside the destination cloud.  Content a
destination node holds already (a resumed move) is not sent again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from resilin.migrate.manifest import Entry, Manifest


@dataclass(frozen=True)
class WanSend:
    """One distinct content sent over the WAN: read at ``source_path`` on ``source``, written at
    each of ``dest_paths`` on ``dest``."""

    digest: str
    size: int
    source: str
    source_path: str
    dest: str
    dest_paths: tuple[str, ...]


@dataclass(frozen=True)
class LocalCopy:
    """Content that ``dest`` takes from another destination node holding it (chosen when the copy
    runs, from the index), written at each of ``dest_paths``."""

    digest: str
    size: int
    dest: str
    dest_paths: tuple[str, ...]


@dataclass
class TransferPlan:
    sends: list[WanSend] = field(default_factory=list)
    copies: list[LocalCopy] = field(default_factory=list)
    already_there: int = 0  # files a destination node holds from an earlier try

    @property
    def wan_bytes(self) -> int:
        """Content crossing the WAN, before compression."""
        return sum(s.size for s in self.sends)

    @property
    def local_bytes(self) -> int:
        return sum(c.size for c in self.copies)


def plan_transfer(
    manifests: dict[str, Manifest],
    destinations: dict[str, str],
    won: dict[str, set[str]],
    held: dict[str, set[str]],
) -> TransferPlan:
    """The plan, given each source node's manifest, its destination node, the digests each source
    node won (:meth:`MoveIndex.claim`) and the destination nodes already holding each digest."""
    if set(manifests) != set(destinations):
        raise ValueError("every source node needs a destination node, and only those")
    winners: dict[str, str] = {}
    for source, digests in won.items():
        if source not in manifests:
            raise ValueError(f"{source} is not a source node of this move")
        for digest in digests:
            if winners.setdefault(digest, source) != source:
                raise ValueError(f"two senders for {digest}")
    plan = TransferPlan()
    for source in sorted(manifests):
        dest = destinations[source]
        by_digest: dict[str, list[Entry]] = defaultdict(list)
        for entry in manifests[source].files:
            by_digest[entry.digest].append(entry)
        for digest, entries in sorted(by_digest.items()):
            paths = tuple(e.path for e in entries)
            if dest in held.get(digest, set()):
                plan.already_there += len(entries)
            elif winners.get(digest) == source:
                plan.sends.append(WanSend(digest, entries[0].size, source, entries[0].path, dest, paths))
            elif digest in winners or held.get(digest):
                plan.copies.append(LocalCopy(digest, entries[0].size, dest, paths))
            else:
                raise ValueError(f"{digest} (on {source}) has no sender and no holder: claim it first")
    return plan
