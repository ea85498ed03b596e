"""What every group of EMR operations shares: the store, finding a caller's clusters, and paging."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from resilin.errors import InvalidRequest, ValidationError, no_such_cluster
from resilin.jobflows import ids, states
from resilin.jobflows.caller import Caller, as_caller
from resilin.jobflows.documents import ClusterDoc, StepDoc
from resilin.jobflows.releases import OfferedTypes, no_offered_types
from resilin.jobflows.store import JobFlowStore

PAGE_SIZE = 50
T = TypeVar("T")

# States in which a cluster still accepts changes (steps, settings, groups).
MODIFIABLE_STATES = (states.STARTING, states.BOOTSTRAPPING, states.RUNNING, states.WAITING)
NOT_MODIFIABLE = "A job flow that is shutting down, terminated, or finished may not be modified."


class ServiceBase:
    def __init__(
        self,
        store: JobFlowStore,
        region: str = "us-east-1",
        offered_types: OfferedTypes = no_offered_types,
    ) -> None:
        self.store = store
        self.region = region
        # Which instance types each configured cloud offers (cloud name → types), asked when needed.
        self.offered_types = offered_types

    # -- finding what the caller may see ----------------------------------
    def _cluster(self, who: str | Caller, cid: str) -> ClusterDoc:
        caller = as_caller(who)
        cluster = self.store.get_cluster(cid) if ids.CLUSTER_ID.match(cid or "") else None
        if cluster is None or not caller.can_see(cluster):
            raise no_such_cluster(cid)
        return cluster

    def _modifiable_cluster(self, who: str | Caller, cid: str) -> ClusterDoc:
        cluster = self._cluster(who, cid)
        if cluster["state"] not in MODIFIABLE_STATES or cluster.get("terminate_requested"):
            raise ValidationError(NOT_MODIFIABLE)
        return cluster

    def _clusters(self, who: str | Caller, cids: Sequence[str], *, modifiable: bool) -> list[ClusterDoc]:
        """Every named cluster, all checked before any is changed."""
        find = self._modifiable_cluster if modifiable else self._cluster
        return [find(who, cid) for cid in cids]

    def _step(self, who: str | Caller, cid: str, sid: str) -> StepDoc:
        self._cluster(who, cid)
        step = self.store.get_step(sid) if ids.STEP_ID.match(sid or "") else None
        if step is None or step["cluster_id"] != cid:
            raise InvalidRequest(f"Step id '{sid}' is not valid.")
        return step

    def _update(self, cid: str, change: Callable[[ClusterDoc], None]) -> ClusterDoc:
        """Change a cluster unless it ended meanwhile (checked again inside the transaction)."""

        def guarded(cluster: ClusterDoc) -> None:
            if cluster["state"] not in MODIFIABLE_STATES or cluster.get("terminate_requested"):
                raise ValidationError(NOT_MODIFIABLE)
            change(cluster)

        return self.store.update_cluster(cid, guarded)


# -- paging -----------------------------------------------------------------


def offset_marker(marker: str | None) -> int:
    if marker is None:
        return 0
    if not marker.isdigit() or len(marker) > 9:
        raise InvalidRequest(f"Marker '{marker}' is not valid.")
    return int(marker)


def page(items: Sequence[T], marker: str | None, key: str) -> dict[str, Any]:
    """One page of a listing whose order does not change while it is paged."""
    start = offset_marker(marker)
    result: dict[str, Any] = {key: list(items[start : start + PAGE_SIZE])}
    if start + PAGE_SIZE < len(items):
        result["Marker"] = str(start + PAGE_SIZE)
    return result


def page_newest_first(
    oldest_first: Sequence[T], marker: str | None, keep: Callable[[T], bool]
) -> tuple[list[T], str | None]:
    """A page of a growing, append-only list shown newest first.

    The marker is the position (counted from the oldest) to go on from, so items added while a
    client pages do not shift what it has not seen yet.
    """
    start = len(oldest_first) - 1
    if marker is not None:
        start = offset_marker(marker)
        if start >= len(oldest_first):
            raise InvalidRequest(f"Marker '{marker}' is not valid.")
    chosen: list[T] = []
    index = start
    while index >= 0:
        item = oldest_first[index]
        if keep(item):
            if len(chosen) == PAGE_SIZE:
                return chosen, str(index)
            chosen.append(item)
        index -= 1
    return chosen, None


def time_marker(created: float, cid: str) -> str:
    return f"{created!r}:{cid}"


def parse_time_marker(marker: str) -> tuple[float, str]:
    created, _, cid = marker.partition(":")
    try:
        value = float(created)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not ids.CLUSTER_ID.match(cid):
        raise InvalidRequest(f"Marker '{marker}' is not valid.")
    return value, cid


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
