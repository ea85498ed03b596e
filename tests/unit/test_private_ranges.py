"""The clouds of one cluster must not share private addresses: the settings' ranges, the
refusal's message, and which clouds a cluster's groups are placed in."""

from __future__ import annotations

import pytest

from resilin.clouds.private_ranges import configured_range, spread_refusal
from resilin.errors import ValidationError
from resilin.jobflows import placement_checks
from resilin.jobflows.releases import CloudOffer
from resilin.overlay.ranges import overlapping_ranges_refusal
from resilin.settings.cloud_config import CloudConfig, CloudConfigError, parse_cloud


def test_overlapping_ranges_are_named_with_their_clouds():
    assert overlapping_ranges_refusal({"a": "10.1.0.0/16", "b": "10.2.0.0/16"}) is None
    assert overlapping_ranges_refusal({"a": "10.1.0.0/16"}) is None
    message = overlapping_ranges_refusal({"b": "10.1.2.0/24", "a": "10.1.0.0/16", "c": "172.16.0.0/12"})
    assert message is not None
    assert "a (10.1.0.0/16) and b (10.1.2.0/24)" in message and "c (" not in message
    # IPv6 never overlaps IPv4.
    assert overlapping_ranges_refusal({"a": "10.0.0.0/8", "b": "fd00::/8"}) is None


def test_private_range_setting_of_ec2_clouds():
    cloud = parse_cloud({"name": "aws", "private_range": "10.1.0.0/16"}, "t")
    assert cloud.private_range == "10.1.0.0/16" and configured_range(cloud) == "10.1.0.0/16"
    assert configured_range(parse_cloud({"name": "aws"}, "t")) is None
    local = parse_cloud({"name": "here", "kind": "local", "subnet": "10.77.1.0/24"}, "t")
    assert configured_range(local) == "10.77.1.0/24"
    with pytest.raises(CloudConfigError, match=r"t \(aws\): 'private_range' must be a network"):
        parse_cloud({"name": "aws", "private_range": "10.1.0.1/16"}, "t")
    with pytest.raises(CloudConfigError, match="unknown setting"):
        parse_cloud(
            {"name": "here", "kind": "local", "subnet": "10.77.1.0/24", "private_range": "10.0.0.0/8"}, "t"
        )


def test_config_sample_documents_private_range():
    from resilin.settings.config import DEFAULT_CONFIG

    assert "# private_range = " in DEFAULT_CONFIG


OFFERS = [
    CloudOffer("home", True, None, "10.77.1.0/24"),
    CloudOffer("edge", False, None, "10.77.2.0/24"),
    CloudOffer("wide", False, None, "10.77.0.0/16"),
    CloudOffer("aws", False, None, None),
]


def _group(role: str, cloud: str | None) -> dict:
    return {"role": role, "cloud": cloud}


def test_groups_placed_without_a_cloud_go_to_the_masters():
    groups = [_group("MASTER", None), _group("CORE", "edge"), _group("TASK", None)]
    home = placement_checks.home_cloud(OFFERS, groups)
    assert home == "home" and placement_checks.clouds_of(groups, home) == {"home", "edge"}
    groups[0]["cloud"] = "aws"
    assert placement_checks.home_cloud(OFFERS, groups) == "aws"
    # Once running, the master's instance says where the cluster is (a fallback may have moved it).
    master = {"role": "MASTER", "cloud": "edge"}
    assert placement_checks.home_cloud(OFFERS, groups, [master]) == "edge"


def test_known_overlapping_ranges_are_refused_and_unknown_ones_wait_for_placement():
    placement_checks.check_ranges(OFFERS, {"home", "edge"})
    placement_checks.check_ranges(OFFERS, {"home", "aws"})  # aws's range: asked when placed
    placement_checks.check_ranges(OFFERS, {"wide"})
    with pytest.raises(ValidationError) as refused:
        placement_checks.check_ranges(OFFERS, {"home", "edge", "wide"})
    assert refused.value.status == 400 and refused.value.code == "ValidationException"
    assert "edge (10.77.2.0/24) and wide (10.77.0.0/16)" in refused.value.message
    assert "home (10.77.1.0/24) and wide (10.77.0.0/16)" in refused.value.message


class _Placed:
    def __init__(self, name: str, cloud: CloudConfig) -> None:
        self.cloud_name, self.cloud, self.client = name, cloud, None


def test_placement_refuses_a_cloud_whose_range_cannot_be_known():
    a = _Placed("a", CloudConfig("a", kind="local", subnet="10.77.1.0/24"))
    b = _Placed("b", CloudConfig("b"))  # ec2, neither private_range nor subnet_id
    assert spread_refusal([a]) is None
    message = spread_refusal([a, b])
    assert message is not None and "cloud b is not known" in message and "private_range" in message
    c = _Placed("c", CloudConfig("c", private_range="10.77.0.0/16"))
    assert "a (10.77.1.0/24) and c (10.77.0.0/16)" in (spread_refusal([a, c]) or "")
    d = _Placed("d", CloudConfig("d", private_range="10.78.0.0/16"))
    assert spread_refusal([a, d]) is None


class _Runtime:
    """What Resizer.check_ranges reads of a running cluster: its live instances and its clouds."""

    cid, store = "j-1", None

    def __init__(self, instances: list[dict], clouds: dict[str, _Placed]) -> None:
        self.instances, self.clouds = instances, clouds

    def live_instances(self) -> list[dict]:
        return self.instances

    def placements(self, name: str) -> _Placed:
        return self.clouds[name]


def test_growing_into_a_new_cloud_checks_the_ranges_again():
    from resilin.cluster.resize import ResizeError, Resizer

    clouds = {
        "a": _Placed("a", CloudConfig("a", kind="local", subnet="10.77.1.0/24")),
        "b": _Placed("b", CloudConfig("b", private_range="10.78.0.0/16")),
        "wide": _Placed("wide", CloudConfig("wide", private_range="10.77.0.0/16")),
        "blind": _Placed("blind", CloudConfig("blind")),
    }
    resizer = Resizer(_Runtime([{"cloud": "a"}, {"cloud": "a"}], clouds), None)
    resizer.check_ranges("a")  # no new cloud: nothing to check
    resizer.check_ranges("b")
    with pytest.raises(ResizeError, match=r"a \(10.77.1.0/24\) and wide \(10.77.0.0/16\)"):
        resizer.check_ranges("wide")
    with pytest.raises(ResizeError, match="range of cloud blind is not known"):
        resizer.check_ranges("blind")
    with pytest.raises(ResizeError, match="Unknown cloud 'nowhere'"):
        resizer.check_ranges("nowhere")
