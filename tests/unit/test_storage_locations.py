"""Cumulus-style locations from the original Resilin mapped to s3:// URIs."""

from __future__ import annotations

import pytest

from resilin.storage.locations import parse_cumulus, to_s3_uri


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("cumulus://mybucket.cumulus.example.org:8888/input/data.txt", "s3://mybucket/input/data.txt"),
        ("cumulus://mybucket.localhost:8888/logs/", "s3://mybucket/logs/"),
        ("cumulus://mybucket.10.0.0.1:8888/jars/wc.jar", "s3://mybucket/jars/wc.jar"),
        ("cumulus://my.dotted.bucket.192.168.1.20:8888/k", "s3://my.dotted.bucket/k"),
        ("cumulus://mybucket.host/key", "s3://mybucket/key"),
        ("cumulus://mybucket/key/with/slashes", "s3://mybucket/key/with/slashes"),
        ("cumulus://mybucket.host:8888/", "s3://mybucket/"),
        ("cumulus://mybucket.host:8888", "s3://mybucket"),
        ("CUMULUS://MyBucket.Host:8888/Key%20Case", "s3://mybucket/Key%20Case"),
        ("cumulus://b.h:1/a?b#c", "s3://b/a?b#c"),
    ],
)
def test_cumulus_locations_become_s3_uris(uri, expected):
    assert to_s3_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/key",
        "s3n://bucket/key",
        "s3a://bucket.with.dots/key",
        "S3://Bucket/Key",
        "hdfs:///user/hadoop/input",
        "/local/path",
        "",
    ],
)
def test_other_locations_are_left_alone(uri):
    assert to_s3_uri(uri) == uri


def test_the_storage_host_disambiguates_dotted_buckets():
    uri = "cumulus://my.logs.storage.example.org:8888/step-1/"
    assert to_s3_uri(uri) == "s3://my/step-1/"  # without the hint: the first label
    assert to_s3_uri(uri, endpoint_host="storage.example.org") == "s3://my.logs/step-1/"
    # A different host than the one given: the usual rule applies.
    assert to_s3_uri("cumulus://b.other.org/k", endpoint_host="storage.example.org") == "s3://b/k"


def test_parse_cumulus_keeps_host_and_port():
    location = parse_cumulus("cumulus://bucket.cumulus.example.org:8888/a/b")
    assert (location.bucket, location.key, location.host, location.port) == (
        "bucket",
        "a/b",
        "cumulus.example.org",
        8888,
    )
    assert parse_cumulus("cumulus://bucket/k").host is None


@pytest.mark.parametrize(
    "uri",
    ["cumulus://", "cumulus:///key", "cumulus://.host:1/k", "cumulus://b.h:port/k", "cumulus://u@b.h/k"],
)
def test_malformed_cumulus_locations_are_refused(uri):
    with pytest.raises(ValueError):
        to_s3_uri(uri)
