"""Server-side verification of AWS Signature Version 4.

Every Resilin service (EMR API, storage, the local cloud's EC2 endpoint) checks
requests with this module.  It rebuilds the canonical request from what the
client sent, as described in AWS's "Create a signed AWS API request" guide, and
compares signatures in constant time.  Header authentication and presigned
query-string authentication are both handled; the signing key and seed
signature are returned so that aws-chunked bodies can be checked chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGN_EXPIRY = 7 * 24 * 3600


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    account_id: str
    session_token: str = ""  # set for temporary credentials: requests must carry it (x-amz-security-token)


class Failure(enum.Enum):
    """Why a request was refused; each service maps these to its own error codes."""

    MISSING = "missing"  # no signature at all
    MALFORMED = "malformed"  # an Authorization header or query we cannot read
    UNKNOWN_KEY = "unknown-key"  # access key not configured
    BAD_SIGNATURE = "bad-signature"
    SKEWED = "skewed"  # request time too far from ours
    EXPIRED = "expired"  # presigned URL past its expiry
    WRONG_REGION = "wrong-region"  # credential scoped to a region other than the service's


class SignatureError(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


class WrongRegion(SignatureError):
    """A credential scope naming another region than the one the service serves."""

    def __init__(self, scoped: str, expected: str) -> None:
        super().__init__(Failure.WRONG_REGION, f"the region '{scoped}' is wrong; expecting '{expected}'")
        self.scoped = scoped
        self.expected = expected


@dataclass(frozen=True)
class Verified:
    """A request whose signature matched."""

    credentials: Credentials
    amz_date: str
    scope: str  # date/region/service/aws4_request
    signing_key: bytes
    signature: str
    payload_hash: str
    presigned: bool
    signed_headers: frozenset[str] = frozenset()  # lower-case names the signature covers

    def chunk_signature(self, previous_signature: str, chunk_sha256: str) -> str:
        """Signature of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.amz_date,
                self.scope,
                previous_signature,
                EMPTY_SHA256,
                chunk_sha256,
            ]
        )
        return hmac.digest(self.signing_key, to_sign.encode(), "sha256").hex()

    def trailer_signature(self, previous_signature: str, trailer_bytes: bytes) -> str:
        """Signature of the trailing headers of a STREAMING-...-PAYLOAD-TRAILER body."""
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self.amz_date,
                self.scope,
                previous_signature,
                hashlib.sha256(trailer_bytes).hexdigest(),
            ]
        )
        return hmac.new(self.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()


CredentialLookup = Callable[[str], Credentials | None]


@functools.lru_cache(maxsize=1024)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    # Cached: it changes once a day per key, and every request of a busy service needs it.
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# Both cached: a client's requests repeat the same names, credential scopes, dates and
# signed-header lists, and encoding them anew is a fair share of a small request's CPU.
@functools.lru_cache(maxsize=8192)
def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


@functools.lru_cache(maxsize=8192)
def _query_decode(text: str) -> str:
    return unquote(text.replace("+", "%20"))


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Split a raw query string into decoded (name, value) pairs, keeping order and blanks."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_query_decode(name), _query_decode(value)))
    return pairs


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    encoded = sorted((_uri_encode(k), _uri_encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal, as non-S3 signers apply before encoding."""
    if not path:
        return "/"
    out: list[str] = []
    for segment in path.split("/"):
        if segment == ".":
            continue
        if segment == "..":
            if out and out[-1]:
                out.pop()
            continue
        out.append(segment)
    result = "/".join(out)
    if not result.startswith("/"):
        result = "/" + result
    if path.endswith("/") and not result.endswith("/"):
        result += "/"
    return result


def canonical_uri(raw_path: str, service: str) -> str:
    if not raw_path:
        return "/"
    if service == "s3":
        # S3 signers use the path exactly as sent (encoded once, never normalised).
        return raw_path
    return quote(_normalize_path(unquote(raw_path)), safe="/~")


def _as_sent(canonical_request: str) -> bytes:
    """The canonical request as the bytes the client hashed.  Header values and the path were
    decoded from the wire as Latin-1 (one character per byte), so encoding back the same way gives
    the client's bytes again, UTF-8 metadata included; anything else is ASCII."""
    try:
        return canonical_request.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (a caller's own text): as a client would hash it
        return canonical_request.encode()


def _canonical_header_value(values: Sequence[str]) -> str:
    if len(values) == 1:
        value = values[0].strip()
        if "  " not in value and "\t" not in value:
            return value  # the usual case: nothing to squeeze
    return ",".join(" ".join(v.strip().split()) for v in values)


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    if not value.startswith(ALGORITHM + " "):
        raise SignatureError(Failure.MALFORMED, f"Authorization header must use {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in value[len(ALGORITHM) + 1 :].split(","):
        name, sep, val = item.strip().partition("=")
        if not sep:
            raise SignatureError(
                Failure.MALFORMED, f"Authorization header field is malformed: {item.strip()!r}"
            )
        fields[name] = val
    try:
        return fields["Credential"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError as missing:
        raise SignatureError(
            Failure.MALFORMED, f"Authorization header requires '{missing.args[0]}' parameter"
        ) from None


_AMZ_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


@functools.lru_cache(maxsize=256)  # a busy service sees the same few values second after second
def parse_amz_date(value: str) -> dt.datetime:
    """An X-Amz-Date (ISO 8601 basic format, UTC); SignatureError MALFORMED when it is not one."""
    match = _AMZ_DATE.match(value)
    try:
        if match is None:
            raise ValueError(value)
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        raise SignatureError(
            Failure.MALFORMED, f"X-Amz-Date {value!r} is not in the ISO8601 basic format"
        ) from None


def _body_payload_hash(headers: Mapping[str, Sequence[str]], body_sha256: Callable[[], str]) -> str:
    """The payload hash of a request whose body the service holds: the body's own.

    A client may also send ``x-amz-content-sha256``, signed or not, but it must then be the
    body's hash: were the header trusted, a captured request with its body swapped (and the
    header stating the original body's hash) would still verify.  ``UNSIGNED-PAYLOAD`` and
    the streaming forms are S3's alone.
    """
    payload_hash = body_sha256()
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and list(declared) != [payload_hash]:
        if any(value == UNSIGNED_PAYLOAD or value.startswith("STREAMING-") for value in declared):
            raise SignatureError(
                Failure.BAD_SIGNATURE, "Only S3 accepts an unsigned payload; sign the request's body."
            )
        raise SignatureError(
            Failure.BAD_SIGNATURE, "The x-amz-content-sha256 header does not match the SHA-256 of the body."
        )
    return payload_hash


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, Sequence[str]],
    body_sha256: Callable[[], str] | None,
    lookup: CredentialLookup,
    service: str,
    region: str | None = None,
    now: dt.datetime | None = None,
) -> Verified:
    """Check a request's SigV4 signature.

    ``headers`` maps lower-case header names to the list of values sent.
    ``body_sha256`` computes the hex SHA-256 of the body, for services that hold the body
    when they authenticate (all but S3): the signature then covers the body itself, whatever
    ``x-amz-content-sha256`` says.  With None (S3), the payload hash is the one the client
    declares, and the caller checks the body against ``Verified.payload_hash``.  With
    ``region``, a credential scoped to any other region is refused (WrongRegion).
    """
    now = now or dt.datetime.now(dt.UTC)
    query = parse_query(raw_query)
    query_names = {k for k, _ in query}
    authorization = (headers.get("authorization") or [""])[0]

    if authorization:
        credential, signed_headers, signature = _parse_authorization(authorization)
        amz_date_value = (headers.get("x-amz-date") or [""])[0]
        if not amz_date_value:
            date_header = (headers.get("date") or [""])[0]
            raise SignatureError(
                Failure.MALFORMED,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                if not date_header
                else "X-Amz-Date header is required for SigV4",
            )
        presigned = False
        signed_query = query
    elif "X-Amz-Signature" in query_names:
        values = dict(query)
        try:
            if values["X-Amz-Algorithm"] != ALGORITHM:
                raise SignatureError(Failure.MALFORMED, f"X-Amz-Algorithm must be {ALGORITHM}")
            credential = values["X-Amz-Credential"]
            signed_headers = values["X-Amz-SignedHeaders"].split(";")
            signature = values["X-Amz-Signature"]
            amz_date_value = values["X-Amz-Date"]
            expires = int(values.get("X-Amz-Expires", "900"))
        except (KeyError, ValueError) as exc:
            raise SignatureError(
                Failure.MALFORMED, f"presigned request is missing or has a bad {exc}"
            ) from None
        presigned = True
        signed_query = [(k, v) for k, v in query if k != "X-Amz-Signature"]
    else:
        raise SignatureError(Failure.MISSING, "Request is missing Authentication Token")

    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError(Failure.MALFORMED, f"Credential should be scoped correctly: {credential!r}")
    access_key, date, scope_region, scope_service, _ = parts
    if region is not None and scope_region != region:
        # Checked before anything else of the signature, as AWS does: it tells a client
        # pointed at the wrong region (and nothing secret) what to sign for instead.
        raise WrongRegion(scope_region, region)
    amz_date = parse_amz_date(amz_date_value)
    if amz_date_value[:8] != date:
        raise SignatureError(Failure.MALFORMED, "Credential date does not match X-Amz-Date")

    creds = lookup(access_key)
    if creds is None:
        raise SignatureError(Failure.UNKNOWN_KEY, "The security token included in the request is invalid.")

    if presigned:
        if expires < 0:
            raise SignatureError(Failure.MALFORMED, "X-Amz-Expires must be non-negative")
        if expires > MAX_PRESIGN_EXPIRY:
            raise SignatureError(
                Failure.MALFORMED, "X-Amz-Expires must be less than a week (in seconds); that is, the given "
                "X-Amz-Expires must be less than 604800 seconds",
            )  # fmt: skip
        if now >= amz_date + dt.timedelta(seconds=expires):  # 0: expired at once
            raise SignatureError(Failure.EXPIRED, "Request has expired")
        if amz_date - now > MAX_CLOCK_SKEW:
            raise SignatureError(Failure.SKEWED, "Request is not yet valid")
    elif abs(now - amz_date) > MAX_CLOCK_SKEW:
        raise SignatureError(
            Failure.SKEWED,
            f"Signature not yet current or expired: request time {amz_date_value}, server time "
            f"{now.strftime('%Y%m%dT%H%M%SZ')}",
        )

    if "host" not in signed_headers:
        raise SignatureError(Failure.MALFORMED, "'Host' must be a signed header")
    missing = [h for h in signed_headers if h not in headers]
    if missing:
        raise SignatureError(Failure.BAD_SIGNATURE, f"signed header(s) not present: {', '.join(missing)}")

    if presigned and scope_service == "s3":
        payload_hash = UNSIGNED_PAYLOAD  # S3's presigned URLs leave the payload out; other services hash it
    elif body_sha256 is not None:
        payload_hash = _body_payload_hash(headers, body_sha256)
    elif "x-amz-content-sha256" in headers:
        payload_hash = headers["x-amz-content-sha256"][0]
    else:
        payload_hash = EMPTY_SHA256

    canonical_request = "\n".join(
        [
            method,
            canonical_uri(raw_path, scope_service),
            canonical_query(signed_query),
            "".join(f"{h}:{_canonical_header_value(headers[h])}\n" for h in signed_headers),
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    scope = f"{date}/{scope_region}/{scope_service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date_value, scope, hashlib.sha256(_as_sent(canonical_request)).hexdigest()]
    )
    key = signing_key(creds.secret_key, date, scope_region, scope_service)
    expected = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(
            Failure.BAD_SIGNATURE,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    if service and scope_service != service:
        raise SignatureError(
            Failure.MALFORMED, f"Credential should be scoped to correct service: '{service}'"
        )
    return Verified(
        creds, amz_date_value, scope, key, signature, payload_hash, presigned, frozenset(signed_headers)
    )
