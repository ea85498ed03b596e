"""SigV4 for the local cloud's endpoints (the EC2 API and the admin resource)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from twisted.web.server import Request

from resilin.aws import sigv4
from resilin.aws.httputil import request_headers, split_uri
from resilin.provisioners.localcloud.errors import EC2Error


def signed_account(
    request: Request, body: bytes, lookup: Callable[[str], sigv4.Credentials | None], region: str
) -> str:
    """The account whose key signed ``request`` (and its ``body``) for ``ec2`` in ``region``.

    EC2's AuthFailure otherwise.
    """
    path, query = split_uri(request)
    try:
        verified = sigv4.verify(
            method=request.method.decode("latin-1"),
            raw_path=path,
            raw_query=query,
            headers=request_headers(request),
            body_sha256=lambda: hashlib.sha256(body).hexdigest(),
            lookup=lookup,
            service="ec2",
            region=region,
        )
    except sigv4.WrongRegion as exc:
        raise EC2Error(
            "AuthFailure", f"Credential should be scoped to a valid region: {exc.message}.", 401
        ) from None
    except sigv4.SignatureError as exc:
        raise EC2Error("AuthFailure", exc.message, 401) from None
    return verified.credentials.account_id
