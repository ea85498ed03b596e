"""Run the storage service on its own: ``python -m resilin.storage --data-dir DIR --port N ...``.

Prints ``listening on http://HOST:PORT`` once the port is open (``--port 0``
picks a free one, which is how the tests start it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from resilin.aws.httplimits import add_limit_option, limits_from_options
from resilin.aws.sigv4 import Credentials
from resilin.settings.private_files import private_process
from resilin.storage.ingest import MAX_OBJECT_SIZE
from resilin.storage.lifecycle_sweep import DEFAULT_INTERVAL_S
from resilin.storage.server import make_site


def _account(text: str) -> Credentials:
    access, sep, rest = text.partition(":")
    secret, sep2, account = rest.rpartition(":")
    if not (sep and sep2 and access and secret and account):
        raise argparse.ArgumentTypeError("expected ACCESS_KEY:SECRET_KEY:ACCOUNT_ID")
    return Credentials(access, secret, account)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m resilin.storage", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--access-key")
    parser.add_argument("--secret-key")
    parser.add_argument("--account-id", default="000000000000")
    parser.add_argument(
        "--account",
        type=_account,
        action="append",
        default=[],
        help="ACCESS_KEY:SECRET_KEY:ACCOUNT_ID (repeatable)",
    )
    parser.add_argument("--virtual-host-base", help="accept bucket.<base> virtual-host-style requests")
    parser.add_argument(
        "--max-object-size", type=int, default=MAX_OBJECT_SIZE, help="largest single PUT or copy, in bytes"
    )
    parser.add_argument("--log", action="store_true", help="log every request to stderr (errors always are)")
    parser.add_argument(
        "--lifecycle-interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help="seconds between two applications of the buckets' lifecycle rules (0: never)",
    )
    add_limit_option(parser)
    args = parser.parse_args(argv)
    args.limits = limits_from_options(parser, args)
    if bool(args.access_key) != bool(args.secret_key):
        parser.error("--access-key and --secret-key go together")
    if args.access_key:
        args.account.append(Credentials(args.access_key, args.secret_key, args.account_id))
    if not args.account:
        parser.error("give --access-key/--secret-key or at least one --account")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    private_process()  # objects and spooled bodies are readable by this user only
    accounts = {c.access_key: c for c in args.account}
    level = LogLevel.info if args.log else LogLevel.warn
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=level)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    site = make_site(
        args.data_dir,
        accounts.get,
        args.region,
        virtual_host_base=args.virtual_host_base,
        max_object_size=args.max_object_size,
        access_log=args.log,
        limits=args.limits,
        lifecycle_interval=args.lifecycle_interval,
    )
    # Site is a ServerFactory; Twisted's annotation of listenTCP asks for a narrower generic one.
    port = reactor.listenTCP(args.port, site, interface=args.host)  # type: ignore[arg-type]
    address = cast(IPv4Address, port.getHost())
    print(f"listening on http://{args.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
