"""A running cluster's recent metrics, sampled from its master at most every ``SAMPLE_SECONDS``
(EMR's CloudWatch names: :mod:`resilin.applications.hadoop.yarn_metrics`), for the scaling
operations to evaluate."""

from __future__ import annotations

import logging
from collections import deque

from resilin.applications.hadoop.yarn_metrics import MetricsUnavailable, sample
from resilin.cluster.runtime import ClusterRuntime

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 15.0
KEEP_SECONDS = 6 * 3600  # older samples are dropped: no window worth evaluating reaches them


class MetricsHistory:
    def __init__(self, sample_seconds: float = SAMPLE_SECONDS) -> None:
        self.sample_seconds = sample_seconds
        self.samples: deque[tuple[float, dict[str, float]]] = deque()
        self.last = 0.0

    def refresh(self, runtime: ClusterRuntime, now: float) -> None:
        """Take a sample if the last one is old enough (none when the daemons do not answer)."""
        if now - self.last < self.sample_seconds:
            return
        master = runtime.master_instance()
        try:
            self.samples.append((now, sample(runtime.sessions[master["id"]], master["private_ip"])))
            self.last = now
        except (MetricsUnavailable, KeyError) as exc:
            log.info("%s: no metrics this round: %s", runtime.cid, exc)
        while self.samples and self.samples[0][0] < now - KEEP_SECONDS:
            self.samples.popleft()

    def series(self, metric: str) -> list[tuple[float, float]]:
        return [(t, values[metric]) for t, values in self.samples if metric in values]

    def window(self, start: float, end: float) -> list[dict[str, float]]:
        """The samples taken in (start, end]."""
        return [values for t, values in self.samples if start < t <= end]
