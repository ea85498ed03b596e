"""Listening sockets: made here, adopted by the reactor; and a free port for what cannot report its own.

A service that can say where it listens binds port 0 and reports the port it got (see
:mod:`resilin.service.children`); :func:`free_port` is for a port that must be known before its
listener starts (a configuration file, a program that cannot report one), and may be taken by
someone else in between.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory

# The reactor, typed as what it is rather than as its zope interfaces (which mypy cannot call).
reactor: Any = _reactor

IP_FREEBIND = 15  # from <linux/in.h>; Python's socket module does not name it


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_socket(
    host: str, port: int, *, reuse_port: bool = False, freebind: bool = False, backlog: int = 128
) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (port 0: one the kernel picks).

    ``reuse_port`` lets several processes listen on one port, the kernel spreading connections;
    ``freebind`` binds an address that may not exist yet (a podman bridge gets its gateway address
    only when its first container starts).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if freebind:
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def adopt(sock: socket.socket, factory: Factory[Any]) -> IListeningPort:
    """Serve ``factory`` on ``sock`` in the reactor; the socket object itself is closed."""
    listening = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, factory)
    sock.close()  # the reactor holds its own duplicate of the descriptor
    return listening


def listen(factory: Factory[Any], host: str, port: int, *, freebind: bool = False) -> IListeningPort:
    """Serve ``factory`` on ``host:port``; ``freebind`` as for :func:`listening_socket`."""
    if freebind:
        return adopt(listening_socket(host, port, freebind=True), factory)
    return reactor.listenTCP(port, factory, interface=host)


def port_of(listening: Any) -> int:
    """The port an ``IListeningPort`` listens on."""
    return listening.getHost().port
