"""How a cluster's nodes reach each other: the seam for networks that span clouds.

:class:`SingleCloudNetwork` is the cloud's own network: every node of a cluster is in one
cloud, so there is nothing to join, and a cluster (or a group added to it) spread over several
clouds is refused.  The overlay (resilin.overlay.network.OverlayNetwork) answers these
questions differently and joins the nodes of several clouds in :meth:`ClusterNetwork.join`.

The network is given a :class:`NetworkContext` rather than the cluster's runtime (which holds
the network, and so may not be imported here): the store, each cloud's EC2 client and the
cluster's security group there, and the node sessions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from resilin.cluster.sessions import NodeSessions
from resilin.jobflows.documents import InstanceDoc
from resilin.jobflows.store import JobFlowStore
from resilin.provisioners.ec2client import EC2Client


class NetworkFailure(Exception):
    """The nodes could not be joined (the lifecycle ends the cluster with this message)."""


@dataclass(frozen=True)
class NetworkContext:
    """What a network may use to join a cluster's nodes and to leave again."""

    cid: str
    store: JobFlowStore
    client_for: Callable[[str], EC2Client]  # cloud name → the EC2 client the cluster's instances came from
    security_group_for: Callable[[str], str]  # cloud name → the cluster's own group there ("" if none)
    sessions: NodeSessions
    tags: dict[str, str] = field(default_factory=dict)  # put on what the network makes in a cloud


class ClusterNetwork(ABC):
    @abstractmethod
    def spread_refusal(self, clouds: Collection[str]) -> str | None:
        """Why a cluster whose groups are placed in ``clouds`` cannot start; None if it can."""

    @abstractmethod
    def reach_refusal(self, group_id: str, group_cloud: str, cluster_cloud: str) -> str | None:
        """Why a group placed in ``group_cloud`` cannot grow a cluster in ``cluster_cloud``; None if it can."""

    @abstractmethod
    def join(self, instances: list[InstanceDoc], context: NetworkContext) -> dict[str, str]:
        """Make ``instances`` (all the cluster's live ones) reach each other: after provisioning,
        before the application is configured, and again whenever the set changes.  Idempotent.

        Returns each cloud's gateway (cloud → instance id); empty when no overlay joins them."""

    @abstractmethod
    def leave(self, context: NetworkContext) -> list[str]:
        """Undo what :meth:`join` made in the clouds, at teardown before the instances are
        terminated; returns what could not be undone (never raises)."""


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

    def join(self, instances: list[InstanceDoc], context: NetworkContext) -> dict[str, str]:
        """Nothing to do: the cloud's network already carries the cluster's traffic."""
        return {}

    def leave(self, context: NetworkContext) -> list[str]:
        return []
