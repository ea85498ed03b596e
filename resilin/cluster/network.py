"""How a cluster's nodes reach each other: the seam for networks that span clouds.

The default, :class:`SingleCloudNetwork`, is the cloud's own network: every node of a
cluster is in one cloud, so there is nothing to join, and a cluster (or a group added to
it) spread over several clouds is refused.  An overlay network will answer these
questions differently and join the nodes in :meth:`ClusterNetwork.join`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection

from resilin.cluster.sessions import NodeSessions
from resilin.jobflows.documents import InstanceDoc


class ClusterNetwork(ABC):
    @abstractmethod
    def spread_refusal(self, clouds: Collection[str]) -> str | None:
        """Why a cluster whose groups are placed in ``clouds`` cannot start; None if it can."""

    @abstractmethod
    def reach_refusal(self, group_id: str, group_cloud: str, cluster_cloud: str) -> str | None:
        """Why a group placed in ``group_cloud`` cannot grow a cluster in ``cluster_cloud``; None if it can."""

    @abstractmethod
    def join(self, instances: list[InstanceDoc], sessions: NodeSessions) -> None:
        """Make the nodes reach each other (after provisioning, before the application is configured)."""


class SingleCloudNetwork(ClusterNetwork):
    """Every node in one cloud, on that cloud's network."""

    def spread_refusal(self, clouds: Collection[str]) -> str | None:
        if len(set(clouds)) <= 1:
            return None
        return (
            f"Instance groups are placed in several clouds ({', '.join(sorted(set(clouds)))}), "
            "which cannot reach each other without the overlay network."
        )

    def reach_refusal(self, group_id: str, group_cloud: str, cluster_cloud: str) -> str | None:
        if group_cloud == cluster_cloud:
            return None
        return (
            f"instance group {group_id} is placed in cloud {group_cloud}, which cannot reach "
            f"the cluster's cloud {cluster_cloud} without the overlay network"
        )

    def join(self, instances: list[InstanceDoc], sessions: NodeSessions) -> None:
        """Nothing to do: the cloud's network already carries the cluster's traffic."""
