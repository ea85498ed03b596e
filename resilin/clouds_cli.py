"""``resilin clouds list`` and ``resilin clouds check``: the configured clouds, and whether each works.

``check`` asks each cloud, through its EC2 API, what Resilin will need from it:
that it answers and accepts the credentials (DescribeAvailabilityZones), that
every configured image exists (DescribeImages), and, where configured, that the
instance types, subnet and security groups exist.  Local clouds are served by
``resilin server``; their endpoints and keys are read from the running server.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from resilin.provisioners.ec2client import (
    UNSUPPORTED_ERRORS,
    EC2Client,
    ProvisioningError,
    error_code,
    error_text,
)
from resilin.service import local_runtime
from resilin.settings.config import CloudConfig, Settings

AUTH_ERRORS = {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch"}


def _credentials(cloud: CloudConfig) -> str:
    if cloud.kind == "local":
        return "made by the server"
    if cloud.profile:
        return f"profile {cloud.profile}"
    return "access key " + cloud.access_key[:4] + "…" if cloud.access_key else "environment"


def _types(cloud: CloudConfig) -> str:
    if not cloud.instance_types:
        return "what the cloud offers"
    parts = []
    for t in cloud.instance_types.values():
        price = f" ${t.hourly_price:g}/h" if t.hourly_price is not None else ""
        parts.append(f"{t.name} ({t.vcpus} vCPU, {t.memory_mib} MiB{price})")
    return ", ".join(parts)


def describe(settings: Settings, cloud: CloudConfig) -> dict:
    """One cloud's settings as ``list`` shows them (also its JSON output)."""
    images = dict(cloud.images)
    return {
        "Name": cloud.name,
        "Kind": cloud.kind,
        "Default": cloud.name == settings.default_cloud,
        "Endpoint": cloud.endpoint
        or ("(served by resilin server)" if cloud.kind == "local" else "(AWS, by region)"),
        "Region": cloud.region,
        "Subnet": cloud.subnet or cloud.subnet_id,
        "Credentials": _credentials(cloud),
        "Image": cloud.image_id or settings.node_image,
        "ImagesByRelease": images,
        "InstanceTypes": {
            t.name: {"VCpus": t.vcpus, "MemoryMiB": t.memory_mib, "HourlyPrice": t.hourly_price}
            for t in cloud.instance_types.values()
        },
        "Quota": {"Instances": cloud.quota.instances, "VCpus": cloud.quota.vcpus},
        "Fallback": list(cloud.fallback),
        "SshViaGateway": cloud.ssh_via_gateway,
        # Never the keys: which accounts have some is what an operator checks.
        "Storage": {
            "Endpoint": cloud.storage.endpoint,
            "Region": cloud.storage.region,
            "PathStyle": cloud.storage.path_style,
            "Accounts": sorted(cloud.storage.accounts),
            # 0: the nodes get the account's keys; else each cluster's session keys last this long.
            "SessionSeconds": cloud.storage.session_seconds,
        }
        if cloud.storage is not None
        else "Resilin's storage",
    }


def list_clouds(settings: Settings, output: str = "text", out: TextIO = sys.stdout) -> int:
    if output == "json":
        json.dump({"Clouds": [describe(settings, c) for c in settings.clouds]}, out, indent=2)
        out.write("\n")
        return 0
    if not settings.clouds:
        print("no clouds configured: add [[clouds]] to resilin.toml", file=out)
        return 0
    for cloud in settings.clouds:
        d = describe(settings, cloud)
        print(f"{cloud.name}{' (default)' if d['Default'] else ''}", file=out)
        rows = [
            ("kind", cloud.kind),
            ("endpoint", d["Endpoint"]),
            ("region", cloud.region),
            ("subnet", d["Subnet"] or "-"),
            ("credentials", d["Credentials"]),
            ("image", d["Image"]),
            *((f"image {label}", ref) for label, ref in sorted(cloud.images.items())),
            ("instance types", _types(cloud)),
            (
                "quota",
                ", ".join(f"{v} {k.lower()}" for k, v in d["Quota"].items() if v) or "none of Resilin's own",
            ),
            ("fallback", ", ".join(cloud.fallback) or "-"),
            *([("ssh", "through the cloud's gateway")] if cloud.ssh_via_gateway else []),
            (
                "storage",
                f"{cloud.storage.endpoint} (keys for {', '.join(sorted(cloud.storage.accounts)) or 'no account'}"
                + (
                    f"; nodes get {cloud.storage.session_seconds} s session keys)"
                    if cloud.storage.session_seconds
                    else ")"
                )
                if cloud.storage is not None
                else "Resilin's storage",
            ),
        ]
        for key, value in rows:
            print(f"  {key:<16} {value}", file=out)
    return 0


