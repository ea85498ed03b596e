"""Processes composed of Twisted services (resilin/service/composition.py): started in order,
stopped one by one in reverse, a failed start undone, timed loops running in threads."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest
from twisted.internet import defer
from twisted.internet.error import CannotListenError

from resilin.service.composition import CallService, OrderedServices
from resilin.service.ports import free_port


def _recording(events: list[str], *names: str) -> OrderedServices:
    services = OrderedServices()
    for name in names:
        services.addService(
            CallService(
                name, lambda n=name: events.append(f"start {n}"), lambda n=name: events.append(f"stop {n}")
            )
        )
    return services


def test_services_start_in_order_and_stop_in_reverse():
    events: list[str] = []
    services = _recording(events, "redis", "storage", "api")
    services.startService()
    assert events == ["start redis", "start storage", "start api"]
    assert all(s.running for s in services)
    stopped = services.stopService()
    assert stopped.called  # nothing to wait for: done at once
    assert events[3:] == ["stop api", "stop storage", "stop redis"]
    assert not any(s.running for s in services) and not services.running


def test_each_service_is_stopped_only_once_the_one_after_it_has_stopped():
    events: list[str] = []
    services = _recording(events, "redis")
    slow = defer.Deferred()
    services.addService(CallService("api", lambda: events.append("start api"), lambda: slow))
    services.startService()
    stopped = services.stopService()
    assert not stopped.called and "stop redis" not in events  # the API is still closing
    slow.callback(None)
    assert stopped.called and events[-1] == "stop redis"


def test_a_service_that_fails_to_start_stops_those_already_started():
    events: list[str] = []
    services = _recording(events, "redis", "storage")

    def refuse() -> None:
        raise OSError("port taken")

    services.addService(CallService("api", refuse, lambda: events.append("stop api")))
    services.addService(CallService("orchestrator", lambda: events.append("start orchestrator")))
    with pytest.raises(OSError, match="port taken"):
        services.startService()
    assert events == ["start redis", "start storage", "stop storage", "stop redis"]
    assert not services.running and not any(s.running for s in services)


def test_a_service_that_fails_to_stop_does_not_keep_the_others_running():
    events: list[str] = []
    services = _recording(events, "redis")

    def broken() -> None:
        raise RuntimeError("cannot close")

    services.addService(CallService("api", lambda: None, broken))
    services.startService()
    assert services.stopService().called
    assert events[-1] == "stop redis"


# Timed loops need a running reactor and its thread pool: they run in a process of their own.
LOOPS = textwrap.dedent(
    """
    import json, socket, sys, threading, time
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site
    from resilin.service.composition import ListeningService, LoopInThread, OrderedServices
    from resilin.service.ports import listen, port_of

    seen = {"every": 0, "once": 0, "back_to_back": 0, "failing": 0, "gated_before_gate": 0, "gated": 0,
            "threads": set()}
    gate = threading.Event()

    def every():
        seen["every"] += 1
        seen["threads"].add(threading.current_thread().name)
        if seen["every"] == 3:
            gate.set()

    def once():
        seen["once"] += 1

    def back_to_back():  # as the orchestrator's loop: a call that waits by itself, then the next
        seen["back_to_back"] += 1
        time.sleep(0.05)

    def failing():
        seen["failing"] += 1
        raise ValueError("one bad turn")

    def gated():
        seen["gated"] += 1
        if not gate.is_set():
            seen["gated_before_gate"] += 1

    services = OrderedServices()
    web = ListeningService("web", lambda: [listen(Site(Resource()), "127.0.0.1", 0)])
    services.addService(web)
    services.addService(LoopInThread("every", 0.05, every))
    services.addService(LoopInThread("once", 0.05, once, once=True))
    services.addService(LoopInThread("back to back", 0, back_to_back))
    services.addService(LoopInThread("failing", 0.05, failing))
    services.addService(LoopInThread("gated", 0.05, gated, after=gate))
    services.startService()
    port = port_of(web.ports[0])

    def finish():
        d = services.stopService()
        def report(_):
            refused = False
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except OSError:
                refused = True
            seen["refused_after_stop"] = refused
            seen["on_reactor_thread"] = "MainThread" in seen.pop("threads")
            print(json.dumps(seen), flush=True)
            reactor.stop()
        d.addCallback(report)

    reactor.callLater(1.0, finish)
    reactor.run()
    """
)


def test_timed_loops_run_in_threads_until_stopped():
    done = subprocess.run([sys.executable, "-c", LOOPS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["every"] >= 5 and not seen["on_reactor_thread"]
    assert seen["once"] == 1  # once=True: a single turn
    assert seen["back_to_back"] >= 5  # interval 0: one call after the other until stopped
    assert seen["failing"] >= 5  # an exception is logged and the loop goes on
    assert "failing failed" in done.stderr and "ValueError: one bad turn" in done.stderr
    assert seen["gated"] >= 1 and seen["gated_before_gate"] == 0  # waited for its gate
    assert seen["refused_after_stop"]  # the listening service closed its port


def test_resilin_server_that_cannot_listen_stops_what_it_had_started(tmp_path):
    """The real services of ``resilin server``: storage's port is taken, so the private Redis
    started before it is stopped again and the local clouds' access file removed."""
    from resilin.aws.sigv4 import Credentials
    from resilin.service import server
    from resilin.settings.config import Settings

    with socket.create_server(("127.0.0.1", 0)) as taken:
        settings = Settings(
            home=tmp_path,
            accounts=(Credentials("AKIACOMPOSITION00001", "secret", "111111111111"),),
            storage_port=taken.getsockname()[1],
            api_port=free_port(),
        )
        runtime = server.services(settings)
        with pytest.raises(CannotListenError):
            runtime.services.startService()
    started = [s.name for s in runtime.services if s.running]
    assert started == [] and not runtime.services.running
    assert runtime.redis.private is not None and runtime.redis.private.process is None  # stopped
    assert not (tmp_path / "redis" / "redis.sock").exists()
    assert not (tmp_path / "run" / "local-clouds.json").exists()
    assert "ready to accept connections" in (tmp_path / "redis" / "redis.log").read_text()
