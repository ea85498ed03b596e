"""The ``resilin`` command: run the services, run the end-to-end demo against them, or act on clusters."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from resilin.service.children import Child, ChildFailed
from resilin.settings import config as config_module


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3", "paramiko"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_server(args: argparse.Namespace) -> int:
    from resilin.service import server

    _configure_logging(args.verbose)
    try:
        server.serve(args.home)
    except config_module.ConfigError as exc:
        print(f"resilin: {exc}", file=sys.stderr)
        return 2
    except server.HostNotReady as exc:
        print(
            "resilin: this host is not ready to run Resilin (`resilin doctor` checks it again):",
            file=sys.stderr,
        )
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _settings_or_say_why(home: Path | None) -> config_module.Settings | None:
    """The configuration, or None after saying on stderr what is wrong with it."""
    try:
        return config_module.load(home)
    except config_module.ConfigError as exc:
        print(f"resilin: {exc}", file=sys.stderr)
        return None


def cmd_doctor(args: argparse.Namespace) -> int:
    from resilin.settings import preflight

    settings = _settings_or_say_why(args.home)
    if settings is None:
        return 2
    findings = preflight.check(settings, ports=args.ports)
    ready = preflight.report(findings, print)
    print("this host is ready to run Resilin" if ready else "this host is NOT ready to run Resilin")
    return 0 if ready else 1


class DemoFailed(Exception):
    """The demo could not go on; the message says why, for the user."""


class RunningServer:
    """A ``resilin server`` child process, started for the demo when none is answering."""

    def __init__(self, home: Path, settings: config_module.Settings) -> None:
        self.home = home
        self.settings = settings
        self.child: Child | None = None

    def api_answers(self) -> bool:
        from resilin.clouds.ssh import port_open

        return port_open(config_module.connect_address(self.settings.api_host), self.settings.api_port)

    def __enter__(self) -> RunningServer:
        if self.api_answers():
            print(f"using the Resilin already listening on {self.settings.api_host}:{self.settings.api_port}")
            return self
        log_path = self.home / "server.log"
        print(f"starting Resilin (log: {log_path})")
        command = [sys.executable, "-m", "resilin", "--home", str(self.home), "server"]
        self.child = Child("resilin server", command, log_path, new_session=True, stop_grace=60)
        try:
            self.child.start(timeout=120)
        except ChildFailed:
            raise DemoFailed(
                "Resilin did not start; the end of " + str(log_path) + ":\n" + self.child.log_tail(15)
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        if self.child is not None:
            self.child.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from resilin import demo

    home = Path(args.home or config_module.DEFAULT_HOME)
    settings = _settings_or_say_why(home)
    if settings is None:
        return 2
    creds = settings.accounts[0]
    endpoints = demo.Endpoints(
        api=f"http://{config_module.connect_address(settings.api_host)}:{settings.api_port}",
        storage=f"http://{config_module.connect_address(settings.bind_host)}:{settings.storage_port}",
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        region=settings.region,
    )
    ok = True
    try:
        with RunningServer(home, settings):
            print("== word count through boto3")
            result = demo.wordcount(
                endpoints, bucket=args.bucket, core=args.core_instances, instance_type=args.instance_type
            )
            ok &= demo.report(result)
            if args.with_cli:
                print("== the same through the AWS CLI")
                result = demo.wordcount_with_cli(
                    endpoints,
                    settings.home,
                    bucket=args.bucket + "-cli",
                    core=args.core_instances,
                    instance_type=args.instance_type,
                )
                ok &= demo.report(result)
    except (DemoFailed, BotoCoreError, ClientError, RuntimeError, TimeoutError) as exc:
        print(f"FAILED: {exc}")
        ok = False
    leftovers = demo.leftover_instances([c.name for c in settings.clouds if c.kind == "local"])
    if leftovers:
        print(f"FAILED: containers of clusters still exist: {', '.join(leftovers)}")
        ok = False
    else:
        print("no cluster container is left")
    return 0 if ok else 1


def cmd_clouds(args: argparse.Namespace) -> int:
    from resilin import clouds_cli

    settings = _settings_or_say_why(args.home)
    if settings is None:
        return 2
    if args.clouds_command == "list":
        return clouds_cli.list_clouds(settings, args.output)
    return clouds_cli.check_clouds(settings, args.names)


def cmd_clusters(args: argparse.Namespace) -> int:
    from resilin import clusters_cli

    settings = _settings_or_say_why(args.home)
    if settings is None:
        return 2
    client = clusters_cli.emr_client(settings, args.endpoint_url)
    return clusters_cli.relocate(
        client, args.cluster_id, args.to, args.instance_groups, wait=args.wait, output=args.output
    )


def cmd_console_url(args: argparse.Namespace) -> int:
    from resilin.console.signin import presigned_link

    settings = _settings_or_say_why(args.home)
    if settings is None:
        return 2
    if not settings.console_port:
        print("resilin: the web console is off: set console_port in resilin.toml", file=sys.stderr)
        return 2
    chosen = [c for c in settings.accounts if args.access_key in (None, c.access_key)]
    if not chosen:
        print(f"resilin: no account has the access key {args.access_key}", file=sys.stderr)
        return 2
    base = f"http://{config_module.connect_address(settings.api_host)}:{settings.console_port}"
    try:
        print(presigned_link(base, chosen[0], settings.region, args.expires_in))
    except ValueError as exc:
        print(f"resilin: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_models_path(args: argparse.Namespace) -> int:
    from resilin.api import models

    print(models.data_path())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resilin", description=__doc__)
    parser.add_argument("--home", type=Path, default=os.environ.get("RESILIN_HOME"),
                        help="Resilin's home: configuration, data and logs (default ~/.resilin)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("server", help="run the EMR API, storage, local clouds and orchestrator").set_defaults(
        func=cmd_server
    )
    doctor = sub.add_parser("doctor", help="check that this host has what Resilin and its local clouds need")
    doctor.add_argument("--no-ports", dest="ports", action="store_false",
                        help="leave out the free-port checks (while Resilin itself is running)")  # fmt: skip
    doctor.set_defaults(func=cmd_doctor)
    demo_parser = sub.add_parser("demo", help="run a word count end to end through the EMR API")
    demo_parser.add_argument("--bucket", default="demo")
    demo_parser.add_argument("--core-instances", type=int, default=2)
    demo_parser.add_argument("--instance-type", default="m5.xlarge", help="every node's instance type")
    demo_parser.add_argument("--no-cli", dest="with_cli", action="store_false",
                             help="skip the second run through the AWS CLI")  # fmt: skip
    demo_parser.set_defaults(func=cmd_demo)
    clouds = sub.add_parser("clouds", help="show the configured clouds, or check that each one works")
    clouds_sub = clouds.add_subparsers(dest="clouds_command", required=True)
    listing = clouds_sub.add_parser("list", help="the clouds of resilin.toml and their settings")
    listing.add_argument("--output", choices=["text", "json"], default="text")
    checking = clouds_sub.add_parser(
        "check", help="reachable, credentials accepted, images and types present"
    )
    checking.add_argument("names", nargs="*", metavar="CLOUD", help="clouds to check (default: all)")
    clouds.set_defaults(func=cmd_clouds)
    _add_clusters(sub)
    console = sub.add_parser(
        "console-url",
        help="print a sign-in link to the web console: presigned with an account's key, expiring, usable once",
    )
    console.add_argument("--access-key", help="the account's access key (default: the first of resilin.toml)")
    console.add_argument("--expires-in", type=int, default=3600, metavar="SECONDS",
                         help="how long the link may be used, as for `aws s3 presign` (default 3600)")  # fmt: skip
    console.set_defaults(func=cmd_console_url)
    sub.add_parser(
        "models-path",
        help="the directory of Resilin's EMR operations for boto3 and the AWS CLI: "
        "export AWS_DATA_PATH=$(resilin models-path)",
    ).set_defaults(func=cmd_models_path)
    args = parser.parse_args(argv)
    return args.func(args)


def _instance_group(spec: str) -> dict[str, str]:
    from resilin.clusters_cli import instance_group  # boto3 is loaded only by the commands that use it

    return instance_group(spec)


def _add_clusters(sub: argparse._SubParsersAction) -> None:
    clusters = sub.add_parser("clusters", help="act on clusters through the running Resilin's EMR API")
    clusters_sub = clusters.add_subparsers(dest="clusters_command", required=True)
    relocate = clusters_sub.add_parser(
        "relocate",
        help="move a cluster, or some of its instance groups, to another cloud (RelocateCluster)",
        description="Ask Resilin to move a WAITING or RUNNING cluster to another configured cloud, then "
        "follow the move until it ends (exit status 0 when it completed).",
    )
    relocate.add_argument("cluster_id", metavar="CLUSTER_ID", help="the cluster (j-...)")
    relocate.add_argument("--to", required=True, metavar="CLOUD", help="the destination cloud's name")
    relocate.add_argument("--instance-group", dest="instance_groups", action="append", default=[],
                          type=_instance_group, metavar="ID[=TYPE]",
                          help="move only this group (repeatable), with another instance type if given; "
                          "default: every group, with its own type")  # fmt: skip
    relocate.add_argument("--no-wait", dest="wait", action="store_false",
                          help="return once the relocation is accepted")  # fmt: skip
    relocate.add_argument("--output", choices=["text", "json"], default="text")
    relocate.add_argument("--endpoint-url", help="the EMR API (default: api_port of resilin.toml)")
    clusters.set_defaults(func=cmd_clusters)


if __name__ == "__main__":
    sys.exit(main())
