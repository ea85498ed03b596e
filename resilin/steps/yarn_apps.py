"""The YARN applications a step started, found in its logs, and the command that kills them.

Killing a step's process on the master does not stop what it submitted to YARN: a
MapReduce job's ApplicationMaster keeps running on the cluster.  The Hadoop client
logs ``Submitted application application_<cluster-timestamp>_<n>`` for each job it
submits (YarnClientImpl), which is how a cancelled step's applications are found.
"""

from __future__ import annotations

import re
import shlex

_SUBMITTED = re.compile(r"Submitted application (application_\d+_\d+)")


def submitted_applications(*logs: str) -> list[str]:
    """Application ids the logs say were submitted, first seen first, each once."""
    seen: dict[str, None] = {}
    for text in logs:
        for match in _SUBMITTED.finditer(text):
            seen.setdefault(match.group(1), None)
    return list(seen)


def kill_command(app_ids: list[str]) -> str:
    """One ``yarn application -kill`` for all of them (one JVM start, not one per application)."""
    if not app_ids:
        return "true"
    return "yarn application -kill " + " ".join(shlex.quote(a) for a in app_ids)
