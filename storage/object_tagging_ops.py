"""PutObjectTagging, GetObjectTagging and DeleteObjectTagging: an object's tags live in its
metadata, changed in place without touching its data (:func:`writes.rewrite_metadata`)."""

from __future__ import annotations

from resilin.storage import object_tags, versioning
from resilin.storage.bodies import small_body
from resilin.storage.context import Call, Response
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
    version = versioning.object_version(call.store, bucket, key, call.query.get("versionId"), call.method)
    assert version.meta is not None
    return tag_set_response(dict(sorted(version.meta.tags.items())))


async def _set_tags(call: Call, bucket: str, key: str, tags: dict[str, str]) -> None:
    version = versioning.object_version(call.store, bucket, key, call.query.get("versionId"), call.method)

    def change(meta: ObjectMeta) -> ObjectMeta:
        meta.tags = tags
        return meta

    await rewrite_metadata(call.store, bucket, key, change, None if version.current else version.path)