class _Report:
    """Prints each check as it ends, and keeps them (status, text) for a caller that shows them."""

    def __init__(self, out: TextIO, kept: list[tuple[str, str]] | None = None) -> None:
        self.out, self.failures = out, 0
        self.kept = kept if kept is not None else []

    def _line(self, status: str, what: str) -> None:
        self.kept.append((status, what))
        print(f"  {status:<5} {what}", file=self.out)

    def ok(self, what: str) -> None:
        self._line("ok", what)

    def fail(self, what: str) -> None:
        self.failures += 1
        self._line("FAIL", what)

    def skip(self, what: str) -> None:
        self._line("-", what)


def _client_for(settings: Settings, cloud: CloudConfig, report: _Report) -> EC2Client | None:
    if cloud.kind == "local":
        running = local_runtime.read(settings.home).get(cloud.name)
        if running is None:
            report.fail(f"not running: local clouds are served by `resilin server` (home {settings.home})")
            return None
        cloud = replace(
            cloud, endpoint=running.endpoint, access_key=running.access_key, secret_key=running.secret_key
        )
    try:
        return EC2Client(cloud, max_attempts=2)
    except ProfileNotFound:
        report.fail(f"AWS profile {cloud.profile!r} not found")
        return None


def _try(report: _Report, what: str, call: Callable[[], str]) -> bool:
    try:
        report.ok(f"{what}: {call()}")
        return True
    except (ClientError, BotoCoreError, ProvisioningError) as exc:
        if error_code(exc) in UNSUPPORTED_ERRORS:
            report.skip(f"{what}: not checked, the cloud does not answer {error_code(exc)}")
            return True
        report.fail(f"{what}: {error_text(exc)}")
        return False


def check_cloud(
    settings: Settings,
    cloud: CloudConfig,
    out: TextIO = sys.stdout,
    kept: list[tuple[str, str]] | None = None,
) -> bool:
    """Check ``cloud``, printing each check to ``out`` and adding it to ``kept`` (the console's page)."""
    report = _Report(out, kept)
    print(
        f"{cloud.name} ({cloud.kind}{', default' if cloud.name == settings.default_cloud else ''})", file=out
    )
    client = _client_for(settings, cloud, report)
    if client is None:
        return False
    try:
        zones = client.ec2.describe_availability_zones()["AvailabilityZones"]
    except EndpointConnectionError as exc:
        report.fail(f"unreachable: {exc}")
        return False
    except NoCredentialsError:
        report.fail(
            "no credentials: set access_key/secret_key or profile, or AWS_ACCESS_KEY_ID in the environment"
        )
        return False
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) in AUTH_ERRORS:
            report.fail(f"credentials refused ({error_text(exc)})")
        else:
            report.fail(f"the EC2 API failed: {error_text(exc)}")
        return False
    report.ok(
        f"reachable at {client.ec2.meta.endpoint_url}, credentials accepted "
        f"({', '.join(z['ZoneName'] for z in zones) or 'no availability zones'})"
    )
    images = {"default": cloud.image_id or settings.node_image, **cloud.images}
    for label, ref in images.items():
        _try(report, f"image {ref} ({label})", functools.partial(client.image_for, ref))
    if cloud.instance_types:

        def types() -> str:
            offered = client.ec2.describe_instance_types(InstanceTypes=sorted(cloud.instance_types))
            found = {t["InstanceType"] for t in offered["InstanceTypes"]}
            missing = sorted(set(cloud.instance_types) - found)
            if missing:
                raise ProvisioningError(f"not offered by the cloud: {', '.join(missing)}")
            return "all offered"

        _try(report, f"instance types {', '.join(sorted(cloud.instance_types))}", types)
    if cloud.subnet_id:
        _try(report, f"subnet {cloud.subnet_id}", lambda: f"in {client.vpc_of_subnet(cloud.subnet_id)}")
    if cloud.security_group_ids:
        _try(
            report,
            f"security groups {', '.join(cloud.security_group_ids)}",
            lambda: (
                f"{len(client.ec2.describe_security_groups(GroupIds=list(cloud.security_group_ids))['SecurityGroups'])} found"
            ),
        )
    return report.failures == 0


def check_clouds(settings: Settings, names: list[str], out: TextIO = sys.stdout) -> int:
    known = {c.name: c for c in settings.clouds}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown cloud(s): {', '.join(unknown)}; configured: {', '.join(known) or 'none'}", file=out)
        return 2
    chosen = [known[n] for n in names] if names else list(settings.clouds)
    results = [check_cloud(settings, cloud, out) for cloud in chosen]
    failed = [c.name for c, ok in zip(chosen, results, strict=True) if not ok]
    print(
        f"{len(chosen) - len(failed)} of {len(chosen)} cloud(s) ready"
        + (f"; failing: {', '.join(failed)}" if failed else ""),
        file=out,
    )
    return 1 if failed else 0
