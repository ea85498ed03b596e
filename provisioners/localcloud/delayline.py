"""Delay lines: round-trip time added to an instance's WAN link, in user space (the kernel here has
no ``netem``).

An instance's WAN interface is one end of a veth pair whose host end (``vethN``) is a port of the
WAN bridge.  A delay line takes ``vethN`` off the bridge, puts in its place one end (``rdl…b``) of
a new veth pair, and runs a copier (:mod:`delay_relay`) between ``vethN`` and the pair's other end
(``rdl…a``) that holds every frame ``delay_ms`` each way::

    instance eth1 ── vethN ⇄ delay_relay ⇄ rdl…a ── rdl…b ── WAN bridge

The copier needs whole frames, so segmentation and checksum offloads are off on those interfaces
and on the instance's own WAN interface (set from the host through ``nsenter``): a frame is then at
most the MTU, with its checksums.  Rate shaping (:mod:`shaping`, ``tbf`` on ``vethN`` and inside)
is unaffected.

The cloud's server owns the copiers, one per delayed instance.  Taking a line down (no more delay,
the instance stopped or terminated, the copier gone) kills its copier, deletes the ``rdl`` pair
and puts ``vethN`` back on the bridge if it still exists.  Each pair's ``rdl…a`` carries an alias
naming the cloud, the instance, ``vethN`` and the bridge, so that a cloud starting after a crash
(or a cleaner) can restore the wiring of lines nobody owns any more.  Blocking: run off the reactor.
"""

from __future__ import annotations

import json
import logging
import secrets
import select
import subprocess
import sys
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

PREFIX = "rdl"  # the pairs' names: rdl<8 hex>a and rdl<8 hex>b
ALIAS = "resilin-delay"  # alias of rdl…a: "resilin-delay <cloud> <instance> <vethN> <bridge>"
MAX_DELAY_MS = 5000
OFFLOADS_OFF = ["tso", "off", "gso", "off", "gro", "off", "tx", "off"]
OFFLOADS_ON = ["tx", "on", "tso", "on", "gso", "on"]  # a veth's defaults (GRO is off by default)
READY_TIMEOUT_S = 10


class DelayLineError(Exception):
    pass


@dataclass
class Line:
    instance_id: str
    host: str  # vethN, the host's end of the instance's WAN veth
    bridge: str  # the WAN bridge vethN was a port of
    outer: str  # rdl…a, the copier's other side
    inner: str  # rdl…b, on the bridge in vethN's place
    delay_ms: float
    process: subprocess.Popen[bytes] | None = None


def _run(args: list[str], pid: int = 0, check: bool = True) -> str:
    command = (["nsenter", "--target", str(pid), "--net"] if pid else []) + args
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise DelayLineError(f"{' '.join(args[:4])} failed: {proc.stderr.strip()}")
    return proc.stdout if proc.returncode == 0 else ""


def _links() -> list[dict[str, object]]:
    links: list[dict[str, object]] = json.loads(_run(["ip", "-j", "link", "show"]) or "[]")
    return links


def _master(device: str) -> str | None:
    """The bridge ``device`` is a port of (None: none); DelayLineError if it does not exist."""
    [link] = json.loads(_run(["ip", "-j", "link", "show", "dev", device]) or "[{}]")
    master = link.get("master")
    return str(master) if master else None


def _exists(device: str) -> bool:
    return any(link.get("ifname") == device for link in _links())


def offloads(device: str, on: bool, pid: int = 0) -> None:
    """Turn segmentation and checksum offloads off (whole frames) or back on."""
    _run(["ethtool", "-K", device, *(OFFLOADS_ON if on else OFFLOADS_OFF)], pid)


def _restore(host: str, bridge: str, outer: str) -> None:
    """Delete the rdl pair and put vethN back on its bridge, if it still exists (idempotent)."""
    _run(["ip", "link", "del", "dev", outer], check=False)  # its peer goes with it
    if host and bridge and _exists(host):
        try:
            if _master(host) is None:
                _run(["ip", "link", "set", "dev", host, "master", bridge])
            offloads(host, on=True)
        except DelayLineError as exc:
            log.warning("could not put %s back on %s: %s", host, bridge, exc)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_copier(host: str, outer: str, delay_ms: float) -> subprocess.Popen[bytes]:
    """Start the copier and wait until its sockets are bound (it says so on its output)."""
    module = "resilin.provisioners.localcloud.delay_relay"
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--ready", host, outer, f"{delay_ms:g}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
    if not ready or not process.stdout.readline().startswith(b"relaying"):
        _stop(process)
        raise DelayLineError(f"the delay line between {host} and {outer} did not start")
    return process


def leftovers(cloud_name: str) -> list[tuple[str, str, str, str]]:
    """The delay lines of ``cloud_name`` on this host: (instance, vethN, bridge, rdl…a) each."""
    found = []
    for link in json.loads(_run(["ip", "-j", "-d", "link", "show"]) or "[]"):
        words = str(link.get("ifalias", "")).split()
        name = str(link.get("ifname", ""))
        if name.startswith(PREFIX) and len(words) == 5 and words[:2] == [ALIAS, cloud_name]:
            found.append((words[2], words[3], words[4], name))
    return found


