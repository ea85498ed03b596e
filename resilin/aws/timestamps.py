"""AWS's wire form of a moment: ISO 8601 in UTC with milliseconds, e.g. ``2024-05-06T07:08:09.123Z``."""

from __future__ import annotations

import datetime as dt


def iso8601(value: dt.datetime | float) -> str:
    """``value`` (an aware datetime, or epoch seconds) as AWS writes it in XML."""
    if isinstance(value, dt.datetime):
        moment = value.astimezone(dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
