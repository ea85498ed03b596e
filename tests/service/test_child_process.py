"""The one child-process harness (resilin/service/children.py): a real child started, its URL read
from its "listening on" line, stopped; a child that dies or stays silent reported with its output."""

from __future__ import annotations

import socket
import sys
import time

import pytest
import requests

from resilin.service.children import Child, ChildFailed
from resilin.service.ports import free_port, listening_socket
from resilin.storage.testing import ALICE


def _storage(tmp_path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "resilin.storage",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        "0",
        *extra,
    ]


def test_starts_a_real_service_reads_its_url_and_stops_it(tmp_path):
    account = f"{ALICE.access_key}:{ALICE.secret_key}:{ALICE.account_id}"
    child = Child("storage service", _storage(tmp_path, "--account", account), tmp_path / "storage.log")
    url = child.start(timeout=30)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert child.alive()
        # It serves at that URL: an anonymous request is refused the S3 way.
        answer = requests.get(url + "/", timeout=10)
        assert answer.status_code == 403 and b"<Error>" in answer.content
        process = child.process
    finally:
        child.stop()
    assert process is not None and process.returncode is not None
    assert not child.alive() and child.pid is None
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/", timeout=5)


def test_a_child_that_dies_before_it_is_ready_is_reported_with_its_stderr(tmp_path):
    child = Child("storage service", _storage(tmp_path), tmp_path / "storage.log")  # no account: refused
    with pytest.raises(ChildFailed) as failed:
        child.start(timeout=30)
    message = str(failed.value)
    assert message.startswith("storage service exited with 2 before it was ready")
    assert "give --access-key/--secret-key or at least one --account" in message
    assert child.process is None


def test_a_silent_child_is_stopped_after_the_timeout(tmp_path):
    child = Child("sleeper", [sys.executable, "-c", "print('starting'); import time; time.sleep(60)"],
                  tmp_path / "sleeper.log")  # fmt: skip
    started = time.monotonic()
    with pytest.raises(ChildFailed, match="sleeper was not ready within 1s:\nstarting"):
        child.start(timeout=1)
    assert time.monotonic() - started < 15
    assert child.process is None


def test_only_this_runs_output_counts_and_the_log_is_private(tmp_path):
    log = tmp_path / "child.log"
    log.write_text("listening on http://127.0.0.1:1 (an earlier run)\n")
    log.chmod(0o600)
    child = Child("quitter", [sys.executable, "-c", "import sys; sys.exit('no port for me')"], log)
    with pytest.raises(ChildFailed, match="quitter exited with 1 before it was ready:\nno port for me"):
        child.start(timeout=30)
    assert "an earlier run" in log.read_text()  # appended to, not replaced
    fresh = tmp_path / "fresh.log"
    Child("printer", [sys.executable, "-c", "print('listening on x://y')"], fresh).start(timeout=30)
    assert fresh.stat().st_mode & 0o077 == 0


def test_free_port_and_a_listening_socket_on_port_zero():
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        pass  # nothing held it
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] != 0
        socket.create_connection(sock.getsockname(), timeout=5).close()
    finally:
        sock.close()
