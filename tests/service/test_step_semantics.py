"""The pieces of EMR's step semantics that run without a cluster, served: the step script under
real bash, the known_hosts file read by OpenSSH, and the store's atomic end-of-steps check against
real Redis.  The rules alone are in tests/unit/test_step_semantics.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from resilin.clouds import known_hosts
from resilin.jobflows import states
from resilin.jobflows.store import JobFlowStore
from resilin.steps import commands as steps


# -- the step script, run by real bash -------------------------------------------------------
@pytest.fixture
def step_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "STEP_LOG_ROOT", str(tmp_path / "logs"))
    monkeypatch.setattr(steps, "STEP_WORK_ROOT", str(tmp_path / "work"))
    return tmp_path


def command_step(script: str, sid: str = "s-TEST") -> dict:
    return {"id": sid, "jar": "command-runner.jar", "args": ["bash", "-c", script], "properties": {}}


def run_script(text: str, timeout: float = 60) -> subprocess.Popen:
    proc = subprocess.Popen(["bash", "-s"], stdin=subprocess.PIPE, text=True, start_new_session=True)
    proc.stdin.write(text)
    proc.stdin.close()
    return proc


def test_step_script_keeps_emr_logs_and_exit_status(step_dirs):
    script = steps.step_script(command_step("echo out; echo err >&2; exit 4"), None, "j-TEST")
    assert run_script(script).wait(60) == 4
    logs = step_dirs / "logs" / "s-TEST"
    assert (logs / "stdout").read_text() == "out\n"
    assert (logs / "stderr").read_text() == "err\n"
    controller = (logs / "controller").read_text()
    assert "INFO startExec 'bash -c " in controller
    assert "Step failed with exitCode 4" in controller


def test_cancelling_kills_the_steps_process_group_and_the_script_still_records_it(step_dirs):
    # The command starts a grandchild, as `hadoop jar` starts a JVM: the kill must reach it too.
    script = steps.step_script(command_step("sleep 300 & echo $! > child; wait"), None, "j-TEST")
    proc = run_script(script)
    logs = step_dirs / "logs" / "s-TEST"
    work = step_dirs / "work" / "s-TEST"
    deadline = time.monotonic() + 30
    while not ((logs / "pid").exists() and (work / "child").exists()):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)
    pgid = int((logs / "pid").read_text())
    child = int((work / "child").read_text())
    assert os.getpgid(child) == pgid  # the step's command has a process group of its own
    assert pgid != os.getpgid(proc.pid)  # ... not the script's, which must survive the kill
    os.killpg(pgid, signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while _alive(child):  # reaped by whoever adopted it, or a zombie: either way not running
        assert time.monotonic() < deadline, "the step's grandchild survived the kill"
        time.sleep(0.1)
    assert "Step failed with exitCode 143" in (logs / "controller").read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- known_hosts ----------------------------------------------------------------------------
def test_known_hosts_entries_follow_their_cluster(tmp_path):
    path = tmp_path / "known_hosts"
    key_a, key_b = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"
    known_hosts.add(path, "j-A", "10.0.0.2", [key_a])
    known_hosts.add(path, "j-B", "10.0.0.3", [key_b])
    assert path.read_text().splitlines() == [
        "10.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA resilin:j-A",
        "10.0.0.3 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB resilin:j-B",
    ]
    # An address handed to a new cluster replaces the old entry instead of contradicting it.
    known_hosts.add(path, "j-C", "10.0.0.2", [key_b])
    known_hosts.remove(path, "j-A")
    assert path.read_text().splitlines() == [
        "10.0.0.3 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB resilin:j-B",
        "10.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB resilin:j-C",
    ]
    # OpenSSH reads it: ssh-keygen finds the host.
    found = subprocess.run(["ssh-keygen", "-F", "10.0.0.3", "-f", str(path)], capture_output=True, text=True)
    assert found.returncode == 0 and "resilin:j-B" in found.stdout


# -- ending a cluster only when no step is pending -----------------------------------------------
def _cluster(cid: str) -> dict:
    return {
        "id": cid,
        "account": "111111111111",
        "state": states.WAITING,
        "terminate_requested": False,
        "groups": [],
        "timeline": {"created": time.time()},
    }


def _step(sid: str, cid: str, state: str) -> dict:
    return {"id": sid, "cluster_id": cid, "state": state, "timeline": {"created": time.time()}}


def _end(c: dict) -> None:
    c["terminate_requested"] = True
    c["state"] = states.TERMINATING


def test_cluster_ends_only_when_no_step_is_pending(redis_client):
    store = JobFlowStore(redis_client)
    store.create_cluster(_cluster("j-ONE"), [_step("s-DONE", "j-ONE", states.COMPLETED)])
    store.add_steps("j-ONE", [_step("s-NEW", "j-ONE", states.PENDING)])
    assert store.terminate_if_no_steps_pending("j-ONE", _end) is False
    assert store.get_cluster("j-ONE")["state"] == states.WAITING
    store.transition_step("s-NEW", states.STEP_RUNNING)
    store.transition_step("s-NEW", states.COMPLETED)
    assert store.terminate_if_no_steps_pending("j-ONE", _end) is True
    assert store.get_cluster("j-ONE")["state"] == states.TERMINATING


def test_step_added_during_the_check_keeps_the_cluster(redis_client):
    """A step added between the check's read and its write makes the write retry and see the step."""
    store = JobFlowStore(redis_client)
    store.create_cluster(_cluster("j-RACE"), [])
    added = []

    def end_after_a_step_lands(c: dict) -> None:
        if not added:  # the first attempt: a client adds a step right now
            store.add_steps("j-RACE", [_step("s-LATE", "j-RACE", states.PENDING)])
            added.append(True)
        _end(c)

    assert store.terminate_if_no_steps_pending("j-RACE", end_after_a_step_lands) is False
    assert store.get_cluster("j-RACE")["state"] == states.WAITING


def test_a_running_step_may_be_asked_to_cancel_and_still_end_its_own_way(redis_client):
    store = JobFlowStore(redis_client)
    store.create_cluster(_cluster("j-CXL"), [_step("s-RUN", "j-CXL", states.PENDING)])
    store.transition_step("s-RUN", states.STEP_RUNNING)
    store.transition_step("s-RUN", states.CANCEL_PENDING)
    store.transition_step("s-RUN", states.COMPLETED)  # it finished before the kill landed
    assert store.get_step("s-RUN")["state"] == states.COMPLETED
