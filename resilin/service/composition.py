"""Twisted services that make up a process: started in order, stopped in reverse.

A process is an :class:`OrderedServices` of services, each of which starts one part (Redis, a
listening port, a loop) and stops it.  Unlike Twisted's ``MultiService`` it waits for each
service to stop before stopping the one started before it, and a service that fails to start
stops those already started before the error goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import defer, threads

from resilin.service.ports import reactor

log = logging.getLogger(__name__)


class OrderedServices(MultiService):
    """Children started in the order they were added, stopped one by one in reverse."""

    def startService(self) -> None:
        Service.startService(self)
        started: list[Service] = []
        for child in self:
            try:
                child.startService()
            except BaseException:
                log.error("%s failed to start; stopping what had started", child.name or type(child).__name__)
                for done in reversed(started):
                    try:
                        done.stopService()  # synchronous part only: the reactor may not run yet
                    except Exception:
                        log.exception("stopping %s", done.name or type(done).__name__)
                Service.stopService(self)
                raise
            started.append(child)

    @defer.inlineCallbacks
    def stopService(self) -> Generator[defer.Deferred[Any], Any, None]:
        Service.stopService(self)
        for child in reversed(list(self)):
            if not child.running:
                continue
            try:
                yield defer.maybeDeferred(child.stopService)
            except Exception:  # the services started before it are stopped all the same
                log.exception("stopping %s", child.name or type(child).__name__)


class CallService(Service):
    """Calls ``start`` when started and ``stop`` (if any) when stopped."""

    def __init__(
        self, name: str, start: Callable[[], object], stop: Callable[[], object] | None = None
    ) -> None:
        self.setName(name)
        self._start, self._stop = start, stop

    def startService(self) -> None:
        self._start()
        Service.startService(self)

    def stopService(self) -> defer.Deferred[Any] | None:
        Service.stopService(self)
        return defer.maybeDeferred(self._stop) if self._stop is not None else None


class ListeningService(Service):
    """Listening ports: ``listen()`` opens them when started; stopping closes them."""

    def __init__(self, name: str, listen: Callable[[], list[Any]]) -> None:
        self.setName(name)
        self._listen = listen
        self.ports: list[Any] = []  # IListeningPort

    def startService(self) -> None:
        self.ports = self._listen()
        Service.startService(self)

    def stopService(self) -> defer.Deferred[Any]:
        Service.stopService(self)
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])


class LoopInThread(TimerService):
    """Calls ``work`` in the reactor's thread pool every ``interval`` seconds, or just once.

    With ``interval`` 0 the calls follow one another at once (``work`` then waits by itself, as
    a blocking read of a queue does).  Calls never overlap (the next one is timed from the end of the last).  An exception is logged
    and the loop goes on.  A call may first wait for ``after`` (e.g. recovery at start).  Stopping
    waits up to ``stop_wait`` seconds for a call in flight; a thread still busy after that is left
    to end with the process.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        work: Callable[[], object],
        *,
        after: threading.Event | None = None,
        once: bool = False,
        stop_wait: float = 5.0,
    ) -> None:
        super().__init__(max(interval, 0), self._turn)
        self.setName(name)
        self.once = once
        self._work = work
        self._after = after
        self._stop_wait = stop_wait
        self._stopping = threading.Event()

    def _in_thread(self) -> None:
        if self._after is not None:
            while not self._after.wait(0.2):
                if self._stopping.is_set():
                    return
        try:
            self._work()
        except Exception:  # never let one bad turn end the loop for good
            log.exception("%s failed", self.name)

    def _turn(self) -> defer.Deferred[None]:
        done = threads.deferToThread(self._in_thread)
        if self.once:
            done.addCallback(lambda _: self._loop.running and self._loop.stop())
        return done

    def startService(self) -> None:
        self._stopping.clear()
        super().startService()

    def stopService(self) -> defer.Deferred[Any]:
        self._stopping.set()
        finished = super().stopService()
        bounded: defer.Deferred[Any] = defer.Deferred()

        def settle(_: object = None) -> None:
            if not bounded.called:
                bounded.callback(None)

        timer = reactor.callLater(self._stop_wait, settle)

        def ended(_: object) -> None:
            if timer.active():
                timer.cancel()
            settle()

        finished.addBoth(ended)
        return bounded
