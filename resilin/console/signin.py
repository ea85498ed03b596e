"""Proving an access key to the console, the way every request to Resilin proves one: SigV4.

Two ways in, each checked by the same verifier as the EMR API's requests (resilin.aws.sigv4):
- the sign-in form: the browser sends the key and its secret once, over the console's own
  origin; the console signs a request with them and verifies that signature against the
  configured key, so a wrong secret fails exactly as a badly signed API request does;
- a link that ``resilin console-url`` prints: a GET presigned with the key for the ``console``
  service, expiring, and usable once (its signature is remembered in the replay ledger).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from resilin.aws import sigv4
from resilin.aws.replay import SignatureLedger
from resilin.aws.sigv4 import CredentialLookup, Credentials, SignatureError

SERVICE = "console"
SIGNIN_PATH = "/signin"
DEFAULT_LINK_SECONDS = 3600


class SignInRefused(Exception):
    """The key, secret or link does not prove an account; the message is for the user."""


def check_secret(lookup: CredentialLookup, region: str, access_key: str, secret_key: str) -> Credentials:
    """The configured credentials of ``access_key`` when ``secret_key`` is its secret."""
    if not access_key or not secret_key:
        raise SignInRefused("Enter an access key ID and its secret access key.")
    request = AWSRequest(method="POST", url="http://console.invalid/session", data=b"")
    SigV4Auth(BotoCredentials(access_key, secret_key), SERVICE, region).add_auth(request)
    headers = {name.lower(): [str(value)] for name, value in request.headers.items()}
    headers["host"] = ["console.invalid"]  # signed from the URL; botocore adds the header only when sending
    try:
        verified = sigv4.verify(
            method="POST",
            raw_path="/session",
            raw_query="",
            headers=headers,
            body_sha256=lambda: hashlib.sha256(b"").hexdigest(),
            lookup=lookup,
            service=SERVICE,
            region=region,
        )
    except SignatureError as exc:
        raise SignInRefused(_refusal(exc)) from None
    return verified.credentials


def presigned_link(base_url: str, credentials: Credentials, region: str, seconds: int) -> str:
    """A sign-in link to the console at ``base_url`` for ``credentials``, valid ``seconds``."""
    if not 1 <= seconds <= sigv4.MAX_PRESIGN_EXPIRY:
        raise ValueError(f"a link lasts 1 to {sigv4.MAX_PRESIGN_EXPIRY} seconds, not {seconds}")
    request = AWSRequest(method="GET", url=base_url.rstrip("/") + SIGNIN_PATH)
    boto = BotoCredentials(credentials.access_key, credentials.secret_key)
    SigV4QueryAuth(boto, SERVICE, region, expires=seconds).add_auth(request)
    assert request.url is not None
    return request.url


def check_link(
    lookup: CredentialLookup,
    region: str,
    ledger: SignatureLedger,
    raw_query: str,
    host: str,
) -> Credentials:
    """The credentials a presigned sign-in link proves; refused when expired, forged or used before."""
    try:
        verified = sigv4.verify(
            method="GET",
            raw_path=SIGNIN_PATH,
            raw_query=raw_query,
            headers={"host": [host]},
            body_sha256=None,
            lookup=lookup,
            service=SERVICE,
            region=region,
        )
    except SignatureError as exc:
        raise SignInRefused(_refusal(exc)) from None
    if not verified.presigned:
        raise SignInRefused("This sign-in link is not presigned.")
    valid_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=sigv4.MAX_PRESIGN_EXPIRY)
    if not ledger.first_use("console-link:" + verified.signature, valid_until):
        raise SignInRefused("This sign-in link was used already; ask for a new one (resilin console-url).")
    return verified.credentials


def _refusal(error: SignatureError) -> str:
    if error.failure is sigv4.Failure.UNKNOWN_KEY:
        return "The access key ID is not one of this Resilin's."
    if error.failure is sigv4.Failure.BAD_SIGNATURE:
        return "The secret access key does not match the access key ID."
    if error.failure is sigv4.Failure.EXPIRED:
        return "This sign-in link has expired; ask for a new one (resilin console-url)."
    return f"Sign-in refused: {error.message}"


def link_host(url: str) -> str:
    """The Host header a browser sends for ``url`` (what a presigned link's signature covers)."""
    return urlsplit(url).netloc
