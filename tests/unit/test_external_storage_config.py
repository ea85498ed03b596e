"""A cloud's external S3 service: its settings checked, where the nodes reach it, who may use it."""

from __future__ import annotations

import pytest

from resilin.aws.sigv4 import Credentials
from resilin.clouds.registry import CloudRegistry
from resilin.errors import ValidationError
from resilin.jobflows.placement_checks import check_storage
from resilin.jobflows.releases import CloudOffer
from resilin.settings.cloud_config import CloudConfigError, parse_cloud
from resilin.settings.config import Settings

ACCOUNT, OTHER = "111111111111", "222222222222"


def _cloud(storage, kind="local"):
    table = {"name": "private", "kind": kind, "storage": storage}
    if kind == "local":
        table["subnet"] = "10.95.1.0/24"
    return parse_cloud(table, "resilin.toml: clouds[0]")


def _storage(**changes):
    table = {
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-3",
        "path_style": False,
        "accounts": {ACCOUNT: {"access_key": "minio-user", "secret_key": "minio-secret"}},
    }
    table.update(changes)
    return table


def test_settings_are_read_and_keys_are_per_account():
    storage = _cloud(_storage()).storage
    assert storage is not None
    assert (storage.endpoint, storage.region, storage.path_style, storage.port) == (
        "http://127.0.0.1:9000", "eu-west-3", False, 9000,
    )  # fmt: skip
    assert storage.credentials_for(ACCOUNT) == Credentials("minio-user", "minio-secret", ACCOUNT)
    assert storage.credentials_for(OTHER) is None
    assert _cloud(_storage(endpoint="https://s3.example.org/")).storage.port == 443  # type: ignore[union-attr]
    assert _cloud(_storage(), kind="ec2").storage is not None
    assert parse_cloud({"name": "plain", "kind": "ec2"}, "x").storage is None


def test_session_keys_settings():
    plain = _cloud(_storage()).storage
    assert plain is not None and plain.session_seconds == 0
    accounts = {
        ACCOUNT: {"access_key": "k", "secret_key": "s", "role_arn": "arn:aws:iam::123456789012:role/n"}
    }
    storage = _cloud(_storage(session_seconds=43200, accounts=accounts)).storage
    assert storage is not None
    assert storage.session_seconds == 43200
    assert storage.sessions_endpoint == storage.endpoint  # MinIO and RGW serve STS beside S3
    assert storage.role_for(ACCOUNT) == "arn:aws:iam::123456789012:role/n"
    assert storage.role_for(OTHER).startswith("arn:aws:iam::")
    aws = _cloud(_storage(session_seconds=3600, sts_endpoint="https://sts.eu-west-3.amazonaws.com/")).storage
    assert aws is not None and aws.sessions_endpoint == "https://sts.eu-west-3.amazonaws.com"


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("http://minio", "storage must be a table"),
        (_storage(endpoint="minio:9000"), "'endpoint' must be an http(s) URL"),
        (_storage(endpoint="http://minio:9000/bucket"), "'endpoint' must be an http(s) URL"),
        (_storage(region="Paris!"), "'region' must be a region name"),
        (_storage(path_style="yes"), "'path_style' must be true or false"),
        (_storage(sessions=True), "unknown setting(s) sessions"),
        (_storage(accounts={"alice": {"access_key": "a", "secret_key": "s"}}), "'alice' is not a 12-digit"),
        (_storage(accounts={ACCOUNT: {"access_key": "a"}}), f"accounts.{ACCOUNT} must be"),
        (_storage(accounts={ACCOUNT: {"access_key": "a", "secret_key": "s", "role": "r"}}), "must be"),
        (_storage(session_seconds=60), "'session_seconds' must be a number of seconds from 900"),
        (_storage(session_seconds="12h"), "'session_seconds' must be"),
        (_storage(session_seconds=True), "'session_seconds' must be"),
        (_storage(sts_endpoint="sts.amazonaws.com"), "'sts_endpoint' must be an http(s) URL"),
        (_storage(accounts={ACCOUNT: {"access_key": "a", "secret_key": ""}}), f"accounts.{ACCOUNT} must be"),
    ],
)
def test_wrong_settings_are_refused_saying_where(storage, message):
    with pytest.raises(CloudConfigError) as refused:
        _cloud(storage)
    assert "clouds[0] (private): storage" in str(refused.value) and message in str(refused.value)


class Served:
    endpoint = "http://127.0.0.1:8997"
    gateway = "10.95.1.1"
    credentials = Credentials("AKIALOCAL", "s", "0" * 12)


def test_a_local_clouds_nodes_reach_a_loopback_service_through_their_gateway(tmp_path):
    on_host = _cloud(_storage())
    elsewhere = _cloud(_storage(endpoint="https://s3.example.org"))
    for cloud, expected in ((on_host, "http://10.95.1.1:9000"), (elsewhere, "https://s3.example.org")):
        settings = Settings(home=tmp_path, clouds=(cloud,), storage_port=8999)
        placement = CloudRegistry(settings, {"private": Served()})("private")
        assert placement.storage_endpoint == expected
        assert placement.external_storage is cloud.storage


def test_a_cluster_is_placed_only_where_its_account_has_keys():
    offers = [
        CloudOffer("own", True, None),
        CloudOffer("private", False, None, storage_accounts=frozenset({ACCOUNT})),
    ]
    check_storage(offers, "private", ACCOUNT)
    check_storage(offers, "own", OTHER)  # Resilin's storage: every account has its own buckets
    with pytest.raises(ValidationError) as refused:
        check_storage(offers, "private", OTHER)
    assert "Cloud private keeps cluster data on an external S3 service" in str(refused.value)
