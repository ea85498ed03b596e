"""EC2 tags: reading TagSpecifications, checking EC2's limits, and the Tags list shape."""

from __future__ import annotations

from typing import Any

from resilin.provisioners.localcloud.errors import EC2Error


def tags_from_specs(specs: list[dict[str, Any]], resource_type: str) -> dict[str, str]:
    """The tags that ``TagSpecifications`` give a resource of ``resource_type``."""
    tags: dict[str, str] = {}
    for spec in specs:
        if spec.get("ResourceType") != resource_type:
            continue
        for tag in spec.get("Tags") or []:
            tags[tag.get("Key", "")] = tag.get("Value", "")
    check_tags(tags)
    return tags


def tag_list(tags: dict[str, str]) -> list[dict[str, str]] | None:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())] or None


def check_tags(tags: dict[str, str]) -> None:
    if len(tags) > 50:
        raise EC2Error("TagLimitExceeded", "The maximum number of tags per resource (50) has been reached")
    for key, value in tags.items():
        if not key or len(key) > 128:
            raise EC2Error("InvalidParameterValue", f"Tag key '{key}' must be 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise EC2Error(
                "InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use"
            )
        if len(value) > 256:
            raise EC2Error("InvalidParameterValue", f"The value of tag '{key}' is longer than 256 characters")
