"""Tags and policies: AddTags, RemoveTags, auto-termination, managed scaling and automatic scaling.

Policies are stored on the cluster (or its instance group) and returned as given; the
cluster worker reads ``auto_termination_policy`` to end an idle cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import ids, views
from resilin.jobflows.base import ServiceBase
from resilin.jobflows.caller import Caller
from resilin.jobflows.documents import ClusterDoc, InstanceGroupDoc, Tag
from resilin.jobflows.instance_requests import INSTANCE_FLEET, stored_auto_scaling_policy

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MIN_IDLE_TIMEOUT = 60
MAX_IDLE_TIMEOUT = 7 * 24 * 3600
DEFAULT_IDLE_TIMEOUT = 3600


def check_tags(tags: Sequence[Mapping[str, Any]]) -> list[Tag]:
    """Tags as stored: each key once (the last value wins, as EMR keeps it)."""
    merged: dict[str, str] = {}
    for tag in tags:
        key = tag.get("Key")
        value = tag.get("Value", "")
        if not key:
            raise ValidationError("A tag key must not be empty.")
        if len(key) > MAX_TAG_KEY:
            raise ValidationError(f"Tag key '{key[:40]}…' is longer than {MAX_TAG_KEY} characters.")
        if len(value) > MAX_TAG_VALUE:
            raise ValidationError(f"The value of tag '{key}' is longer than {MAX_TAG_VALUE} characters.")
        if key.lower().startswith("aws:"):
            raise ValidationError(f"Tag key '{key}' uses the prefix 'aws:', which is reserved for AWS use.")
        merged[key] = value
    if len(merged) > MAX_TAGS:
        raise ValidationError(f"A cluster can have at most {MAX_TAGS} tags.")
    return [{"Key": k, "Value": v} for k, v in merged.items()]


def auto_termination_policy(policy: dict) -> dict:
    timeout = policy.get("IdleTimeout", DEFAULT_IDLE_TIMEOUT)
    if not MIN_IDLE_TIMEOUT <= timeout <= MAX_IDLE_TIMEOUT:
        raise ValidationError(
            f"The idle timeout must be between {MIN_IDLE_TIMEOUT} and {MAX_IDLE_TIMEOUT} seconds, not {timeout}."
        )
    return {"IdleTimeout": timeout}


def managed_scaling_policy(policy: dict, collection: str) -> dict:
    limits = policy.get("ComputeLimits")
    if limits is None:
        raise ValidationError("A managed scaling policy needs ComputeLimits.")
    low, high = limits["MinimumCapacityUnits"], limits["MaximumCapacityUnits"]
    if low < 1:
        raise ValidationError("MinimumCapacityUnits must be at least 1.")
    if high < low:
        raise ValidationError("MaximumCapacityUnits must not be less than MinimumCapacityUnits.")
    for name in ("MaximumOnDemandCapacityUnits", "MaximumCoreCapacityUnits"):
        if name in limits and not 0 <= limits[name] <= high:
            raise ValidationError(f"{name} must be between 0 and MaximumCapacityUnits.")
    fleets = collection == INSTANCE_FLEET
    if (limits["UnitType"] == "InstanceFleetUnits") != fleets:
        raise ValidationError(
            "UnitType InstanceFleetUnits is for clusters with instance fleets; "
            "clusters with instance groups use Instances or VCPU."
        )
    return dict(policy)


class PolicyOperations(ServiceBase):
    # -- tags -------------------------------------------------------------
    def _tagged_cluster(self, who: str | Caller, params: dict) -> ClusterDoc:
        resource = params["ResourceId"]
        if not ids.CLUSTER_ID.match(resource):
            raise InvalidRequest(f"Resource id '{resource}' is not valid: only clusters can be tagged here.")
        cluster_id = params.get("ClusterId")
        if cluster_id and cluster_id != resource:
            raise InvalidRequest(f"ClusterId '{cluster_id}' does not match ResourceId '{resource}'.")
        return self._cluster(who, resource)

    def add_tags(self, who: str | Caller, params: dict) -> dict:
        cluster = self._tagged_cluster(who, params)
        new = check_tags(params["Tags"])
        if not new:
            raise ValidationError("At least one tag must be given.")

        def change(c: ClusterDoc) -> None:
            c["tags"] = check_tags(c["tags"] + new)

        # Tags may be changed after a cluster ended, as on EMR.
        self.store.update_cluster(cluster["id"], change)
        return {}

    def remove_tags(self, who: str | Caller, params: dict) -> dict:
        cluster = self._tagged_cluster(who, params)
        keys = set(params["TagKeys"])

        def change(c: ClusterDoc) -> None:
            c["tags"] = [t for t in c["tags"] if t["Key"] not in keys]

        self.store.update_cluster(cluster["id"], change)
        return {}

    # -- auto-termination -------------------------------------------------
    def put_auto_termination_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])
        policy = auto_termination_policy(params.get("AutoTerminationPolicy") or {})

        def change(c: ClusterDoc) -> None:
            c["auto_termination_policy"] = policy

        self._update(cluster["id"], change)
        self.store.notify(cluster["id"])
        return {}

    def get_auto_termination_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        policy = cluster.get("auto_termination_policy")
        return {"AutoTerminationPolicy": policy} if policy else {}

    def remove_auto_termination_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])

        def change(c: ClusterDoc) -> None:
            c["auto_termination_policy"] = None

        self._update(cluster["id"], change)
        self.store.notify(cluster["id"])
        return {}

    # -- managed scaling --------------------------------------------------
    def put_managed_scaling_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])
        collection = cluster.get("instance_collection_type", "INSTANCE_GROUP")
        policy = managed_scaling_policy(params["ManagedScalingPolicy"], collection)
        if any(g.get("auto_scaling_policy") for g in cluster["groups"]):
            raise ValidationError(
                "Managed scaling cannot be used on a cluster whose instance groups have automatic scaling policies."
            )

        def change(c: ClusterDoc) -> None:
            c["managed_scaling_policy"] = policy

        self._update(cluster["id"], change)
        return {}

    def get_managed_scaling_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        policy = cluster.get("managed_scaling_policy")
        return {"ManagedScalingPolicy": policy} if policy else {}

    def remove_managed_scaling_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])

        def change(c: ClusterDoc) -> None:
            c["managed_scaling_policy"] = None

        self._update(cluster["id"], change)
        return {}

    # -- automatic scaling of instance groups -----------------------------
    def _scalable_group(self, cluster: ClusterDoc, group_id: str) -> InstanceGroupDoc:
        group = next((g for g in cluster["groups"] if g["id"] == group_id), None)
        if group is None or "fleet" in group:
            raise InvalidRequest(f"Instance group id '{group_id}' is not valid.")
        if group["role"] == "MASTER":
            raise ValidationError("Automatic scaling policies apply to core and task instance groups only.")
        return group

    def put_auto_scaling_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])
        group = self._scalable_group(cluster, params["InstanceGroupId"])
        if not cluster.get("auto_scaling_role"):
            raise ValidationError("An AutoScalingRole is required to attach an automatic scaling policy.")
        if cluster.get("managed_scaling_policy"):
            raise ValidationError(
                "Automatic scaling policies cannot be used on a cluster with managed scaling."
            )
        policy = stored_auto_scaling_policy(params["AutoScalingPolicy"])

        def change(c: ClusterDoc) -> None:
            for g in c["groups"]:
                if g["id"] == group["id"]:
                    g["auto_scaling_policy"] = policy

        self._update(cluster["id"], change)
        return {
            "ClusterId": cluster["id"],
            "InstanceGroupId": group["id"],
            "AutoScalingPolicy": views.auto_scaling_policy(policy),
            "ClusterArn": cluster["arn"],
        }

    def remove_auto_scaling_policy(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])
        group = self._scalable_group(cluster, params["InstanceGroupId"])

        def change(c: ClusterDoc) -> None:
            for g in c["groups"]:
                if g["id"] == group["id"]:
                    g["auto_scaling_policy"] = None

        self._update(cluster["id"], change)
        return {}
