"""What an operation on a running cluster is (resilin.cluster.operations lists those the monitor
runs), and the group states resizing gives."""

from __future__ import annotations

from abc import ABC, abstractmethod

from resilin.cluster.runtime import ClusterRuntime

ARRESTED = "ARRESTED"  # a group whose resize failed: left alone from then on
RESIZING = "RESIZING"


class ClusterOperation(ABC):
    @abstractmethod
    def wanted(self, runtime: ClusterRuntime) -> bool:
        """Whether the cluster's document or its cloud asks for this operation now."""

    @abstractmethod
    def run(self, runtime: ClusterRuntime) -> None:
        """Do it; an exception leaves the cluster as it is, to be looked at again next round."""
