"""A delay line's frame copier: every Ethernet frame arriving on one interface leaves on the other
``delay_ms`` later, both ways (a constant one-way delay per direction, so a FIFO per direction).

Run by :mod:`delayline` as ``python -m resilin.provisioners.localcloud.delay_relay [--ready] IF_A
IF_B DELAY_MS``, between the host's end of an instance's WAN veth and one end of a new veth pair whose
other end is on the WAN bridge.  It is what ``tc netem`` would do, for kernels without netem.

Raw ``AF_PACKET`` sockets, one bound to each interface.  The frames must be whole: the interfaces'
offloads are off (:mod:`delayline`), so a frame is at most the MTU and carries its checksums.
A frame is dropped, as a congested router would, when a direction holds more than
``QUEUE_BYTES`` or its interface refuses it (a full ``tbf`` queue).  The copier exits when an
interface goes away (the instance stopped, the line was taken down) or its parent, the local
cloud, dies: the cloud restores the wiring.
"""

from __future__ import annotations

import argparse
import collections
import errno
import os
import select
import socket
import sys
import time
from pathlib import Path

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_OUTGOING = 4  # a frame this host sent on the interface (the socket's own, among others)
PACKET_IGNORE_OUTGOING = 23  # setsockopt: do not even deliver those (Linux 4.20+)
SO_RCVBUFFORCE = 33
HEADROOM = 64  # a frame is its MTU and an Ethernet header (a VLAN tag or two) at most: offloads are off
QUEUE_BYTES = 64 * 1024 * 1024  # per direction: 5 s at 100 Mbit/s
BUFFER = 8 * 1024 * 1024  # socket buffers: bursts while we sleep must not be lost
DROPPED = (errno.ENOBUFS, errno.EAGAIN, errno.EMSGSIZE)  # a frame lost, the line goes on
PARENT_CHECK_S = 1.0
# Frames due within this much are sent together: one wake-up for many frames (epoll's clock is
# the millisecond anyway).
EARLY_S = 0.0005


class Direction:
    """Frames read from ``source``, waiting to leave on ``sink`` at their due time."""

    def __init__(self, source: socket.socket, sink: socket.socket, frame_max: int, own_too: bool) -> None:
        self.source, self.sink = source, sink
        self.frame_max = frame_max
        self.own_too = own_too  # the kernel delivers the frames sent on the source: skip them here
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.bytes = 0

    def read(self, due: float) -> None:
        """Take every frame waiting on the source socket."""
        while True:
            try:
                if self.own_too:
                    frame, address = self.source.recvfrom(self.frame_max, socket.MSG_DONTWAIT)
                    if address[2] == PACKET_OUTGOING:
                        continue
                else:  # cheaper: no address to build
                    frame = self.source.recv(self.frame_max, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if self.bytes + len(frame) > QUEUE_BYTES:
                continue  # tail drop
            self.queue.append((due, frame))
            self.bytes += len(frame)

    def write(self, now: float) -> None:
        """Send every frame that is due."""
        queue = self.queue
        while queue and queue[0][0] <= now:
            _, frame = queue.popleft()
            self.bytes -= len(frame)
            try:
                self.sink.send(frame, socket.MSG_DONTWAIT)
            except OSError as exc:
                if exc.errno not in DROPPED:
                    raise

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None


def open_socket(interface: str) -> tuple[socket.socket, bool]:
    """A raw socket bound to ``interface``, and whether it delivers the frames sent on it too."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    own_too = False
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        own_too = True  # an older kernel: the pkttype check does it
    for option in (SO_RCVBUFFORCE, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, BUFFER)
        except OSError:
            pass  # without CAP_NET_ADMIN the default buffer will do
    sock.bind((interface, ETH_P_ALL))
    return sock, own_too


def frame_max(*interfaces: str) -> int:
    """The largest frame the interfaces can carry (their MTU and a header)."""
    mtus = [int(Path(f"/sys/class/net/{name}/mtu").read_text()) for name in interfaces]
    return max(mtus) + HEADROOM


def relay(first: str, second: str, delay_s: float, ready: bool = False) -> None:
    """Copy frames both ways between two interfaces, each ``delay_s`` late, until one goes away
    (with ``ready``, say "relaying" on the standard output once the sockets are bound)."""
    (a, a_own), (b, b_own) = open_socket(first), open_socket(second)
    largest = frame_max(first, second)
    if ready:
        print("relaying", flush=True)
    directions = {a.fileno(): Direction(a, b, largest, a_own), b.fileno(): Direction(b, a, largest, b_own)}
    poller = select.epoll()
    for fd in directions:
        poller.register(fd, select.EPOLLIN)
    parent, checked = os.getppid(), time.monotonic()
    while True:
        now = time.monotonic()
        dues = [d for d in (x.next_due() for x in directions.values()) if d is not None]
        timeout = max(0.0, min(dues) - EARLY_S - now) if dues else PARENT_CHECK_S
        for fd, events in poller.poll(min(timeout, PARENT_CHECK_S)):
            if events & (select.EPOLLERR | select.EPOLLHUP):
                error = directions[fd].source.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                raise OSError(error, f"{os.strerror(error)} on {first if fd == a.fileno() else second}")
            directions[fd].read(time.monotonic() + delay_s)
        now = time.monotonic()
        for direction in directions.values():
            direction.write(now + EARLY_S)
        if now - checked >= PARENT_CHECK_S:
            if os.getppid() != parent:
                raise SystemExit("the local cloud that started this delay line is gone")
            checked = now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="an interface, e.g. the host's end of an instance's veth")
    parser.add_argument("second", help="the other interface")
    parser.add_argument("delay_ms", type=float, help="one-way delay added each way, in milliseconds")
    parser.add_argument("--ready", action="store_true", help='say "relaying" once the sockets are bound')
    args = parser.parse_args(argv)
    if not 0 <= args.delay_ms <= 60_000:
        parser.error("delay_ms must be between 0 and 60000")
    try:
        relay(args.first, args.second, args.delay_ms / 1000, args.ready)
    except OSError as exc:
        print(f"delay_relay {args.first}<->{args.second}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
