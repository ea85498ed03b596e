"""SigV4 authentication of EMR requests, with failures told the way AWS tells them."""

from __future__ import annotations

import hashlib

from resilin import sigv4
from resilin.api.request import ApiRequest
from resilin.errors import EmrError
from resilin.sigv4 import CredentialLookup, Credentials, Failure, SignatureError

SERVICE = "elasticmapreduce"

# Codes and messages as AWS's front end answers them for JSON services.
_CODES: dict[Failure, str] = {
    Failure.MISSING: "MissingAuthenticationTokenException",
    Failure.MALFORMED: "IncompleteSignatureException",
    Failure.UNKNOWN_KEY: "UnrecognizedClientException",
    Failure.BAD_SIGNATURE: "InvalidSignatureException",
    Failure.SKEWED: "InvalidSignatureException",
    Failure.EXPIRED: "InvalidSignatureException",
}


class AuthError(EmrError):
    status = 403


def _message(error: SignatureError) -> str:
    if error.failure is Failure.UNKNOWN_KEY:
        return "The security token included in the request is invalid."
    if error.failure is Failure.SKEWED:
        # AWS words this one "Signature expired: <request time> is now earlier than ..."; the
        # verifier's text already carries both times.
        return f"Signature expired: {error.message}"
    return error.message


def authenticate(request: ApiRequest, lookup: CredentialLookup, region: str) -> Credentials:
    """The credentials that signed ``request`` for ``region``; AuthError when they do not hold."""
    try:
        verified = sigv4.verify(
            method=request.method,
            raw_path=request.raw_path,
            raw_query=request.raw_query,
            headers=request.headers,
            body_sha256=lambda: hashlib.sha256(request.body).hexdigest(),
            lookup=lookup,
            service=SERVICE,
        )
    except SignatureError as exc:
        raise AuthError(_message(exc), code=_CODES[exc.failure]) from None
    scoped_region = verified.scope.split("/")[1]
    if scoped_region != region:
        # A signature for another region is a client pointed at the wrong endpoint.
        raise AuthError(
            f"Credential should be scoped to a valid region, not '{scoped_region}'. "
            f"This endpoint serves '{region}'.",
            code="InvalidSignatureException",
        )
    return verified.credentials
