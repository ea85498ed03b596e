"""The user's own SSH key on cluster nodes: RunJobFlow's ``Ec2KeyName``.

On EMR, ``Ec2KeyName`` names an EC2 key pair of the caller's account, and the nodes
accept its private key for ``hadoop@<master>``.  Resilin resolves the name the same
way, in the cloud the cluster runs in: first among the key pairs the account imported
there itself (the local clouds accept Resilin account keys, so
``aws ec2 import-key-pair --endpoint-url http://127.0.0.1:8997 …`` does it), then among
the key pairs of the cloud account Resilin provisions with (how an operator shares a
key on an EC2 cloud).  Resilin's own per-cluster key stays what Resilin itself uses;
the user's public key is only added to ``authorized_keys`` on every node.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from resilin.aws.sigv4 import Credentials
from resilin.clouds.provisioning import NoRoom, Placement
from resilin.jobflows import states
from resilin.provisioners.ec2client import EC2Client


class KeyPairNotFound(Exception):
    pass


def find_public_key(
    name: str,
    cloud_client: EC2Client,
    account_client: Callable[[Credentials], EC2Client] | None,
    account: Credentials,
) -> str:
    """The public key of key pair ``name`` as the account sees it in the cloud; KeyPairNotFound if none."""
    if account_client is not None:
        key = account_client(account).public_key(name)
        if key:
            return key
    key = cloud_client.public_key(name)
    if key:
        return key
    raise KeyPairNotFound(f"The key pair '{name}' does not exist")


def require_key_pair(placement: Placement, name: str, account: Credentials) -> str:
    """The public key of key pair ``name`` in the placement's cloud, looked up before anything is
    launched there; NoRoom (VALIDATION_ERROR) when the cloud has none, so that another cloud of the
    cluster's fallbacks may be tried and a name no cloud knows launches nothing."""
    try:
        return find_public_key(name, placement.client, placement.account_client, account)
    except KeyPairNotFound as exc:
        raise NoRoom(states.VALIDATION_ERROR, f"{exc} in cloud {placement.cloud_name}") from None


def authorize_script(public_key: str) -> str:
    """A script (run as ``hadoop``) that adds the key to ``authorized_keys`` once."""
    line = shlex.quote(public_key.strip())
    return f"""set -eu
install -d -m 700 ~/.ssh
touch ~/.ssh/authorized_keys
chmod 600 ~/.ssh/authorized_keys
grep -qxF -- {line} ~/.ssh/authorized_keys || printf '%s\\n' {line} >> ~/.ssh/authorized_keys
"""
