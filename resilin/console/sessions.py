"""Console sign-in sessions, kept in Redis.

A session is made once a user has proved an access key (its secret, or a presigned link): the
browser holds a random token in an HttpOnly cookie, Redis holds only the token's SHA-256 (a copy
of the database gives nobody a session) with the account, the access key and the session's CSRF
token.  The secret is never kept, by the browser or here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import redis

KEY_PREFIX = "resilin:console:session:"
LIFETIME = 8 * 3600  # seconds; a session ends then, however active (sign in again)
COOKIE = "resilin_console"


@dataclass(frozen=True)
class Session:
    account_id: str
    access_key: str
    csrf_token: str

    def csrf_matches(self, sent: str) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def _key(token: str) -> str:
    return KEY_PREFIX + hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    def __init__(self, client: redis.Redis, lifetime: int = LIFETIME) -> None:
        self.redis = client
        self.lifetime = lifetime

    def open(self, account_id: str, access_key: str) -> tuple[str, Session]:
        """A new session: the token for the cookie, and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(account_id, access_key, secrets.token_urlsafe(32))
        self.redis.hset(
            _key(token),
            mapping={"account": account_id, "access_key": access_key, "csrf": session.csrf_token},
        )
        self.redis.expire(_key(token), self.lifetime)
        return token, session

    def find(self, token: str) -> Session | None:
        if not token:
            return None
        fields = self.redis.hgetall(_key(token))
        if not fields:
            return None
        decoded = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                   for k, v in fields.items()}  # fmt: skip
        return Session(decoded["account"], decoded["access_key"], decoded["csrf"])

    def close(self, token: str) -> None:
        self.redis.delete(_key(token))