def clear_leftovers(cloud_name: str) -> int:
    """Restore the wiring of every delay line of ``cloud_name`` (their copiers end with their
    interfaces); how many there were."""
    lines = leftovers(cloud_name)
    for instance_id, host, bridge, outer in lines:
        log.warning("%s: taking down the delay line of %s left by an earlier run", cloud_name, instance_id)
        _restore(host, bridge, outer)
    return len(lines)


class DelayLines:
    """The delay lines of one cloud's instances, each with its copier, owned by this process."""

    def __init__(self, cloud_name: str) -> None:
        self.cloud_name = cloud_name
        self._lines: dict[str, Line] = {}
        self._lock = threading.RLock()  # requests and watchers run in threads

    def delay_ms(self, instance_id: str) -> float:
        """The delay in force on the instance's WAN link, each way (0: none)."""
        with self._lock:
            line = self._lines.get(instance_id)
            alive = line is not None and line.process is not None and line.process.poll() is None
            return line.delay_ms if line is not None and alive else 0

    def set(self, instance_id: str, host: str, inside: str, pid: int, delay_ms: float) -> None:
        """Delay the instance's WAN link ``delay_ms`` each way (a line made, or its delay changed)."""
        if not 0 < delay_ms <= MAX_DELAY_MS:
            raise DelayLineError(f"delay_ms must be between 0 and {MAX_DELAY_MS}")
        with self._lock:
            line = self._lines.get(instance_id)
            if line is not None and line.host == host and line.process and line.process.poll() is None:
                if line.delay_ms != delay_ms:  # the same wiring, a new copier
                    _stop(line.process)
                    line.process, line.delay_ms = None, delay_ms
                    self._run_copier(line)
                return
            self.remove(instance_id)
            self._make(instance_id, host, inside, pid, delay_ms)

    def _make(self, instance_id: str, host: str, inside: str, pid: int, delay_ms: float) -> None:
        bridge = _master(host)
        if bridge is None:
            raise DelayLineError(f"{host} is not on the WAN bridge")
        token = secrets.token_hex(4)
        line = Line(instance_id, host, bridge, f"{PREFIX}{token}a", f"{PREFIX}{token}b", delay_ms)
        alias = f"{ALIAS} {self.cloud_name} {instance_id} {host} {bridge}"
        try:
            _run(["ip", "link", "add", line.outer, "type", "veth", "peer", "name", line.inner])
            _run(["ip", "link", "set", "dev", line.outer, "alias", alias])
            for device in (line.outer, line.inner, host):
                offloads(device, on=False)
            offloads(inside, on=False, pid=pid)
            _run(["ip", "link", "set", "dev", line.outer, "up"])
            _run(["ip", "link", "set", "dev", host, "nomaster"])
            _run(["ip", "link", "set", "dev", line.inner, "master", bridge, "up"])
            self._lines[instance_id] = line
            self._run_copier(line)
        except Exception:
            self._lines.pop(instance_id, None)
            _restore(host, bridge, line.outer)
            raise
        log.info(
            "%s: WAN link of %s delayed %g ms each way (%s)", self.cloud_name, instance_id, delay_ms, host
        )

    def _run_copier(self, line: Line) -> None:
        line.process = _start_copier(line.host, line.outer, line.delay_ms)
        threading.Thread(target=self._watch, args=(line, line.process), daemon=True).start()

    def _watch(self, line: Line, process: subprocess.Popen[bytes]) -> None:
        """A copier that ends on its own (its instance stopped, say) takes its line down."""
        process.wait()
        with self._lock:
            if self._lines.get(line.instance_id) is line and line.process is process:
                log.warning(
                    "%s: the delay line of %s ended (%s)",
                    self.cloud_name,
                    line.instance_id,
                    process.returncode,
                )
                del self._lines[line.instance_id]
                _restore(line.host, line.bridge, line.outer)

    def remove(self, instance_id: str, pid: int = 0, inside: str = "") -> bool:
        """Take the instance's delay line down, if it has one (with ``pid`` and ``inside``, the
        instance's offloads back on too); whether it had one."""
        with self._lock:
            line = self._lines.pop(instance_id, None)
            if line is None:
                return False
            _stop(line.process)
            _restore(line.host, line.bridge, line.outer)
        if pid and inside:
            try:
                offloads(inside, on=True, pid=pid)
            except DelayLineError as exc:
                log.info("offloads of %s in %s stay off: %s", inside, instance_id, exc)
        log.info("%s: WAN link of %s no longer delayed", self.cloud_name, instance_id)
        return True

    def remove_all(self) -> None:
        """Take every line down (the cloud stops)."""
        with self._lock:
            for instance_id in list(self._lines):
                self.remove(instance_id)

    def has(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._lines
