"""The web console's HTTP service: its pages, its sign-in, and the calls its pages make.

The pages call Resilin's own EMR operations through ``POST /api/<Operation>``: the same
dispatcher as the EMR API, as the signed-in user (account and access key), so a page shows what
the API answers that user and nothing else.  A few reads the API has no operation for come from
the same documents, scoped the same way: ``/details/<cluster>`` (clouds, state history, web UIs),
``/logs/<cluster>/<step>/<log>`` (step logs, tailed live) and ``/clouds``.

Every call but sign-in needs the session cookie, and every one that changes anything needs the
session's CSRF token in ``X-Csrf-Token`` (a page of another site can send the cookie, never the
token, which only this origin's pages can read); a request whose Origin is another site's is
refused before anything else.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from twisted.internet.threads import deferToThread
from twisted.web.server import Request, Site

from resilin.api.dispatch import Dispatcher
from resilin.api.results import JSON_SCALARS
from resilin.aws.httplimits import HttpLimits, protect
from resilin.aws.httputil import Answer, BoundedSite
from resilin.aws.replay import SignatureLedger
from resilin.aws.request import RequestHead
from resilin.aws.sigv4 import CredentialLookup
from resilin.aws.skeleton import AwsResource
from resilin.clouds.ssh import Node
from resilin.console import cluster_details, signin, step_logs
from resilin.console.sessions import COOKIE, ConsoleSessions, Session
from resilin.errors import EmrError
from resilin.jobflows.caller import Caller
from resilin.jobflows.documents import ClusterDoc, InstanceDoc
from resilin.jobflows.releases import CloudOffer
from resilin.jobflows.store import JobFlowStore

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
STATIC = resources.files("resilin.console") / "static"
# The console's own pages run only the console's own files.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

LiveMaster = Callable[[str], tuple[Node, InstanceDoc] | None]


class ConsoleError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


NOT_SIGNED_IN = (401, "NotSignedIn", "Sign in first: your session has ended or was never opened.")


@dataclass
class ConsoleContext:
    """What the console reads and calls, all from the running ``resilin server``."""

    lookup: CredentialLookup  # the configured access keys
    region: str
    store: JobFlowStore
    sessions: ConsoleSessions
    ledger: SignatureLedger
    dispatcher: Dispatcher
    offers: Callable[[], Sequence[CloudOffer]]
    live_master: LiveMaster  # a running cluster's master and its SSH session
    log_storage: Callable[[ClusterDoc, Session], object]  # an S3 client on the cluster's LogUri
    clouds_page: Callable[[Caller], dict]
    ui_port: int  # the clusters' web UIs (resilin/console/ui_proxy.py)

    def session_of(self, head: RequestHead) -> tuple[str, Session] | None:
        """The request's session and its token, if its cookie names a live one whose key still exists."""
        token = cookie_token(head)
        session = self.sessions.find(token) if token else None
        if session is None:
            return None
        creds = self.lookup(session.access_key)
        if creds is None or creds.account_id != session.account_id:
            self.sessions.close(token)  # the key was removed from the configuration
            return None
        return token, session

    def visible_cluster(self, caller: Caller, cid: str) -> ClusterDoc:
        cluster = self.store.get_cluster(cid)
        if cluster is None or not caller.can_see(cluster):
            # The same answer for another account's cluster as for none at all.
            raise ConsoleError(404, "ResourceNotFound", f"Cluster id '{cid}' is not valid.")
        return cluster


def cookie_token(head: RequestHead) -> str:
    jar: SimpleCookie = SimpleCookie()
    for value in head.headers.get("cookie", []):
        try:
            jar.load(value)
        except Exception:  # a malformed cookie header names no session
            continue
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else ""


def caller_of(session: Session) -> Caller:
    return Caller(session.account_id, session.access_key)


def _json(status: int, document: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"Content-Type": "application/json"} | (headers or {}), orjson.dumps(document))


def _error(status: int, code: str, message: str) -> Answer:
    return _json(status, {"__type": code, "message": message})


def same_origin(head: RequestHead) -> bool:
    """False when the browser says the request comes from a page of another origin."""
    origin = head.header("origin")
    if not origin:
        return True  # not a browser's cross-origin request (browsers send Origin on those)
    return origin != "null" and urlsplit(origin).netloc == head.header("host")


