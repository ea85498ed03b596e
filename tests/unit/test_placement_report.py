"""The progress messages that say where a cluster's nodes are."""

from __future__ import annotations

from resilin.cluster.placement_report import instances_message, overlay_message


def _i(role: str, cloud: str) -> dict:
    return {"role": role, "cloud": cloud}


def test_instances_are_counted_by_cloud_master_first():
    spread = [_i("CORE", "cloud-b"), _i("MASTER", "cloud-a"), _i("CORE", "cloud-b")]
    assert instances_message(spread) == "3 instances running: master in cloud-a, 2 core in cloud-b"
    one = [_i("MASTER", "local"), _i("TASK", "local"), _i("CORE", "local")]
    assert instances_message(one) == "3 instances running: master and 1 core and 1 task in local"
    three = [_i("MASTER", "a"), _i("CORE", "a"), _i("TASK", "c"), _i("TASK", "c")]
    assert instances_message(three) == "4 instances running: master and 1 core in a, 2 task in c"
    assert instances_message([_i("MASTER", "a")]) == "1 instance running: master in a"


def test_overlay_names_its_gateways():
    assert overlay_message({"cloud-a": "i-0a1", "cloud-b": "i-0b2 (198.51.100.7)"}) == (
        "overlay network up: 2 clouds, gateways i-0a1 (cloud-a), i-0b2 (198.51.100.7) (cloud-b)"
    )
