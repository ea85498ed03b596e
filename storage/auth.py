"""SigV4 checks for storage requests, with failures mapped to S3's error codes."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from resilin.aws.sigv4 import (
    CredentialLookup,
    Credentials,
    Failure,
    SignatureError,
    Verified,
    WrongRegion,
    parse_query,
    verify,
)
from resilin.storage.errors import S3Error

# The x-amz-* headers S3 obeys without a signature over them; any other must be signed.
UNSIGNED_AMZ_HEADERS = frozenset({"x-amz-content-sha256", "x-amz-date", "x-amz-security-token"})

_CODES = {
    Failure.MISSING: ("AccessDenied", 403),
    Failure.UNKNOWN_KEY: ("InvalidAccessKeyId", 403),
    Failure.BAD_SIGNATURE: ("SignatureDoesNotMatch", 403),
    Failure.SKEWED: ("RequestTimeTooSkewed", 403),
    Failure.EXPIRED: ("AccessDenied", 403),
}


def to_s3_error(exc: SignatureError, presigned: bool) -> S3Error:
    if isinstance(exc, WrongRegion):
        # S3's words; botocore reads the Region element to sign again for the right region.
        prefix = (
            "Error parsing the X-Amz-Credential parameter"
            if presigned
            else "The authorization header is malformed"
        )
        code = "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"
        return S3Error(code, f"{prefix}; {exc.message}", 400, extra={"Region": exc.expected})
    if exc.failure is Failure.MALFORMED:
        # S3 answers AuthorizationHeaderMalformed for header auth, and a plain
        # AuthorizationQueryParametersError for presigned URLs.
        code = "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"
        return S3Error(code, exc.message, 400)
    code, status = _CODES[exc.failure]
    message = exc.message
    if exc.failure is Failure.MISSING:
        message = "Anonymous access is not allowed; sign requests with AWS Signature Version 4"
    return S3Error(code, message, status)


# The credentials of an unsigned request: the anonymous principal (see authorize), no account.
ANONYMOUS = Credentials(access_key="", secret_key="", account_id="")


def _is_unsigned(raw_query: str, headers: Mapping[str, Sequence[str]]) -> bool:
    """No signature of any kind: neither an Authorization header nor a presigned URL's parameters."""
    return "authorization" not in headers and not any(
        name in raw_query for name in ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm", "Signature=")
    )


def anonymous(headers: Mapping[str, Sequence[str]]) -> Verified:
    """An unsigned request, as a Verified with no account: it may do what is granted to everyone.

    Its body is checked against the x-amz-content-sha256 it sends, if any, as a signed one's."""
    payload = (headers.get("x-amz-content-sha256") or ["UNSIGNED-PAYLOAD"])[0]
    return Verified(
        credentials=ANONYMOUS, amz_date="", scope="", signing_key=b"", signature="",
        payload_hash=payload, presigned=False,
    )  # fmt: skip


def authenticate(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, Sequence[str]],
    lookup: CredentialLookup,
    region: str,
) -> Verified:
    """Verify a request's signature for ``region``; the body is checked later, against the signed
    payload hash.  A request carrying an ``x-amz-*`` header the signature does not cover is refused.
    An unsigned request is the anonymous principal's (:func:`anonymous`)."""
    if _is_unsigned(raw_query, headers):
        return anonymous(headers)
    presigned = "X-Amz-Signature=" in raw_query
    if not presigned and "Signature=" in raw_query and "AWSAccessKeyId=" in raw_query:
        raise S3Error(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
            400,
        )
    authorization = (headers.get("authorization") or [""])[0]
    if authorization and not authorization.startswith("AWS4-HMAC-SHA256 "):
        if authorization.startswith("AWS "):
            raise S3Error(
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
                400,
            )
        raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed", 400)
    # S3 signs the payload hash it is sent; header-signed requests must send one.
    missing_hash = S3Error(
        "InvalidRequest", "Missing required header for this request: x-amz-content-sha256", 400
    )
    needs_hash = bool(authorization) and "x-amz-content-sha256" not in headers
    try:
        verified = verify(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body_sha256=None,
            lookup=lookup,
            service="s3",
            region=region,
        )
    except SignatureError as exc:
        if needs_hash and exc.failure is not Failure.MALFORMED:
            raise missing_hash from None
        raise to_s3_error(exc, presigned) from None
    if needs_hash:
        raise missing_hash
    _refuse_unsigned_amz_headers(headers, verified)
    return verified


def require_session_token(verified: Verified, headers: Mapping[str, Sequence[str]], raw_query: str) -> None:
    """Temporary credentials count only with their session token (header, or the presigned URL's query)."""
    expected = verified.credentials.session_token
    if not expected:
        return
    sent = (headers.get("x-amz-security-token") or [""])[0]
    if not sent and verified.presigned:
        sent = next((v for k, v in parse_query(raw_query) if k == "X-Amz-Security-Token"), "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise S3Error("InvalidToken", "The provided token is malformed or otherwise invalid.", 400)


def _refuse_unsigned_amz_headers(headers: Mapping[str, Sequence[str]], verified: Verified) -> None:
    """AccessDenied for ``x-amz-*`` headers outside the signature, as S3 answers.

    They change what a request does (``x-amz-copy-source`` makes a PUT a copy, ``x-amz-acl``,
    ``x-amz-meta-*``, ...): obeyed unsigned, anyone holding a presigned URL or a captured
    request could add them.
    """
    unsigned = sorted(
        name
        for name in headers
        if name.startswith("x-amz-")
        and name not in UNSIGNED_AMZ_HEADERS
        and name not in verified.signed_headers
    )
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            403,
            extra={"HeadersNotSigned": ", ".join(unsigned)},
        )
