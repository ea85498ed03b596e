"""A cluster's session keys on an external S3 service (resilin.cluster.storage_sessions), made by
a real MinIO's STS and kept in the real Redis: they work on MinIO, a renewal gives other keys that
work as well, the stored state drives the monitor's renewal, and a refusal says why."""

from __future__ import annotations

import os

import pytest

from resilin.cluster.storage_sessions import RENEW_AT, RETRY_SECONDS, StorageSessionError, StorageSessions
from resilin.settings.external_storage import parse_external_storage
from tests.minio_server import running_minio, s3_client

USER, SECRET = "sessions-test", "sessions-" + os.urandom(6).hex()
ACCOUNT, OTHER = "111111111111", "222222222222"
CLUSTER = "j-SESSIONTEST1"


@pytest.fixture(scope="module")
def minio():
    with running_minio(USER, SECRET) as endpoint:
        s3_client(endpoint, USER, SECRET).create_bucket(Bucket="sessions")
        yield endpoint


def _storage(endpoint: str, secret: str = SECRET, seconds: int = 900):
    return parse_external_storage(
        {
            "endpoint": endpoint,
            "session_seconds": seconds,
            "accounts": {ACCOUNT: {"access_key": USER, "secret_key": secret}},
        },
        "test",
    )


def test_session_keys_work_and_a_renewal_gives_other_working_keys(minio, redis_client):
    sessions = StorageSessions(redis_client)
    storage = _storage(minio)
    first = sessions.assume(CLUSTER, ACCOUNT, storage, pushed=True)
    keys = first.credentials
    assert keys.access_key != USER and keys.session_token and keys.account_id == ACCOUNT
    assert 0 < first.expires - first.issued <= 900
    assert first.renew_at == pytest.approx(first.issued + (first.expires - first.issued) * RENEW_AT)
    assert sessions.current(CLUSTER) == first
    assert not first.renew_due(first.issued) and first.renew_due(first.renew_at)

    s3 = s3_client(minio, keys.access_key, keys.secret_key, keys.session_token)
    s3.put_object(Bucket="sessions", Key="first", Body=b"1")
    # Without its token the session's key is not accepted: the token is what makes it temporary.
    with pytest.raises(s3.exceptions.ClientError):
        s3_client(minio, keys.access_key, keys.secret_key).put_object(Bucket="sessions", Key="x", Body=b"")

    second = sessions.assume(CLUSTER, ACCOUNT, storage, pushed=False)
    assert second.credentials.access_key != keys.access_key
    assert sessions.current(CLUSTER) == second and not second.pushed
    fresh = second.credentials
    renewed = s3_client(minio, fresh.access_key, fresh.secret_key, fresh.session_token)
    assert renewed.get_object(Bucket="sessions", Key="first")["Body"].read() == b"1"
    sessions.pushed(CLUSTER)
    current = sessions.current(CLUSTER)
    assert current is not None and current.pushed

    sessions.retry_later(CLUSTER, now=1000.0)
    current = sessions.current(CLUSTER)
    assert current is not None and current.renew_at == 1000.0 + RETRY_SECONDS
    sessions.forget(CLUSTER)
    assert sessions.current(CLUSTER) is None


def test_a_refused_assume_role_says_which_service_and_why(minio, redis_client):
    sessions = StorageSessions(redis_client)
    with pytest.raises(StorageSessionError) as refused:
        sessions.assume(CLUSTER, ACCOUNT, _storage(minio, secret="wrong-secret"), pushed=True)
    assert f"STS at {minio} gave no session keys for account {ACCOUNT}" in str(refused.value)
    with pytest.raises(StorageSessionError, match=f"no keys for account {OTHER}"):
        sessions.assume(CLUSTER, OTHER, _storage(minio), pushed=True)
    assert sessions.current(CLUSTER) is None  # nothing kept from a refusal
