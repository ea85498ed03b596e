"""How an instance looks through the EC2 API: its record and its container, merged."""

from __future__ import annotations

import datetime as dt
from typing import Any

from resilin.provisioners.localcloud.catalogue import InstanceType
from resilin.provisioners.localcloud.podman import Container
from resilin.provisioners.localcloud.store import (
    LAUNCHED,
    LAUNCHING,
    STARTING,
    STOPPED,
    STOPPING,
    TERMINATED,
    TERMINATING,
    InstanceRecord,
)

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}

# podman container states → EC2 instance states.
CONTAINER_STATES = {
    "created": "pending",
    "configured": "pending",
    "initialized": "pending",
    "running": "running",
    "paused": "running",
    "stopping": "stopping",
    "exited": "stopped",
    "stopped": "stopped",
    "removing": "shutting-down",
}


def state_name(record: InstanceRecord, container: Container | None) -> str:
    if record.phase == TERMINATED:
        return "terminated"
    if record.phase == TERMINATING:
        return "shutting-down"
    if record.phase == LAUNCHING:
        return "pending"  # its container is being made, or has no firewall yet
    if container is None:
        # Launched but gone: someone removed it behind our back; the caller records that as a termination.
        return "terminated"
    name = CONTAINER_STATES.get(container.state, "pending")
    if record.power == STARTING:
        return "pending"
    if record.power == STOPPING:
        return "stopped" if name == "stopped" else "stopping"
    if record.power == STOPPED:
        # Running: started again behind our back.  Anything else is stopped: a start that failed
        # may leave its container created or initialised.
        return "running" if name == "running" else "stopped"
    return name


def state(name: str) -> dict[str, Any]:
    return {"Code": STATE_CODES[name], "Name": name}


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def instance(
    record: InstanceRecord,
    name: str,
    region: str,
    itype: InstanceType | None = None,
    group_names: dict[str, str] | None = None,
    network: tuple[str, str] = ("", ""),
    public: tuple[str, str] = ("", ""),
) -> dict[str, Any]:
    """The ``Instance`` shape of botocore's EC2 model for one instance in state ``name``.

    ``group_names`` names the instance's security groups; ``network`` is the cloud's (VPC id, subnet
    id); ``public`` is its address on the WAN, if it has one, and that address's owner (``amazon``
    for one given at launch, the account for an Elastic IP).
    """
    live = name not in ("terminated", "shutting-down")
    ip = record.private_ip if live else ""
    out: dict[str, Any] = {
        "InstanceId": record.instance_id,
        "ImageId": record.image_id,
        "State": state(name),
        # No DNS inside the local cloud: the address is the name, and the host reaches it directly.
        "PrivateDnsName": ip,
        "PublicDnsName": "",  # as in a VPC without DNS hostnames
        "StateTransitionReason": "",
        "AmiLaunchIndex": record.launch_index,
        "ProductCodes": [],
        "InstanceType": record.instance_type,
        "LaunchTime": _utc(record.launch_time),
        "Placement": {"AvailabilityZone": f"{region}a", "Tenancy": "default"},
        "Monitoring": {"State": "disabled"},
        "Architecture": "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [],
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "EbsOptimized": False,
        "EnaSupport": True,
        "SecurityGroups": [
            {"GroupId": gid, "GroupName": (group_names or {}).get(gid, "")} for gid in record.security_groups
        ],
        "SourceDestCheck": record.source_dest_check,
        "PlatformDetails": "Linux/UNIX",
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(record.tags.items())] or None,
    }
    if live and network[0]:
        out["VpcId"], out["SubnetId"] = network
    if record.key_name:
        out["KeyName"] = record.key_name
    if record.client_token:
        out["ClientToken"] = record.client_token
    if ip:
        out["PrivateIpAddress"] = ip
    if ip and public[0]:
        out["PublicIpAddress"] = public[0]
    if ip and network[0]:
        out["NetworkInterfaces"] = [_interface(record, out, network, public)]
    if itype:
        out["CpuOptions"] = {"CoreCount": itype.vcpus, "ThreadsPerCore": 1}
    if record.state_reason:
        code, _, message = record.state_reason.partition(": ")
        out["StateReason"] = {"Code": code, "Message": record.state_reason}
        if record.terminated_at:
            when = _utc(record.terminated_at).strftime("%Y-%m-%d %H:%M:%S GMT")
            out["StateTransitionReason"] = f"{message or code} ({when})"
    return out


def interface_id(instance_id: str) -> str:
    """The id of an instance's one network interface (``eni-`` and the instance's digits)."""
    return "eni-" + instance_id.removeprefix("i-")


def _interface(
    record: InstanceRecord, shaped: dict[str, Any], network: tuple[str, str], public: tuple[str, str]
) -> dict[str, Any]:
    """The instance's one network interface (``eni-`` and the instance's digits), as EC2 lists it."""
    digits = record.instance_id.removeprefix("i-")
    address, owner = public
    association = {"PublicIp": address, "PublicDnsName": "", "IpOwnerId": owner} if address else None
    return {
        "NetworkInterfaceId": interface_id(record.instance_id),
        "VpcId": network[0],
        "SubnetId": network[1],
        "OwnerId": record.account,
        "Status": "in-use",
        "InterfaceType": "interface",
        "PrivateIpAddress": record.private_ip,
        "PrivateDnsName": record.private_ip,
        "PrivateIpAddresses": [
            {"Primary": True, "PrivateIpAddress": record.private_ip, "PrivateDnsName": record.private_ip}
            | ({"Association": association} if association else {})
        ],
        "Groups": shaped["SecurityGroups"],
        "SourceDestCheck": shaped["SourceDestCheck"],
        "Attachment": {
            "AttachmentId": f"eni-attach-{digits}",
            "DeviceIndex": 0,
            "Status": "attached",
            "AttachTime": shaped["LaunchTime"],
            "DeleteOnTermination": True,
        },
    } | ({"Association": association} if association else {})


def is_live(record: InstanceRecord) -> bool:
    return record.phase in (LAUNCHING, LAUNCHED)


def holds_address(record: InstanceRecord) -> bool:
    """Keeps an address of the cloud's subnet and a container: launching, launched (stopped too,
    as an EC2 instance keeps its network interface), or still being removed."""
    return record.phase in (LAUNCHING, LAUNCHED, TERMINATING)


def is_powered(record: InstanceRecord) -> bool:
    """Counts against the vCPU quota and capacity: live and not stopped (stopped instances run nothing)."""
    return is_live(record) and record.power != STOPPED
