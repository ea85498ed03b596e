"""Refusing a signed request that changes something when it was seen before.

A signature stays acceptable for the clock-skew window, so whoever captures a request could
send it again until then: a captured RunJobFlow would start another cluster, a captured
SetTerminationProtection(false) would undo a later change.  The signature of every request
that changed state is remembered in Redis (SET NX with an expiry) until the moment it would
be refused anyway; a second request with it is refused.  A request that failed changed
nothing, so its signature is forgotten: the client may send it again once it has fixed what
was wrong.  The price: a client sending the very same change twice within one second (the
resolution of the signed date) has the second refused; it was a duplicate anyway.

Reads (Describe*, List*, Get*) are not checked: botocore signs with a one-second clock and
does not sign its per-call invocation id, so a client polling DescribeCluster twice within a
second sends the same signature twice, legitimately, and a replayed read changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import redis

KEY_PREFIX = "resilin:api:seen-signature:"


class SignatureLedger:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def first_use(self, signature: str, valid_until: dt.datetime, now: dt.datetime | None = None) -> bool:
        """Record ``signature``; False when it was recorded before (a replay)."""
        now = now or dt.datetime.now(dt.UTC)
        ttl = max(1, math.ceil((valid_until - now).total_seconds()) + 1)
        return bool(self.redis.set(_key(signature), "1", nx=True, ex=ttl))

    def forget(self, signature: str) -> None:
        self.redis.delete(_key(signature))


def _key(signature: str) -> str:
    # Hashed so that the key length does not depend on what the client sent.
    return KEY_PREFIX + hashlib.sha256(signature.encode()).hexdigest()


def changes_state(operation: str) -> bool:
    """Whether an EMR operation changes anything (everything but Describe*, List*, Get*)."""
    return not operation.startswith(("Describe", "List", "Get"))
