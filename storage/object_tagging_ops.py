"""PutObjectTagging, GetObjectTagging and DeleteObjectTagging: an object's tags live in its
metadata, changed in place without touching its data (:func:`writes.rewrite_metadata`)."""

from __future__ import annotations

from resilin.storage import object_tags
from resilin.storage.bodies import small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import no_such_key
from resilin.storage.names import check_key
from resilin.storage.objfile import ObjectMeta
from resilin.storage.tag_sets import tag_set_response
from resilin.storage.writes import rewrite_metadata


async def put_object_tagging(call: Call) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    tags = object_tags.from_document(small_body(call))
    await _set_tags(call, bucket, key, tags)
    return Response(200)


async def delete_object_tagging(call: Call) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    await _set_tags(call, bucket, key, {})
    return Response(204)


async def get_object_tagging(call: Call) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    meta = call.store.head_object(bucket, key)
    if meta is None:
        raise no_such_key(key)
    return tag_set_response(dict(sorted(meta.tags.items())))


async def _set_tags(call: Call, bucket: str, key: str, tags: dict[str, str]) -> None:
    if call.store.head_object(bucket, key) is None:
        raise no_such_key(key)

    def change(meta: ObjectMeta) -> ObjectMeta:
        meta.tags = tags
        return meta

    await rewrite_metadata(call.store, bucket, key, change)
