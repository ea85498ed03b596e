"""A cloud's clusters on an S3 service other than Resilin's storage (``[clouds.storage]``).

Resilin's own storage is the default for every cloud.  A cloud may instead name an external S3
service (AWS S3 for a cloud on AWS, MinIO or Ceph RGW beside a private cloud): its clusters'
``s3://`` paths — steps, bootstrap actions, LogUri, S3A — then go there::

    [[clouds]]
    name = "private"
    ...
    [clouds.storage]
    endpoint = "http://10.0.0.5:9000"     # as Resilin reaches it
    region = "us-east-1"
    path_style = true                     # bucket in the path (MinIO, RGW), not in the host name
    [clouds.storage.accounts.111111111111]
    access_key = "..."                    # that service's keys for this Resilin account
    secret_key = "..."

Keys are per Resilin account, so that each account's clusters reach only what that account may
reach there; an account with no keys cannot place a cluster in the cloud.

Cluster nodes run their users' code, so where the service issues temporary keys (STS
AssumeRole: AWS, MinIO, Ceph RGW) the nodes should not hold the account's own::

    session_seconds = 43200               # each cluster gets session keys lasting this long
    sts_endpoint = "https://sts.us-east-1.amazonaws.com"   # default: the endpoint (MinIO, RGW)
    [clouds.storage.accounts.111111111111]
    access_key = "..."
    secret_key = "..."
    role_arn = "arn:aws:iam::123456789012:role/emr-nodes"   # AWS needs it; MinIO ignores it

Resilin then assumes the role once per cluster, with the cluster id as the session's name (so the
service's audit log tells clusters apart), gives the nodes those keys, and renews them at half
their life (resilin.cluster.storage_sessions).  Without ``session_seconds`` the account's keys go
to the nodes: give each account keys limited to its own buckets.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resilin.aws.sigv4 import Credentials

ACCOUNT_ID = re.compile(r"\d{12}")
KEYS = {"endpoint", "region", "path_style", "accounts", "session_seconds", "sts_endpoint"}
ACCOUNT_KEYS = {"access_key", "secret_key", "role_arn"}
# STS's bounds on a session's life: 15 minutes at least; AWS caps a role's at 12 hours (its role
# setting), MinIO at 365 days.
SESSION_SECONDS = (900, 365 * 86400)
DEFAULT_ROLE_ARN = "arn:aws:iam::000000000000:role/resilin-cluster-nodes"  # for services that ignore it
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class ExternalStorageError(ValueError):
    """The ``storage`` table of a cloud is wrong; the message says where."""


@dataclass(frozen=True)
class ExternalStorage:
    endpoint: str
    region: str = "us-east-1"
    path_style: bool = True
    accounts: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # account → (key, secret)
    session_seconds: int = 0  # 0: the nodes get the account's keys; else per-cluster session keys
    sts_endpoint: str = ""
    roles: Mapping[str, str] = field(default_factory=dict)  # account → role ARN to assume

    def credentials_for(self, account: str) -> Credentials | None:
        """That service's keys for a Resilin account; None when the account has none there."""
        keys = self.accounts.get(account)
        return Credentials(keys[0], keys[1], account) if keys else None

    def role_for(self, account: str) -> str:
        return self.roles.get(account) or DEFAULT_ROLE_ARN

    @property
    def sessions_endpoint(self) -> str:
        """Where STS is served: its own endpoint (AWS) or the storage's (MinIO, RGW)."""
        return self.sts_endpoint or self.endpoint

    @property
    def on_loopback(self) -> bool:
        return (urllib.parse.urlsplit(self.endpoint).hostname or "") in LOOPBACK_HOSTS

    def endpoint_via(self, host: str) -> str:
        """The endpoint with its host replaced (how a local cloud's nodes reach a loopback service)."""
        parts = urllib.parse.urlsplit(self.endpoint)
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    @property
    def port(self) -> int:
        parts = urllib.parse.urlsplit(self.endpoint)
        return parts.port or (443 if parts.scheme == "https" else 80)


def parse_external_storage(raw: Any, where: str) -> ExternalStorage:
    """A cloud's ``storage`` table, checked; ``where`` prefixes every error message."""
    where = f"{where}: storage"
    if not isinstance(raw, dict):
        raise ExternalStorageError(f"{where} must be a table with endpoint, region, path_style and accounts")
    unknown = set(raw) - KEYS
    if unknown:
        raise ExternalStorageError(
            f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYS))}"
        )
    endpoint = _url(raw.get("endpoint"), where, "endpoint")
    sts_endpoint = _url(raw["sts_endpoint"], where, "sts_endpoint") if "sts_endpoint" in raw else ""
    session_seconds = raw.get("session_seconds", 0)
    low, high = SESSION_SECONDS
    if (
        not isinstance(session_seconds, int)
        or isinstance(session_seconds, bool)
        or (session_seconds and not low <= session_seconds <= high)
    ):
        raise ExternalStorageError(
            f"{where}: 'session_seconds' must be a number of seconds from {low} to {high} "
            "(AWS allows at most the role's maximum session, 12 hours at most)"
        )
    region = raw.get("region", "us-east-1")
    if not isinstance(region, str) or not re.fullmatch(r"[a-z0-9-]{1,40}", region):
        raise ExternalStorageError(f"{where}: 'region' must be a region name such as 'us-east-1'")
    path_style = raw.get("path_style", True)
    if not isinstance(path_style, bool):
        raise ExternalStorageError(f"{where}: 'path_style' must be true or false")
    accounts, roles = _accounts(raw.get("accounts", {}), where)
    return ExternalStorage(
        endpoint.rstrip("/"), region, path_style, accounts, session_seconds, sts_endpoint.rstrip("/"), roles
    )


def _url(value: Any, where: str, name: str) -> str:
    text = value if isinstance(value, str) else ""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ExternalStorageError(f"{where}: '{name}' must be an http(s) URL such as 'http://10.0.0.5:9000'")
    return text


def _accounts(raw: Any, where: str) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    if not isinstance(raw, dict):
        raise ExternalStorageError(
            f"{where}: 'accounts' must be a table of account id → {{ access_key, secret_key }}"
        )
    accounts, roles = {}, {}
    for account, keys in raw.items():
        if not ACCOUNT_ID.fullmatch(account):
            raise ExternalStorageError(f"{where}: accounts: {account!r} is not a 12-digit account id")
        if (
            not isinstance(keys, dict)
            or not {"access_key", "secret_key"} <= set(keys) <= ACCOUNT_KEYS
            or not all(isinstance(v, str) and v for v in keys.values())
        ):
            raise ExternalStorageError(
                f'{where}: accounts.{account} must be {{ access_key = "…", secret_key = "…" }}, '
                'with role_arn = "arn:…" where clusters get session keys'
            )
        accounts[account] = (keys["access_key"], keys["secret_key"])
        if "role_arn" in keys:
            roles[account] = keys["role_arn"]
    return accounts, roles
