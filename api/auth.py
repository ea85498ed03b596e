"""Authentication of EMR requests (SigV4 for both protocols, SigV2 for the Query protocol).

Failures are raised as AuthError carrying why; each protocol names them its own way (the
JSON protocol's ``…Exception`` codes, the Query protocol's older ones).  A request that
changes state with a signature already used is refused: see ``replay``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from resilin.api.request import ApiRequest
from resilin.aws import sigv2, sigv4
from resilin.aws.replay import SignatureLedger, changes_state
from resilin.aws.sigv4 import (
    MAX_CLOCK_SKEW,
    CredentialLookup,
    Credentials,
    Failure,
    SignatureError,
    WrongRegion,
)
from resilin.errors import EmrError

SERVICE = "elasticmapreduce"
REPLAYED = "replayed"

# Codes and HTTP statuses as AWS's front end answers each protocol.
JSON_CODES: dict[Failure | str, tuple[str, int]] = {
    Failure.MISSING: ("MissingAuthenticationTokenException", 403),
    Failure.MALFORMED: ("IncompleteSignatureException", 403),
    Failure.UNKNOWN_KEY: ("UnrecognizedClientException", 403),
    Failure.BAD_SIGNATURE: ("InvalidSignatureException", 403),
    Failure.SKEWED: ("InvalidSignatureException", 403),
    Failure.EXPIRED: ("InvalidSignatureException", 403),
    Failure.WRONG_REGION: ("InvalidSignatureException", 403),
    # Retryable on purpose: a client that sent the same change twice within one second (the
    # resolution of the signed date) gets its duplicate through on botocore's retry, which signs
    # again; a replay, whose signature cannot change, is refused every time.
    REPLAYED: ("ThrottlingException", 400),
}
QUERY_CODES: dict[Failure | str, tuple[str, int]] = {
    Failure.MISSING: ("MissingAuthenticationToken", 403),
    Failure.MALFORMED: ("IncompleteSignature", 400),
    Failure.UNKNOWN_KEY: ("InvalidClientTokenId", 403),
    Failure.BAD_SIGNATURE: ("SignatureDoesNotMatch", 403),
    Failure.SKEWED: ("RequestExpired", 400),
    Failure.EXPIRED: ("RequestExpired", 400),
    Failure.WRONG_REGION: ("SignatureDoesNotMatch", 403),
    REPLAYED: ("Throttling", 400),
}


class AuthError(EmrError):
    status = 403

    def __init__(self, message: str, failure: Failure | str) -> None:
        code, status = JSON_CODES[failure]
        super().__init__(message, code=code, status=status)
        self.failure = failure

    def for_query(self) -> EmrError:
        code, status = QUERY_CODES[self.failure]
        return EmrError(self.message, code=code, status=status)


def _message(error: SignatureError) -> str:
    if error.failure is Failure.UNKNOWN_KEY:
        return "The security token included in the request is invalid."
    if error.failure is Failure.SKEWED:
        # AWS words this one "Signature expired: <request time> is now earlier than ..."; the
        # verifier's text already carries both times.
        return f"Signature expired: {error.message}"
    if isinstance(error, WrongRegion):
        # A signature for another region is a client pointed at the wrong endpoint.
        return (
            f"Credential should be scoped to a valid region, not '{error.scoped}'. "
            f"This endpoint serves '{error.expected}'."
        )
    return error.message


@dataclass(frozen=True)
class Signed:
    """A request whose signature holds."""

    credentials: Credentials
    signature: str
    valid_until: dt.datetime  # when the signature stops being accepted


class Authenticator:
    def __init__(self, lookup: CredentialLookup, region: str, ledger: SignatureLedger | None) -> None:
        self.lookup = lookup
        self.region = region
        self.ledger = ledger

    def sigv4(self, request: ApiRequest) -> Signed:
        """The credentials that signed ``request`` with SigV4 for our region; AuthError otherwise."""
        try:
            verified = sigv4.verify(
                method=request.method,
                raw_path=request.raw_path,
                raw_query=request.raw_query,
                headers=request.headers,
                body_sha256=lambda: hashlib.sha256(request.body).hexdigest(),
                lookup=self.lookup,
                service=SERVICE,
                region=self.region,
            )
        except SignatureError as exc:
            raise AuthError(_message(exc), exc.failure) from None
        signed_at = sigv4.parse_amz_date(verified.amz_date)
        # A presigned URL lives as long as it says, at most a week: remember it that long.
        lifetime = dt.timedelta(seconds=sigv4.MAX_PRESIGN_EXPIRY) if verified.presigned else MAX_CLOCK_SKEW
        return Signed(verified.credentials, verified.signature, signed_at + lifetime)

    def sigv2(self, request: ApiRequest, params: Sequence[tuple[str, str]]) -> Signed:
        try:
            verified = sigv2.verify(
                method=request.method,
                host=request.header("host"),
                path=request.raw_path,
                params=params,
                lookup=self.lookup,
            )
        except SignatureError as exc:
            raise AuthError(_message(exc), exc.failure) from None
        return Signed(verified.credentials, verified.signature, verified.valid_until)

    @contextlib.contextmanager
    def once(self, signed: Signed, operation: str) -> Iterator[None]:
        """Run a request's operation unless it changes state and its signature already did.

        AuthError for a replay; the signature is forgotten again when the operation fails.
        """
        if self.ledger is None or not changes_state(operation):
            yield
            return
        if not self.ledger.first_use(signed.signature, signed.valid_until):
            raise AuthError(
                "A request with this signature already made its change; a new request (signed again, "
                "as a retry is) will be accepted.",
                REPLAYED,
            )
        try:
            yield
        except BaseException:
            self.ledger.forget(signed.signature)
            raise
