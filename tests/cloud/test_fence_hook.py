"""The fence hook with the real podman and runc: a container's firewall is in its namespace before
its first process runs, and a firewall that cannot be loaded keeps the container from starting."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from resilin.provisioners.localcloud import firewall
from resilin.provisioners.localcloud.fence_hook import FenceHook
from resilin.provisioners.localcloud.podman import Podman, PodmanError

RULES = firewall.ruleset([firewall.Allow("tcp", 22, 22, ("10.0.0.0/8",))])


@pytest.fixture
def hook() -> Iterator[FenceHook]:
    made = FenceHook.create()
    yield made
    made.remove()


@pytest.fixture
def names() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    Podman().remove(made, 1)


def _container(podman: Podman, hook: FenceHook, image: str, script: str, names: list[str]) -> str:
    name = f"resilin-fence-test-{secrets.token_hex(3)}"
    names.append(name)
    podman.create(
        name=name,
        image=image,
        hostname=name,
        network="",
        labels={"resilin.test": "fence-hook"},
        env={},
        command=["sleep", "300"],
        annotations=hook.prepare(name, script),
    )
    return name


def test_the_firewall_is_loaded_as_the_container_starts(node_image, hook, names):
    podman = Podman(fence_hook=hook)
    name = _container(podman, hook, node_image, RULES, names)
    podman.start(name)  # no init, no fence from outside: the hook alone
    assert podman.status(name) == "running"
    table = firewall.listing(podman.pid(name))
    assert "tcp dport 22 accept" in table and "policy drop" in table
    hook.forget([name])
    assert not list(hook.scripts.iterdir())


def test_a_firewall_that_cannot_be_loaded_keeps_the_container_from_running(node_image, hook, names):
    podman = Podman(fence_hook=hook)
    name = _container(podman, hook, node_image, "table inet resilin { this is not nft }\n", names)
    with pytest.raises(PodmanError, match="fence hook"):
        podman.start(name)
    assert podman.status(name) != "running"
    # Nor without its script: a start never proceeds unfenced.
    hook.forget([name])
    with pytest.raises(PodmanError):
        podman.start(name)
    assert podman.status(name) != "running"


def test_without_the_hook_directory_the_annotation_does_nothing(node_image, hook, names):
    # A podman told of no hooks (the plain path: init, fence from outside, start) loads nothing.
    name = _container(Podman(fence_hook=hook), hook, node_image, RULES, names)
    pid = Podman().init(name)
    assert firewall.listing(pid) == ""  # no table in the namespace yet
    firewall.apply(pid, RULES)
    assert "tcp dport 22 accept" in firewall.listing(pid)
