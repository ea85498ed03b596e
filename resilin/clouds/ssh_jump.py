"""Reaching the nodes of a cloud that gives them no public address: through its gateway (ProxyJump).

In a cloud whose settings say ``ssh_via_gateway``, one instance of a cluster is launched with a
public address, its gateway (the first launched there: the master in its own cloud), and the
others with none; the overlay takes that instance as the cloud's gateway.  Resilin SSHes to the
gateway directly and to every other node of the cloud through an SSH ``direct-tcpip`` channel
the gateway's sshd opens to the node's private address, as EMR users reach core nodes through
the master.  Each hop pins the host keys its instance printed on its console.

:class:`CloudGateway` is the jump host of one cloud, as a callable the nodes' sessions ask at
every (re)connection: the cluster's running instance in the cloud that has a public address now
(the one jumped through before while it runs), so that when the gateway fails and the overlay
gives another node an Elastic IP, the nodes reconnect through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from resilin.clouds.ssh import KeyPair, Node, SshError
from resilin.provisioners.ec2client import EC2Client, tags_of

_ROLE_RANK = {"MASTER": 0, "CORE": 1, "TASK": 2}  # as the overlay chooses among candidates


class JumpUnavailable(SshError):
    """No instance of the cluster in the cloud has a public address to jump through."""


class CloudGateway:
    """The jump host of the cluster's nodes without a public address in one cloud."""

    def __init__(
        self,
        cloud: str,
        client: EC2Client,
        cluster_tags: dict[str, str],
        key: KeyPair,
        role_tag: str,
        host_key_timeout: float = 300,
        reach_private: bool = False,
    ) -> None:
        self.cloud = cloud
        self.client = client
        self.cluster_tags = cluster_tags  # the tags that find the cluster's instances in the cloud
        self.key = key
        self.role_tag = role_tag
        self.host_key_timeout = host_key_timeout
        # Resilin's host sits on the cloud's own network (a local cloud, whose groups admit its SSH
        # there only): the gateway is reached at its private address, the others still through it.
        self.reach_private = reach_private
        self._lock = threading.Lock()
        self._sessions: dict[str, Node] = {}  # instance id → direct session to its public address
        self._current = ""  # the instance jumped through last

    def address(self, private_ip: str, public_ip: str) -> str:
        """Where Resilin reaches the gateway itself."""
        return private_ip if self.reach_private else public_ip

    def adopt(self, instance_id: str, make: Callable[[], Node]) -> Node:
        """The one session to a gateway launched with a public address: the provisioner's own for
        that node and the jump host of the others are the same connection."""
        with self._lock:
            if instance_id not in self._sessions:
                self._sessions[instance_id] = make()
            self._current = self._current or instance_id
            return self._sessions[instance_id]

    def __call__(self) -> Node:
        """The session to jump through.  Asked only when a node (re)connects, so the cloud is asked
        every time: a gateway that stopped running is never trusted for a connection that looks alive."""
        with self._lock:
            found = self._public_instances()
            if not found:
                raise JumpUnavailable(
                    f"no instance of the cluster in cloud {self.cloud} has a public address to reach "
                    f"its other nodes through (its gateway is gone; the overlay gives the next one an "
                    f"address when it re-forms)"
                )
            instance_id, (private_ip, public_ip) = next(
                ((i, a) for i, a in found if i == self._current), found[0]
            )
            address = self.address(private_ip, public_ip)
            session = self._sessions.get(instance_id)
            if session is None or session.host != address:
                host_keys = self.client.host_keys(instance_id, timeout=self.host_key_timeout)
                session = Node(address, host_keys, self.key)
                self._sessions[instance_id] = session
            for gone in set(self._sessions) - {i for i, _ in found}:
                self._sessions.pop(gone).close()
            self._current = instance_id
            return session

    def _public_instances(self) -> list[tuple[str, tuple[str, str]]]:
        """(instance id, (private address, public address)) of the cluster's running instances in
        the cloud that have a public one, the overlay's likeliest gateway first (by role, then id)."""
        found = [
            i
            for i in self.client.find_tagged(self.cluster_tags, states=["running"])
            if i.get("PublicIpAddress")
        ]
        found.sort(key=lambda i: (_ROLE_RANK.get(tags_of(i).get(self.role_tag, ""), 3), i["InstanceId"]))
        return [(i["InstanceId"], (i.get("PrivateIpAddress", ""), i["PublicIpAddress"])) for i in found]

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
