"""The delay line's copier on real datagram sockets: frames leave in order, at their due time, and
a full direction drops what comes over its limit (the raw sockets need root and are exercised by
tests/cloud/test_localcloud_wan.py)."""

from __future__ import annotations

import socket

import pytest

from resilin.provisioners.localcloud import delay_relay


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def _drain(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(2048))
        except BlockingIOError:
            return got


def test_frames_leave_in_order_once_due():
    wire_in, source = _pair()
    sink, wire_out = _pair()
    direction = delay_relay.Direction(source, sink, 1600, own_too=False)
    for n in range(3):
        wire_in.send(b"frame%d" % n)
    direction.read(due=10.0)
    wire_in.send(b"late")
    direction.read(due=20.0)
    assert direction.next_due() == 10.0
    direction.write(now=9.9)
    assert _drain(wire_out) == []
    direction.write(now=10.0)
    assert _drain(wire_out) == [b"frame0", b"frame1", b"frame2"] and direction.next_due() == 20.0
    direction.write(now=25.0)
    assert _drain(wire_out) == [b"late"] and direction.next_due() is None and direction.bytes == 0


def test_a_full_direction_drops_the_frames_over_its_limit(monkeypatch):
    monkeypatch.setattr(delay_relay, "QUEUE_BYTES", 10)
    wire_in, source = _pair()
    sink, wire_out = _pair()
    direction = delay_relay.Direction(source, sink, 1600, own_too=False)
    for frame in (b"12345", b"67890", b"dropped"):
        wire_in.send(frame)
    direction.read(due=1.0)
    direction.write(now=1.0)
    assert _drain(wire_out) == [b"12345", b"67890"]


def test_the_copier_refuses_a_bad_delay(capsys):
    with pytest.raises(SystemExit) as exited:
        delay_relay.main(["eth0", "eth1", "-5"])
    assert exited.value.code == 2
    assert "delay_ms must be between" in capsys.readouterr().err
