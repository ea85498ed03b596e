"""A real HTTP hop in front of moto's EC2 server that misbehaves as EC2 does under load.

Rules are matched per request on the EC2 ``Action`` (and, optionally, the cloud's
region from the SigV4 credential scope), the first matching rule in order being
used up by the request: let it through, refuse it with an EC2 error
(InsufficientInstanceCapacity, RequestLimitExceeded, InstanceLimitExceeded …), or
shrink a RunInstances' MaxCount (partial fulfilment), a given number of times;
``after`` runs a hook with moto's answer (to kill a freshly launched instance, say).
Every request is recorded.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Form = dict[str, list[str]]


@dataclass
class Rule:
    action: str
    times: int
    region: str | None = None
    error: tuple[str, int] | None = None  # (code, HTTP status)
    max_count: int | None = None
    after: Callable[[Form, bytes], None] | None = None


@dataclass
class Call:
    action: str
    region: str
    form: Form
    answered: str = "upstream"  # or the error code the proxy answered with


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._up = urllib.parse.urlsplit(self.upstream)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                proxy._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # Rules -------------------------------------------------------------------------

    def fail(
        self, action: str, code: str, status: int = 400, times: int = 1, region: str | None = None
    ) -> None:
        self.rules.append(Rule(action, times, region, error=(code, status)))

    def shrink(self, max_count: int, times: int = 1, region: str | None = None) -> None:
        """The next RunInstances get at most ``max_count`` instances (the cloud's partial fulfilment)."""
        self.rules.append(Rule("RunInstances", times, region, max_count=max_count))

    def after(self, action: str, hook: Callable[[Form, bytes], None], times: int = 1) -> None:
        self.rules.append(Rule(action, times, after=hook))

    def let_through(self, action: str, times: int = 1, region: str | None = None) -> None:
        """The next matching requests reach moto untouched (put before a rule that refuses)."""
        self.rules.insert(0, Rule(action, times, region))

    def answered(self, action: str) -> list[str]:
        return [c.answered for c in self.calls if c.action == action]

    # Serving -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, action: str, region: str) -> list[Rule]:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.action == action and rule.region in (None, region):
                    rule.times -= 1
                    return [rule]
            return []

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        action = form.get("Action", [""])[0]
        scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/", handler.headers.get("Authorization", ""))
        region = scope.group(1) if scope else ""
        call = Call(action, region, form)
        self.calls.append(call)
        rules = self._take(action, region)
        for rule in rules:
            if rule.error:
                code, status = rule.error
                call.answered = code
                payload = (
                    f"<Response><Errors><Error><Code>{code}</Code><Message>{code} (injected)</Message>"
                    f"</Error></Errors><RequestID>injected</RequestID></Response>"
                ).encode()
                self._reply(handler, status, payload, "text/xml")
                return
        for rule in rules:
            if rule.max_count is not None:
                low = int(form.get("MinCount", ["1"])[0])
                form["MaxCount"] = [str(max(low, min(int(form["MaxCount"][0]), rule.max_count)))]
                body = urllib.parse.urlencode(form, doseq=True).encode()
        # moto does not check signatures, so a rewritten body goes through.
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "content-length"}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self._up.hostname, self._up.port, timeout=60)
        conn.request("POST", handler.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        for rule in rules:
            if rule.after is not None:
                rule.after(form, data)
        self._reply(handler, response.status, data, response.getheader("Content-Type", "text/xml"))

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
