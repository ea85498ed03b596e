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
reach there; an account with no keys cannot place a cluster in the cloud.  The keys go to the
cluster's nodes (S3A needs them), which run their users' code: give each account keys limited
to its own buckets.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resilin.aws.sigv4 import Credentials

ACCOUNT_ID = re.compile(r"\d{12}")
KEYS = {"endpoint", "region", "path_style", "accounts"}
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class ExternalStorageError(ValueError):
    """The ``storage`` table of a cloud is wrong; the message says where."""


@dataclass(frozen=True)
class ExternalStorage:
    endpoint: str
    region: str = "us-east-1"
    path_style: bool = True
    accounts: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # account → (key, secret)

    def credentials_for(self, account: str) -> Credentials | None:
        """That service's keys for a Resilin account; None when the account has none there."""
        keys = self.accounts.get(account)
        return Credentials(keys[0], keys[1], account) if keys else None

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
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str):
        endpoint = ""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ExternalStorageError(
            f"{where}: 'endpoint' must be an http(s) URL such as 'http://10.0.0.5:9000'"
        )
    region = raw.get("region", "us-east-1")
    if not isinstance(region, str) or not re.fullmatch(r"[a-z0-9-]{1,40}", region):
        raise ExternalStorageError(f"{where}: 'region' must be a region name such as 'us-east-1'")
    path_style = raw.get("path_style", True)
    if not isinstance(path_style, bool):
        raise ExternalStorageError(f"{where}: 'path_style' must be true or false")
    return ExternalStorage(
        endpoint.rstrip("/"), region, path_style, _accounts(raw.get("accounts", {}), where)
    )


def _accounts(raw: Any, where: str) -> dict[str, tuple[str, str]]:
    if not isinstance(raw, dict):
        raise ExternalStorageError(
            f"{where}: 'accounts' must be a table of account id → {{ access_key, secret_key }}"
        )
    accounts = {}
    for account, keys in raw.items():
        if not ACCOUNT_ID.fullmatch(account):
            raise ExternalStorageError(f"{where}: accounts: {account!r} is not a 12-digit account id")
        if (
            not isinstance(keys, dict)
            or set(keys) != {"access_key", "secret_key"}
            or not all(isinstance(v, str) and v for v in keys.values())
        ):
            raise ExternalStorageError(
                f'{where}: accounts.{account} must be {{ access_key = "…", secret_key = "…" }}'
            )
        accounts[account] = (keys["access_key"], keys["secret_key"])
    return accounts
