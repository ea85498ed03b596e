"""Everything a phase of a cluster's life or an operation on it may touch, in one object.

The store and the cluster's document in it, the clouds it may be placed in and where it was
placed, its network, the SSH sessions to its nodes (a locked set that closes when teardown
begins), credentials, and Resilin's home.  The lifecycle (resilin.cluster.lifecycle), the
operations on a running cluster (resilin.cluster.operations) and the application
(resilin.applications.base) take a :class:`ClusterRuntime`; none of them knows the thread
that runs the cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilin.aws.sigv4 import Credentials
from resilin.clouds.provisioning import (
    TAG_CLUSTER,
    TAG_INSTALLATION,
    ClusterProvisioner,
    Limits,
    Placement,
    PlacementLookup,
)
from resilin.clouds.ssh import Node
from resilin.cluster import bootstrap
from resilin.cluster.cluster_credentials import ClusterCredentials
from resilin.cluster.network import ClusterNetwork, NetworkContext
from resilin.cluster.sessions import NodeSessions
from resilin.cluster.storage_sessions import StorageSessionError, StorageSessions
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc
from resilin.jobflows.store import JobFlowStore, StateConflict
from resilin.overlay.network import OverlayNetwork
from resilin.settings.installation import installation_id

log = logging.getLogger(__name__)

RUNNING_TIMEOUT = 300
SSH_TIMEOUT = 300
LIVE = (states.INSTANCE_BOOTSTRAPPING, states.INSTANCE_RUNNING)


class ClusterFailure(Exception):
    """The cluster cannot go on: an EMR state-change code and a message for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TerminationRequested(Exception):
    pass


class OperationCancelled(Exception):
    """Teardown began while an operation on the running cluster was under way."""


