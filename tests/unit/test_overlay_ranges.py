"""Clouds with overlapping private ranges cannot share a cluster."""

from __future__ import annotations

from resilin.overlay.network import OverlayNetwork
from resilin.overlay.ranges import overlapping_ranges_refusal


def test_disjoint_ranges_are_accepted():
    assert overlapping_ranges_refusal({"east": "10.1.0.0/16", "west": "10.2.0.0/16"}) is None
    assert overlapping_ranges_refusal({"east": "10.1.0.0/16"}) is None
    assert overlapping_ranges_refusal({}) is None


def test_overlapping_ranges_are_refused_naming_both_clouds():
    refusal = overlapping_ranges_refusal(
        {"west": "10.0.0.0/8", "east": "10.1.0.0/16", "north": "192.168.0.0/24"}
    )
    assert refusal == (
        "The private ranges of clouds east (10.1.0.0/16) and west (10.0.0.0/8) overlap: "
        "a cluster's clouds need distinct ranges to be joined by the overlay network."
    )


def test_equal_ranges_and_host_bits_overlap():
    assert overlapping_ranges_refusal({"a": "172.16.0.0/24", "b": "172.16.0.7/24"}) is not None


def test_a_range_that_is_not_a_cidr_is_refused():
    assert overlapping_ranges_refusal({"a": "10.0.0.0/33", "b": "10.1.0.0/16"}) == (
        "The private range '10.0.0.0/33' of cloud a is not a CIDR block."
    )


def test_the_overlay_takes_any_clouds_and_refuses_overlapping_ranges():
    network = OverlayNetwork()
    assert network.spread_refusal(["east", "west"]) is None
    assert network.reach_refusal("ig-1", "west", "east") is None
    assert network.ranges_refusal({"east": "10.1.0.0/16", "west": "10.2.0.0/16"}) is None
    assert "overlap" in (network.ranges_refusal({"east": "10.1.0.0/16", "west": "10.1.2.0/24"}) or "")
