"""Security groups: Create/Delete/DescribeSecurityGroups and Authorize/RevokeSecurityGroupIngress.

Groups belong to an account.  A group's ingress rules are kept one per source
(as EC2's SecurityGroupRules are) and shown grouped as IpPermissions.  Every
account has a ``default`` group, made on first use with EC2's default rule (all
traffic from members of the group) and, so that Resilin can reach an instance
launched without a group, SSH from the cloud's host address (the gateway of its
network, where Resilin connects from) and from nowhere else: another account's
instances, in this cloud or on the WAN, do not reach its sshd.  Both can be revoked.  Egress is
always open.  Enforcement is the firewall's job: :attr:`changed` is told which
group's rules changed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from resilin.provisioners.localcloud import catalogue, filters
from resilin.provisioners.localcloud.errors import EC2Error, invalid, missing
from resilin.provisioners.localcloud.store import Store
from resilin.provisioners.localcloud.tags import tag_list, tags_from_specs

GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
PROTOCOLS = {"-1": "-1", "all": "-1", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp"}
PROTOCOLS |= {"icmp": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6"}
DEFAULT = "default"


def _not_found(group: str) -> EC2Error:
    return EC2Error("InvalidGroup.NotFound", f"The security group '{group}' does not exist")


def protocol(value: Any) -> str:
    text = str(value).lower()
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    if text.isdigit() and 0 <= int(text) <= 255:
        return text
    raise invalid("IpProtocol", value, "Unknown protocol.")


def _port(value: Any, name: str, low: int, high: int) -> int:
    if value is None or not (low <= value <= high):
        raise invalid(name, value, f"Must be between {low} and {high}.")
    return value


def _ports(proto: str, perm: dict[str, Any]) -> tuple[int | None, int | None]:
    low, high = perm.get("FromPort"), perm.get("ToPort")
    if proto in ("tcp", "udp"):
        if low is None or high is None:
            raise EC2Error("InvalidParameterValue", "Must specify both from and to ports with TCP/UDP.")
        low, high = _port(low, "FromPort", 0, 65535), _port(high, "ToPort", 0, 65535)
        if low > high:
            raise invalid("FromPort", low, "FromPort must not be greater than ToPort.")
        return low, high
    if proto in ("icmp", "icmpv6"):  # type and code; -1: any
        icmp_type = _port(-1 if low is None else low, "FromPort", -1, 255)
        code = _port(-1 if high is None else high, "ToPort", -1, 255)
        return icmp_type, code
    return None, None


def same_rule(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("IpProtocol", "FromPort", "ToPort", "CidrIpv4", "CidrIpv6", "ReferencedGroupId")
    return all(a.get(k) == b.get(k) for k in keys)


class SecurityGroups:
    def __init__(self, store: Store, vpc_id: str, changed: Callable[[str, str], None]) -> None:
        self.store = store
        self.vpc_id = vpc_id  # the local cloud's one pseudo-VPC
        self.changed = changed  # (account, group id) whose rules changed
        self.in_use: Callable[[str, str], list[str]] = lambda account, gid: []  # set by the cloud
        self.host_address = ""  # the host's address on the cloud's network; set by the cloud at start

    # Lookups -----------------------------------------------------------------------

    def all(self, account: str) -> dict[str, dict[str, Any]]:
        groups = self.store.groups(account)
        if not any(g["GroupName"] == DEFAULT for g in groups.values()):
            default = self._new(account, DEFAULT, "default VPC security group", {})
            # EC2's default rule, and SSH from the host so that an instance without a group is reachable.
            default["Rules"] = [self._rule(default, "-1", None, None, ReferencedGroupId=default["GroupId"])]
            if self.host_address:
                default["Rules"].append(
                    self._rule(default, "tcp", 22, 22, CidrIpv4=f"{self.host_address}/32")
                )
            self.store.save_group(account, default)
            groups[default["GroupId"]] = default
        return groups

    def get(self, account: str, group_id: str) -> dict[str, Any]:
        if not GROUP_ID.match(group_id or ""):
            raise EC2Error("InvalidGroupId.Malformed", f'Invalid id: "{group_id}" (expecting "sg-...")')
        group = self.all(account).get(group_id)
        if group is None:
            raise _not_found(group_id)
        return group

    def by_name(self, account: str, name: str) -> dict[str, Any]:
        for group in self.all(account).values():
            if group["GroupName"] == name:
                return group
        raise _not_found(name)

    def resolve(self, account: str, ids: list[str], names: list[str]) -> list[str]:
        """Group ids for RunInstances' SecurityGroupIds / SecurityGroups; the default group if neither."""
        found = [self.get(account, gid)["GroupId"] for gid in ids]
        found += [self.by_name(account, name)["GroupId"] for name in names]
        return list(dict.fromkeys(found)) or [self.by_name(account, DEFAULT)["GroupId"]]

    def _target(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("GroupId"):
            return self.get(account, params["GroupId"])
        if params.get("GroupName"):
            return self.by_name(account, params["GroupName"])
        raise missing("GroupId")

    # Create / delete ------------------------------------------------------------------

    def _new(self, account: str, name: str, description: str, tags: dict[str, str]) -> dict[str, Any]:
        return {
            "GroupId": catalogue.new_id("sg"),
            "GroupName": name,
            "Description": description,
            "OwnerId": account,
            "VpcId": self.vpc_id,
            "Tags": tags,
            "Rules": [],
        }

    async def create_security_group(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        name, description = params["GroupName"], params["Description"]
        if not name or len(name) > 255:
            raise invalid("GroupName", name, "Group names must be 1 to 255 characters.")
        if name.lower().startswith("sg-"):
            raise invalid("GroupName", name, "Group names may not be in the format sg-*.")
        if name == DEFAULT:
            raise EC2Error("InvalidGroup.Reserved", "The security group 'default' is reserved")
        if not description or len(description) > 255:
            raise invalid("GroupDescription", description, "Descriptions must be 1 to 255 characters.")
        if params.get("VpcId") and params["VpcId"] != self.vpc_id:
            raise EC2Error("InvalidVpcID.NotFound", f"The vpc ID '{params['VpcId']}' does not exist")
        if any(g["GroupName"] == name for g in self.all(account).values()):
            raise EC2Error(
                "InvalidGroup.Duplicate",
                f"The security group '{name}' already exists for VPC '{self.vpc_id}'",
            )
        tags = tags_from_specs(params.get("TagSpecifications") or [], "security-group")
        group = self._new(account, name, description, tags)
        self.store.save_group(account, group)
        return {"GroupId": group["GroupId"], "Tags": tag_list(tags)}

    async def delete_security_group(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self._target(account, params)
        gid = group["GroupId"]
        if group["GroupName"] == DEFAULT:
            raise EC2Error(
                "CannotDelete", f'the specified group: "{gid}" name: "default" cannot be deleted by a user'
            )
        users = self.in_use(account, gid)
        referrers = [
            g["GroupId"]
            for g in self.all(account).values()
            if g["GroupId"] != gid and any(r.get("ReferencedGroupId") == gid for r in g["Rules"])
        ]
        if users or referrers:
            raise EC2Error("DependencyViolation", f"resource {gid} has a dependent object")
        self.store.delete_group(account, gid)
        return {"Return": True, "GroupId": gid}

    # Describe --------------------------------------------------------------------------

    GROUP_FILTERS: filters.Getters = {
        "group-id": lambda g: [g["GroupId"]],
        "group-name": lambda g: [g["GroupName"]],
        "description": lambda g: [g["Description"]],
        "vpc-id": lambda g: [g["VpcId"]],
        "owner-id": lambda g: [g["OwnerId"]],
    }

    async def describe_security_groups(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.GROUP_FILTERS, tags=lambda g: g["Tags"])
        groups = self.all(account)
        chosen = [self.get(account, gid) for gid in params.get("GroupIds") or []]
        chosen += [self.by_name(account, name) for name in params.get("GroupNames") or []]
        if not chosen:
            chosen = sorted(groups.values(), key=lambda g: g["GroupName"])
        chosen = [g for g in chosen if filters.matches(g, wanted, self.GROUP_FILTERS, lambda g: g["Tags"])]
        return {"SecurityGroups": [self._shape(g) for g in chosen]}

    def _shape(self, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "GroupId": group["GroupId"],
            "GroupName": group["GroupName"],
            "Description": group["Description"],
            "OwnerId": group["OwnerId"],
            "VpcId": group["VpcId"],
            "Tags": tag_list(group["Tags"]),
            "IpPermissions": permissions(group["Rules"], group["OwnerId"]),
            "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        }

    # Ingress rules ---------------------------------------------------------------------

    def _rule(
        self, group: dict[str, Any], proto: str, low: int | None, high: int | None, **source: Any
    ) -> dict:
        rule = {"SecurityGroupRuleId": catalogue.new_id("sgr"), "IpProtocol": proto, **source}
        if low is not None:
            rule["FromPort"], rule["ToPort"] = low, high
        return rule

    def _requested(self, account: str, group: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        """The rules an Authorize/Revoke call names, one per source."""
        perms = list(params.get("IpPermissions") or [])
        if params.get("IpProtocol") or params.get("CidrIp") or params.get("SourceSecurityGroupName"):
            legacy: dict[str, Any] = {"IpProtocol": params.get("IpProtocol") or "-1"}
            for key in ("FromPort", "ToPort"):
                if key in params:
                    legacy[key] = params[key]
            if params.get("CidrIp"):
                legacy["IpRanges"] = [{"CidrIp": params["CidrIp"]}]
            if params.get("SourceSecurityGroupName"):
                legacy["UserIdGroupPairs"] = [{"GroupName": params["SourceSecurityGroupName"]}]
            perms.append(legacy)
        if not perms:
            raise missing("IpPermissions")
        rules = []
        for perm in perms:
            if not perm.get("IpProtocol"):
                raise missing("IpPermissions.IpProtocol")
            proto = protocol(perm["IpProtocol"])
            low, high = _ports(proto, perm)
            if perm.get("PrefixListIds"):
                raise EC2Error("InvalidParameterValue", "Prefix lists are not supported by the local cloud")
            sources: list[dict[str, Any]] = []
            for r in perm.get("IpRanges") or []:
                sources.append({"CidrIpv4": _cidr(r.get("CidrIp"), 4), "Description": r.get("Description")})
            for r in perm.get("Ipv6Ranges") or []:
                sources.append({"CidrIpv6": _cidr(r.get("CidrIpv6"), 6), "Description": r.get("Description")})
            for pair in perm.get("UserIdGroupPairs") or []:
                if pair.get("UserId") and pair["UserId"] != account:
                    raise _not_found(pair.get("GroupId") or pair.get("GroupName") or "")
                ref = self.get(account, pair["GroupId"]) if pair.get("GroupId") else None
                if ref is None:
                    if not pair.get("GroupName"):
                        raise missing("UserIdGroupPairs.GroupId")
                    ref = self.by_name(account, pair["GroupName"])
                sources.append({"ReferencedGroupId": ref["GroupId"], "Description": pair.get("Description")})
            if not sources:
                raise EC2Error("InvalidParameterValue", "An IP permission must name at least one source")
            for source in sources:
                rule = self._rule(group, proto, low, high, **{k: v for k, v in source.items() if v})
                rules.append(rule)
        return rules

    async def authorize_security_group_ingress(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self._target(account, params)
        new = self._requested(account, group, params)
        for i, rule in enumerate(new):
            if any(same_rule(rule, r) for r in group["Rules"]) or any(same_rule(rule, r) for r in new[:i]):
                raise EC2Error(
                    "InvalidPermission.Duplicate",
                    f'the specified rule "peer: {_peer(rule)}, {rule["IpProtocol"].upper()}" already exists',
                )
        group["Rules"].extend(new)
        self.store.save_group(account, group)
        self.changed(account, group["GroupId"])
        return {"Return": True, "SecurityGroupRules": [_rule_shape(group, r) for r in new]}

    async def revoke_security_group_ingress(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self._target(account, params)
        rule_ids = params.get("SecurityGroupRuleIds") or []
        unknown_ids = [
            rid for rid in rule_ids if rid not in {r["SecurityGroupRuleId"] for r in group["Rules"]}
        ]
        if unknown_ids:
            raise EC2Error(
                "InvalidSecurityGroupRuleId.NotFound",
                f"The security group rule ID '{unknown_ids[0]}' does not exist",
            )
        asked = self._requested(account, group, params) if not rule_ids or params.get("IpPermissions") else []
        kept, revoked, unknown = [], [], list(asked)
        for rule in group["Rules"]:
            match = next((a for a in unknown if same_rule(a, rule)), None)
            if match is not None or rule["SecurityGroupRuleId"] in rule_ids:
                revoked.append(rule)
                if match is not None:
                    unknown.remove(match)
            else:
                kept.append(rule)
        group["Rules"] = kept
        self.store.save_group(account, group)
        if revoked:
            self.changed(account, group["GroupId"])
        return {
            "Return": not unknown,
            "UnknownIpPermissions": permissions(unknown, account) or None,
            "RevokedSecurityGroupRules": [
                {
                    "SecurityGroupRuleId": r["SecurityGroupRuleId"],
                    "GroupId": group["GroupId"],
                    "IsEgress": False,
                    "IpProtocol": r["IpProtocol"],
                    "FromPort": r.get("FromPort"),
                    "ToPort": r.get("ToPort"),
                    "CidrIpv4": r.get("CidrIpv4"),
                    "CidrIpv6": r.get("CidrIpv6"),
                    "ReferencedGroupId": r.get("ReferencedGroupId"),
                    "Description": r.get("Description"),
                }
                for r in revoked
            ]
            or None,
        }


def _cidr(value: Any, version: int) -> str:
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise invalid("CidrIp", value, "Must be a CIDR block such as 203.0.113.0/24.") from None
    if net.version != version:
        raise invalid("CidrIp", value, f"Must be an IPv{version} CIDR block.")
    return str(net)


def _peer(rule: dict[str, Any]) -> str:
    return rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("ReferencedGroupId") or ""


def _rule_shape(group: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    out = {
        "SecurityGroupRuleId": rule["SecurityGroupRuleId"],
        "GroupId": group["GroupId"],
        "GroupOwnerId": group["OwnerId"],
        "IsEgress": False,
        "IpProtocol": rule["IpProtocol"],
        "FromPort": rule.get("FromPort", -1),
        "ToPort": rule.get("ToPort", -1),
        "CidrIpv4": rule.get("CidrIpv4"),
        "CidrIpv6": rule.get("CidrIpv6"),
        "Description": rule.get("Description"),
    }
    if rule.get("ReferencedGroupId"):
        out["ReferencedGroupInfo"] = {"GroupId": rule["ReferencedGroupId"], "UserId": group["OwnerId"]}
    return out


def permissions(rules: list[dict[str, Any]], owner: str) -> list[dict[str, Any]]:
    """Rules (one per source) grouped as EC2's IpPermissions: one per protocol and port range."""
    grouped: dict[tuple, dict[str, Any]] = {}
    for rule in rules:
        key = (rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"))
        perm = grouped.setdefault(
            key,
            {
                "IpProtocol": rule["IpProtocol"],
                "IpRanges": [],
                "Ipv6Ranges": [],
                "UserIdGroupPairs": [],
                "PrefixListIds": [],
            },
        )
        if rule.get("FromPort") is not None:
            perm["FromPort"], perm["ToPort"] = rule["FromPort"], rule["ToPort"]
        if rule.get("CidrIpv4"):
            perm["IpRanges"].append({"CidrIp": rule["CidrIpv4"], "Description": rule.get("Description")})
        elif rule.get("CidrIpv6"):
            perm["Ipv6Ranges"].append({"CidrIpv6": rule["CidrIpv6"], "Description": rule.get("Description")})
        elif rule.get("ReferencedGroupId"):
            perm["UserIdGroupPairs"].append(
                {
                    "GroupId": rule["ReferencedGroupId"],
                    "UserId": owner,
                    "Description": rule.get("Description"),
                }
            )
    return list(grouped.values())
