"""Put, Get and DeleteBucketLifecycleConfiguration (the rules: :mod:`lifecycle`; acting on them:
:mod:`lifecycle_sweep`)."""

from __future__ import annotations

from resilin.storage import lifecycle, s3xml
from resilin.storage.bucket_setting_ops import deleting, get_setting, put_setting
from resilin.storage.context import Call, Response
from resilin.storage.lifecycle_sweep import SETTING


async def put_bucket_lifecycle(call: Call) -> Response:
    put_setting(call, SETTING, lambda body: [r.to_json() for r in lifecycle.parse(body)])
    return Response(200)


async def get_bucket_lifecycle(call: Call) -> Response:
    stored = get_setting(call, SETTING, lifecycle.no_configuration)
    return s3xml.response(lifecycle.to_xml([lifecycle.Rule.from_json(r) for r in stored]))


delete_bucket_lifecycle = deleting(SETTING)
