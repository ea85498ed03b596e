"""Access control lists: grants of permissions to accounts and groups, as S3 models them.

An ACL is kept as a small JSON-ready dict (``Acl.to_json``) with the bucket's settings or in an
object's metadata.  Grantees are canonical user IDs (:func:`owners.canonical_user_id`) or one of
S3's groups; the owner is an account id.  This module reads ACLs from canned-ACL and
``x-amz-grant-*`` headers or an ``AccessControlPolicy`` document and writes that document back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lxml import etree

from resilin.storage import s3xml
from resilin.storage.errors import S3Error, invalid_argument, invalid_request
from resilin.storage.owners import canonical_user_id

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY)
PUBLIC_GROUPS = (ALL_USERS, AUTHENTICATED_USERS)

PERMISSIONS = ("FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP")
GRANT_HEADERS = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}
CANNED_ACLS = (
    "private", "public-read", "public-read-write", "authenticated-read", "bucket-owner-read",
    "bucket-owner-full-control", "log-delivery-write",
)  # fmt: skip
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_CANONICAL_ID = re.compile(r"^[0-9a-f]{64}$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")


@dataclass(frozen=True)
class Grant:
    permission: str
    user_id: str = ""  # canonical user ID of a CanonicalUser grantee
    display_name: str = ""  # the grantee account's id, when known
    group: str = ""  # group URI of a Group grantee

    def to_json(self) -> dict[str, str]:
        data = {"permission": self.permission}
        for name in ("user_id", "display_name", "group"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        return data


@dataclass(frozen=True)
class Acl:
    owner: str  # account id
    grants: tuple[Grant, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"owner": self.owner, "grants": [g.to_json() for g in self.grants]}

    @classmethod
    def from_json(cls, data: dict) -> Acl:
        return cls(data["owner"], tuple(Grant(**g) for g in data.get("grants", [])))

    def is_public(self) -> bool:
        """Grants anything to everyone or to every AWS account (what Block Public Access means by public)."""
        return any(g.group in PUBLIC_GROUPS for g in self.grants)


def private(owner: str) -> Acl:
    return Acl(owner, (_user_grant(owner, "FULL_CONTROL"),))


def _user_grant(account: str, permission: str) -> Grant:
    return Grant(permission, user_id=canonical_user_id(account), display_name=account)


def canned(name: str, owner: str, bucket_owner: str) -> Acl:
    """The ACL a canned ACL name stands for (``bucket_owner``: of the bucket an object is in)."""
    if name not in CANNED_ACLS:
        raise invalid_argument(f"The canned ACL {name!r} is not valid", "x-amz-acl", name)
    grants = [_user_grant(owner, "FULL_CONTROL")]
    if name in ("public-read", "public-read-write"):
        grants.append(Grant("READ", group=ALL_USERS))
    if name == "public-read-write":
        grants.append(Grant("WRITE", group=ALL_USERS))
    if name == "authenticated-read":
        grants.append(Grant("READ", group=AUTHENTICATED_USERS))
    if name == "log-delivery-write":
        grants += [Grant("WRITE", group=LOG_DELIVERY), Grant("READ_ACP", group=LOG_DELIVERY)]
    if name in ("bucket-owner-read", "bucket-owner-full-control") and bucket_owner != owner:
        permission = "READ" if name == "bucket-owner-read" else "FULL_CONTROL"
        grants.append(_user_grant(bucket_owner, permission))
    return Acl(owner, tuple(grants))


def _grantee_by_id(value: str, permission: str) -> Grant:
    """A grantee named by canonical user ID (or, for convenience, by 12-digit account id)."""
    if _ACCOUNT_ID.match(value):
        return _user_grant(value, permission)
    if _CANONICAL_ID.match(value):
        return Grant(permission, user_id=value)
    raise invalid_argument("Invalid id", "CanonicalUser/ID", value)


def _email_refused(address: str) -> S3Error:
    return S3Error(
        "UnresolvableGrantByEmailAddress",
        "The e-mail address you provided does not match any account on record.",
        400,
        extra={"EmailAddressProvided": address},
    )


def _group_grant(uri: str, permission: str) -> Grant:
    if uri not in GROUPS:
        raise invalid_argument("Invalid group uri", "Group/URI", uri)
    return Grant(permission, group=uri)


_GRANTEE_ITEM = re.compile(
    r'\s*(id|uri|emailAddress)\s*=\s*(?:"([^"]*)"|([^,"\s]+))\s*(?:,|$)', re.IGNORECASE
)


def parse_grant_header(name: str, value: str) -> list[Grant]:
    """The grantees of one ``x-amz-grant-*`` header: ``id="...", uri="...", emailAddress="..."``."""
    permission = GRANT_HEADERS[name]
    grants, position = [], 0
    value = value.strip()
    while position < len(value):
        match = _GRANTEE_ITEM.match(value, position)
        if match is None or match.end() == position:
            raise invalid_argument("Invalid grantee in header", name, value)
        kind, text = match.group(1).lower(), match.group(2) if match.group(2) is not None else match.group(3)
        if kind == "id":
            grants.append(_grantee_by_id(text, permission))
        elif kind == "uri":
            grants.append(_group_grant(text, permission))
        else:
            raise _email_refused(text)
        position = match.end()
    if not grants:
        raise invalid_argument("Invalid grantee in header", name, value)
    return grants


def from_headers(
    header: Callable[[str], str | None], owner: str, bucket_owner: str
) -> tuple[Acl | None, str | None]:
    """(the ACL the request's x-amz-acl or x-amz-grant-* headers give, the canned ACL's name), or
    (None, None) when it has neither."""
    name = header("x-amz-acl")
    granted = [(h, header(h)) for h in GRANT_HEADERS if header(h) is not None]
    if name is not None and granted:
        raise invalid_request("Specifying both Canned ACLs and Header Grants is not allowed")
    if name is not None:
        return canned(name.strip(), owner, bucket_owner), name.strip()
    if not granted:
        return None, None
    grants = [g for h, v in granted for g in parse_grant_header(h, v or "")]
    return Acl(owner, _named(grants, (owner, bucket_owner))), None


def _named(grants: list[Grant], accounts: tuple[str, ...]) -> tuple[Grant, ...]:
    """The grants, with the account of each grantee named by the canonical ID of one of ``accounts``
    (the only IDs known to be whose: canonical IDs are one-way)."""
    known = {canonical_user_id(a): a for a in accounts}
    return tuple(
        replace(g, display_name=known[g.user_id]) if not g.display_name and g.user_id in known else g
        for g in grants
    )


# -- the AccessControlPolicy document ------------------------------------------------------


def malformed_acl() -> S3Error:
    return S3Error(
        "MalformedACLError",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def from_xml(body: bytes, owner: str) -> Acl:
    """The ACL of an ``AccessControlPolicy`` document for a resource ``owner`` owns.

    Its Owner must be the resource's owner (S3 refuses to change owners that way).
    """
    try:
        doc = s3xml.parse(body)
    except S3Error:
        raise malformed_acl() from None
    if s3xml.local(doc) != "AccessControlPolicy":
        raise malformed_acl()
    owner_elements = s3xml.children(doc, "Owner")
    lists = s3xml.children(doc, "AccessControlList")
    if len(owner_elements) != 1 or len(lists) != 1:
        raise malformed_acl()
    owner_id = (s3xml.child_text(owner_elements[0], "ID") or "").strip()
    if owner_id not in (canonical_user_id(owner), owner):
        raise S3Error("AccessDenied", "The owner of an ACL cannot be changed", 403)
    grants = []
    for element in lists[0]:
        if not isinstance(element.tag, str):
            continue  # a comment
        if s3xml.local(element) != "Grant":
            raise malformed_acl()
        grants.append(_grant_of(element))
    return Acl(owner, _named(grants, (owner,)))


def _grant_of(element: etree._Element) -> Grant:
    permission = (s3xml.child_text(element, "Permission") or "").strip()
    grantees = s3xml.children(element, "Grantee")
    if permission not in PERMISSIONS or len(grantees) != 1:
        raise malformed_acl()
    grantee = grantees[0]
    kind = grantee.get(f"{{{XSI}}}type") or grantee.get("type") or ""
    kind = kind.rpartition(":")[2]
    user_id = s3xml.child_text(grantee, "ID")
    uri = s3xml.child_text(grantee, "URI")
    email = s3xml.child_text(grantee, "EmailAddress")
    if kind == "CanonicalUser" and user_id is not None:
        return _grantee_by_id(user_id.strip(), permission)
    if kind == "Group" and uri is not None:
        return _group_grant(uri.strip(), permission)
    if kind == "AmazonCustomerByEmail" and email is not None:
        raise _email_refused(email.strip())
    raise malformed_acl()


def to_xml(acl: Acl) -> etree._Element:
    doc = s3xml.root("AccessControlPolicy")
    owner = s3xml.sub(doc, "Owner")
    s3xml.subs(owner, [("ID", canonical_user_id(acl.owner)), ("DisplayName", acl.owner)])
    listing = s3xml.sub(doc, "AccessControlList")
    # Grants to groups first, then to accounts, each in the order given (the order means nothing
    # to S3; this one is what the common conformance suites expect).
    for grant in sorted(acl.grants, key=lambda g: not g.group):
        element = s3xml.sub(listing, "Grant")
        ns = element.nsmap.get(None)
        grantee = etree.SubElement(element, f"{{{ns}}}Grantee", nsmap={"xsi": XSI})
        if grant.group:
            grantee.set(f"{{{XSI}}}type", "Group")
            s3xml.sub(grantee, "URI", grant.group)
        else:
            grantee.set(f"{{{XSI}}}type", "CanonicalUser")
            s3xml.sub(grantee, "ID", grant.user_id)
            if grant.display_name:
                s3xml.sub(grantee, "DisplayName", grant.display_name)
        s3xml.sub(element, "Permission", grant.permission)
    return doc
