"""The cluster's tags on its instances, as EMR keeps them: set at launch, and changed on every
instance when AddTags or RemoveTags changes the cluster's.

Tags Resilin sets itself (``resilin:*``, ``elasticmapreduce:*``, ``Name``) and those a cloud
reserves (``aws:*``) are never taken from or removed by the cluster's tags.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from resilin.jobflows.documents import ClusterDoc
from resilin.provisioners.ec2client import EC2Client, tags_of

_OWN_PREFIXES = ("resilin:", "elasticmapreduce:", "aws:")


def is_own_tag(key: str) -> bool:
    """Whether ``key`` is one Resilin or the cloud sets, not a user's."""
    return key == "Name" or key.lower().startswith(_OWN_PREFIXES)


def user_tags(cluster: ClusterDoc) -> dict[str, str]:
    """The cluster's tags that go onto its instances."""
    return {
        t["Key"]: t.get("Value", "")
        for t in cluster.get("tags") or []
        if t.get("Key") and not is_own_tag(t["Key"])
    }


def tag_changes(current: dict[str, str], wanted: dict[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """What to set and what to remove so that an instance tagged ``current`` carries ``wanted``."""
    setting = {k: v for k, v in wanted.items() if current.get(k) != v}
    removing = tuple(sorted(k for k in current if k not in wanted and not is_own_tag(k)))
    return setting, removing


def sync_instance_tags(client: EC2Client, instances: list[dict[str, Any]], wanted: dict[str, str]) -> int:
    """Bring the user tags of ``instances`` (boto3 Instance dicts) to ``wanted``, with one
    CreateTags and one DeleteTags per distinct change; returns how many instances changed."""
    sets: dict[tuple[tuple[str, str], ...], list[str]] = defaultdict(list)
    removals: dict[tuple[str, ...], list[str]] = defaultdict(list)
    changed = set()
    for inst in instances:
        setting, removing = tag_changes(tags_of(inst), wanted)
        if setting:
            sets[tuple(sorted(setting.items()))].append(inst["InstanceId"])
            changed.add(inst["InstanceId"])
        if removing:
            removals[removing].append(inst["InstanceId"])
            changed.add(inst["InstanceId"])
    for setting_items, ids in sets.items():
        client.create_tags(ids, dict(setting_items))
    for keys, ids in removals.items():
        client.delete_tags(ids, keys)
    return len(changed)