@dataclass
class ClusterRuntime:
    cid: str
    store: JobFlowStore
    placements: PlacementLookup  # the clouds (resilin.clouds.registry.CloudRegistry)
    credentials_for: Callable[[str], Credentials]  # an account's own credentials
    home: Path
    region: str
    # Every cluster's: it joins the clouds of one spread over several, and does nothing in one cloud.
    network: ClusterNetwork = field(default_factory=lambda: OverlayNetwork())
    sessions: NodeSessions = field(default_factory=NodeSessions)
    wake: threading.Event = field(default_factory=threading.Event)  # the cluster's document changed
    # Set when teardown begins: operations on the running cluster stop at their next step.
    cancelled: threading.Event = field(default_factory=threading.Event)
    provisioner: ClusterProvisioner = field(init=False)

    def __post_init__(self) -> None:
        self.provisioner = ClusterProvisioner(
            self.cid,
            self.placements,
            installation_id(self.home),
            progress=self.progress,
            phase=self.phase,
            check_termination=self.check_termination,
            limits=Limits(running_timeout=RUNNING_TIMEOUT, ssh_timeout=SSH_TIMEOUT),
            network=self.network,
        )

    # -- the cluster's document -----------------------------------------------------
    @property
    def cluster(self) -> ClusterDoc:
        cluster = self.store.get_cluster(self.cid)
        assert cluster is not None
        return cluster

    def check_termination(self) -> None:
        if self.cluster["terminate_requested"]:
            raise TerminationRequested()

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise OperationCancelled(f"{self.cid} is being torn down")

    def progress(self, message: str) -> None:
        def change(c: ClusterDoc) -> None:
            if not c["terminate_requested"]:
                c["state_reason"] = {"code": None, "message": message}

        self.store.update_cluster(self.cid, change)
        log.info("%s: %s", self.cid, message)

    def phase(self, name: str) -> None:
        def change(c: ClusterDoc) -> None:
            c.setdefault("phases", {})[name] = time.time()

        self.store.update_cluster(self.cid, change)

    def transition(self, state: str, message: str | None = None) -> None:
        try:
            self.store.transition_cluster(self.cid, state, None, message)
        except StateConflict:
            self.check_termination()
            raise

    def request_termination(self, code: str, message: str) -> None:
        self.store.update_cluster(self.cid, lambda c: states.begin_termination(c, code, message))

    # -- instances --------------------------------------------------------------------
    def set_instance_state(
        self, instance: InstanceDoc, state: str, code: str | None = None, message: str | None = None
    ) -> None:
        instance["state"] = state
        instance["state_reason"] = {"code": code, "message": message}
        timeline = instance.setdefault("timeline", {})
        if state == states.INSTANCE_RUNNING:
            timeline["ready"] = time.time()
        if state == states.INSTANCE_TERMINATED:
            timeline.setdefault("end", time.time())
        self.store.put_instance(self.cid, instance)

    def live_instances(self) -> list[InstanceDoc]:
        return [i for i in self.store.instances_of(self.cid) if i["state"] in LIVE]

    def master_instance(self) -> InstanceDoc:
        """The cluster's master: the live one (a relocated cluster's old master is terminated)."""
        masters = [i for i in self.store.instances_of(self.cid) if i["role"] == "MASTER"]
        return next((i for i in masters if i["state"] in LIVE), None) or next(iter(masters))

    def master(self) -> Node:
        return self.sessions[self.master_instance()["id"]]

    # -- where it runs ----------------------------------------------------------------
    def network_context(self) -> NetworkContext:
        """What the network may use: each cloud's client and the cluster's group there, the sessions."""
        return NetworkContext(
            self.cid,
            self.store,
            client_for=lambda cloud: self.placements(cloud).client,
            security_group_for=self._security_group,
            sessions=self.sessions,
            tags={TAG_CLUSTER: self.cid, TAG_INSTALLATION: installation_id(self.home)},
        )

    def _security_group(self, cloud: str) -> str:
        resources = self.provisioner.resources.get(cloud)
        return resources.security_group if resources is not None else ""

    @property
    def placement(self) -> Placement:
        """The cloud the cluster was placed in (once provisioning chose one)."""
        placement = self.provisioner.placement
        assert placement is not None, f"{self.cid} has not been placed"
        return placement

    def storage(self) -> Any:  # boto3's S3 client
        """An S3 client on the cluster's storage as its account (bootstrap scripts, logs): Resilin's,
        or the external S3 service its cloud names."""
        external = self.placement.external_storage
        if external is None:
            return bootstrap.storage_client(
                self.placement.storage_endpoint, self.credentials_for(self.cluster["account"]), self.region
            )
        return bootstrap.storage_client(
            external.endpoint, self._external_credentials(), external.region, path_style=external.path_style
        )

    def node_credentials(self) -> Credentials:
        """The storage credentials the cluster's nodes get: the cluster's own on Resilin's storage
        (never the user's key); on its cloud's external S3 service, the cluster's session keys
        where that service issues them, else the account's keys."""
        external = self.placement.external_storage
        if external is None:
            return ClusterCredentials(self.store.redis).issue(self.cid, self.cluster["account"])
        if not external.session_seconds:
            return self._external_credentials()
        sessions = StorageSessions(self.store.redis)
        current = sessions.current(self.cid)
        if current is not None and current.expires > time.time():
            return current.credentials
        self._external_credentials()  # the account has keys there (refused clearly if not)
        try:
            # The first keys reach the nodes with their configuration; later ones (the old ones
            # expired while Resilin was down) are written to the running nodes by the monitor.
            fresh = sessions.assume(self.cid, self.cluster["account"], external, pushed=current is None)
            return fresh.credentials
        except StorageSessionError as exc:
            raise ClusterFailure(
                states.VALIDATION_ERROR, f"The storage of cloud {self.placement.cloud_name}: {exc}"
            ) from None

    def _external_credentials(self) -> Credentials:
        external = self.placement.external_storage
        assert external is not None
        creds = external.credentials_for(self.cluster["account"])
        if creds is None:  # placement checks this first; the configuration may have changed since
            raise ClusterFailure(
                states.VALIDATION_ERROR,
                f"The storage of cloud {self.placement.cloud_name} ({external.endpoint}) has no keys "
                f"for account {self.cluster['account']}.",
            )
        return creds

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"

    @property
    def key_path(self) -> Path:
        return self.home / "keys" / f"{self.cid}.pem"
