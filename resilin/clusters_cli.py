"""``resilin clusters relocate``: RelocateCluster through the running Resilin's EMR API, then its progress.

A client like any other: boto3 with Resilin's EMR model (resilin.api.models), the endpoint and
first account of ``resilin.toml`` (as ``resilin demo`` uses them).  Errors are printed as the AWS
CLI prints them, with AWS CLI v2's exit status for a service error (254).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from resilin.api import models
from resilin.settings.config import Settings, connect_address

POLL_SECONDS = 2.0
SERVICE_ERROR = 254  # AWS CLI v2's exit status when the service answers an error
CLIENT_ERROR = 255  # and when the request could not be made (no connection, ...)
MIB = 1024 * 1024


def instance_group(spec: str) -> dict[str, str]:
    """``--instance-group ID[=TYPE]`` as a RelocationInstanceGroup."""
    gid, _, instance_type = spec.partition("=")
    gid, instance_type = gid.strip(), instance_type.strip()
    if not gid or (not instance_type and "=" in spec):
        raise argparse.ArgumentTypeError(f"expected ID or ID=TYPE, not {spec!r}")
    return (
        {"InstanceGroupId": gid, "InstanceType": instance_type} if instance_type else {"InstanceGroupId": gid}
    )


def endpoint(settings: Settings) -> str:
    return f"http://{connect_address(settings.api_host)}:{settings.api_port}"


def emr_client(settings: Settings, endpoint_url: str | None = None) -> Any:
    """An EMR client of the configured Resilin that knows RelocateCluster."""
    creds = settings.accounts[0]
    return boto3.Session(botocore_session=models.emr_session()).client(
        "emr",
        endpoint_url=endpoint_url or endpoint(settings),
        region_name=settings.region,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
    )


# -- what is printed ---------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def _duration(seconds: int) -> str:
    minutes, seconds = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def progress_line(relocation: dict[str, Any]) -> str:
    """One line of a relocation in progress: its phase and what is known of the transfer."""
    phase = relocation.get("Phase", "PENDING").replace("_", " ").lower()
    parts = []
    if "BytesTotal" in relocation:
        parts.append(f"{_mib(relocation.get('BytesSent', 0))}/{_mib(relocation['BytesTotal'])} MiB")
    elif "BytesSent" in relocation:
        parts.append(f"{_mib(relocation['BytesSent'])} MiB")
    if "ChunksTotal" in relocation:
        parts.append(f"chunks {relocation.get('ChunksSent', 0)}/{relocation['ChunksTotal']}")
    if "EstimatedSecondsLeft" in relocation:
        parts.append(f"ETA {_duration(relocation['EstimatedSecondsLeft'])}")
    return f"{phase}: {', '.join(parts)}" if parts else phase


def outcome_line(record: dict[str, Any]) -> str:
    """The line saying how a relocation ended."""
    figures = []
    if "BytesSent" in record:
        figures.append(f"{_mib(record['BytesSent'])} MiB sent")
    if "DowntimeSeconds" in record:
        figures.append(f"downtime {_duration(record['DowntimeSeconds'])}")
    line = f"{record.get('Outcome', 'ENDED')}: {record.get('Message', '')}".rstrip(": ")
    return f"{line} ({', '.join(figures)})" if figures else line


def requested_line(cid: str, answer: dict[str, Any]) -> str:
    relocation = answer.get("Relocation", {})
    groups = ", ".join(
        f"{g['InstanceGroupId']} as {g.get('InstanceType', '?')}"
        for g in relocation.get("InstanceGroups", [])
    )
    source = relocation.get("SourceCloud")
    return f"relocating {cid}{f' from {source}' if source else ''} to {answer.get('TargetCloud')}: {groups}"


def _json(document: Any, out: TextIO) -> None:
    # As the AWS CLI prints: 4 spaces, dates in ISO 8601.
    json.dump(
        document, out, indent=4, default=lambda v: v.isoformat() if isinstance(v, dt.datetime) else str(v)
    )
    out.write("\n")


def _without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def ended_record(described: dict[str, Any], requested: dt.datetime | None) -> dict[str, Any] | None:
    """The past relocation that ``requested`` started (the newest one if none matches)."""
    past = described.get("PastRelocations") or []
    if requested is not None:
        for record in past:
            when = record.get("RequestDateTime")
            if when is not None and abs((when - requested).total_seconds()) < 0.01:
                return record
    return past[0] if past else None


# -- the command -------------------------------------------------------------------------------


class Watcher:
    """Polls DescribeClusterRelocation until the relocation ends, printing what changes."""

    def __init__(
        self,
        client: Any,
        cid: str,
        say: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
        interval: float = POLL_SECONDS,
    ) -> None:
        self.client, self.cid, self.say, self.sleep, self.interval = client, cid, say, sleep, interval

    def until_ended(self, requested: dt.datetime | None) -> dict[str, Any] | None:
        last = ""
        while True:
            described = self.client.describe_cluster_relocation(ClusterId=self.cid)
            relocation = described.get("Relocation")
            if relocation is None:
                return ended_record(described, requested)
            line = progress_line(relocation)
            if line != last:
                self.say(f"{dt.datetime.now():%H:%M:%S} {line}")
                last = line
            self.sleep(self.interval)


def relocate(
    client: Any,
    cid: str,
    target: str,
    groups: list[dict[str, str]],
    wait: bool = True,
    output: str = "text",
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Request the relocation and, with ``wait``, follow it to its end: 0 when it COMPLETED."""
    request: dict[str, Any] = {"ClusterId": cid, "TargetCloud": target}
    if groups:
        request["InstanceGroups"] = groups
    try:
        answer = _without_metadata(client.relocate_cluster(**request))
        if not wait:
            if output == "json":
                _json(answer, out)
            else:
                print(requested_line(cid, answer), file=out)
            return 0
        # In JSON, stdout carries the outcome alone; the progress goes to stderr.
        progress = err if output == "json" else out
        print(requested_line(cid, answer), file=progress, flush=True)
        watcher = Watcher(client, cid, lambda line: print(line, file=progress, flush=True), sleep)
        record = watcher.until_ended(answer.get("Relocation", {}).get("RequestDateTime"))
    except ClientError as exc:
        print(f"\n{exc}", file=err)  # "An error occurred (Code) when calling the Operation operation: ..."
        return SERVICE_ERROR
    except BotoCoreError as exc:
        print(f"\n{exc}", file=err)
        return CLIENT_ERROR
    except KeyboardInterrupt:
        print(
            f"\nstopped following {cid}; its relocation goes on (DescribeClusterRelocation follows it)",
            file=err,
        )
        return 130
    if record is None:
        print("the relocation ended without a record of its outcome", file=err)
        return 1
    if output == "json":
        _json(record, out)
    else:
        print(outcome_line(record), file=out)
    return 0 if record.get("Outcome") == "COMPLETED" else 1
