"""The first phase of a cluster's life: instances for every group, reachable over SSH.

See resilin.clouds.provisioning for the conversation with the cloud.  Here the cluster's SSH
key is made (and kept for ``ssh`` to the master while the cluster lives), the key pair the
request named (Ec2KeyName) is looked up before anything is launched and authorized on every
node, and the instances are recorded BOOTSTRAPPING with their sessions in the runtime.
"""

from __future__ import annotations

import os
import time

from resilin.clouds import known_hosts, user_keys
from resilin.clouds.provisioning import Placement, ProvisioningFailed, ReadyInstance
from resilin.clouds.ssh import KeyPair
from resilin.cluster import placement_report
from resilin.cluster.runtime import ClusterFailure, ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc


def provision(runtime: ClusterRuntime) -> None:
    key = KeyPair.generate(f"resilin-{runtime.cid}")
    save_key(runtime, key)
    user_key = UserKey(runtime)
    provisioner = runtime.provisioner
    provisioner.key = key
    provisioner.preflight = user_key.find
    try:
        ready = provisioner.provision(runtime.cluster)
    except ProvisioningFailed as exc:
        raise ClusterFailure(exc.code, exc.message) from exc
    for r in ready:
        runtime.sessions.add(r.doc["id"], r.node)
        r.doc.setdefault("timeline", {"created": time.time()})
        runtime.set_instance_state(r.doc, states.INSTANCE_BOOTSTRAPPING)
        # The same pinned keys for the user's own ssh (and `aws emr ssh`).
        for host in {r.doc["public_dns"], r.doc["public_ip"]}:
            known_hosts.add(runtime.known_hosts, runtime.cid, host, r.doc["host_keys"])
    user_key.authorize(ready)
    instances = [r.doc for r in ready]
    master = next(i for i in instances if i["role"] == "MASTER")

    def ready_groups(c: ClusterDoc) -> None:
        c["master_public_dns"] = master["public_dns"]
        for g in c["groups"]:
            g["running"] = sum(1 for i in instances if i["group_id"] == g["id"])
            g["state"] = states.GROUP_BOOTSTRAPPING

    runtime.store.update_cluster(runtime.cid, ready_groups)
    runtime.progress(placement_report.instances_message(instances))
    runtime.phase("ssh_ready")
    runtime.check_termination()


class UserKey:
    """The key pair RunJobFlow's Ec2KeyName names: found in the cloud before launching, then
    its public key authorized on every node."""

    def __init__(self, runtime: ClusterRuntime) -> None:
        self.runtime = runtime
        self.public_key: str | None = None

    def find(self, placement: Placement) -> None:
        """Before anything is launched in a cloud: the key pair Ec2KeyName names must exist there."""
        cluster = self.runtime.cluster
        name = cluster.get("ec2_key_name")
        if not name:
            return
        self.public_key = user_keys.require_key_pair(
            placement, name, self.runtime.credentials_for(cluster["account"])
        )

    def authorize(self, ready: list[ReadyInstance]) -> None:
        if not self.public_key:
            return
        for r in ready:
            done = r.node.run_script(user_keys.authorize_script(self.public_key), timeout=60)
            if done.exit_status != 0:
                raise ClusterFailure(
                    states.INSTANCE_FAILURE,
                    f"authorizing key pair {self.runtime.cluster['ec2_key_name']!r}: {done.stderr.strip()}",
                )


# -- the cluster's SSH key --------------------------------------------------------------
def save_key(runtime: ClusterRuntime, key: KeyPair) -> None:
    path = runtime.key_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.private_openssh)
    (path.with_suffix(".pub")).write_text(key.public_line + "\n")


def load_key(runtime: ClusterRuntime) -> KeyPair | None:
    """The cluster's key as :func:`save_key` kept it; None when it is gone."""
    try:
        private = runtime.key_path.read_text()
        public = runtime.key_path.with_suffix(".pub").read_text().strip()
    except FileNotFoundError:
        return None
    return KeyPair(private, public)


def delete_key(runtime: ClusterRuntime) -> None:
    for path in (runtime.key_path, runtime.key_path.with_suffix(".pub")):
        path.unlink(missing_ok=True)
