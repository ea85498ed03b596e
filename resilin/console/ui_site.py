"""The console's second port: the clusters' web UIs, proxied through Resilin (see ui_proxy)."""

from __future__ import annotations

import http.client
import logging
from urllib.parse import urlsplit

import paramiko
from twisted.internet.threads import deferToThread
from twisted.web.server import Request, Site

from resilin.aws.httplimits import HttpLimits, protect
from resilin.aws.httputil import Answer, BoundedSite
from resilin.aws.request import RequestHead
from resilin.aws.skeleton import AwsResource
from resilin.clouds.ssh import SshError
from resilin.console import cluster_details, ui_proxy
from resilin.console.site import ConsoleContext, ConsoleError, caller_of

log = logging.getLogger(__name__)

# The UIs' pages run their own scripts (they are another origin than the console); they may not be
# framed, and their requests keep their Referer within this origin (how absolute paths find their UI).
UI_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status, {"Content-Type": "text/plain; charset=utf-8"} | (headers or {}), f"{message}\n".encode()
    )


class UiProxyResource(AwsResource[Answer]):
    def __init__(self, context: ConsoleContext) -> None:
        super().__init__()
        self.context = context

    def failed(self, head: RequestHead) -> Answer:
        return _text(500, "The web UI proxy failed; Resilin's log says why.")

    def send(self, request: Request, head: RequestHead, answer: Answer) -> None:
        super().send(request, head, Answer(answer.status, UI_HEADERS | dict(answer.headers), answer.body))

    async def answer(self, request: Request, head: RequestHead) -> Answer:
        try:
            return await self.proxy(head)
        except ConsoleError as exc:
            return _text(exc.status, exc.message)

    def back_to_prefix(self, head: RequestHead) -> Answer:
        """A path outside any UI's prefix: sent back under the prefix of the page that asked for it."""
        referer = urlsplit(head.header("referer"))
        found = ui_proxy.split_prefix(referer.path) if referer.netloc == head.header("host") else None
        if found is None:
            raise ConsoleError(404, "NotFound", f"No web UI at {head.raw_path}; open one from the console.")
        cid, ui, _ = found
        query = f"?{head.raw_query}" if head.raw_query else ""
        return Answer(307, {"Location": f"/{cid}/{ui}{head.raw_path}{query}"}, b"")

    async def proxy(self, head: RequestHead) -> Answer:
        if head.method not in ("GET", "HEAD"):
            raise ConsoleError(405, "MethodNotAllowed", "The web UIs are read here: GET only.")
        found = ui_proxy.split_prefix(head.raw_path)
        if found is None:
            return self.back_to_prefix(head)
        cid, ui, rest = found
        signed_in = self.context.session_of(head)
        if signed_in is None:
            raise ConsoleError(
                401, "NotSignedIn", "Sign in to Resilin's console first, then open the UI from there."
            )
        cluster = await deferToThread(self.context.visible_cluster, caller_of(signed_in[1]), cid)
        uis = cluster_details.web_uis(cluster)
        if ui not in uis:
            raise ConsoleError(404, "NotFound", f"{cid} has no web UI called {ui}; it has {', '.join(uis)}.")
        live = await deferToThread(self.context.live_master, cid)
        if live is None:
            raise ConsoleError(
                503, "NotRunning", f"{cid} is not running: its web UIs are reachable while it runs."
            )
        node, master = live
        target = rest + (f"?{head.raw_query}" if head.raw_query else "")
        headers = {name: values[0] for name, values in head.headers.items()}
        try:
            answer = await deferToThread(
                ui_proxy.fetch, node, master["private_ip"], uis[ui][1], head.method, target, headers
            )
        except (OSError, SshError, paramiko.SSHException, http.client.HTTPException) as exc:
            log.info("%s: the %s UI did not answer: %s", cid, ui, exc)
            raise ConsoleError(
                502, "BadGateway", f"The {uis[ui][0]} of {cid} did not answer: {exc}"
            ) from None
        addresses = [master["private_ip"], master["hostname"], master["public_ip"], master["public_dns"]]
        origins = ui_proxy.origins(addresses, {name: port for name, (_, port) in uis.items()}, cid)
        ui_proxy.rewrite(answer, origins, f"/{cid}/{ui}")
        return Answer(answer.status, answer.headers, answer.body)


def make_site(context: ConsoleContext, limits: HttpLimits | None = None) -> Site:
    resource = UiProxyResource(context)

    def too_large(request: Request) -> Answer:
        return _text(413, "The web UIs take no request bodies.")

    site = BoundedSite(resource, max_body=64 * 1024, too_large=too_large, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return protect(site, limits)
