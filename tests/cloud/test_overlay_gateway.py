"""The overlay gateway of the node image, between two instances of it on one podman network.

Each container gets ``tun0`` from the host exactly as the local cloud makes it for
``ModifyInstanceAttribute(SourceDestCheck=false)`` (``ip tuntap add … user 0 vnet_hdr`` through
nsenter, MTU 1420, up, forwarding on), with podman's default capabilities and ``/dev/net/tun``.
Both containers sit on the same bridge, so their private addresses reach each other directly; the
tunnel carries a test address plan instead: each container holds 10.254.<n>.1/32 on ``lo`` (as a
cluster node behind its gateway) and the host routes the other's test addresses through ``tun0``.
What crosses the bridge is then only WireGuard, which a capture there shows (while a capture on
``tun0`` inside a container sees the plain payload).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.localcloud_helpers import free_subnet

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

ROOT = Path(__file__).resolve().parents[2]
CONF = "/etc/resilin/overlay/tun0.conf"
CAP_NET_ADMIN = 12
# tcpdump's line for a WireGuard datagram between two gateways' port 51820.
WIREGUARD = re.compile(r" IP (\d+\.\d+\.\d+\.\d+)\.51820 > \d+\.\d+\.\d+\.\d+\.51820: UDP, length \d+$")


@dataclass
class Gateway:
    name: str
    pid: int  # the container's init, for nsenter
    address: str  # on the podman network (the WireGuard endpoint)
    test_address: str  # behind the gateway, reached only through tun0
    private_key: str
    public_key: str


def _run(*argv: str, input: bytes | None = None, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return done.stdout.decode(errors="replace")


def _in_netns(pid: int, *argv: str) -> str:
    return _run("nsenter", "-t", str(pid), "-n", *argv)


def _key_pair() -> tuple[str, str]:
    key = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def _config(me: Gateway, peer: Gateway, allowed: list[str]) -> str:
    return (
        f"[Interface]\nPrivateKey = {me.private_key}\nListenPort = 51820\n\n"
        f"[Peer]\nPublicKey = {peer.public_key}\nAllowedIPs = {', '.join(allowed)}\n"
        f"Endpoint = {peer.address}:51820\nPersistentKeepalive = 25\n"
    )


def _write_config(gw: Gateway, text: str) -> None:
    # Through stdin, as Resilin does over SSH: the private key is on no command line.
    _run("podman", "exec", "-i", gw.name, "sh", "-c", f"umask 077 && cat > {CONF}", input=text.encode())


def _gateway(gw: Gateway, action: str) -> subprocess.CompletedProcess[str]:
    """``sudo resilin-overlay-gateway ACTION`` as the hadoop user, as Resilin runs it over SSH."""
    return subprocess.run(
        ["podman", "exec", "--user", "hadoop", gw.name, "sudo", "resilin-overlay-gateway", action],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _daemon_pid(gw: Gateway) -> int | None:
    done = subprocess.run(
        ["podman", "exec", gw.name, "cat", "/run/resilin-overlay.pid"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return None
    pid = done.stdout.strip()
    alive = subprocess.run(
        ["podman", "exec", gw.name, "grep", "-qx", "resilin-overlay", f"/proc/{pid}/comm"],
        capture_output=True,
    )
    return int(pid) if alive.returncode == 0 else None


def _cap_eff(container: str, pid: str = "1") -> int:
    status = _run("podman", "exec", container, "cat", f"/proc/{pid}/status")
    line = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    return int(line.split()[1], 16)


def _connects(src: Gateway, host: str, port: int) -> bool:
    done = subprocess.run(
        ["podman", "exec", src.name, "nc", "-z", "-w", "3", host, str(port)], capture_output=True, timeout=30
    )
    return done.returncode == 0


def _connects_soon(src: Gateway, host: str, port: int, within: float = 15.0) -> bool:
    """A connection made within `within` seconds. A handshake sent before the peer's daemon was up
    is lost, and WireGuard only retries it after its rekey timeout (5 s), so the first try may not."""
    deadline = time.monotonic() + within
    while True:
        if _connects(src, host, port):
            return True
        if time.monotonic() > deadline:
            return False


class Capture:
    """tcpdump on an interface (of the host, or of a container's namespace) into a pcap file."""

    def __init__(self, path: Path, interface: str, netns_pid: int | None = None) -> None:
        self.path = path
        prefix = ["nsenter", "-t", str(netns_pid), "-n"] if netns_pid else []
        argv = [*prefix, "tcpdump", "-i", interface, "-n", "-U", "-s", "0", "-w", str(path), "ip"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode()  # "listening on …" once it captures
        assert "listening on" in line, line

    def stop(self) -> tuple[bytes, list[str]]:
        """The raw capture and tcpdump's one-line summary of each packet."""
        time.sleep(0.5)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        lines = _run("tcpdump", "-r", str(self.path), "-n", "-nn").splitlines()
        return self.path.read_bytes(), lines


@pytest.fixture(scope="module")
def pair(node_image) -> Iterator[tuple[Gateway, Gateway, str]]:
    """Two running node containers with a host-made tun0 each, and the bridge between them."""
    has_gateway = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--entrypoint",
            "test",
            node_image,
            "-x",
            "/usr/local/sbin/resilin-overlay",
        ],
        capture_output=True,
    )
    if has_gateway.returncode != 0:
        pytest.skip(f"{node_image} has no overlay gateway (set RESILIN_TEST_NODE_IMAGE to the node image)")
    tag = secrets.token_hex(3)
    network = f"resilin-ovgw-{tag}"
    subnet = free_subnet()
    prefix = subnet.rsplit(".", 1)[0]
    names = [f"resilin-ovgw-{tag}-{n}" for n in (1, 2)]
    _run("podman", "network", "create", "--internal", "--subnet", subnet, network)
    try:
        gateways = []
        for n, name in enumerate(names, start=1):
            address = f"{prefix}.{10 + n}"
            _run(
                "podman", "run", "-d", "--name", name, "--label", f"resilin.cloud=ovgw-{tag}",
                "--network", network, "--ip", address, "--device", "/dev/net/tun",
                "--entrypoint", "sleep", node_image, "infinity",
            )  # fmt: skip
            pid = int(_run("podman", "inspect", "--format", "{{.State.Pid}}", name).strip())
            # What the local cloud does for SourceDestCheck=false.
            _in_netns(pid, "ip", "tuntap", "add", "dev", "tun0", "mode", "tun", "user", "0", "vnet_hdr")
            _in_netns(pid, "ip", "link", "set", "tun0", "mtu", "1420", "up")
            _in_netns(pid, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            private, public = _key_pair()
            gateways.append(Gateway(name, pid, address, f"10.254.{n}.1", private, public))
        a, b = gateways
        for me, peer in ((a, b), (b, a)):
            _in_netns(me.pid, "ip", "addr", "add", f"{me.test_address}/32", "dev", "lo")
            # What the local cloud does for CreateRoute(peer's node → this gateway).
            _in_netns(
                me.pid,
                "ip",
                "route",
                "replace",
                f"{peer.test_address}/32",
                "dev",
                "tun0",
                "src",
                me.test_address,
            )
            _write_config(me, _config(me, peer, [f"{peer.test_address}/32"]))
        bridge = _run("podman", "network", "inspect", "--format", "{{.NetworkInterface}}", network).strip()
        yield a, b, bridge
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)
        subprocess.run(["podman", "network", "rm", "-f", network], capture_output=True)


