"""The clusters' web UIs (HDFS, YARN, MapReduce and Spark history) reached through Resilin.

A user's browser cannot reach a cluster's master on a real cloud; Resilin can, over the SSH
session it keeps to it.  Each request for ``/<cluster>/<ui>/<path>`` on the console's UI port
goes through that session (a ``direct-tcpip`` channel opened by the master's sshd) to the UI's
port on the master, as EMR's on-cluster application UIs are proxied.

These pages are the cluster's, and a cluster runs its users' code: they are served on a port of
their own, so they are another origin than the console and their scripts cannot act in it.  The
console's session cookie (HttpOnly) reaches this port too (cookies do not tell ports apart): it
says who is asking, and is never passed on to the cluster.

The UIs link with absolute paths (``/cluster/apps``, ``/jmx?qry=…``) and with the master's own
address; a request for a path outside any ``/<cluster>/<ui>/`` prefix is sent back there, with
the prefix of the page it came from (its Referer), and the master's addresses in pages are
rewritten to their prefix.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Mapping
from dataclasses import dataclass

from resilin.clouds.ssh import Node

TIMEOUT = 30.0
MAX_BODY = 64 * 1024 * 1024
# Request headers passed to a UI; never Cookie or Authorization (the console's, not the cluster's).
FORWARDED = ("accept", "accept-language", "if-modified-since", "if-none-match", "user-agent",
             "x-requested-with")  # fmt: skip
# Response headers passed back; the rest (hop-by-hop, cookies, the UI's own framing rules) are not.
RETURNED = ("content-type", "last-modified", "etag", "cache-control", "expires", "location")
_TEXT = re.compile(r"text/|javascript|json|xml", re.I)
_PREFIX = re.compile(r"^/(j-[A-Za-z0-9]+)/([a-z]+)(/.*)?$")


@dataclass
class UiAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def split_prefix(path: str) -> tuple[str, str, str] | None:
    """(cluster id, UI name, rest of the path) of ``/<cluster>/<ui>/<rest>``; None otherwise."""
    match = _PREFIX.match(path)
    if match is None:
        return None
    return match.group(1), match.group(2), match.group(3) or "/"


def fetch(
    master: Node, address: str, port: int, method: str, target: str, headers: Mapping[str, str]
) -> UiAnswer:
    """One request to ``address:port`` as seen from the master, through its SSH session."""
    transport = master.connect().get_transport()
    if transport is None:
        raise OSError(f"{master.host}: the SSH connection is gone")
    channel = transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=TIMEOUT)
    channel.settimeout(TIMEOUT)
    connection = http.client.HTTPConnection(address, port, timeout=TIMEOUT)
    connection.sock = channel  # a connected socket-like channel
    try:
        sent = {k: v for k, v in headers.items() if k.lower() in FORWARDED}
        connection.request(method, target, headers=sent | {"Accept-Encoding": "identity"})
        response = connection.getresponse()
        body = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise OSError(f"the answer is larger than {MAX_BODY >> 20} MiB")
        kept = {k.lower(): v for k, v in response.getheaders() if k.lower() in RETURNED}
        return UiAnswer(response.status, kept, body)
    finally:
        connection.close()
        channel.close()


def rewrite(answer: UiAnswer, addresses: Mapping[str, str], prefix: str) -> UiAnswer:
    """``answer`` with each of the master's UI origins (``http://10.0.0.5:8088``) replaced by its
    prefix on the proxy (``/j-…/resourcemanager``), in its Location and in any text body; a
    redirect to an absolute path stays under ``prefix``, the UI's own."""
    location = answer.headers.get("location")
    if location:
        for origin, other in addresses.items():
            if location.startswith(origin):
                location = other + location[len(origin) :]
        if location.startswith("/") and not location.startswith("//") and split_prefix(location) is None:
            location = prefix + location
        answer.headers["location"] = location
    if _TEXT.search(answer.headers.get("content-type", "")):
        body = answer.body
        for origin, other in addresses.items():
            body = body.replace(origin.encode(), other.encode())
        answer.body = body
    return answer


def origins(master_addresses: list[str], ports: Mapping[str, int], cluster_id: str) -> dict[str, str]:
    """Each UI's origin on the master (by every address it is known by) → its prefix on the proxy."""
    return {
        f"http://{address}:{port}": f"/{cluster_id}/{name}"
        for address in master_addresses
        if address
        for name, port in ports.items()
    }
