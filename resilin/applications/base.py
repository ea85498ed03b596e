"""What runs on a cluster's nodes: the seam between a cluster's life and the software it runs.

The lifecycle (resilin.cluster.lifecycle) and the operations on a running cluster
(resilin.cluster.operations) provision, join, grow, shrink and release instances; everything
they need done *inside* the nodes goes through an :class:`Application`.  Hadoop
(resilin.applications.hadoop) is the one Resilin runs today; another (Spark on its own, say)
is a class beside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from resilin.clouds.ssh import Node
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows.documents import InstanceDoc, InstanceGroupDoc


class NodesRejected(Exception):
    """Nodes added to a running cluster could not be set up: they are of no use and are let go."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApplicationError(Exception):
    """The application refused a change to a running cluster (the cluster's group is arrested)."""


@dataclass(frozen=True)
class StartTiming:
    """Where the configuration phase went, seconds: the application's own waits."""

    daemons: float  # the slowest node waiting for its daemons to start
    bootstrap: float  # that node's bootstrap actions
    ready_wait: float  # waiting until every node registered


class Application(ABC):
    name: str  # in the cluster's phase marks: "<name>_configured", "<name>_ready"

    @abstractmethod
    def configure(self, runtime: ClusterRuntime, instances: list[InstanceDoc]) -> StartTiming:
        """Configure and start it on every node and wait until it is ready (ClusterFailure if not)."""

    @abstractmethod
    def add_nodes(self, runtime: ClusterRuntime, new: list[tuple[InstanceDoc, Node]]) -> None:
        """Make freshly provisioned nodes part of the running cluster (NodesRejected if they cannot be)."""

    @abstractmethod
    def decommission(
        self, runtime: ClusterRuntime, group: InstanceGroupDoc, victims: list[InstanceDoc]
    ) -> None:
        """Move work and data off ``victims`` of ``group`` before their instances are let go."""

    @abstractmethod
    def forget_failed(self, runtime: ClusterRuntime, instance: InstanceDoc) -> None:
        """A node died: have its work redone elsewhere now (best effort)."""

    @abstractmethod
    def reconfigure(self, runtime: ClusterRuntime, group_id: str) -> None:
        """Apply the group's pending configurations to its nodes, or go back to the previous ones."""

    # -- relocation (resilin.migrate.pipeline) ---------------------------------------------
    state_paths: list[str] = []  # what a node holds that a move carries: the rest is rendered again

    def quiesce(self, runtime: ClusterRuntime, instances: list[InstanceDoc]) -> None:
        """Save the application's state to disk and stop it on ``instances`` (ApplicationError if not)."""
        raise ApplicationError(f"{self.name} clusters cannot be relocated")

    def resume(self, runtime: ClusterRuntime, instances: list[InstanceDoc], stop_first: bool = False) -> None:
        """Start it again on ``instances`` from the state they kept (a move that failed); with
        ``stop_first``, what still runs of it is stopped before (a move cut short by a restart
        of Resilin may have stopped only part of it)."""
        raise ApplicationError(f"{self.name} clusters cannot be relocated")

    def configure_moved(
        self, runtime: ClusterRuntime, staying: list[InstanceDoc], moved: list[InstanceDoc]
    ) -> None:
        """Configure and start the ``moved`` instances, new ones holding moved state, with the
        ``staying`` ones (a partial move) told the new addresses and started again."""
        raise ApplicationError(f"{self.name} clusters cannot be relocated")

    # -- after a restart of Resilin (resilin.cluster.adoption) ------------------------------
    def adopt(self, runtime: ClusterRuntime) -> None:
        """Take back a cluster that kept running while Resilin was down: rebuild what the
        application held in memory from the cluster's document (ApplicationError if it cannot)."""
        raise ApplicationError(f"{self.name} clusters are not taken back after a restart")

    @abstractmethod
    def rewrite_storage_keys(self, runtime: ClusterRuntime) -> None:
        """Give every running node the cluster's current storage keys (they were renewed)."""

    @abstractmethod
    def ship_logs(self, runtime: ClusterRuntime, nodes: dict[str, Node]) -> None:
        """The nodes' logs to the cluster's LogUri as the cluster ends (best effort)."""
