"""What the operations on a bucket's settings documents (CORS, tags, lifecycle) share: the owner's
PUT of a checked document, its GET, and its DELETE (:mod:`bucket_settings` keeps them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from resilin.storage.bodies import require_integrity_header, small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error


def put_setting(call: Call, name: str, document_of: Callable[[bytes], Any]) -> None:
    """Store the document ``document_of`` makes of the body (it raises on a bad one: nothing changes)."""
    info = call.owned_bucket()
    require_integrity_header(call)
    call.store.settings.put(info.name, name, document_of(small_body(call)))


def get_setting(call: Call, name: str, missing: Callable[[str], S3Error]) -> Any:
    """The bucket's document; ``missing(bucket)`` is raised when it has none."""
    info = call.owned_bucket()
    document = call.store.settings.get(info.name, name)
    if document is None:
        raise missing(info.name)
    return document


def deleting(name: str) -> Callable[[Call], Awaitable[Response]]:
    """The DELETE operation of the document ``name`` (204, whether or not there was one)."""

    async def delete(call: Call) -> Response:
        call.store.settings.delete(call.owned_bucket().name, name)
        return Response(204)

    return delete
