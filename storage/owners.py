"""Who owns things, as S3 documents show it."""

from __future__ import annotations

import hashlib

from lxml import etree

from resilin.storage import s3xml


def canonical_user_id(account: str) -> str:
    """S3 identifies owners by a 64-hex-digit canonical ID; ours is derived from the account."""
    return hashlib.sha256(f"resilin-account:{account}".encode()).hexdigest()


def add_owner(parent: etree._Element, account: str, tag: str = "Owner") -> None:
    person = s3xml.sub(parent, tag)
    s3xml.subs(person, [("ID", canonical_user_id(account)), ("DisplayName", account)])
