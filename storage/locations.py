"""Cumulus-style locations from the original Resilin, mapped to S3 URIs.

The original Resilin stored job data in Nimbus' Cumulus and named it
virtual-host style: ``cumulus://bucket.host:port/key``.  Wherever Resilin takes
an S3 location (steps, bootstrap actions, LogUri) such a URI is accepted and
handed to Hadoop as ``s3://bucket/key``; the endpoint Hadoop talks to is the
storage service's, configured once for the cluster.

Splitting ``bucket.host`` is ambiguous when both contain dots.  The rules:

* with ``endpoint_host`` given (the storage service's host name or address)
  and the authority ending in ``.<endpoint_host>``, the bucket is what comes
  before it;
* a host that is an IPv4 address (``bucket.10.0.0.1:8888``) leaves everything
  before it as the bucket (``my.logs.10.0.0.1`` is bucket ``my.logs``);
* otherwise the bucket is the first label (``bucket.cumulus.example.org``);
* an authority without a dot is the bucket alone (``cumulus://bucket/key``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

CUMULUS_SCHEME = "cumulus"
S3_SCHEMES = ("s3", "s3n", "s3a")


@dataclass(frozen=True)
class CumulusLocation:
    bucket: str
    key: str  # without the leading slash; may be empty
    host: str | None  # the Cumulus host the URI named (None when it named only a bucket)
    port: int | None


def is_cumulus(uri: str) -> bool:
    return uri[: len(CUMULUS_SCHEME) + 3].lower() == CUMULUS_SCHEME + "://"


def _split_port(authority: str) -> tuple[str, int | None]:
    host, sep, port = authority.rpartition(":")
    if not sep:
        return authority, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in Cumulus location: {authority!r}")
    return host, int(port)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _split_bucket(name: str, endpoint_host: str | None) -> tuple[str, str | None]:
    if endpoint_host:
        suffix = "." + endpoint_host.lower()
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], endpoint_host.lower()
    labels = name.split(".")
    for cut in range(1, len(labels)):
        if len(labels) - cut == 4 and _is_ipv4(".".join(labels[cut:])):
            return ".".join(labels[:cut]), ".".join(labels[cut:])
    if len(labels) == 1:
        return name, None
    return labels[0], ".".join(labels[1:])


def parse_cumulus(uri: str, endpoint_host: str | None = None) -> CumulusLocation:
    """The bucket, key and Cumulus host of ``cumulus://bucket.host:port/key`` (ValueError if not one)."""
    if not is_cumulus(uri):
        raise ValueError(f"not a Cumulus location: {uri!r}")
    rest = uri[len(CUMULUS_SCHEME) + 3 :]
    authority, _, key = rest.partition("/")
    if "@" in authority or "?" in authority or "#" in authority:
        raise ValueError(f"bad Cumulus location: {uri!r}")
    name, port = _split_port(authority)
    bucket, host = _split_bucket(name.lower(), endpoint_host)
    if not bucket or bucket.startswith(".") or bucket.endswith("."):
        raise ValueError(f"no bucket in Cumulus location: {uri!r}")
    return CumulusLocation(bucket=bucket, key=key, host=host, port=port)


def to_s3_uri(uri: str, endpoint_host: str | None = None) -> str:
    """``cumulus://bucket.host:port/key`` -> ``s3://bucket/key``; anything else is returned unchanged.

    s3://, s3n:// and s3a:// locations (and non-S3 ones such as hdfs:// or local
    paths) are left exactly as given.  Raises ValueError for a ``cumulus://``
    URI that names no bucket.
    """
    if not is_cumulus(uri):
        return uri
    location = parse_cumulus(uri, endpoint_host)
    has_path = "/" in uri[len(CUMULUS_SCHEME) + 3 :]
    return f"s3://{location.bucket}" + (f"/{location.key}" if has_path else "")
