#!/usr/bin/env python3
"""Runs on the master: waits until given nodes have joined, or left, HDFS and YARN.

    python3 - joined|decommissioned TIMEOUT --master IP [--datanodes ID,...] [--nodemanagers ID,...]

An ID is ``ip/hostname``.  Reads the NameNode's JMX and the ResourceManager's REST API
(no JVM per check).  Prints what it waits on; exits 1 at the timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

NN = "http://{master}:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"
RM = "http://{master}:8088/ws/v1/cluster/nodes?states=NEW,RUNNING,UNHEALTHY,DECOMMISSIONING,DECOMMISSIONED,LOST,SHUTDOWN"


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def datanodes(master: str) -> dict[str, str]:
    """DataNode address → admin state ("In Service", "Decommission In Progress", "Decommissioned", "Dead")."""
    bean = get(NN.format(master=master))["beans"][0]
    states = {}
    for info in json.loads(bean["LiveNodes"]).values():
        states[info["xferaddr"].split(":")[0]] = info.get("adminState", "In Service")
    for name, info in json.loads(bean["DeadNodes"]).items():
        addr = info.get("xferaddr", name).split(":")[0]
        states.setdefault(addr, "Decommissioned" if info.get("decommissioned") else "Dead")
    return states


def nodemanagers(master: str) -> dict[str, str]:
    """NodeManager host (name and address) → state; a host's newest registration wins."""
    nodes = (get(RM.format(master=master)).get("nodes") or {}).get("node") or []
    states: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n.get("lastHealthUpdate", 0)):
        for key in (node.get("nodeHostName", ""), node.get("id", "").split(":")[0]):
            if key:
                states[key] = node["state"]
    return states


def state_of(states: dict[str, str], ident: str) -> str:
    ip, _, host = ident.partition("/")
    return states.get(ip) or states.get(host) or "absent"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("goal", choices=("joined", "decommissioned"))
    parser.add_argument("timeout", type=float)
    parser.add_argument("--master", required=True)
    parser.add_argument("--datanodes", default="")
    parser.add_argument("--nodemanagers", default="")
    args = parser.parse_args(argv)
    dns = [d for d in args.datanodes.split(",") if d]
    nms = [n for n in args.nodemanagers.split(",") if n]
    if args.goal == "joined":
        dn_ok, nm_ok = {"In Service"}, {"RUNNING"}
    else:
        dn_ok, nm_ok = {"Decommissioned", "Dead", "absent"}, {"DECOMMISSIONED", "LOST", "SHUTDOWN", "absent"}
    deadline = time.monotonic() + args.timeout
    last = ""
    while True:
        try:
            dn_states = datanodes(args.master) if dns else {}
            nm_states = nodemanagers(args.master) if nms else {}
            pending = [
                f"DataNode {d}: {state_of(dn_states, d)}" for d in dns if state_of(dn_states, d) not in dn_ok
            ]
            pending += [
                f"NodeManager {n}: {state_of(nm_states, n)}"
                for n in nms
                if state_of(nm_states, n) not in nm_ok
            ]
        except (OSError, ValueError, KeyError) as exc:
            pending = [f"master not answering: {exc}"]
        if not pending:
            print(f"all {args.goal}")
            return 0
        if "; ".join(pending) != last:
            last = "; ".join(pending)
            print(last, flush=True)
        if time.monotonic() > deadline:
            print(f"not {args.goal} after {args.timeout:.0f}s: {last}", file=sys.stderr)
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
