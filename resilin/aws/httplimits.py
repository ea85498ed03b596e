"""Connection limits shared by Resilin's HTTP services (storage, the EMR API, the local clouds).

Twisted's own timeout is an idle timeout that every received byte resets, so a
client sending one byte every few seconds keeps a connection (and whatever its
request holds) forever.  A :class:`LimitedChannel` replaces it with deadlines
per phase of a request:

* waiting for a request on a kept-alive connection: ``idle_timeout``;
* from a request's first byte to the end of its headers: ``header_timeout``;
* while its body arrives: at least ``body_min_rate`` bytes per second over every
  ``rate_window`` (windows in which the server itself stopped reading do not count);
* while the server works on the request and sends the response: none (a reader
  such as S3A reads a response only as fast as its job consumes it).

It also caps connections in total and per peer address.  A connection over a
cap is answered 503 and closed before anything is read from it; a request past
a deadline is answered (408, or the service's own error) and closed.  A service
that answers a request without reading its body (storage refusing an upload from
its headers) asks for ``close_after_answer``: the answer, a half-close, and the
unread body dropped for a bounded time, so that the client sees the answer.  The
defaults are far from what real clients do: a 5 GiB PUT at any usable speed,
S3A's kept-alive pooled connections (its SDK drops idle ones after 60 s), and
hundreds of parallel readers from one node.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.interfaces import IDelayedCall, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, Request
from twisted.web.server import Site

# Descriptors kept back from the connection cap for files, Redis, podman and the listeners.
_RESERVED_DESCRIPTORS = 256


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 30.0  # seconds from a request's first byte to the end of its headers
    body_min_rate: int = 1024  # bytes per second a request body must average over each window
    rate_window: float = 30.0  # seconds over which body_min_rate is measured
    idle_timeout: float = 300.0  # seconds a kept-alive connection may wait for its next request
    max_connections: int = 4096  # open connections in total (lowered to what descriptors allow)
    max_connections_per_peer: int = 1024  # open connections from one address
    # Bytes of request bodies one address may have in flight (storage): three 5 GiB PUTs at once,
    # or 256 of S3A's 64 MiB parts.
    spool_per_peer: int = 16 * 1024**3
    abort_timeout: float = 15.0  # seconds a closed connection may take to take its last response

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], where: str = "limits") -> HttpLimits:
        """Limits with the given fields changed; ValueError naming ``where`` for an unknown or bad one."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, float | int] = {}
        for name, value in values.items():
            field = fields.get(name)
            if field is None:
                raise ValueError(f"{where}: unknown limit {name!r} (known: {', '.join(fields)})")
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"{where}: {name} must be a number, not {value!r}") from None
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{where}: {name} must be a number > 0")
            changes[name] = int(value) if field.type == "int" else float(value)
        return dataclasses.replace(cls(), **cast(dict[str, Any], changes))  # each checked above

    @classmethod
    def from_assignments(cls, assignments: Sequence[str]) -> HttpLimits:
        """Limits from ``NAME=VALUE`` strings, as the services' ``--limit`` options give them."""
        values = {}
        for item in assignments:
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--limit {item!r}: expected NAME=VALUE")
            values[name.strip()] = value.strip()
        return cls.from_mapping(values, "--limit")

    def connection_cap(self) -> int:
        """max_connections, lowered so that connections alone never use up the process's descriptors."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - _RESERVED_DESCRIPTORS))


class PeerAccounts:
    """Open connections and in-flight body bytes, in total and per peer address, of one site."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.cap = limits.connection_cap()
        self.connections = 0
        self.per_peer: Counter[str] = Counter()
        self.spooled: Counter[str] = Counter()

    def admit(self, peer: str) -> bool:
        if self.connections >= self.cap or self.per_peer[peer] >= self.limits.max_connections_per_peer:
            return False
        self.connections += 1
        self.per_peer[peer] += 1
        return True

    def leave(self, peer: str) -> None:
        self.connections -= 1
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]

    def reserve_body(self, peer: str, size: int) -> bool:
        """Take ``size`` bytes of the peer's body allowance; False (nothing taken) when it has not that much."""
        if self.spooled[peer] + size > self.limits.spool_per_peer:
            return False
        self.spooled[peer] += size
        return True

    def release_body(self, peer: str, size: int) -> None:
        self.spooled[peer] -= size
        if self.spooled[peer] <= 0:
            del self.spooled[peer]


