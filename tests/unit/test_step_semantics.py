"""The rules of EMR's step semantics: ActionOnFailure, YARN application ids in logs, and the
known_hosts file under concurrent writers.  The step script under bash, OpenSSH reading
known_hosts and the store's end-of-steps check against Redis are in
tests/service/test_step_semantics.py."""

from __future__ import annotations

import threading

import pytest

from resilin.clouds import known_hosts
from resilin.steps import yarn_apps
from resilin.steps.failure_policy import FailureResponse, respond_to_failure


# -- ActionOnFailure ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "concurrency", "protected", "expected"),
    [
        ("CONTINUE", 1, False, FailureResponse()),
        ("CANCEL_AND_WAIT", 1, False, FailureResponse(cancel_pending=True)),
        ("TERMINATE_CLUSTER", 1, False, FailureResponse(cancel_pending=True, terminate=True)),
        ("TERMINATE_JOB_FLOW", 1, False, FailureResponse(cancel_pending=True, terminate=True)),
        # A protected cluster is never shut down by a job-flow error: it waits instead.
        ("TERMINATE_CLUSTER", 1, True, FailureResponse(cancel_pending=True, hold=True)),
        ("CANCEL_AND_WAIT", 1, True, FailureResponse(cancel_pending=True)),
        # With concurrent steps EMR neither cancels nor terminates.
        ("CANCEL_AND_WAIT", 2, False, FailureResponse()),
        ("TERMINATE_CLUSTER", 3, False, FailureResponse()),
    ],
)
def test_action_on_failure(action, concurrency, protected, expected):
    assert respond_to_failure(action, concurrency, protected) == expected


# -- YARN applications a step started ----------------------------------------------------------
def test_submitted_applications_are_read_from_the_clients_log_lines():
    syslog = (
        "2026-01-01 10:00:00,000 INFO mapreduce.JobSubmitter: Submitting tokens for job: job_1700000000000_0003\n"
        "2026-01-01 10:00:01,000 INFO impl.YarnClientImpl: Submitted application application_1700000000000_0003\n"
        "2026-01-01 10:00:02,000 INFO mapreduce.Job: The url to track the job: "
        "http://m:8088/proxy/application_1700000000000_0003/\n"
    )
    stderr = "INFO impl.YarnClientImpl: Submitted application application_1700000000000_0004\n"
    apps = yarn_apps.submitted_applications(syslog, stderr, syslog)
    assert apps == ["application_1700000000000_0003", "application_1700000000000_0004"]
    assert yarn_apps.kill_command(apps) == (
        "yarn application -kill application_1700000000000_0003 application_1700000000000_0004"
    )
    assert yarn_apps.kill_command([]) == "true"


# -- known_hosts ----------------------------------------------------------------------------
def test_known_hosts_survives_concurrent_writers(tmp_path):
    path = tmp_path / "known_hosts"
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"
    threads = [
        threading.Thread(target=known_hosts.add, args=(path, f"j-{i}", f"10.0.1.{i}", [key]))
        for i in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(path.read_text().splitlines()) == 40
