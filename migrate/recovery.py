"""A relocation cut short by a restart of Resilin, settled as the cluster is taken back.

The pipeline (resilin.migrate.pipeline) keeps the source untouched until its RELEASING phase, so:

* before RELEASING the move is rolled back: the instance documents name the source instances
  again (a swap is undone), the destination's instances are let go with the cluster's other
  strays (resilin.cluster.adoption), and — when the source was already quiescing — Hadoop is
  stopped wherever part of it still runs and started again from the state the source kept;
* from RELEASING on the destination runs the cluster: the move is completed, the source's
  instances being strays by then.

Either way the move's index in Redis is forgotten and its record says what happened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from resilin.applications.base import Application, ApplicationError
from resilin.cluster.runtime import ClusterFailure, ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc
from resilin.jobflows.relocations import RelocationOutcome, RelocationPhase
from resilin.migrate.index import MoveIndex

log = logging.getLogger(__name__)

# Phases in which the source's daemons may have been stopped.
_SOURCE_STOPPED = {
    RelocationPhase.QUIESCING,
    RelocationPhase.CAPTURING,
    RelocationPhase.TRANSFERRING,
    RelocationPhase.REBUILDING,
    RelocationPhase.STARTING,
    RelocationPhase.ROLLING_BACK,
}
MOVED_MESSAGE = "Relocated to another cloud"  # the pipeline's reason for a source instance it swapped out


@dataclass(frozen=True)
class InterruptedMove:
    phase: str
    destination: str
    completes: bool  # the destination runs the cluster already

    @property
    def source_stopped(self) -> bool:
        return not self.completes and self.phase in _SOURCE_STOPPED


def settle_documents(runtime: ClusterRuntime) -> InterruptedMove | None:
    """The move the cluster's document shows in progress, if any, with the instance documents
    put back on the source when the move is to be rolled back."""
    relocation = runtime.cluster.get("relocation")
    if not relocation or relocation["phase"] == RelocationPhase.PENDING:
        return None  # a move not begun yet is taken up by the cluster's monitor as usual
    phase = relocation["phase"]
    move = InterruptedMove(phase, relocation["destination"], completes=phase == RelocationPhase.RELEASING)
    source = set(relocation.get("source_instances") or [])
    staying = set(relocation.get("staying_instances") or [])
    if move.completes or not source:
        return move  # nothing was swapped before the source's instances were recorded
    for doc in runtime.store.instances_of(runtime.cid):
        if doc["id"] in source and (doc.get("state_reason") or {}).get("message") == MOVED_MESSAGE:
            doc["state"] = states.INSTANCE_RUNNING
            doc.pop("state_reason", None)
            doc.get("timeline", {}).pop("end", None)
            runtime.store.restore_instance(runtime.cid, doc)
        elif doc["id"] not in source | staying and doc["state"] != states.INSTANCE_TERMINATED:
            runtime.set_instance_state(doc, states.INSTANCE_TERMINATED, None, "Relocation rolled back")
    return move


def finish(runtime: ClusterRuntime, application: Application, move: InterruptedMove) -> None:
    """Once the cluster's nodes are reached again: the source's Hadoop started again where the
    move had stopped it, the move's index forgotten, and its outcome recorded."""
    outcome = RelocationOutcome.COMPLETED if move.completes else RelocationOutcome.ROLLED_BACK
    message = f"Resilin was restarted while relocating ({move.phase.lower()}): " + (
        "the move was completed" if move.completes else "the cluster runs as before, in its source cloud"
    )
    if move.source_stopped:
        runtime.progress("Starting Hadoop again in the source cloud after an interrupted relocation")
        try:
            application.resume(runtime, runtime.live_instances(), stop_first=True)
        except ApplicationError as exc:
            _record(runtime, RelocationOutcome.FAILED, f"{message}; restarting the source failed: {exc}")
            raise ClusterFailure(
                states.INTERNAL_ERROR, f"Relocation interrupted and the cluster could not be restarted: {exc}"
            ) from None
    MoveIndex(runtime.store.redis, f"{runtime.cid}-relocation").forget()
    _record(runtime, outcome, message)
    log.info("%s: %s", runtime.cid, message)


def _record(runtime: ClusterRuntime, outcome: str, message: str) -> None:
    ended = time.time()

    def change(c: ClusterDoc) -> None:
        relocation: dict[str, Any] = dict(c.pop("relocation", None) or {})
        c.setdefault("relocations", []).append(
            {
                "source": relocation.get("source", ""),
                "destination": relocation.get("destination", ""),
                "groups": relocation.get("groups", {}),
                "requested": relocation.get("requested", ended),
                "ended": ended,
                "outcome": outcome,
                "message": message,
                "bytes_sent": (relocation.get("progress") or {}).get("bytes_sent", 0),
            }
        )

    runtime.store.update_cluster(runtime.cid, change)