def plain_response(status: int, reason: str, extra: str = "") -> bytes:
    """A complete, bodiless response that closes the connection."""
    return f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n".encode()


class _PauseWatch:
    """The transport as the channel's producer, noting whether the server paused reading during a window."""

    def __init__(self, producer: Any, on_pause: Callable[[], None]) -> None:
        self._producer = producer
        self._on_pause = on_pause

    def pauseProducing(self) -> None:
        self._on_pause()
        self._producer.pauseProducing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


_IDLE, _HEADERS, _BODY, _HANDLING, _LINGER, _CLOSING = (
    "idle",
    "headers",
    "body",
    "handling",
    "linger",
    "closing",
)


class LimitedChannel(HTTPChannel):
    """An HTTP connection with per-phase deadlines and the site's connection caps (see the module)."""

    timeOut = None  # Twisted's byte-reset idle timeout is replaced by the deadlines here
    # At most this much of a refused request's unread body is read and dropped after the answer,
    # so that a client which sends its body without waiting for 100 Continue still sees the answer.
    linger_bytes = 64 * 1024 * 1024

    @property
    def _tcp(self) -> ITCPTransport:
        """The connection (Twisted declares a channel's transport as the plainer ITransport)."""
        return cast(ITCPTransport, self.transport)

    def connectionMade(self) -> None:
        site = getattr(self, "site", None)
        accounts = _peer_accounts(site)
        if accounts is None:  # a site nobody called protect() on: its own accounts, default limits
            accounts = _guard(site, None) if site is not None else PeerAccounts(HttpLimits())
        self.accounts: PeerAccounts = accounts
        self.limits: HttpLimits = accounts.limits
        self.peer = getattr(self._tcp.getPeer(), "host", "") or ""
        self._phase = _IDLE
        self._timer: IDelayedCall | None = None
        self._received = 0
        self._window_start = 0
        self._paused_in_window = False
        self._linger_wanted = False
        self._linger_left = 0
        self._admitted = accounts.admit(self.peer)
        super().connectionMade()
        if not self._admitted:
            self._tcp.write(self.refusal_response())
            self._close()
            return
        self._networkProducer = _PauseWatch(self._networkProducer, self._note_pause)
        self._arm(self.limits.idle_timeout, self._idle_expired)

    # -- phases --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._dropped(data):
            return
        self._received += len(data)
        if self._phase == _IDLE:
            self._start_headers()
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        # The rest of a read in which the answer was sent (and lingering began) comes here.
        if not self._dropped(data):
            super().rawDataReceived(data)

    def _dropped(self, data: bytes) -> bool:
        """Whether ``data`` is dropped unread: the connection is closing (or lingering)."""
        if self._phase == _LINGER:
            self._linger_left -= len(data)
            if self._linger_left < 0:
                self._tcp.abortConnection()
            return True
        return self._phase == _CLOSING

    def lineReceived(self, line: bytes) -> None:
        if self._phase == _IDLE:  # a pipelined request replayed from Twisted's buffer
            self._start_headers()
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        if self.length != 0 and self._phase == _HEADERS:
            self._phase = _BODY
            self._window_start = self._received
            self._paused_in_window = False
            self._arm(self.limits.rate_window, self._check_rate)

    def allContentReceived(self) -> None:
        if self._phase != _CLOSING:
            self._phase = _HANDLING
            self._cancel()
        super().allContentReceived()

    def requestDone(self, request: Request) -> None:
        if self._phase == _HANDLING and self.persistent:
            self._phase = _IDLE
            self._arm(self.limits.idle_timeout, self._idle_expired)
        super().requestDone(request)  # may replay a pipelined request, which moves the phase on

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel()
        self._phase = _CLOSING
        if self._admitted:
            self._admitted = False
            self.accounts.leave(self.peer)
        super().connectionLost(reason)

    def close_after_answer(self) -> None:
        """Close once the response now being made is written, reading and dropping (up to
        ``linger_bytes``, for at most ``abort_timeout``) whatever the client still sends."""
        self._linger_wanted = True
        self.persistent = False

    def loseConnection(self) -> None:
        if self._linger_wanted and self._phase != _CLOSING:
            self._linger_wanted = False
            self._linger()
            return
        super().loseConnection()

    def _linger(self) -> None:
        # The answer goes out, then a FIN (half-close) tells the client there is no more; what it
        # still sends is dropped, as it would otherwise make the kernel reset the connection and
        # the client could lose the answer.
        self._phase = _LINGER
        self._linger_left = self.linger_bytes
        self._arm(self.limits.abort_timeout, self._tcp.abortConnection)
        self._networkProducer.unregisterProducer()
        self._networkProducer.resumeProducing()
        self._tcp.loseWriteConnection()

    def _start_headers(self) -> None:
        self._phase = _HEADERS
        self._arm(self.limits.header_timeout, self._headers_expired)

    # -- deadlines -----------------------------------------------------------------------------

    def _note_pause(self) -> None:
        self._paused_in_window = True

    def _check_rate(self) -> None:
        self._timer = None
        if self._phase != _BODY:
            return
        window = self.limits.rate_window
        if (
            not self._paused_in_window
            and self._received - self._window_start < self.limits.body_min_rate * window
        ):
            self._expire(self.body_timeout_response())
            return
        self._window_start = self._received
        self._paused_in_window = False
        self._arm(window, self._check_rate)

    def _idle_expired(self) -> None:
        self._timer = None
        if self._phase == _IDLE:
            self._close()

    def _headers_expired(self) -> None:
        self._timer = None
        if self._phase == _HEADERS:
            self._expire(plain_response(408, "Request Timeout"))

    def _expire(self, response: bytes) -> None:
        self._tcp.write(response)
        self._close()

    def _close(self) -> None:
        """Close after what is written has gone; abort if the peer does not take it in time."""
        self._phase = _CLOSING
        self._arm(self.limits.abort_timeout, self._tcp.abortConnection)
        self.loseConnection()

    def _arm(self, seconds: float, action: Callable[[], object]) -> None:
        self._cancel()
        self._timer = reactor.callLater(seconds, action)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- what a refused or timed-out client is told (services may answer in their own shape) ---

    def refusal_response(self) -> bytes:
        return plain_response(503, "Service Unavailable", "Retry-After: 1\r\n")

    def body_timeout_response(self) -> bytes:
        return plain_response(408, "Request Timeout")


