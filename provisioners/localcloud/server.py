"""The local cloud's HTTP endpoint: EC2's Query protocol over Twisted, and its admin resource.

A request is authenticated (SigV4, service ``ec2``), its ``Action`` looked up in
botocore's EC2 model, its parameters decoded per the operation's input shape,
handed to :class:`LocalCloud`, and the result encoded per the output shape.
Paths under ``/admin/`` go to the operator's :class:`AdminResource` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import redis
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from resilin.aws import sigv4
from resilin.aws.httplimits import HttpLimits, protect
from resilin.aws.httputil import Answer, BoundedSite
from resilin.aws.request import RequestHead
from resilin.aws.skeleton import AwsResource, new_request_id
from resilin.provisioners.localcloud import ec2protocol
from resilin.provisioners.localcloud.admin import AdminResource
from resilin.provisioners.localcloud.auth import signed_account
from resilin.provisioners.localcloud.cloud import LocalCloud
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.podman import Podman
from resilin.provisioners.localcloud.wan import Wan
from resilin.settings.config import CloudConfig

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # EC2 Query requests are small; refuse anything absurd


class _Startup:
    """Requests wait until the cloud's network exists; a failed start is reported to each caller."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.done = False
        self.failure: str | None = None
        self._waiters: list[Deferred] = []
        Deferred.fromCoroutine(cloud.start()).addCallbacks(self._ok, self._failed)

    def _ok(self, _: object) -> None:
        self.done = True
        for w in self._waiters:
            w.callback(None)
        self._waiters.clear()

    def _failed(self, failure: Failure) -> None:
        self.failure = failure.getErrorMessage()
        log.error("local cloud failed to start: %s", self.failure)
        for w in self._waiters:
            w.callback(None)
        self._waiters.clear()

    async def wait(self) -> None:
        if not self.done and self.failure is None:
            d: Deferred = Deferred()
            self._waiters.append(d)
            await d
        if self.failure is not None:
            raise EC2Error("Unavailable", f"The local cloud could not start: {self.failure}", 503)


class EC2Resource(AwsResource[Answer]):
    def __init__(self, cloud: LocalCloud, lookup: sigv4.CredentialLookup) -> None:
        super().__init__()
        self.cloud = cloud
        self.lookup = lookup
        self.startup = _Startup(cloud)

    async def answer(self, request: Request, head: RequestHead) -> Answer:
        try:
            return _xml(200, await self._dispatch(request, head))
        except EC2Error as exc:
            return _xml(exc.status, ec2protocol.error(exc, head.request_id))

    def failed(self, head: RequestHead) -> Answer:
        error = EC2Error("InternalError", "An internal error has occurred", 500)
        return _xml(500, ec2protocol.error(error, head.request_id))

    async def _dispatch(self, request: Request, head: RequestHead) -> bytes:
        body = request.content.read() if request.content else b""  # at most MAX_BODY: see too_large
        account = signed_account(request, body, self.lookup, self.cloud.cloud.region)
        params = sigv4.parse_query(head.raw_query)
        if request.method == b"POST":
            try:
                params += sigv4.parse_query(body.decode("utf-8"))
            except UnicodeDecodeError:
                raise EC2Error("InvalidParameterValue", "The request body is not UTF-8") from None
        action = next((v for k, v in params if k == "Action"), "")
        if not action:
            raise EC2Error("MissingAction", "The request must contain the parameter Action")
        op = ec2protocol.operation(action)
        handler = self.cloud.operations.get(action)
        if handler is None:
            raise EC2Error("UnsupportedOperation", f"The local cloud does not support {action}.")
        if self.cloud.faults.take_throttle(action):
            raise EC2Error("RequestLimitExceeded", "Request limit exceeded.", 503)
        decoded = ec2protocol.decode(params, op.input_shape)
        if decoded.pop("DryRun", False):
            raise EC2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)
        await self.startup.wait()
        result = await handler(account, decoded)
        return ec2protocol.response(op, result, head.request_id)


def _xml(status: int, body: bytes) -> Answer:
    return Answer(status, {"Content-Type": ec2protocol.CONTENT_TYPE}, body)


class Root(Resource):
    """``/admin/…`` to the admin resource, every other path to the EC2 endpoint."""

    def __init__(self, ec2: EC2Resource, admin: AdminResource) -> None:
        super().__init__()
        self.ec2, self.admin = ec2, admin
        self.cloud = ec2.cloud

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"admin":
            return self.admin
        # Twisted declares both paths optional; they are lists while a request is traversed.
        assert request.postpath is not None and request.prepath is not None
        request.postpath.insert(0, path)  # the EC2 endpoint answers on any path
        request.prepath.pop()
        return self.ec2

    def render(self, request: Request) -> Any:
        return self.ec2.render(request)


def too_large(request: Request) -> Answer:
    """The answer to a body over MAX_BODY, sent before it is read (see BoundedRequest)."""
    error = EC2Error("RequestEntityTooLarge", "The request is too large", 413)
    return _xml(413, ec2protocol.error(error, new_request_id()))


def make_site(
    cloud: CloudConfig,
    redis_client: redis.Redis,
    lookup: sigv4.CredentialLookup,
    image: str | Sequence[str],
    *,
    operators: Collection[str] = (),
    podman: Podman | None = None,
    limits: HttpLimits | None = None,
    wan: Wan | None = None,
) -> Site:
    """A Site serving ``cloud``'s EC2 endpoint; :func:`local_cloud` gives its :class:`LocalCloud`.

    The cloud's network is created (if missing) in the background once the
    reactor runs; requests wait for that.  ``image`` is the node image
    reference(s) offered through DescribeImages; ``operators`` are the account
    ids allowed to use the admin resource; ``wan`` is the installation's WAN (public addresses).
    """
    images = [image] if isinstance(image, str) else list(image)
    local = LocalCloud(cloud, redis_client, images, podman=podman, wan=wan)
    ec2 = EC2Resource(local, lookup)
    root = Root(ec2, AdminResource(local, lookup, operators, ready=ec2.startup.wait))
    site = BoundedSite(root, max_body=MAX_BODY, too_large=too_large)
    return protect(site, limits)  # deadlines and connection caps (resilin/aws/httplimits.py)


def network_name(cloud_name: str) -> str:
    return f"resilin-{cloud_name}"


def ensure_network(cloud: CloudConfig, podman: Podman | None = None) -> str:
    """Create ``cloud``'s isolated network if missing (blocking); returns its gateway IP.

    The gateway is the host's address on that network: instances reach services
    running on the host (storage, the API) through it.
    """
    podman = podman or Podman()
    name = network_name(cloud.name)
    podman.ensure_network(name, cloud.subnet, {"resilin.cloud": cloud.name})
    return podman.network_gateway(name)


def bridge_interface(cloud_name: str, podman: Podman | None = None) -> str:
    """The host's bridge interface of an existing cloud network, e.g. ``podman1`` (blocking)."""
    found = (podman or Podman()).network_inspect(network_name(cloud_name)).get("network_interface", "")
    if not found:
        raise RuntimeError(f"network {network_name(cloud_name)} has no bridge interface")
    return found


def gateway_ip(cloud_name: str, podman: Podman | None = None) -> str:
    """The gateway IP of an existing cloud network (blocking)."""
    return (podman or Podman()).network_gateway(network_name(cloud_name))


def local_cloud(site: Site) -> LocalCloud:
    """The :class:`LocalCloud` behind a site made by :func:`make_site`."""
    return site.resource.cloud
