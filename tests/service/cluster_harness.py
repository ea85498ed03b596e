"""A cluster's life in seconds: moto's EC2 as the cloud, Redis as the store, and fake nodes.

A :class:`FakeNode` stands in for an instance reached over SSH: it answers like a healthy
node (every script exits 0, ``hostname`` names the node), remembers what it was asked to run,
and can be told to hold a command until the test lets it go (or its session is closed, as a
closed SSH connection ends a running command).  Everything else is Resilin's own code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from resilin.aws.sigv4 import Credentials
from resilin.clouds.provisioning import Placement
from resilin.clouds.ssh import CommandResult, KeyPair
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.cloud_config import CloudConfig

ACCOUNT = "111111111111"
CREDENTIALS = Credentials("AKIDLIFECYCLE", "secret", ACCOUNT)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForLifecycleTests000000000000"


@dataclass
class Hold:
    """Commands matching ``matches`` wait until ``release`` (or their node's session closes)."""

    matches: Callable[[FakeNode, str], bool]
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class FakeNode:
    """An instance as :class:`resilin.clouds.ssh.Node` reaches it; see the module's docstring."""

    nodes: list[FakeNode] = []
    journal: list[tuple[FakeNode, str]] = []  # every command of every node, in the order they came
    holds: list[Hold] = []
    failing: list[Callable[[FakeNode, str], bool]] = []  # commands that exit 1

    def __init__(self, host: str, host_keys: list[str], key: KeyPair, port: int = 22) -> None:
        self.host = host
        self.commands: list[str] = []
        self.closed = threading.Event()
        self.used_after_close = False
        FakeNode.nodes.append(self)

    def wait_reachable(self, timeout: float) -> None:
        self._hold("wait_reachable")

    def _hold(self, command: str) -> bool:
        """False if a hold on ``command`` ended because the session was closed."""
        for hold in list(FakeNode.holds):
            if hold.matches(self, command):
                hold.reached.set()
                while not hold.released.wait(0.05):
                    if self.closed.is_set():
                        return False
        return True

    def run(self, command: str, timeout: float | None = None, stdin_data: str | None = None) -> CommandResult:
        text = command if stdin_data is None else f"{command}\n{stdin_data}"
        self.commands.append(text)
        FakeNode.journal.append((self, text))
        if self.closed.is_set():
            self.closed.clear()  # Node reconnects on its next command
        if not self._hold(text):
            return CommandResult(-1, "", "session closed")
        if command == "hostname":
            return CommandResult(0, f"ip-{self.host.replace('.', '-')}\n", "")
        if any(f(self, text) for f in FakeNode.failing):
            return CommandResult(1, "", "failed as the test asked")
        return CommandResult(0, "", "")

    def run_script(self, script: str, timeout: float | None = None) -> CommandResult:
        return self.run("bash -s", timeout=timeout, stdin_data=script)

    def read_file(self, path: str, limit: int = 0) -> bytes:
        raise OSError(f"{self.host}: no {path} on a fake node")

    def close(self) -> None:
        self.closed.set()

    def ran(self, fragment: str) -> bool:
        return any(fragment in c for c in self.commands)


def first_time(fragment: str, nodes: list[FakeNode] | None = None) -> int:
    """Where in the journal a node (of ``nodes``, or any) first ran a command containing ``fragment``."""
    return next(
        n
        for n, (node, text) in enumerate(FakeNode.journal)
        if fragment in text and (nodes is None or node in nodes)
    )


def cloud(endpoint: str) -> CloudConfig:
    return CloudConfig(
        name="moto", endpoint=endpoint, region="us-east-1", access_key="testing", secret_key="testing"
    )


class MotoClouds:
    """``placement_for`` over one cloud: moto's EC2."""

    def __init__(self, endpoint: str) -> None:
        config = cloud(endpoint)
        client = EC2Client(config, sleep=lambda s: None)
        images = client.ec2.describe_images(Owners=["amazon"])["Images"]
        image = sorted(i["Name"] for i in images if i.get("Name"))[0]
        self.placement = Placement("moto", client, image, "http://127.0.0.1:9", cloud=config)

    def __call__(self, name: str | None) -> Placement:
        if name not in (None, "moto"):
            raise KeyError(name)
        return self.placement


def credentials_for(account: str) -> Credentials:
    return CREDENTIALS


def wait_for(what: Callable[[], object], timeout: float = 30, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def job_flow(core: int = 1, **params) -> dict:
    return {
        "Name": "lifecycle",
        "ReleaseLabel": "emr-7.5.0",
        "Instances": {
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": core},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        **params,
    }
