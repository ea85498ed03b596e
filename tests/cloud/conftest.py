"""The cloud tier's node image and the EC2 client of a module's own local cloud."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import resilin.provisioners.localcloud as localcloud_pkg
from tests.localcloud_helpers import ec2_client


@pytest.fixture(scope="session")
def node_image() -> str:
    """The node image under test: $RESILIN_TEST_NODE_IMAGE, else the small stand-in built here."""
    if os.environ.get("RESILIN_TEST_NODE_IMAGE"):
        return os.environ["RESILIN_TEST_NODE_IMAGE"]
    script = Path(localcloud_pkg.__file__).parent / "testnode.sh"
    return subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def ec2(cloud):
    """Alice's client of the module's `cloud` (a module may define its own `ec2` instead)."""
    return ec2_client(cloud)
