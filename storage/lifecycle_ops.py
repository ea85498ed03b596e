"""Put, Get and DeleteBucketLifecycleConfiguration (the rules: :mod:`lifecycle`; acting on them:
:mod:`lifecycle_sweep`)."""

from __future__ import annotations

from resilin.storage import lifecycle, s3xml
from resilin.storage.bodies import require_integrity_header, small_body
from resilin.storage.context import Call, Response
from resilin.storage.lifecycle_sweep import SETTING, rules_of


async def put_bucket_lifecycle(call: Call) -> Response:
    info = call.owned_bucket()
    require_integrity_header(call)
    rules = lifecycle.parse(small_body(call))
    call.store.settings.put(info.name, SETTING, [r.to_json() for r in rules])
    return Response(200)


async def get_bucket_lifecycle(call: Call) -> Response:
    info = call.owned_bucket()
    rules = rules_of(call.store, info.name)
    if rules is None:
        raise lifecycle.no_configuration(info.name)
    return s3xml.response(lifecycle.to_xml(rules))


async def delete_bucket_lifecycle(call: Call) -> Response:
    info = call.owned_bucket()
    call.store.settings.delete(info.name, SETTING)
    return Response(204)