def protect(site: Site, limits: HttpLimits | None = None) -> Site:
    """Serve ``site`` with ``limits`` (defaults: HttpLimits()): its connections become LimitedChannels."""
    _guard(site, limits)
    return site


def _guard(site: Site, limits: HttpLimits | None) -> PeerAccounts:
    """What ``protect`` does; returns the site's new PeerAccounts."""
    site.timeOut = None  # Twisted's own timeout resets on every byte; the channel's deadlines replace it
    if not (isinstance(site.protocol, type) and issubclass(site.protocol, LimitedChannel)):
        # Twisted annotates the channel factory as a method returning its generic channel type.
        site.protocol = LimitedChannel  # type: ignore[method-assign,assignment]
    accounts = PeerAccounts(limits or HttpLimits())
    site.peer_accounts = accounts  # type: ignore[attr-defined]  # read back by _peer_accounts
    return accounts


def _peer_accounts(site: object) -> PeerAccounts | None:
    """The PeerAccounts ``protect`` gave ``site`` (None for a site it was not called on)."""
    return getattr(site, "peer_accounts", None)


def add_limit_option(parser: argparse.ArgumentParser) -> None:
    """``--limit NAME=VALUE`` (repeatable) on a service's command line."""
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a connection limit of resilin/aws/httplimits.py, e.g. header_timeout=30 (repeatable)",
    )


def limits_from_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> HttpLimits:
    """The limits ``--limit`` gave; a bad one ends the program with argparse's usage error."""
    try:
        return HttpLimits.from_assignments(args.limit)
    except ValueError as exc:
        parser.error(str(exc))
