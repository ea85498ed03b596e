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

from resilin.config import CloudConfig, new_credentials
from resilin.provisioners.ec2client import EC2Client
from resilin.provisioners.localcloud.podman import Podman, PodmanError
from resilin.provisioners.localcloud.process import LocalCloudProcess, remove_cloud
from resilin.redis_server import PrivateRedis
from resilin.ssh import KeyPair, Node

PHASES = ("RunInstances", "running", "SSH ready", "CPU busy %", "terminated", "gone")


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

    start = time.monotonic()
    client.terminate(ids)
    client.wait_terminated(ids, timeout=300)
    times["terminated"] = time.monotonic() - start
    podman = Podman()
    while any(podman.list({"resilin.cloud": cloud, "resilin.instance-id": i}) for i in ids):
        time.sleep(0.1)
    times["gone"] = time.monotonic() - start
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", default="localhost/resilin-node:latest")
    parser.add_argument("--instance-type", default="t3.micro")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the local cloud's log here")
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
            # Untimed: the first instance of a network also brings its bridge and firewall rules up.
            one_run(client, image, args.instance_type, key, 1, cloud)
            for count in args.sizes:
                for i in range(args.repeat):
                    run = one_run(client, image, args.instance_type, key, count, cloud)
                    results.setdefault(count, []).append(run)
                    print(
                        f"  {count} instance(s), run {i + 1}: "
                        + ", ".join(
                            f"{k} {v:.0f}" if k.endswith("%") else f"{k} {v:.2f}s" for k, v in run.items()
                        ),
                        flush=True,
                    )
        finally:
            proc.stop()
            if args.keep_log:
                Path(args.keep_log).write_bytes((Path(tmp) / "localcloud.log").read_bytes())
            left = remove_cloud(cloud)
            redis.stop()
            if left:
                print(f"removed containers left behind: {left}", file=sys.stderr)

    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Provisioning on the local cloud, seconds (median of {args.repeat} run(s)); load average {load}")
    print(f"{'instances':>9} " + " ".join(f"{p:>13}" for p in PHASES))
    medians = {n: {p: statistics.median(r[p] for r in runs) for p in PHASES} for n, runs in results.items()}
    for n, row in medians.items():
        print(f"{n:>9} " + " ".join(f"{row[p]:13.2f}" for p in PHASES))
    small, large = min(medians), max(medians)
    if large != small:
        ratio = medians[large]["SSH ready"] / medians[small]["SSH ready"]
        verdict = "parallel (target ≤ 2)" if ratio <= 2 else "NOT parallel enough (target ≤ 2)"
        print(f"\nSSH ready, {large} vs {small} instance(s): {ratio:.2f}× — {verdict}")
        gone = medians[large]["gone"] / medians[small]["gone"]
        print(f"gone after TerminateInstances, {large} vs {small} instance(s): {gone:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
