"""A cluster's own storage credentials: storage takes them with their token, nothing else does.

A real ``resilin server`` (its Redis, storage, EMR API and local cloud) and the module the cluster
worker uses to issue and revoke the credentials of a cluster.
"""

from __future__ import annotations

import os
import shutil

import boto3
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import ClientError

from resilin.cluster.cluster_credentials import ClusterCredentials
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service.process import new_process

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

CLOUD = f"ccr{os.getpid() % 100000}"
SUBNET = f"10.80.{100 + os.getpid() % 150}.0/24"
NODE_IMAGE = os.environ.get("RESILIN_TEST_NODE_IMAGE", "localhost/resilin-node:latest")
NO_RETRIES = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


@pytest.fixture(scope="module")
def resilin(tmp_path_factory):
    proc = new_process(tmp_path_factory.mktemp("home"), CLOUD, SUBNET, accounts=2, node_image=NODE_IMAGE)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        remove_cloud(CLOUD)


def _client(service: str, endpoint: str, key: str, secret: str, token: str | None = None):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name="us-east-1",
        config=NO_RETRIES,
    )


def _code(call) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def test_a_clusters_credentials_reach_its_accounts_storage_only_while_it_lives(resilin):
    owner, other = resilin.accounts
    issuer = ClusterCredentials(
        redis.Redis(unix_socket_path=str(resilin.home / "redis" / "redis.sock"), decode_responses=True)
    )
    creds = issuer.issue("j-CREDENTIALTEST", owner.account_id)
    assert creds.access_key.startswith("ASIA") and creds.session_token
    assert issuer.issue("j-CREDENTIALTEST", owner.account_id) == creds  # the same for the cluster's life

    storage = f"http://127.0.0.1:{resilin.storage_port}"
    _client("s3", storage, owner.access_key, owner.secret_key).create_bucket(Bucket="owners")
    _client("s3", storage, other.access_key, other.secret_key).create_bucket(Bucket="others")

    node = _client("s3", storage, creds.access_key, creds.secret_key, creds.session_token)
    node.put_object(Bucket="owners", Key="out/part-00000", Body=b"counted\n")
    assert node.get_object(Bucket="owners", Key="out/part-00000")["Body"].read() == b"counted\n"
    assert _code(lambda: node.get_object(Bucket="others", Key="x")) in ("AccessDenied", "NoSuchBucket")

    # The key without its token, or with another, is refused.
    bare = _client("s3", storage, creds.access_key, creds.secret_key)
    assert _code(lambda: bare.list_objects_v2(Bucket="owners")) == "InvalidToken"
    forged = _client("s3", storage, creds.access_key, creds.secret_key, "not-the-token")
    assert _code(lambda: forged.list_objects_v2(Bucket="owners")) == "InvalidToken"

    # Neither the EMR API nor the local cloud's EC2 endpoint knows the cluster's key.
    emr = _client(
        "emr", f"http://127.0.0.1:{resilin.api_port}", creds.access_key, creds.secret_key, creds.session_token
    )
    assert _code(emr.list_clusters) in ("UnrecognizedClientException", "InvalidClientTokenId")
    ec2 = _client(
        "ec2",
        f"http://127.0.0.1:{resilin.localcloud_port}",
        creds.access_key,
        creds.secret_key,
        creds.session_token,
    )
    assert _code(ec2.describe_instances) == "AuthFailure"

    # The cluster ends: its credentials stop working at once.
    issuer.revoke("j-CREDENTIALTEST")
    assert _code(lambda: node.list_objects_v2(Bucket="owners")) == "InvalidAccessKeyId"
