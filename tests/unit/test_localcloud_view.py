"""An instance's EC2 state from its record and its container's state."""

from __future__ import annotations

import pytest

from resilin.provisioners.localcloud import view
from resilin.provisioners.localcloud.podman import Container
from resilin.provisioners.localcloud.store import (
    LAUNCHED,
    POWER_ON,
    STARTING,
    STOPPED,
    STOPPING,
    InstanceRecord,
)


def _record(power: str) -> InstanceRecord:
    return InstanceRecord(
        instance_id="i-0123456789abcdef0", account="1", reservation_id="r-1", image_id="ami-1",
        image="node", instance_type="m5.xlarge", launch_time=0.0, phase=LAUNCHED, power=power,
    )  # fmt: skip


def _container(state: str) -> Container:
    return Container(id="c", name="n", state=state, labels={})


@pytest.mark.parametrize(
    ("power", "container", "expected"),
    [
        (POWER_ON, "running", "running"),
        (POWER_ON, "initialized", "pending"),
        (STARTING, "exited", "pending"),
        (STOPPING, "running", "stopping"),
        (STOPPING, "exited", "stopped"),
        (STOPPED, "exited", "stopped"),
        (STOPPED, "running", "running"),  # started again behind the cloud's back
        # A start that failed went back to stopped: its container may be left created or initialised.
        (STOPPED, "created", "stopped"),
        (STOPPED, "initialized", "stopped"),
    ],
)
def test_state_names(power, container, expected):
    assert view.state_name(_record(power), _container(container)) == expected
