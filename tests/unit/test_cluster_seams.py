"""The cluster's node sessions (locked, closed at teardown) and the default network's answers."""

from __future__ import annotations

import threading
import time

import pytest

from resilin.cluster.network import SingleCloudNetwork
from resilin.cluster.sessions import NodeSessions, SessionsClosed


class Session:
    """Stands in for an SSH session to a node: only whether it was closed matters here."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_sessions_refuse_nodes_once_closed_and_close_them():
    sessions = NodeSessions()
    first, late = Session(), Session()
    sessions.add("ci-1", first)  # type: ignore[arg-type]
    held = sessions.close()
    assert held == {"ci-1": first} and sessions.closed
    with pytest.raises(SessionsClosed):
        sessions.add("ci-2", late)  # type: ignore[arg-type]
    assert late.closed and sessions.get("ci-2") is None
    # A node retired meanwhile still leaves the set.
    assert sessions.pop("ci-1") is first and len(sessions) == 0


def test_sessions_snapshot_is_stable_while_nodes_are_added():
    sessions = NodeSessions()
    stop = threading.Event()

    def add_many() -> None:
        for n in range(300):
            if stop.is_set():
                return
            sessions.add(f"ci-{n}", Session())  # type: ignore[arg-type]
            time.sleep(0)

    adder = threading.Thread(target=add_many)
    adder.start()
    try:
        for _ in range(20):
            snapshot = sessions.snapshot()
            seen = 0
            for _node in snapshot.values():  # the live set would change size under this loop
                time.sleep(0)
                seen += 1
            assert seen == len(snapshot)
    finally:
        stop.set()
        adder.join()


def test_interrupt_closes_every_session_it_holds():
    sessions = NodeSessions()
    nodes = [Session(), Session()]
    for n, node in enumerate(nodes):
        sessions.add(f"ci-{n}", node)  # type: ignore[arg-type]
    sessions.interrupt()
    assert all(node.closed for node in nodes) and len(sessions) == 2


def test_the_single_cloud_network_refuses_clusters_over_several_clouds_as_before():
    network = SingleCloudNetwork()
    assert network.spread_refusal(["east"]) is None and network.spread_refusal(["east", "east"]) is None
    assert network.spread_refusal(["west", "east"]) == (
        "Instance groups are placed in several clouds (east, west), "
        "which cannot reach each other without the overlay network."
    )
    assert network.reach_refusal("ig-1", "east", "east") is None
    assert network.reach_refusal("ig-1", "west", "east") == (
        "instance group ig-1 is placed in cloud west, which cannot reach the cluster's cloud east "
        "without the overlay network"
    )
