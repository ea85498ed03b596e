"""RelocateCluster's documents as the API shows them: phases, outcomes, and the cluster's status.

The ``relocation`` of a cluster document is written by RelocateCluster and moved on by the
orchestrator's relocation pipeline (``resilin.migrate``), which ends it by appending a record to
``relocations`` (resilin.jobflows.documents).  This module only reads them.
"""

from __future__ import annotations

import datetime as dt
import math
from enum import StrEnum
from typing import Any

from resilin.jobflows.documents import (
    ClusterDoc,
    ClusterSummaryDoc,
    RelocationDoc,
    RelocationRecord,
    RelocationSummary,
)


class RelocationPhase(StrEnum):
    """The model's ClusterRelocationPhase: where a relocation in progress is."""

    PENDING = "PENDING"  # accepted, not yet taken up by the pipeline
    PLANNING = "PLANNING"
    QUIESCING = "QUIESCING"
    LAUNCHING = "LAUNCHING"
    CAPTURING = "CAPTURING"
    TRANSFERRING = "TRANSFERRING"
    REBUILDING = "REBUILDING"
    STARTING = "STARTING"
    RELEASING = "RELEASING"
    ROLLING_BACK = "ROLLING_BACK"


class RelocationOutcome(StrEnum):
    """The model's ClusterRelocationOutcome: how a relocation ended."""

    COMPLETED = "COMPLETED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"


_PHASES = frozenset(RelocationPhase)
_OUTCOMES = frozenset(RelocationOutcome)


def phase_words(phase: str) -> str:
    """``ROLLING_BACK`` → ``rolling back``."""
    return phase.replace("_", " ").lower()


def relocating_message(relocation: RelocationDoc | RelocationSummary) -> str:
    """The StateChangeReason message of a cluster being relocated."""
    return f"Relocating to {relocation['destination']}: {phase_words(relocation['phase'])}"


def status_message(cluster: ClusterDoc | ClusterSummaryDoc) -> str | None:
    """The relocation's message while the cluster has one, else None."""
    relocation = cluster.get("relocation")
    return relocating_message(relocation) if relocation else None


# -- the ClusterRelocation shape -------------------------------------------------------


def _time(epoch: Any) -> dt.datetime | None:
    number = _number(epoch)
    return dt.datetime.fromtimestamp(number, dt.UTC) if number else None


def _number(value: Any) -> float | None:
    # The pipeline writes these; a value of another kind is left out rather than failing the answer.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else max(0, round(number))


def _groups(groups: dict[str, str]) -> list[dict[str, str]]:
    return [{"InstanceGroupId": gid, "InstanceType": itype} for gid, itype in groups.items()]


def _strip(shape: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shape.items() if v is not None}


def relocation_view(relocation: RelocationDoc) -> dict[str, Any]:
    """A relocation in progress as a ClusterRelocation."""
    progress = relocation.get("progress") or {}
    phase = relocation["phase"]
    return _strip(
        {
            "TargetCloud": relocation["destination"],
            "SourceCloud": relocation.get("source") or None,
            # A phase the model does not list is left out rather than failing the answer.
            "Phase": phase if phase in _PHASES else None,
            "InstanceGroups": _groups(relocation["groups"]),
            "RequestDateTime": _time(relocation["requested"]),
            "PhaseStartDateTime": _time(progress.get("phase_started")),
            "BytesTotal": _count(progress.get("bytes_total")),
            "BytesSent": _count(progress.get("bytes_sent")),
            "ChunksTotal": _count(progress.get("chunks_total")),
            "ChunksSent": _count(progress.get("chunks_sent")),
            "EstimatedSecondsLeft": _count(progress.get("eta_seconds")),
        }
    )


def record_view(record: RelocationRecord) -> dict[str, Any]:
    """An ended relocation as a ClusterRelocation."""
    outcome = record.get("outcome")
    return _strip(
        {
            "TargetCloud": record.get("destination"),
            "SourceCloud": record.get("source") or None,
            "InstanceGroups": _groups(record.get("groups") or {}),
            "RequestDateTime": _time(record.get("requested")),
            "EndDateTime": _time(record.get("ended")),
            "Outcome": outcome if outcome in _OUTCOMES else None,
            "Message": record.get("message") or None,
            "BytesSent": _count(record.get("bytes_sent")),
            "DowntimeSeconds": _count(record.get("downtime_seconds")),
        }
    )


def describe(cluster: ClusterDoc) -> dict[str, Any]:
    """DescribeClusterRelocation's answer: the relocation in progress and the past ones, newest first."""
    relocation = cluster.get("relocation")
    return _strip(
        {
            "Relocation": relocation_view(relocation) if relocation else None,
            "PastRelocations": [record_view(r) for r in reversed(cluster.get("relocations") or [])],
        }
    )