def test_a_transfer_crosses_the_bridge_only_as_wireguard(pair, tmp_path):
    a, b, bridge = pair
    for gw in (a, b):
        done = _gateway(gw, "up")
        assert done.returncode == 0, done.stderr
    marker = f"RESILIN-OVERLAY-MARKER-{secrets.token_hex(8)}"
    payload = (marker + "\n").encode() * 50_000  # 2 MB
    _run("podman", "exec", "-d", b.name, "sh", "-c", "nc -l -p 5001 > /tmp/received")
    time.sleep(0.5)
    on_wire = Capture(tmp_path / "bridge.pcap", bridge)
    in_tunnel = Capture(tmp_path / "tun0.pcap", "tun0", netns_pid=b.pid)
    _run("podman", "exec", "-i", a.name, "nc", "-q", "1", "-N", b.test_address, "5001", input=payload)
    wire_bytes, wire_packets = on_wire.stop()
    tunnel_bytes, _ = in_tunnel.stop()

    received = _run("podman", "exec", b.name, "sha256sum", "/tmp/received").split()[0]
    assert received == hashlib.sha256(payload).hexdigest()
    assert marker.encode() in tunnel_bytes  # the plain traffic is there, inside the gateway
    assert len(wire_bytes) > len(payload)  # the transfer did cross the bridge…
    assert marker.encode() not in wire_bytes  # …encrypted
    others = [p for p in wire_packets if not WIREGUARD.search(p)]
    assert not others, others[:5]
    senders = {m.group(1) for p in wire_packets if (m := WIREGUARD.search(p))}
    assert senders == {a.address, b.address}


