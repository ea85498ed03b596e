"""PutBucketTagging, GetBucketTagging and DeleteBucketTagging: a bucket's tag set, kept with the
bucket's settings.  (An object's tags: :mod:`object_tagging_ops`.)"""

from __future__ import annotations

from resilin.storage.bucket_setting_ops import deleting, get_setting, put_setting
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error
from resilin.storage.tag_sets import parse_tag_set, tag_set_response

SETTING = "tagging"


async def put_bucket_tagging(call: Call) -> Response:
    put_setting(call, SETTING, parse_tag_set)
    return Response(204)


def _no_tag_set(bucket: str) -> S3Error:
    return S3Error("NoSuchTagSet", "The TagSet does not exist", 404, extra={"BucketName": bucket})


async def get_bucket_tagging(call: Call) -> Response:
    return tag_set_response(get_setting(call, SETTING, _no_tag_set))


delete_bucket_tagging = deleting(SETTING)
