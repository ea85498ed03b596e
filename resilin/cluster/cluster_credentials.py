"""Each cluster's own storage credentials, valid while the cluster lives.

Cluster nodes run whatever their users' steps run, so they must not hold the creating user's
long-term key (which also opens the EMR API and the clouds).  As EMR gives nodes an instance
role's temporary credentials, Resilin gives each cluster an access key, a secret and a session
token of its own: accepted by storage alone (the EMR API and the EC2 endpoints know only the
configured keys), acting as the cluster's account, and revoked when the cluster ends.  Hadoop's
S3A sends the token as ``x-amz-security-token`` through its temporary-credentials provider.
"""

from __future__ import annotations

import secrets
import string

import redis

from resilin.aws.sigv4 import Credentials

_BY_KEY = "resilin:cluster-credentials:"  # access key -> hash (secret, token, account, cluster)
_BY_CLUSTER = "resilin:cluster-credentials-of:"  # cluster id -> access key
_ALPHABET = string.ascii_uppercase + string.digits


class ClusterCredentials:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def issue(self, cluster_id: str, account_id: str) -> Credentials:
        """The cluster's credentials, made on first use and the same for the rest of its life."""
        existing = self.redis.get(_BY_CLUSTER + cluster_id)
        if existing:
            found = self.lookup(_text(existing))
            if found is not None:
                return found
        access_key = "ASIA" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        creds = Credentials(access_key, secrets.token_urlsafe(30), account_id, secrets.token_urlsafe(48))
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                _BY_KEY + access_key,
                mapping={
                    "secret": creds.secret_key,
                    "token": creds.session_token,
                    "account": account_id,
                    "cluster": cluster_id,
                },
            )
            pipe.set(_BY_CLUSTER + cluster_id, access_key)
            pipe.execute()
        return creds

    def lookup(self, access_key: str) -> Credentials | None:
        """The credentials of a cluster's access key, or None (unknown, or the cluster has ended)."""
        if not access_key.startswith("ASIA"):
            return None
        found = self.redis.hgetall(_BY_KEY + access_key)
        if not found:
            return None
        return Credentials(access_key, _text(found["secret"]), _text(found["account"]), _text(found["token"]))

    def revoke(self, cluster_id: str) -> None:
        """The cluster has ended: its credentials stop working at once."""
        access_key = self.redis.get(_BY_CLUSTER + cluster_id)
        if access_key:
            self.redis.delete(_BY_KEY + _text(access_key), _BY_CLUSTER + cluster_id)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
