"""PutBucketCors, GetBucketCors, DeleteBucketCors, the OPTIONS preflight and the CORS headers of
the answers to a browser's requests (rules and their evaluation: :mod:`cors`)."""

from __future__ import annotations

from resilin.storage import cors, s3xml
from resilin.storage.bucket_setting_ops import deleting, get_setting, put_setting
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error
from resilin.storage.store import Store

SETTING = "cors"


def rules_of(store: Store, bucket: str) -> list[cors.CorsRule] | None:
    stored = store.settings.get(bucket, SETTING) if store.bucket(bucket) is not None else None
    return None if stored is None else [cors.CorsRule.from_json(r) for r in stored]


async def put_bucket_cors(call: Call) -> Response:
    put_setting(call, SETTING, lambda body: [r.to_json() for r in cors.parse(body)])
    return Response(200)


def _no_configuration(bucket: str) -> S3Error:
    return S3Error(
        "NoSuchCORSConfiguration", "The CORS configuration does not exist", 404, extra={"BucketName": bucket}
    )


async def get_bucket_cors(call: Call) -> Response:
    stored = get_setting(call, SETTING, _no_configuration)
    return s3xml.response(cors.to_xml([cors.CorsRule.from_json(r) for r in stored]))


delete_bucket_cors = deleting(SETTING)


def preflight(store: Store, bucket: str | None, headers: dict[str, list[str]]) -> Response:
    """The answer to an OPTIONS preflight: unsigned, as browsers send it, and changing nothing."""
    origin = (headers.get("origin") or [""])[0]
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.", 400)
    method = (headers.get("access-control-request-method") or [""])[0]
    if method not in cors.METHODS:
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method}", 400)
    requested = ",".join(headers.get("access-control-request-headers") or []).split(",")
    rules = rules_of(store, bucket) if bucket else None
    decision = cors.decide(rules or [], origin, method, requested)
    if decision is None:
        raise cors.preflight_refusal()
    return Response(200, decision.headers(preflight=True))


def response_headers(
    store: Store, bucket: str | None, method: str, headers: dict[str, list[str]]
) -> dict[str, str]:
    """The CORS headers for a request from a browser (one with an Origin), {} if no rule allows it."""
    origin = (headers.get("origin") or [""])[0]
    rules = rules_of(store, bucket) if origin and bucket else None
    if not rules:
        return {}
    decision = cors.decide(rules, origin, method, [])
    return decision.headers(preflight=False) if decision is not None else {}
