"""The SSH sessions to a cluster's nodes, shared by its lifecycle and the operations on it.

A lock guards the set, so that a grow adding nodes and a teardown reading them never meet
half-way.  Closing the set (when teardown begins) refuses any later addition: a node a
still-running operation reaches after that is closed at once, and its instance is released
with the cluster's others by tag.
"""

from __future__ import annotations

import threading

from resilin.clouds.ssh import Node


class SessionsClosed(Exception):
    """The cluster is being torn down: no node joins it any more."""


class NodeSessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}  # ci- id → SSH session
        self._closed = False

    def add(self, instance_id: str, node: Node) -> None:
        with self._lock:
            if not self._closed:
                self._nodes[instance_id] = node
                return
        node.close()
        raise SessionsClosed(f"{instance_id} came after the cluster's teardown began")

    def get(self, instance_id: str) -> Node | None:
        with self._lock:
            return self._nodes.get(instance_id)

    def __getitem__(self, instance_id: str) -> Node:
        node = self.get(instance_id)
        if node is None:
            raise KeyError(instance_id)
        return node

    def pop(self, instance_id: str) -> Node | None:
        with self._lock:
            return self._nodes.pop(instance_id, None)

    def snapshot(self) -> dict[str, Node]:
        with self._lock:
            return dict(self._nodes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> dict[str, Node]:
        """Refuse additions from now on; the sessions held at this moment."""
        with self._lock:
            self._closed = True
            return dict(self._nodes)

    def interrupt(self) -> None:
        """End every command running on a node now (a node reconnects for its next command)."""
        for node in self.snapshot().values():
            node.close()
