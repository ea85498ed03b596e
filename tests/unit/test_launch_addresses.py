"""RunInstances as Resilin sends it for ``ssh_via_gateway``: a public address asked for, or refused,
on the instance's first interface, with its groups and subnet there (EC2 refuses them at the top
level once an interface is described); read back by the local cloud's own parser of the request."""

from __future__ import annotations

from typing import Any

import pytest

from resilin.provisioners.ec2client import EC2Client
from resilin.provisioners.localcloud.public_addresses import wants_public_address
from resilin.settings.cloud_config import CloudConfig


class _Recorder:
    """Takes the RunInstances request and answers one instance, as far as launch reads the answer."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def run_instances(self, **params: Any) -> dict[str, Any]:
        self.params = params
        return {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}


def _sent(**options: Any) -> dict[str, Any]:
    recorder = _Recorder()
    client = EC2Client(CloudConfig(name="c", endpoint="http://127.0.0.1:9"), client=recorder)
    client.launch(
        "ami-1", "m5.large", 1, "key", {}, security_group_ids=["sg-1"], subnet_id="subnet-1", **options
    )
    return recorder.params


@pytest.mark.parametrize("public", [True, False])
def test_a_public_address_is_asked_for_or_refused_on_the_first_interface(public):
    params = _sent(public_address=public)
    assert wants_public_address(params) is public  # the combination EC2 refuses would raise here
    [interface] = params["NetworkInterfaces"]
    assert (interface["Groups"], interface["SubnetId"]) == (["sg-1"], "subnet-1")


def test_without_a_choice_the_subnet_decides():
    params = _sent()
    assert "NetworkInterfaces" not in params and not wants_public_address(params)
    assert (params["SecurityGroupIds"], params["SubnetId"]) == (["sg-1"], "subnet-1")
