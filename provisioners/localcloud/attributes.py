"""ModifyInstanceAttribute / DescribeInstanceAttribute: the source/destination check.

SourceDestCheck is the one attribute the local cloud changes: off, the instance
forwards and has a host-made TUN device (:mod:`srcdest`); on again, both go.
The setting is kept in the instance's record and put back in the instance's
new namespace every time it starts, together with its account's routes.  Other
attributes are refused with UnsupportedOperation rather than ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.threads import deferToThread

from resilin.provisioners.localcloud import srcdest
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.routetables import Finder, RouteTables, is_running
from resilin.provisioners.localcloud.store import InstanceRecord, Store

log = logging.getLogger(__name__)

# ModifyInstanceAttribute's members that each name one attribute to change.
ATTRIBUTE_MEMBERS = (
    "SourceDestCheck", "DisableApiTermination", "DisableApiStop", "EbsOptimized", "EnaSupport",
    "InstanceType", "Kernel", "Ramdisk", "UserData", "InstanceInitiatedShutdownBehavior", "Groups",
    "SriovNetSupport", "BlockDeviceMappings", "EnclaveOptions",
)  # fmt: skip


def _boolean(value: Any) -> bool:
    text = str(value).lower()
    if text not in ("true", "false"):
        raise EC2Error(
            "InvalidParameterValue", f"Value ({value}) for parameter value is invalid. Expected a boolean."
        )
    return text == "true"


def asked_source_dest_check(params: dict[str, Any]) -> bool:
    """The SourceDestCheck value asked for, in either form of the call; EC2's errors otherwise."""
    given = [m for m in ATTRIBUTE_MEMBERS if params.get(m) is not None]
    if params.get("Attribute"):
        given.append(f"Attribute={params['Attribute']}")
    if not given:
        raise EC2Error("InvalidParameterCombination", "No attributes specified.")
    if len(given) > 1:
        raise EC2Error("InvalidParameterCombination", "Fields for multiple attribute types specified.")
    if params.get("Attribute") == "sourceDestCheck":
        if params.get("Value") is None:
            raise EC2Error("MissingParameter", "The request must contain the parameter value")
        return _boolean(params["Value"])
    if given == ["SourceDestCheck"] and "Value" in params["SourceDestCheck"]:
        return _boolean(params["SourceDestCheck"]["Value"])
    if given == ["SourceDestCheck"]:
        raise EC2Error("MissingParameter", "The request must contain the parameter SourceDestCheck.Value")
    name = params.get("Attribute") or given[0]
    raise EC2Error("UnsupportedOperation", f"The local cloud does not support modifying {name}.")


class InstanceAttributes:
    def __init__(self, store: Store, find: Finder, pid: Callable[[str], int], routes: RouteTables) -> None:
        """``pid``: the process holding an instance's namespaces (blocking)."""
        self.store, self.find, self.pid, self.routes = store, find, pid, routes

    async def modify_instance_attribute(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        check = asked_source_dest_check(params)
        [(found, name)] = await self.find(account, [params["InstanceId"]])
        if name in ("terminated", "shutting-down"):
            raise EC2Error(
                "IncorrectInstanceState", f"The instance '{found.instance_id}' is not in a valid state."
            )
        record = self.store.get(found.instance_id) or found
        record.source_dest_check = check
        self.store.save(record)
        if is_running(record):
            # A stopped or pending instance gets it when it starts (instance_up).
            await self.instance_up(record, fresh=False)
        return {}

    async def describe_instance_attribute(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        attribute = params["Attribute"]
        if attribute != "sourceDestCheck":
            raise EC2Error(
                "UnsupportedOperation", f"The local cloud does not describe the attribute {attribute}."
            )
        [(found, _)] = await self.find(account, [params["InstanceId"]])
        record = self.store.get(found.instance_id) or found
        return {"InstanceId": record.instance_id, "SourceDestCheck": {"Value": record.source_dest_check}}

    async def instance_up(self, record: InstanceRecord, fresh: bool = True) -> None:
        """The instance runs in a new namespace (``fresh``: launched or started again) or its
        attribute changed: its forwarding, TUN device and routes."""
        record = self.store.get(record.instance_id) or record
        if not is_running(record):
            return
        # A fresh namespace has no TUN device and forwards as the host's does (its forward chain
        # still applies the instance's groups): only an instance with the check off needs work.
        if not record.source_dest_check or not fresh:
            try:
                await deferToThread(self._forwarding, record.instance_id, record.source_dest_check)
            except Exception as exc:
                log.error("forwarding of %s not set: %s", record.instance_id, exc)
        await self.routes.apply(record.account, [record.instance_id])

    def _forwarding(self, instance_id: str, check: bool) -> None:
        pid = self.pid(instance_id)
        if pid > 0:
            srcdest.apply(pid, check)