def test_up_again_reloads_the_peers_without_a_restart(pair):
    a, b, _ = pair
    for gw in (a, b):
        assert _gateway(gw, "up").returncode == 0
    before = _daemon_pid(a)
    assert before is not None
    # A second node behind b, routed through a's tun0 but not yet in a's AllowedIPs: dropped.
    _in_netns(b.pid, "ip", "addr", "replace", "10.254.2.2/32", "dev", "lo")
    _in_netns(a.pid, "ip", "route", "replace", "10.254.2.2/32", "dev", "tun0", "src", a.test_address)
    _run("podman", "exec", "-d", b.name, "nc", "-l", "-k", "-p", "5002")
    time.sleep(0.5)
    assert not _connects(a, "10.254.2.2", 5002)

    _write_config(a, _config(a, b, [f"{b.test_address}/32", "10.254.2.2/32"]))
    done = _gateway(a, "up")
    assert done.returncode == 0, done.stderr
    assert _daemon_pid(a) == before  # the same process, sent SIGHUP
    log = _run("podman", "exec", a.name, "cat", "/var/log/resilin-overlay.log")
    assert "reloaded: UDP port 51820, 1 peers" in log
    assert _connects_soon(a, "10.254.2.2", 5002)

    # A file that does not parse: refused in one line, the running daemon keeps its peers.
    _write_config(a, "[Interface]\nPrivateKey = not-a-key\n")
    try:
        bad = _gateway(a, "up")
    finally:
        _write_config(a, _config(a, b, [f"{b.test_address}/32", "10.254.2.2/32"]))
    assert bad.returncode == 1
    assert (
        bad.stderr == f"resilin-overlay-gateway: {CONF}: line 2: PrivateKey: not a base64 key of 32 bytes\n"
    )
    assert _daemon_pid(a) == before
    assert _connects_soon(a, "10.254.2.2", 5002)


def test_the_log_and_the_files_hold_no_key(pair):
    a, b, _ = pair
    assert _gateway(a, "up").returncode == 0
    log = _run("podman", "exec", a.name, "cat", "/var/log/resilin-overlay.log")
    for key in (a.private_key, b.public_key):
        assert key not in log
    modes = _run("podman", "exec", a.name, "stat", "-c", "%a %U %n", CONF, "/var/log/resilin-overlay.log")
    assert modes.splitlines() == [f"600 root {CONF}", "640 root /var/log/resilin-overlay.log"]


def test_no_instance_needs_a_capability_beyond_podmans_default(pair, node_image):
    a, b, _ = pair
    reference = f"resilin-ovgw-ref-{secrets.token_hex(3)}"
    _run("podman", "run", "-d", "--name", reference, "--entrypoint", "sleep", node_image, "infinity")
    try:
        default = _cap_eff(reference)
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", reference], capture_output=True)
    assert not default & (1 << CAP_NET_ADMIN)
    for gw in (a, b):
        assert _gateway(gw, "up").returncode == 0
        assert _cap_eff(gw.name) == default
        daemon = _daemon_pid(gw)
        assert daemon is not None
        assert _cap_eff(gw.name, str(daemon)) & ~default == 0


def test_down_stops_the_daemon_and_removes_the_key(pair):
    a, b, _ = pair
    assert _gateway(a, "up").returncode == 0
    assert _daemon_pid(a) is not None
    _run("podman", "exec", "-d", b.name, "nc", "-l", "-k", "-p", "5003")
    time.sleep(0.5)
    assert _connects_soon(a, b.test_address, 5003)
    done = _gateway(a, "down")
    assert done.returncode == 0, done.stderr
    assert _daemon_pid(a) is None
    assert _run(
        "podman", "exec", a.name, "sh", "-c", f"test -e {CONF} && echo present || echo gone"
    ).strip() == ("gone")
    _in_netns(a.pid, "ip", "link", "show", "tun0")  # the host's device stays: the cloud owns it
    assert not _connects(a, b.test_address, 5003)
    assert _gateway(a, "down").returncode == 0  # idempotent
    again = _gateway(a, "up")
    assert again.returncode == 1
    assert again.stderr.strip() == f"resilin-overlay-gateway: no configuration at {CONF}"


