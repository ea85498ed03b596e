"""Each cluster's session keys on an external S3 service, renewed while the cluster lives.

A cloud whose ``[clouds.storage]`` sets ``session_seconds`` does not hand its account's keys to
the cluster's nodes, which run their users' code.  Resilin assumes the account's role through the
service's STS (AssumeRole: AWS, MinIO, Ceph RGW) with the cluster id as the session's name, and
the nodes get those keys — as EMR's nodes get their instance role's temporary keys.  STS sessions
end (AWS: 12 hours at most), so the cluster's monitor asks for new keys at half a session's life
and writes them into every node's core-site.xml (resilin.cluster.operations.RenewStorageKeys):
a JVM started at any moment holds keys good for at least half a session more.

The keys live in Redis beside the cluster's own storage credentials
(resilin.cluster.cluster_credentials), never in a file on Resilin's side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import boto3
import redis
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from resilin.aws.sigv4 import Credentials
from resilin.settings.external_storage import ExternalStorage

_KEY = "resilin:storage-session:"  # cluster id -> hash (access, secret, token, issued, expires, pushed)
RENEW_AT = 0.5  # of a session's life
RETRY_SECONDS = 60.0  # after a refused renewal; the keys in use are still good for a while


class StorageSessionError(Exception):
    """The service's STS refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class StorageSession:
    credentials: Credentials
    issued: float
    expires: float
    renew_at: float
    pushed: bool  # every node has these keys

    def renew_due(self, now: float) -> bool:
        return now >= self.renew_at


class StorageSessions:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def current(self, cluster_id: str) -> StorageSession | None:
        found = {_text(k): _text(v) for k, v in self.redis.hgetall(_KEY + cluster_id).items()}
        if not found:
            return None
        return StorageSession(
            Credentials(found["access"], found["secret"], found["account"], found["token"]),
            float(found["issued"]),
            float(found["expires"]),
            float(found["renew_at"]),
            found["pushed"] == "1",
        )

    def assume(
        self, cluster_id: str, account: str, storage: ExternalStorage, *, pushed: bool
    ) -> StorageSession:
        """New session keys for the cluster, stored as its current ones; ``pushed`` says whether
        the nodes will get them with their configuration (at start) or need them written."""
        keys = storage.credentials_for(account)
        if keys is None:
            raise StorageSessionError(f"the storage at {storage.endpoint} has no keys for account {account}")
        sts = boto3.client(
            "sts",
            endpoint_url=storage.sessions_endpoint,
            region_name=storage.region,
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30
            ),
        )
        try:
            answer = sts.assume_role(
                RoleArn=storage.role_for(account),
                RoleSessionName=cluster_id,
                DurationSeconds=storage.session_seconds,
            )["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageSessionError(
                f"STS at {storage.sessions_endpoint} gave no session keys for account {account}: {exc}"
            ) from None
        issued = time.time()
        # The service's own expiry counts (a role may allow less than was asked), never later than asked.
        expires = min(answer["Expiration"].timestamp(), issued + storage.session_seconds)
        session = StorageSession(
            Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], account, answer["SessionToken"]),
            issued,
            expires,
            issued + (expires - issued) * RENEW_AT,
            pushed,
        )
        self._store(cluster_id, session)
        return session

    def pushed(self, cluster_id: str) -> None:
        self.redis.hset(_KEY + cluster_id, "pushed", "1")

    def retry_later(self, cluster_id: str, now: float) -> None:
        """A renewal failed: try again in a while rather than on every round of the monitor."""
        self.redis.hset(_KEY + cluster_id, "renew_at", str(now + RETRY_SECONDS))

    def forget(self, cluster_id: str) -> None:
        """The cluster has ended.  The service keeps the keys valid until they expire: STS has no
        call to end one session early."""
        self.redis.delete(_KEY + cluster_id)

    def _store(self, cluster_id: str, session: StorageSession) -> None:
        creds = session.credentials
        self.redis.hset(
            _KEY + cluster_id,
            mapping={
                "access": creds.access_key,
                "secret": creds.secret_key,
                "token": creds.session_token,
                "account": creds.account_id,
                "issued": str(session.issued),
                "expires": str(session.expires),
                "renew_at": str(session.renew_at),
                "pushed": "1" if session.pushed else "0",
            },
        )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
