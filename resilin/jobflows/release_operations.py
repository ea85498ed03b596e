"""Release metadata: ListReleaseLabels, DescribeReleaseLabel, ListSupportedInstanceTypes."""

from __future__ import annotations

from typing import Any

from resilin.errors import ValidationError
from resilin.jobflows import releases
from resilin.jobflows.base import ServiceBase, offset_marker, page
from resilin.jobflows.caller import Caller

DEFAULT_MAX_RESULTS = 100


def _token_page(items: list, token: str | None, size: int, key: str) -> dict[str, Any]:
    try:
        start = offset_marker(token)
    except Exception:
        raise ValidationError(f"NextToken '{token}' is not valid.") from None
    result: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        result["NextToken"] = str(start + size)
    return result


class ReleaseOperations(ServiceBase):
    def list_release_labels(self, who: str | Caller, params: dict) -> dict:
        filters = params.get("Filters") or {}
        prefix = filters.get("Prefix", "")
        application = filters.get("Application")
        labels = [
            label
            for label in releases.RELEASE_LABELS
            if label.startswith(prefix) and (not application or releases.offers_application(application))
        ]
        size = params.get("MaxResults", DEFAULT_MAX_RESULTS)
        return _token_page(labels, params.get("NextToken"), size, "ReleaseLabels")

    def describe_release_label(self, who: str | Caller, params: dict) -> dict:
        label = params.get("ReleaseLabel") or releases.RELEASE_LABELS[0]
        releases.check_release_label(label)
        size = params.get("MaxResults", DEFAULT_MAX_RESULTS)
        result = _token_page(list(releases.APPLICATIONS), params.get("NextToken"), size, "Applications")
        result["ReleaseLabel"] = label
        result["AvailableOSReleases"] = [{"Label": releases.OS_RELEASE_LABEL}]
        return result

    def list_supported_instance_types(self, who: str | Caller, params: dict) -> dict:
        releases.check_release_label(params["ReleaseLabel"])
        listed = releases.supported_instance_types(self.offered_types())
        return page(listed, params.get("Marker"), "SupportedInstanceTypes")
