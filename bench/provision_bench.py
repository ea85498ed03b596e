"""Provisioning benchmark on the local cloud: RunInstances → SSH-ready, and TerminateInstances → gone.

Starts its own local cloud (a child process on loopback, with its own Redis and
network) and provisions 1, 2, 4 and 8 instances of the node image at once,
``--repeat`` times each, exactly as Resilin does: RunInstances through Resilin's
EC2 client, DescribeInstances until all run, the host keys read from each
instance's console, then SSH with those keys pinned.  Then TerminateInstances,
DescribeInstances until all are terminated, and until their containers are gone.

Phases, in seconds from the call that starts them (medians over the runs):

- RunInstances: the call itself
- running: until DescribeInstances shows every instance running with an address
- SSH ready: until every instance answers SSH with its console's host key
- CPU busy %: how busy the host's CPUs were from RunInstances to SSH ready (near 100 %,
  the launch is bound by the CPU work of its instances rather than by waiting)
- terminated: TerminateInstances until DescribeInstances shows every one terminated
- gone: until no container of them is left

Provisioning is parallel if N instances take little longer than one: the run
ends with the ratio of the SSH-ready medians for the largest and smallest size
(target: at most 2).

Parallel launches on a small host are bound by CPU, so the run also prints the
CPU each instance cost (``CPU s/instance``: all the host's CPU from RunInstances
to SSH ready, divided by the instances), and what three parts of it cost,
measured on their own:

- the container engine: podman, runc and conmon creating, initialising and
  starting a container of the node image on the cloud's network, its boot
  replaced by an idle command (``--floor-count`` containers at once); and the
  same with no network at all, the most that wiring instances to the network by
  other means than podman's could save;
- the instance's boot: the node's init script and what it runs (host keys, the
  console), and sshd's start, read from the process accounting of the
  instance's PID 1;
- sshd serving one accepted connection (key exchange, public-key authentication).

It also times SSH itself on one instance (``--ssh-tries`` connections, ``--ssh-only`` for just
that): a connection, its first command and the next, as Resilin's Node makes them and as paramiko
does on its own (its socket, exec_command), side by side.

N instances can be ready within 2x the time of one only if each costs at most
2 × T(1) × CPUs / N CPU-seconds; the run compares that budget with these parts.

Usage: .venv/bin/python bench/provision_bench.py [--sizes 1 2 4 8] [--repeat 3] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from resilin.clouds.ssh import SSH_USER, KeyPair, Node, pinned_client
from resilin.provisioners.ec2client import EC2Client
from resilin.provisioners.localcloud.machines import container_name
from resilin.provisioners.localcloud.podman import Podman, PodmanError
from resilin.provisioners.localcloud.podman_api import PodmanApi, PodmanService
from resilin.provisioners.localcloud.process import LocalCloudProcess, remove_cloud
from resilin.provisioners.localcloud.server import network_name
from resilin.service.redis_server import PrivateRedis
from resilin.settings.config import CloudConfig, new_credentials

SSH_PARTS = ("connect", "first", "next")
PHASES = ("RunInstances", "running", "SSH ready", "CPU busy %", "CPU s/instance", "terminated", "gone")


def free_subnet() -> str:
    taken = []
    for name in Podman().list_networks():
        try:
            taken += [
                ipaddress.ip_network(s["subnet"]) for s in Podman().network_inspect(name).get("subnets", [])
            ]
        except PodmanError:
            continue  # removed meanwhile (other runs share the machine)
    for third in range(256):
        candidate = ipaddress.ip_network(f"10.82.{third}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise SystemExit("no free /24 in 10.82.0.0/16 for the benchmark's network")


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all the host's CPUs so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def shown(phase: str, value: float) -> str:
    if phase.endswith("%"):
        return f"{value:.0f}"
    return f"{value:.3f}" if phase.startswith("CPU s") else f"{value:.2f}s"


def process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` and of the children it has reaped, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def one_run(
    client: EC2Client, image: str, itype: str, key: KeyPair, count: int, cloud: str
) -> dict[str, float]:
    times: dict[str, float] = {}
    busy0, total0 = cpu_jiffies()
    start = time.monotonic()
    ids = client.launch(image, itype, count, "provision-bench", {"bench": "provision"})
    times["RunInstances"] = time.monotonic() - start
    infos = client.wait_running(ids, timeout=300)
    times["running"] = time.monotonic() - start

    def reach(info) -> None:
        node = Node(info.address, client.host_keys(info.id, timeout=300), key)
        node.wait_reachable(300)
        node.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(reach, infos))
    times["SSH ready"] = time.monotonic() - start
    busy1, total1 = cpu_jiffies()
    # How busy the host's CPUs were until SSH ready: near 100 % the launch is bound by CPU, not by
    # waiting, and more instances can only take longer in proportion to the work they need.
    times["CPU busy %"] = 100 * (busy1 - busy0) / max(1, total1 - total0)
    times["CPU s/instance"] = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / count

    start = time.monotonic()
    client.terminate(ids)
    client.wait_terminated(ids, timeout=300)
    times["terminated"] = time.monotonic() - start
    podman = Podman()
    while any(podman.list({"resilin.cloud": cloud, "resilin.instance-id": i}) for i in ids):
        time.sleep(0.1)
    times["gone"] = time.monotonic() - start
    return times


def engine_floor(image: str, network: str, count: int) -> tuple[float, float]:
    """CPU seconds per container that podman, runc and conmon spend to create, initialise and
    start ``count`` containers of ``image`` at once, with an idle command instead of the boot;
    and how much of it each container's own PID 1 spent (runc setting the container up from
    inside, before it runs the command)."""
    service = PodmanService().start()
    api = PodmanApi(service)
    names = [f"pbench-floor-{os.getpid()}-{i}" for i in range(count)]

    def create(name: str) -> str:
        return api.create(
            name=name, image=image, hostname=name, network=network, labels={}, env={},
            command=["sleep", "infinity"],
        )  # fmt: skip

    try:
        busy0, _ = cpu_jiffies()
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(create, names))
        pids = api.init_all(names)
        api.start_all(names)
        busy1, _ = cpu_jiffies()
        inside = statistics.median(process_cpu(pid) for pid in pids.values())
    finally:
        api.remove(names, 0)
        api.close()
        service.stop()
    return (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / count, inside


def settled_cpu(pid: int) -> float:
    """:func:`process_cpu` once it has stopped moving (the last connection's process reaped)."""
    last = process_cpu(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = process_cpu(pid)
        if now == last:
            return now
        last = now
    return last


def instance_costs(
    client: EC2Client, image: str, itype: str, key: KeyPair, cloud: str, tries: int
) -> tuple[float, float]:
    """CPU seconds of one instance's PID 1 until it served its first connection (runc's set-up
    inside the container, the init script and what it runs: host keys, the console; sshd's
    start), and of its sshd serving one accepted connection (median of ``tries``)."""
    [iid] = client.launch(image, itype, 1, "provision-bench", {"bench": "provision-floor"})
    try:
        [info] = client.wait_running([iid], timeout=300)
        host_keys = client.host_keys(iid, timeout=300)
        node = Node(info.address, host_keys, key)
        node.wait_reachable(300)
        node.close()
        # PID 1 of the instance ran the init script, then became sshd: its own CPU and its reaped
        # children's (the programs the script ran, the process serving each connection) add up.
        sshd = Podman().pid(container_name(cloud, iid))
        boot_and_first = settled_cpu(sshd)
        costs = []
        for _ in range(tries):
            before = settled_cpu(sshd)
            node = Node(info.address, host_keys, key)
            node.connect()
            node.close()
            costs.append(settled_cpu(sshd) - before)
        per_connection = statistics.median(costs)
        return boot_and_first - per_connection, per_connection
    finally:
        client.terminate([iid])
        client.wait_terminated([iid], timeout=300)


def _ours(address: str, host_keys: list[str], key: KeyPair) -> tuple[float, float, float]:
    """Seconds to connect as Resilin's Node does, to run a first command, then a second one."""
    node = Node(address, host_keys, key)
    t0 = time.monotonic()
    node.connect()
    t1 = time.monotonic()
    node.run("true")
    t2 = time.monotonic()
    node.run("true")
    t3 = time.monotonic()
    node.close()
    return t1 - t0, t2 - t1, t3 - t2


def _paramiko_alone(address: str, host_keys: list[str], key: KeyPair) -> tuple[float, float, float]:
    """The same with paramiko on its own: its own socket, exec_command, the same pinned host key."""
    peer = pinned_client(address, host_keys)
    t0 = time.monotonic()
    peer.connect(address, username=SSH_USER, pkey=key.pkey(), allow_agent=False, look_for_keys=False)
    marks = [t0, time.monotonic()]
    for _ in range(2):
        _, out, _ = peer.exec_command("true")
        out.channel.recv_exit_status()
        marks.append(time.monotonic())
    peer.close()
    return marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2]


def ssh_latency(
    client: EC2Client, image: str, itype: str, key: KeyPair, tries: int
) -> dict[str, list[float]]:
    """On one instance, ``tries`` times in turn: a new SSH connection, its first command and the
    next one, by Resilin's Node and by paramiko alone (the peer).  Seconds per part."""
    [iid] = client.launch(image, itype, 1, "provision-bench", {"bench": "ssh-latency"})
    times: dict[str, list[float]] = {}
    try:
        [info] = client.wait_running([iid], timeout=300)
        host_keys = client.host_keys(iid, timeout=300)
        Node(info.address, host_keys, key).wait_reachable(300)  # sshd is up
        for _ in range(tries):
            ours = _ours(info.address, host_keys, key)
            theirs = _paramiko_alone(info.address, host_keys, key)
            for i, part in enumerate(SSH_PARTS):
                times.setdefault(part, []).append(ours[i])
                times.setdefault(f"peer {part}", []).append(theirs[i])
    finally:
        client.terminate([iid])
        client.wait_terminated([iid], timeout=300)
    return times


def print_ssh_latency(times: dict[str, list[float]]) -> None:
    runs = len(times["connect"])
    print(f"\nSSH to one instance, milliseconds (median of {runs}): Resilin's Node beside paramiko alone")
    print(f"{'part':<28} {'Resilin':>8} {'paramiko':>8} {'ratio':>6}")
    labels = ("connect (key exchange, auth)", "first command", "next command")
    for part, label in zip(SSH_PARTS, labels, strict=True):
        ours, theirs = statistics.median(times[part]), statistics.median(times[f"peer {part}"])
        print(f"{label:<28} {ours * 1000:8.1f} {theirs * 1000:8.1f} {ours / theirs:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", default="localhost/resilin-node:latest")
    parser.add_argument("--instance-type", default="t3.micro")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the local cloud's log here")
    parser.add_argument(
        "--floor-count", type=int, default=8, help="containers started at once for the engine floor"
    )
    parser.add_argument("--ssh-tries", type=int, default=9, help="connections for the SSH latency figures")
    parser.add_argument("--ssh-only", action="store_true", help="only the SSH latency figures")
    args = parser.parse_args()

    cloud = f"pbench{os.getpid() % 100000}"
    creds = new_credentials("000000000042")
    results: dict[int, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="resilin-provision-bench-") as tmp:
        redis = PrivateRedis(Path(tmp) / "redis").start()
        proc = LocalCloudProcess(
            cloud=cloud,
            subnet=free_subnet(),
            images=[args.image],
            redis_url=redis.url,
            accounts=[creds],
            log_path=Path(tmp) / "localcloud.log",
            max_instances=max(args.sizes),
        )
        try:
            proc.start()
            # Polling at most every half second, so that the figures are not the polling's.
            client = EC2Client(
                CloudConfig(
                    name=cloud,
                    endpoint=proc.endpoint,
                    access_key=creds.access_key,
                    secret_key=creds.secret_key,
                ),
                poll_cap=0.5,
            )
            key = KeyPair.generate("provision-bench")
            client.import_key_pair("provision-bench", key.public_line)
            image = client.image_for(args.image)
            print(f"local cloud {cloud}, image {args.image}, {os.cpu_count()} CPU(s)", flush=True)
            ssh = ssh_latency(client, image, args.instance_type, key, args.ssh_tries)
            if args.ssh_only:
                print_ssh_latency(ssh)
                return 0
            # Untimed: the first instance of a network also brings its bridge and firewall rules up.
            one_run(client, image, args.instance_type, key, 1, cloud)
            for count in args.sizes:
                for i in range(args.repeat):
                    run = one_run(client, image, args.instance_type, key, count, cloud)
                    results.setdefault(count, []).append(run)
                    print(
                        f"  {count} instance(s), run {i + 1}: "
                        + ", ".join(f"{k} {shown(k, v)}" for k, v in run.items()),
                        flush=True,
                    )
            floors = [
                engine_floor(args.image, network_name(cloud), args.floor_count) for _ in range(args.repeat)
            ]
            engine = statistics.median(f[0] for f in floors)
            unnetworked = statistics.median(
                engine_floor(args.image, "", args.floor_count)[0] for _ in range(args.repeat)
            )
            pid1, sshd = instance_costs(client, image, args.instance_type, key, cloud, tries=5)
            # The engine's share already counts runc's work inside the container's PID 1.
            boot = pid1 - statistics.median(f[1] for f in floors)
        finally:
            proc.stop()
            if args.keep_log:
                Path(args.keep_log).write_bytes((Path(tmp) / "localcloud.log").read_bytes())
            left = remove_cloud(cloud)
            redis.stop()
            if left:
                print(f"removed containers left behind: {left}", file=sys.stderr)

    print_ssh_latency(ssh)
    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Provisioning on the local cloud, seconds (median of {args.repeat} run(s)); load average {load}")
    print(f"{'instances':>9} " + " ".join(f"{p:>14}" for p in PHASES))
    medians = {n: {p: statistics.median(r[p] for r in runs) for p in PHASES} for n, runs in results.items()}
    for n, row in medians.items():
        print(f"{n:>9} " + " ".join(f"{shown(p, row[p]).rstrip('s'):>14}" for p in PHASES))
    large = max(medians)
    print(
        f"\nCPU seconds per instance, {large} at once: {medians[large]['CPU s/instance']:.3f} in all, of which"
    )
    print(
        f"  {engine:.3f}  podman, runc, conmon: create, init, start ({args.floor_count} idle containers at once)"
    )
    print(f"         ({unnetworked:.3f} for the same containers with no network at all)")
    print(f"  {boot:.3f}  the instance's boot: host keys, console, sshd's start (one instance)")
    print(f"  {sshd:.3f}  sshd serving one connection: key exchange, public-key authentication")
    rest = medians[large]["CPU s/instance"] - engine - boot - sshd
    print(f"  {rest:.3f}  the rest: the EC2 service and its clients, firewalls, polling")
    small, large = min(medians), max(medians)
    if large != small:
        ratio = medians[large]["SSH ready"] / medians[small]["SSH ready"]
        verdict = "parallel (target ≤ 2)" if ratio <= 2 else "NOT parallel enough (target ≤ 2)"
        print(f"\nSSH ready, {large} vs {small} instance(s): {ratio:.2f}× — {verdict}")
        cpus = os.cpu_count() or 1
        budget = 2 * medians[small]["SSH ready"] * cpus / large
        instance = engine + boot + sshd
        print(
            f"the target allows each of {large} instances 2 × {medians[small]['SSH ready']:.2f} s × {cpus} CPU(s)"
            f" / {large} = {budget:.3f} CPU-s; the container, its boot and one SSH connection take {instance:.3f}"
            + (" — out of reach on this host" if instance > budget else "")
        )
        gone = medians[large]["gone"] / medians[small]["gone"]
        print(f"gone after TerminateInstances, {large} vs {small} instance(s): {gone:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
