"""Identifiers shaped like EMR's (``j-…``, ``s-…``, ``ig-…``, ``ci-…``)."""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_uppercase + string.digits


def _new(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(13))


def cluster_id() -> str:
    return _new("j-")


def step_id() -> str:
    return _new("s-")


def instance_group_id() -> str:
    return _new("ig-")


def instance_id() -> str:
    return _new("ci-")


CLUSTER_ID = re.compile(r"^j-[A-Z0-9]{1,64}$")
STEP_ID = re.compile(r"^s-[A-Z0-9]{1,64}$")


def cluster_arn(region: str, account_id: str, cid: str) -> str:
    return f"arn:aws:elasticmapreduce:{region}:{account_id}:cluster/{cid}"


def instance_fleet_id() -> str:
    return _new("if-")


INSTANCE_GROUP_ID = re.compile(r"^ig-[A-Z0-9]{1,64}$")
INSTANCE_FLEET_ID = re.compile(r"^if-[A-Z0-9]{1,64}$")
