"""The EMR API served alone (``python -m resilin.api``) for tests that need no running cluster.

No orchestrator runs: clusters are recorded and stay as the store has them.  Tests that need
a cluster further along write what the cluster worker would (``worker_*`` helpers), through
the same store methods the worker uses.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from resilin.aws.sigv4 import Credentials
from resilin.jobflows import ids, states
from resilin.jobflows.store import JobFlowStore
from resilin.service.children import Child

REGION = "us-east-1"
ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
# Two users (access keys) of one account, and one of another account.
USERS = {
    "alice": Credentials("AKIARESILINALICE0001", "alice/secret+0123456789abcdefghijklmnopq", ACCOUNT),
    "bob": Credentials("AKIARESILINBOB000002", "bob/secret+0123456789abcdefghijklmnopqrst", ACCOUNT),
    "carol": Credentials("AKIARESILINCAROL0003", "carol/secret+0123456789abcdefghijklmnopq", OTHER_ACCOUNT),
}


@dataclass
class ApiServer:
    home: Path
    child: Child

    @property
    def endpoint(self) -> str:
        return self.child.url

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def client(self, user: str = "alice", validate: bool = True, service: str = "emr"):
        creds = USERS[user]
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            config=Config(
                parameter_validation=validate, retries={"total_max_attempts": 1, "mode": "standard"}
            ),
        )

    def log(self) -> str:
        return (self.home / "api.log").read_text(errors="replace")

    def stop(self) -> None:
        self.child.stop()


def start(home: Path, redis_url: str, extra_config: str = "") -> ApiServer:
    """Start the API with its configuration in ``home``; ``extra_config`` (TOML tables) is appended."""
    accounts = "".join(
        f'[[accounts]]\naccount_id = "{c.account_id}"\naccess_key = "{c.access_key}"\nsecret_key = "{c.secret_key}"\n\n'
        for c in USERS.values()
    )
    (home / "resilin.toml").write_text(
        f'bind_host = "127.0.0.1"\nregion = "{REGION}"\nredis_url = "{redis_url}"\n'
        f'default_cloud = "local"\n\n{accounts}'
        '[[clouds]]\nname = "local"\nkind = "local"\nsubnet = "10.250.1.0/24"\n\n'
        '[[clouds]]\nname = "edge"\nkind = "local"\nsubnet = "10.250.2.0/24"\n\n'
        '[[clouds]]\nname = "faraway"\nkind = "ec2"\nendpoint = "http://127.0.0.1:9"\n' + extra_config
    )
    command = [sys.executable, "-m", "resilin.api", "--home", str(home), "--port", "0", "--threads", "8"]
    child = Child("the EMR API", command, home / "api.log", stop_grace=20)
    child.start(60)
    return ApiServer(home, child)


# -- what the cluster worker would write --------------------------------------------------


def worker_runs(store: JobFlowStore, cid: str, state: str = states.WAITING) -> None:
    """Take a STARTING cluster to ``state`` with its instances up, as the worker does."""
    cluster = store.get_cluster(cid)
    store.transition_cluster(cid, states.BOOTSTRAPPING, None, "Configuring Hadoop")
    n = 0
    for group in cluster["groups"]:
        for _ in range(group["requested"]):
            n += 1
            store.put_instance(
                cid,
                {
                    "id": ids.instance_id(),
                    "ec2_id": f"i-{n:017x}",
                    "cloud": "local",
                    "group_id": group["id"],
                    "role": group["role"],
                    "instance_type": group["instance_type"],
                    "private_ip": f"10.250.1.{n + 1}",
                    "public_ip": f"10.250.1.{n + 1}",
                    "public_dns": f"10.250.1.{n + 1}",
                    "hostname": f"node{n}",
                    "state": states.INSTANCE_RUNNING,
                    "timeline": {"created": time.time()},  # as provisioning records it
                },
            )

    def ready(c: dict) -> None:
        c["master_public_dns"] = "10.250.1.2"
        for g in c["groups"]:
            g["running"] = g["requested"]
            g["state"] = states.GROUP_RUNNING

    store.update_cluster(cid, ready)
    if state == states.RUNNING:
        store.transition_cluster(cid, states.RUNNING, None, "Running step")
    else:
        store.transition_cluster(cid, states.WAITING, None, "Cluster ready to run steps.")


def worker_ends(store: JobFlowStore, cid: str, code: str = states.USER_REQUEST) -> None:
    """Finish a cluster as the worker's teardown does."""

    def request(c: dict) -> None:
        if not c["terminate_requested"]:
            c["terminate_requested"] = True
            c["state"] = states.TERMINATING
            c["state_reason"] = {"code": code, "message": "Terminated"}

    store.update_cluster(cid, request)
    for step in store.steps_of(cid):
        if step["state"] in states.ACTIVE_STEP_STATES:
            store.transition_step(step["id"], states.CANCELLED)

    def finish(c: dict) -> None:
        for g in c["groups"]:
            g["state"] = states.GROUP_TERMINATED
            g["running"] = 0

    store.update_cluster(cid, finish)
    store.transition_cluster(
        cid,
        states.TERMINATED
        if code in (states.USER_REQUEST, states.ALL_STEPS_COMPLETED)
        else states.TERMINATED_WITH_ERRORS,
    )


def step(name: str = "wc", action: str = "CONTINUE", args: list[str] | None = None) -> dict:
    return {
        "Name": name,
        "ActionOnFailure": action,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args or ["hadoop-streaming", "-input", "in"]},
    }


def cluster_request(name: str = "wordcount", **extra) -> dict:
    """A RunJobFlow request: 1 master and 2 core instances, kept alive, one step."""
    return {
        "Name": name,
        "ReleaseLabel": "emr-6.15.0",
        "Instances": {
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": 3,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        "Steps": [step()],
    } | extra


def state_digest(client) -> str:
    """A digest of everything Resilin stores but the replay ledger (which every signed write adds to)."""
    import hashlib

    import redis

    pool = client.connection_pool
    raw = redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, **{**pool.connection_kwargs, "decode_responses": False}
        )
    )
    digest = hashlib.sha256()
    for key in sorted(raw.keys("*")):
        if key.startswith(b"resilin:api:seen-signature:"):
            continue
        digest.update(key + b"\0" + (raw.dump(key) or b"") + b"\0")
    raw.close()
    return digest.hexdigest()