def test_the_gateway_programs_go_tests_pass():
    """The Go package's own tests (the configuration parser and the UAPI requests)."""
    done = subprocess.run(
        ["/usr/lib/go-1.23/bin/go", "test", "./..."],
        cwd=ROOT / "overlay" / "gateway",
        env={**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def vms(node_image) -> Iterator[tuple[Gateway, Gateway]]:
    """Two containers standing in for EC2 VMs: CAP_NET_ADMIN, no tun0, each on a private network
    of its own (its default route) and on a shared WAN network (their WireGuard endpoints)."""
    tag = secrets.token_hex(3)
    networks = [f"resilin-ovvm-{tag}-{n}" for n in ("wan", "1", "2")]
    names = [f"resilin-ovvm-{tag}-{n}" for n in (1, 2)]
    subnets = []
    try:
        for network in networks:
            subnets.append(free_subnet())
            _run("podman", "network", "create", "--internal", "--subnet", subnets[-1], network)
        wan, *private = (s.rsplit(".", 1)[0] for s in subnets)
        vms = []
        for n, name in enumerate(names, start=1):
            address = f"{private[n - 1]}.10"
            _run(
                "podman", "run", "-d", "--name", name, "--label", f"resilin.cloud=ovvm-{tag}",
                "--network", f"{networks[n]}:ip={address}", "--network", f"{networks[0]}:ip={wan}.{10 + n}",
                "--device", "/dev/net/tun", "--cap-add", "NET_ADMIN",
                "--entrypoint", "sleep", node_image, "infinity",
            )  # fmt: skip
            pid = int(_run("podman", "inspect", "--format", "{{.State.Pid}}", name).strip())
            interface = _in_netns(pid, "ip", "-o", "-4", "addr", "show", "to", address).split()[1]
            _in_netns(pid, "ip", "route", "add", "default", "dev", interface)  # as a VM has one
            private_key, public_key = _key_pair()
            vms.append(Gateway(name, pid, f"{wan}.{10 + n}", address, private_key, public_key))
        yield vms[0], vms[1]
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)
        for network in networks:
            subprocess.run(["podman", "network", "rm", "-f", network], capture_output=True)


def _vm_config(me: Gateway, peer: Gateway, allowed: list[str], endpoint: bool) -> str:
    text = f"[Interface]\nPrivateKey = {me.private_key}\nListenPort = 51820\n\n"
    text += f"[Peer]\nPublicKey = {peer.public_key}\nAllowedIPs = {', '.join(allowed)}\n"
    return text + (f"Endpoint = {peer.address}:51820\nPersistentKeepalive = 25\n" if endpoint else "")


def test_on_a_vm_it_makes_the_device_and_the_routes_and_removes_them(vms):
    spoke, hub = vms  # the spoke dials out; the hub learns its endpoint from the handshake
    _write_config(spoke, _vm_config(spoke, hub, [f"{hub.test_address}/32"], endpoint=True))
    _write_config(hub, _vm_config(hub, spoke, [f"{spoke.test_address}/32"], endpoint=False))
    for vm in (spoke, hub):
        done = _gateway(vm, "up")
        assert done.returncode == 0, done.stderr
        # No WireGuard module on this machine: a TUN of its own and the daemon (else: kernel).
        made = _run("podman", "exec", vm.name, "cat", "/run/resilin-overlay.made").strip()
        assert (made == "tuntap" and _daemon_pid(vm) is not None) or made == "kernel"
        assert "mtu 1420 " in _in_netns(vm.pid, "ip", "link", "show", "tun0")
    routes = _in_netns(spoke.pid, "ip", "route", "show", "dev", "tun0")
    assert routes.split() == [hub.test_address, "scope", "link", "src", spoke.test_address]
    _run("podman", "exec", "-d", hub.name, "nc", "-l", "-k", "-p", "5004")
    time.sleep(0.5)
    assert _connects_soon(spoke, hub.test_address, 5004)  # a private address of the other cloud

    extra = "10.254.9.0/24"
    _write_config(spoke, _vm_config(spoke, hub, [f"{hub.test_address}/32", extra], endpoint=True))
    assert _gateway(spoke, "up").returncode == 0
    assert extra in _in_netns(spoke.pid, "ip", "route", "show", "dev", "tun0")
    _write_config(spoke, _vm_config(spoke, hub, [f"{hub.test_address}/32"], endpoint=True))
    assert _gateway(spoke, "up").returncode == 0
    assert extra not in _in_netns(spoke.pid, "ip", "route", "show", "dev", "tun0")

    assert _gateway(spoke, "down").returncode == 0
    assert "tun0" not in _in_netns(spoke.pid, "ip", "-o", "link", "show")
    assert _daemon_pid(spoke) is None
    for path in (CONF, "/run/resilin-overlay.pid", "/run/resilin-overlay.made"):
        assert subprocess.run(["podman", "exec", spoke.name, "test", "-e", path]).returncode == 1, path
