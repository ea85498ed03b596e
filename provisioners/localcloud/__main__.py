"""Run one local cloud: ``python -m resilin.provisioners.localcloud --cloud NAME --subnet CIDR ...``.

Prints ``listening on http://HOST:PORT/`` once it serves (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import cast

import redis
from twisted.internet import reactor
from twisted.internet.interfaces import IReactorThreads

from resilin.aws.httplimits import add_limit_option, limits_from_options
from resilin.aws.sigv4 import Credentials
from resilin.provisioners.localcloud.fence_hook import FenceHook
from resilin.provisioners.localcloud.podman import PodmanError
from resilin.provisioners.localcloud.podman_api import PodmanApi, PodmanService
from resilin.provisioners.localcloud.server import ensure_network, local_cloud, make_site
from resilin.provisioners.localcloud.wan import ensure as ensure_wan
from resilin.service.ports import adopt, listening_socket
from resilin.settings.cloud_config import Quota
from resilin.settings.config import CloudConfig
from resilin.settings.private_files import private_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilin.provisioners.localcloud", description=__doc__)
    parser.add_argument("--cloud", required=True, help="cloud name (network resilin-NAME, Redis prefix)")
    parser.add_argument("--subnet", required=True, help="CIDR of the cloud's container network")
    parser.add_argument("--port", type=int, required=True, help="0: any free port (printed)")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--image", action="append", required=True, help="node image reference (repeatable)")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--account-id", required=True)
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ACCESS:SECRET:ACCOUNT_ID",
        help="a further account allowed to use this cloud (repeatable)",
    )
    parser.add_argument("--max-instances", type=int, help="instances each account may run (default 64)")
    parser.add_argument("--max-vcpus", type=int, help="vCPUs each account may run (default: no limit)")
    parser.add_argument(
        "--operator",
        action="append",
        default=[],
        metavar="ACCOUNT_ID",
        help="an account allowed to use /admin/ (repeatable; default: the --account-id one)",
    )
    parser.add_argument("--wan-network", help="the installation's WAN network, shared by its local clouds")
    parser.add_argument("--wan-subnet", help="the WAN's subnet (made with it if missing); public addresses")
    add_limit_option(parser)
    args = parser.parse_args(argv)
    limits = limits_from_options(parser, args)

    private_process()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sock = listening_socket(args.bind, args.port)  # bound first: the endpoint names the port
    endpoint = f"http://{args.bind}:{sock.getsockname()[1]}/"
    cloud = CloudConfig(
        name=args.cloud,
        endpoint=endpoint,
        region=args.region,
        access_key=args.access_key,
        secret_key=args.secret_key,
        kind="local",
        subnet=args.subnet,
        quota=Quota(instances=args.max_instances, vcpus=args.max_vcpus),
    )
    accounts = {args.access_key: Credentials(args.access_key, args.secret_key, args.account_id)}
    for spec in args.account:
        access, secret, account_id = spec.rsplit(":", 2) if spec.count(":") >= 2 else ("", "", "")
        if not (access and secret and account_id):
            parser.error(f"--account {spec!r}: expected ACCESS:SECRET:ACCOUNT_ID")
        accounts[access] = Credentials(access, secret, account_id)
    try:  # fail here, with a message, rather than answer every request with an error
        gateway = ensure_network(cloud)
    except PodmanError as exc:
        parser.exit(1, f"cannot create the network of cloud {args.cloud}: {exc}\n")
    wan = None
    if args.wan_network:
        try:
            wan = ensure_wan(args.wan_network, args.wan_subnet or "")
        except PodmanError as exc:
            parser.exit(1, f"cannot create the WAN network {args.wan_network}: {exc}\n")
    elif args.wan_subnet:
        parser.error("--wan-subnet needs --wan-network")
    fence_hook = FenceHook.create()  # instances' firewalls, loaded as podman starts them
    reactor.addSystemEventTrigger("after", "shutdown", fence_hook.remove)
    try:
        service = PodmanService(fence_hook=fence_hook).start()
    except PodmanError as exc:
        fence_hook.remove()
        parser.exit(1, f"cannot start podman's service: {exc}\n")
    reactor.addSystemEventTrigger("after", "shutdown", service.stop)
    site = make_site(
        cloud,
        redis.Redis.from_url(args.redis_url, decode_responses=True),
        accounts.get,
        args.image,
        operators=args.operator or [args.account_id],
        podman=PodmanApi(service),
        limits=limits,
        wan=wan,
    )
    adopt(sock, site)
    # Delay lines rewire the WAN: put it back as it was before the process ends.
    reactor.addSystemEventTrigger("before", "shutdown", local_cloud(site).wan_faults.stop)
    logging.getLogger(__name__).info(
        "local cloud %s serving EC2 on %s; instances reach the host at %s", args.cloud, endpoint, gateway
    )
    reactor.callWhenRunning(print, f"listening on {endpoint}", flush=True)
    # podman calls run in threads: launches of many instances at once
    cast(IReactorThreads, reactor).suggestThreadPoolSize(32)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
