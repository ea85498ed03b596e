"""The local cloud's admin resource, ``/admin/…`` on the EC2 endpoint's port: faults and kills.

Not part of EC2: a small JSON API for the cloud's operator, SigV4-signed like
any request (service ``ec2``) and refused to every account but the operators'.

- ``GET /admin/faults``: the faults in force;
- ``PUT /admin/faults``: change some (JSON object, see :mod:`faults`);
- ``DELETE /admin/faults``: clear them all;
- ``POST /admin/instances/<id>/kill``: kill an instance's processes at once;
- ``GET|PUT|DELETE /admin/instances/<id>/wan``: the shaping of an instance's WAN link (it needs a
  public address): ``{"rate_mbit": R, "delay_ms": D}``, one of them at least, limits it to
  R Mbit/s each way and adds D ms each way (:mod:`wan_faults`); DELETE clears it.

Errors are JSON too: ``{"Error": {"Code": …, "Message": …}}`` with a 4xx status.  Requests go
through the AWS request skeleton (:mod:`resilin.aws.skeleton`) like the EC2 endpoint's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from twisted.web.server import Request

from resilin.aws import sigv4
from resilin.aws.httputil import Answer
from resilin.aws.request import RequestHead
from resilin.aws.skeleton import AwsResource
from resilin.provisioners.localcloud.auth import signed_account
from resilin.provisioners.localcloud.cloud import LocalCloud
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.faults import Faults, FaultsError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class AdminResource(AwsResource[Answer]):
    def __init__(
        self,
        cloud: LocalCloud,
        lookup: sigv4.CredentialLookup,
        operators: Collection[str],
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.cloud = cloud
        self.lookup = lookup
        self.operators = set(operators)  # account ids allowed here
        self.ready = ready  # waits for the cloud's start (which restores the WAN's wiring, say)

    async def answer(self, request: Request, head: RequestHead) -> Answer:
        try:
            body = request.content.read(MAX_BODY + 1) if request.content else b""
            if len(body) > MAX_BODY:
                raise EC2Error("RequestEntityTooLarge", "The request is too large", 413)
            self._authorize(request, body)
            if self.ready is not None:
                await self.ready()
            return _json(200, await self._route(request, body))
        except EC2Error as exc:
            return _json(exc.status, {"Error": {"Code": exc.code, "Message": exc.message}})

    def failed(self, head: RequestHead) -> Answer:
        return _json(500, {"Error": {"Code": "InternalError", "Message": "An internal error has occurred"}})

    def _authorize(self, request: Request, body: bytes) -> None:
        if signed_account(request, body, self.lookup, self.cloud.cloud.region) not in self.operators:
            raise EC2Error("AccessDenied", "Only the cloud's operator may use the admin API", 403)

    async def _route(self, request: Request, body: bytes) -> dict[str, Any]:
        method = request.method.decode("latin-1")
        parts = [p.decode("utf-8", "replace") for p in request.postpath or [] if p]
        faults: Faults = self.cloud.faults
        if parts == ["faults"]:
            if method == "GET":
                return faults.to_json()
            if method == "PUT":
                try:
                    faults.update(json.loads(body or b"{}"))
                except (ValueError, FaultsError) as exc:
                    raise EC2Error("InvalidParameterValue", str(exc)) from None
                log.warning("local cloud %s: faults now %s", self.cloud.cloud.name, faults.to_json())
                return faults.to_json()
            if method == "DELETE":
                faults.clear()
                return faults.to_json()
            raise EC2Error("MethodNotAllowed", f"{method} is not allowed on /admin/faults", 405)
        if len(parts) == 3 and parts[0] == "instances" and parts[2] == "kill":
            if method != "POST":
                raise EC2Error("MethodNotAllowed", f"{method} is not allowed here; use POST", 405)
            log.warning("local cloud %s: killing %s through the admin API", self.cloud.cloud.name, parts[1])
            return await self.cloud.kill(None, parts[1])
        if len(parts) == 3 and parts[0] == "instances" and parts[2] == "wan":
            return await self._wan(method, parts[1], body)
        raise EC2Error("NotFound", f"No admin resource at /admin/{'/'.join(parts)}", 404)

    async def _wan(self, method: str, instance_id: str, body: bytes) -> dict[str, Any]:
        faults = self.cloud.wan_faults
        if method == "GET":
            return await faults.shaping(instance_id)
        if method == "PUT":
            try:
                changes = json.loads(body or b"{}")
            except ValueError:
                raise EC2Error("InvalidParameterValue", "the body must be a JSON object") from None
            log.warning(
                "local cloud %s: shaping the WAN link of %s: %s", self.cloud.cloud.name, instance_id, changes
            )
            return await faults.shape(instance_id, changes)
        if method == "DELETE":
            return await faults.unshape(instance_id)
        raise EC2Error("MethodNotAllowed", f"{method} is not allowed on /admin/instances/…/wan", 405)


def _json(status: int, payload: dict[str, Any]) -> Answer:
    return Answer(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