class ConsoleResource(AwsResource[Answer]):
    def __init__(self, context: ConsoleContext) -> None:
        super().__init__()
        self.context = context

    def failed(self, head: RequestHead) -> Answer:
        return _error(500, "InternalServerError", "The console failed; the server's log says why.")

    def send(self, request: Request, head: RequestHead, answer: Answer) -> None:
        super().send(request, head, Answer(answer.status, COMMON_HEADERS | dict(answer.headers), answer.body))

    async def answer(self, request: Request, head: RequestHead) -> Answer:
        body = b""
        if request.content is not None:
            request.content.seek(0)
            body = request.content.read()
        try:
            if not same_origin(head):
                raise ConsoleError(403, "CrossOriginRequest", "Requests from other sites are refused.")
            return await self.route(head, body)
        except ConsoleError as exc:
            return _error(exc.status, exc.code, exc.message)

    async def route(self, head: RequestHead, body: bytes) -> Answer:
        path, method = head.raw_path, head.method
        if path in ("/", "/index.html") and method == "GET":
            return self.static("index.html", html=True)
        if path == "/favicon.ico":
            return Answer(204, {}, b"")  # none: a browser asks on every page
        if path.startswith("/static/") and method == "GET":
            return self.static(path.removeprefix("/static/"))
        if path == signin.SIGNIN_PATH and method == "GET":
            return await deferToThread(self.signin_link, head)
        if path == "/session":
            return await deferToThread(self.session_call, head, body)
        found = self.context.session_of(head)
        if found is None:
            raise ConsoleError(*NOT_SIGNED_IN)
        _, session = found
        if method not in ("GET", "HEAD") and not session.csrf_matches(head.header("x-csrf-token")):
            raise ConsoleError(
                403, "InvalidCsrfToken", "This action needs the page's CSRF token; reload the page."
            )
        parts = path.strip("/").split("/")
        caller = caller_of(session)
        if parts[0] == "api" and len(parts) == 2 and method == "POST":
            return await deferToThread(self.operation, caller, parts[1], body, head.request_id)
        if parts[0] == "details" and len(parts) == 2 and method == "GET":
            return await deferToThread(self.details, caller, parts[1], head)
        if parts[0] == "logs" and len(parts) == 4 and method == "GET":
            return await deferToThread(self.logs, session, parts[1], parts[2], parts[3], head.raw_query)
        if parts[0] == "clouds" and len(parts) == 1 and method == "GET":
            return await deferToThread(lambda: _json(200, self.context.clouds_page(caller)))
        raise ConsoleError(404, "NotFound", f"The console has no {method} {path}.")

    # -- pages ------------------------------------------------------------------------
    def static(self, name: str, html: bool = False) -> Answer:
        if "/" in name or name.startswith("."):
            raise ConsoleError(404, "NotFound", f"No file {name}.")
        file = STATIC / name
        if not file.is_file():
            raise ConsoleError(404, "NotFound", f"No file {name}.")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = {"Content-Type": f"{content_type}; charset=utf-8"}
        if html:
            headers["Content-Security-Policy"] = PAGE_POLICY
        return Answer(200, headers, file.read_bytes())

    # -- signing in and out -----------------------------------------------------------
    def _opened(self, account_id: str, access_key: str) -> tuple[dict[str, str], dict[str, str]]:
        token, session = self.context.sessions.open(account_id, access_key)
        cookie = (
            f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={self.context.sessions.lifetime}"
        )
        return {"Set-Cookie": cookie}, self._whoami(session)

    @staticmethod
    def _whoami(session: Session) -> dict[str, str]:
        return {"AccountId": session.account_id, "AccessKeyId": session.access_key,
                "CsrfToken": session.csrf_token}  # fmt: skip

    def signin_link(self, head: RequestHead) -> Answer:
        try:
            creds = signin.check_link(
                self.context.lookup,
                self.context.region,
                self.context.ledger,
                head.raw_query,
                head.header("host"),
            )
        except signin.SignInRefused as exc:
            return Answer(403, {"Content-Type": "text/plain; charset=utf-8"}, f"{exc}\n".encode())
        headers, _ = self._opened(creds.account_id, creds.access_key)
        return Answer(303, headers | {"Location": "/"}, b"")

    def session_call(self, head: RequestHead, body: bytes) -> Answer:
        if head.method == "POST":
            if not head.header("content-type").startswith("application/json"):
                raise ConsoleError(415, "UnsupportedMediaType", "Sign in with a JSON body.")
            try:
                form = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                raise ConsoleError(400, "SerializationException", "The body is not JSON.") from None
            if not isinstance(form, dict):
                raise ConsoleError(400, "SerializationException", "The body must be a JSON object.")
            try:
                creds = signin.check_secret(
                    self.context.lookup,
                    self.context.region,
                    str(form.get("AccessKeyId", "")),
                    str(form.get("SecretAccessKey", "")),
                )
            except signin.SignInRefused as exc:
                raise ConsoleError(403, "SignInRefused", str(exc)) from None
            headers, whoami = self._opened(creds.account_id, creds.access_key)
            return _json(200, whoami, headers)
        found = self.context.session_of(head)
        if found is None:
            raise ConsoleError(*NOT_SIGNED_IN)
        token, session = found
        if head.method == "GET":
            return _json(200, self._whoami(session))
        if head.method == "DELETE":
            if not session.csrf_matches(head.header("x-csrf-token")):
                raise ConsoleError(403, "InvalidCsrfToken", "Signing out needs the page's CSRF token.")
            self.context.sessions.close(token)
            expired = f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            return Answer(204, {"Set-Cookie": expired}, b"")
        raise ConsoleError(
            405, "MethodNotAllowed", f"/session answers GET, POST and DELETE, not {head.method}."
        )

    # -- what the pages call ----------------------------------------------------------
    def operation(self, caller: Caller, name: str, body: bytes, request_id: str) -> Answer:
        try:
            params = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return _error(400, "SerializationException", "The request body is not valid JSON.")
        try:
            result = self.context.dispatcher.execute(caller, name, params, JSON_SCALARS, request_id)
        except EmrError as exc:
            return _error(exc.status, exc.code, exc.message)
        return _json(200, result)

    def details(self, caller: Caller, cid: str, head: RequestHead) -> Answer:
        cluster = self.context.visible_cluster(caller, cid)
        instances = self.context.store.instances_of(cid)
        live = self.context.live_master(cid) if self.context.ui_port else None
        host = urlsplit("//" + head.header("host")).hostname or "127.0.0.1"
        ui_base = f"http://{host}:{self.context.ui_port}" if live is not None else None
        reason = (
            "The console runs without its web UI port (console_ui_port)."
            if not self.context.ui_port
            else "The web UIs are reachable while the cluster runs."
        )
        document = cluster_details.details(cluster, instances, self.context.offers(), ui_base, reason)
        return _json(200, document)

    def logs(self, session: Session, cid: str, sid: str, name: str, raw_query: str) -> Answer:
        cluster = self.context.visible_cluster(caller_of(session), cid)
        step = self.context.store.get_step(sid)
        if step is None or step["cluster_id"] != cid:
            raise ConsoleError(404, "ResourceNotFound", f"Step id '{sid}' is not a step of {cid}.")
        try:
            offset = int(parse_qs(raw_query).get("offset", ["0"])[0])
        except ValueError:
            raise ConsoleError(
                400, "ValidationException", "offset must be a whole number of bytes."
            ) from None
        if offset < 0:
            raise ConsoleError(400, "ValidationException", "offset must not be negative.")

        def master() -> Node | None:
            live = self.context.live_master(cid)
            return live[0] if live is not None else None

        try:
            chunk = step_logs.read(
                cluster, step, name, offset, master, lambda c: self.context.log_storage(c, session)
            )
        except step_logs.LogUnavailable as exc:
            raise ConsoleError(404, "LogUnavailable", str(exc)) from None
        return _json(200, chunk.as_json())


def make_site(context: ConsoleContext, limits: HttpLimits | None = None) -> Site:
    resource = ConsoleResource(context)

    def too_large(request: Request) -> Answer:
        return _error(413, "RequestEntityTooLarge", f"A console request is at most {MAX_BODY >> 20} MiB.")

    site = BoundedSite(resource, max_body=MAX_BODY, too_large=too_large, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return protect(site, limits)
