"""init_and_fence's answer to podman 4.3 undoing an initialisation (a stop's late cleanup kills
the initialised process): the container is initialised again; any other refusal stands."""

from __future__ import annotations

import os
import subprocess

import pytest

from resilin.provisioners.localcloud import firewall, machines
from resilin.provisioners.localcloud.podman import PodmanError


def _gone_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


class InitOnly:
    """The two calls init_and_fence makes, answering with the given PIDs in turn."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.inits = 0

    def init(self, name: str) -> int:
        self.inits += 1
        return self.pids.pop(0)

    def pid(self, name: str) -> int:
        raise AssertionError("not asked: init answered")


@pytest.fixture
def loads(monkeypatch):
    """firewall.apply as nsenter behaves: it fails for a process that is gone."""
    loaded: list[int] = []

    def apply(pid: int, script: str) -> None:
        if not os.path.exists(f"/proc/{pid}"):
            raise firewall.FirewallError(f"nsenter: cannot open /proc/{pid}/ns/net")
        loaded.append(pid)

    monkeypatch.setattr(firewall, "apply", apply)
    monkeypatch.setattr(machines, "INIT_RETRY_SECONDS", 0)
    return loaded


def test_an_initialised_process_that_vanished_is_initialised_again_then_fenced(loads):
    podman = InitOnly([_gone_pid(), os.getpid()])
    machines.init_and_fence(podman, "c", "table inet t {}")  # type: ignore[arg-type]
    assert podman.inits == 2 and loads == [os.getpid()]


def test_a_refused_table_for_a_live_process_fails_at_once(monkeypatch):
    def refuse(pid: int, script: str) -> None:
        raise firewall.FirewallError("syntax error")

    monkeypatch.setattr(firewall, "apply", refuse)
    podman = InitOnly([os.getpid(), os.getpid()])
    with pytest.raises(firewall.FirewallError, match="syntax error"):
        machines.init_and_fence(podman, "c", "not a table")  # type: ignore[arg-type]
    assert podman.inits == 1


def test_a_process_that_keeps_vanishing_fails_after_the_last_attempt(loads):
    podman = InitOnly([_gone_pid() for _ in range(machines.INIT_ATTEMPTS)])
    with pytest.raises(firewall.FirewallError):
        machines.init_and_fence(podman, "c", "table inet t {}")  # type: ignore[arg-type]
    assert podman.inits == machines.INIT_ATTEMPTS and loads == []


def test_without_groups_nothing_is_loaded_after_the_init(loads):
    podman = InitOnly([_gone_pid()])
    machines.init_and_fence(podman, "c", None)  # type: ignore[arg-type]
    assert podman.inits == 1 and loads == []


def test_an_init_podman_refuses_falls_back_to_the_running_containers_pid(loads):
    class Running(InitOnly):
        def init(self, name: str) -> int:
            raise PodmanError("container state improper")

        def pid(self, name: str) -> int:
            return os.getpid()

    machines.init_and_fence(Running([]), "c", "table inet t {}")  # type: ignore[arg-type]
    assert loads == [os.getpid()]
