"""Console sessions and presigned sign-in links against a real Redis server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from resilin.aws.replay import SignatureLedger
from resilin.aws.sigv4 import Credentials
from resilin.console import signin
from resilin.console.sessions import ConsoleSessions

ALICE = Credentials("AKIAALICE00000000000", "a" * 40, "111111111111")


def lookup(access_key: str) -> Credentials | None:
    return ALICE if access_key == ALICE.access_key else None


def test_sessions_keep_no_token_and_end(redis_client):
    sessions = ConsoleSessions(redis_client, lifetime=60)
    token, session = sessions.open(ALICE.account_id, ALICE.access_key)
    assert sessions.find(token) == session
    assert (
        session.csrf_matches(session.csrf_token)
        and not session.csrf_matches("")
        and not session.csrf_matches("x")
    )
    # Redis holds the token's digest only, and forgets the session when it ends.
    keys = [k if isinstance(k, str) else k.decode() for k in redis_client.keys("*")]
    assert len(keys) == 1 and token not in keys[0] and token not in str(redis_client.hgetall(keys[0]))
    assert 0 < redis_client.ttl(keys[0]) <= 60
    assert sessions.find("not-a-token") is None and sessions.find("") is None
    sessions.close(token)
    assert sessions.find(token) is None


def test_a_link_signs_in_once(redis_client):
    ledger = SignatureLedger(redis_client)
    link = signin.presigned_link("http://127.0.0.1:8996", ALICE, "us-east-1", 300)
    parts = urlsplit(link)
    assert signin.check_link(lookup, "us-east-1", ledger, parts.query, parts.netloc) == ALICE
    with pytest.raises(signin.SignInRefused, match="used already"):
        signin.check_link(lookup, "us-east-1", ledger, parts.query, parts.netloc)
    fresh = urlsplit(signin.presigned_link("http://127.0.0.1:8996", ALICE, "us-east-1", 300))
    with pytest.raises(signin.SignInRefused):  # the signature covers the host the link names
        signin.check_link(lookup, "us-east-1", ledger, fresh.query, "127.0.0.1:9999")
    with pytest.raises(signin.SignInRefused):
        signin.check_link(lookup, "eu-west-1", ledger, fresh.query, fresh.netloc)
    with pytest.raises(signin.SignInRefused):
        signin.check_link(lookup, "us-east-1", ledger, "", fresh.netloc)
