"""Which EMR release labels Resilin can run, and what each one gives."""

from __future__ import annotations

import re

from resilin.errors import ValidationError

HADOOP_VERSION = "3.5.0"
DEFAULT_RELEASE_LABEL = "emr-7.5.0"
_SUPPORTED_LABEL = re.compile(r"^emr-(5|6|7)\.\d+\.\d+$")
SUPPORTED_APPLICATIONS = {"hadoop"}


def check_release_label(label: str) -> None:
    if not _SUPPORTED_LABEL.match(label):
        raise ValidationError(f"The requested release label '{label}' is not supported.")


def applications(requested: list[dict]) -> list[dict]:
    """The applications a cluster runs: Hadoop always; anything else is refused for now."""
    for app in requested:
        if app.get("Name", "").lower() not in SUPPORTED_APPLICATIONS:
            raise ValidationError(f"Specified application: {app.get('Name')} is invalid.")
    return [{"Name": "Hadoop", "Version": HADOOP_VERSION}]
