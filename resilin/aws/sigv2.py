"""Server-side verification of AWS Signature Version 2 (the Query protocol's older signature).

boto 2 and other old Query clients sign the request's parameters: the string to sign is
the method, the lower-case Host header, the path and the parameters (all but ``Signature``)
sorted by name and percent-encoded as RFC 3986 says, one per line; the signature is the
base64 HMAC of it with the secret key (``SignatureMethod`` HmacSHA256 or HmacSHA1).  The
request's ``Timestamp`` must be within the clock-skew limit, or its ``Expires`` not past.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from resilin.aws.sigv4 import MAX_CLOCK_SKEW, CredentialLookup, Credentials, Failure, SignatureError

_DIGESTS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}
AUTH_PARAMETERS = (
    "AWSAccessKeyId",
    "SignatureVersion",
    "SignatureMethod",
    "Signature",
    "Timestamp",
    "Expires",
)


@dataclass(frozen=True)
class Verified:
    credentials: Credentials
    signature: str
    valid_until: dt.datetime  # the signature is refused after this


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def string_to_sign(method: str, host: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    pairs = sorted(
        ((name.encode(), value) for name, value in params if name != "Signature"),
        key=lambda pair: pair[0],  # byte order of the names, as AWS sorts them
    )
    query = "&".join(f"{_encode(name.decode())}={_encode(value)}" for name, value in pairs)
    return f"{method}\n{host.lower()}\n{path or '/'}\n{query}"


def sign(secret_key: str, method: str, host: str, path: str, params: Sequence[tuple[str, str]],
         algorithm: str = "HmacSHA256") -> str:  # fmt: skip
    digest = hmac.new(
        secret_key.encode(), string_to_sign(method, host, path, params).encode(), _DIGESTS[algorithm]
    )
    return base64.b64encode(digest.digest()).decode()


def _parse_time(name: str, value: str) -> dt.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SignatureError(Failure.MALFORMED, f"{name} '{value}' is not an ISO 8601 time.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def verify(
    *,
    method: str,
    host: str,
    path: str,
    params: Sequence[tuple[str, str]],
    lookup: CredentialLookup,
    now: dt.datetime | None = None,
) -> Verified:
    """Check a SigV2-signed request given its decoded parameters (query string and form body)."""
    now = now or dt.datetime.now(dt.UTC)
    names = [name for name, _ in params]
    for name in AUTH_PARAMETERS:
        if names.count(name) > 1:
            raise SignatureError(Failure.MALFORMED, f"Parameter {name} is given more than once.")
    values = dict(params)
    if "Signature" not in values or "AWSAccessKeyId" not in values:
        missing = "Signature" if "Signature" not in values else "AWSAccessKeyId"
        raise SignatureError(Failure.MALFORMED, f"Request must contain a {missing} parameter.")
    if values.get("SignatureVersion") != "2":
        raise SignatureError(Failure.MALFORMED, "SignatureVersion must be 2 for this signature.")
    algorithm = values.get("SignatureMethod", "")
    if algorithm not in _DIGESTS:
        raise SignatureError(Failure.MALFORMED, "SignatureMethod must be HmacSHA256 or HmacSHA1.")
    if ("Timestamp" in values) == ("Expires" in values):
        raise SignatureError(
            Failure.MALFORMED, "Request must contain either a Timestamp or an Expires parameter."
        )
    if "Timestamp" in values:
        stamp = _parse_time("Timestamp", values["Timestamp"])
        if abs(now - stamp) > MAX_CLOCK_SKEW:
            raise SignatureError(
                Failure.SKEWED,
                f"Request timestamp {values['Timestamp']} is more than {int(MAX_CLOCK_SKEW.total_seconds() // 60)} "
                f"minutes from the server time {now.strftime('%Y-%m-%dT%H:%M:%SZ')}.",
            )
        valid_until = stamp + MAX_CLOCK_SKEW
    else:
        valid_until = _parse_time("Expires", values["Expires"])
        if now > valid_until:
            raise SignatureError(Failure.EXPIRED, f"Request has expired: Expires {values['Expires']}.")
        if valid_until - now > MAX_CLOCK_SKEW * 4:
            # An expiry far ahead would let a captured request be used for long.
            raise SignatureError(Failure.MALFORMED, "Expires may be at most an hour ahead.")

    credentials = lookup(values["AWSAccessKeyId"])
    if credentials is None:
        raise SignatureError(Failure.UNKNOWN_KEY, "The security token included in the request is invalid.")
    expected = sign(credentials.secret_key, method, host, path, params, algorithm)
    if not hmac.compare_digest(expected.encode(), values["Signature"].encode()):
        raise SignatureError(
            Failure.BAD_SIGNATURE,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return Verified(credentials, values["Signature"], valid_until)
