"""Security configurations and the account's block-public-access configuration.

Both are stored per account.  A cluster may name a security configuration only when it asks
for nothing Resilin does not do: a configuration that turns on encryption, Kerberos or
fine-grained authorization is refused at RunJobFlow rather than silently not applied.
"""

from __future__ import annotations

import json
import time
from typing import Any

from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import states, views
from resilin.jobflows.base import ServiceBase, page
from resilin.jobflows.caller import Caller, as_caller
from resilin.jobflows.documents import BlockPublicAccessDoc, SecurityConfigurationDoc

MAX_NAME = 10280
KNOWN_SECTIONS = {
    "EncryptionConfiguration",
    "AuthenticationConfiguration",
    "AuthorizationConfiguration",
    "InstanceMetadataServiceConfiguration",
}
DEFAULT_PERMITTED_PORTS = [{"MinRange": 22, "MaxRange": 22}]


def _parse(name: str, text: str) -> dict:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"Security configuration '{name}' is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest(f"Security configuration '{name}' must be a JSON object.")
    unknown = sorted(set(document) - KNOWN_SECTIONS)
    if unknown:
        raise InvalidRequest(
            f"Security configuration '{name}' has unknown section(s): {', '.join(unknown)}; "
            f"known sections are {', '.join(sorted(KNOWN_SECTIONS))}."
        )
    return document


def check_usable(doc: SecurityConfigurationDoc | None, name: str) -> None:
    """Refuse a cluster's security configuration that is missing or asks for what Resilin cannot do."""
    if doc is None:
        raise ValidationError(f"Security configuration '{name}' does not exist.")
    document = json.loads(doc["configuration"])
    encryption = document.get("EncryptionConfiguration") or {}
    wanted = [
        what
        for what, asked in (
            ("in-transit encryption", encryption.get("EnableInTransitEncryption")),
            ("at-rest encryption", encryption.get("EnableAtRestEncryption")),
            ("Kerberos authentication", "AuthenticationConfiguration" in document),
            ("fine-grained authorization", "AuthorizationConfiguration" in document),
        )
        if asked
    ]
    if wanted:
        raise ValidationError(
            f"Security configuration '{name}' enables {', '.join(wanted)}, which this Resilin release "
            "does not provide."
        )


class SecurityConfigurationOperations(ServiceBase):
    def create_security_configuration(self, who: str | Caller, params: dict) -> dict:
        caller = as_caller(who)
        name = params["Name"]
        if not name.strip():
            raise InvalidRequest("A security configuration name must not be empty.")
        _parse(name, params["SecurityConfiguration"])
        doc: SecurityConfigurationDoc = {
            "name": name,
            "configuration": params["SecurityConfiguration"],
            "created": time.time(),
        }
        if not self.store.create_security_configuration(caller.account_id, doc):
            raise InvalidRequest(f"SecurityConfiguration with name '{name}' already exists.")
        return {"Name": name, "CreationDateTime": views.ts(doc["created"])}

    def _security_configuration(self, caller: Caller, name: str) -> SecurityConfigurationDoc:
        doc = self.store.get_security_configuration(caller.account_id, name)
        if doc is None:
            raise InvalidRequest(
                f"Security configuration with name '{name}' does not exist.", "ResourceNotFound"
            )
        return doc

    def describe_security_configuration(self, who: str | Caller, params: dict) -> dict:
        doc = self._security_configuration(as_caller(who), params["Name"])
        return {
            "Name": doc["name"],
            "SecurityConfiguration": doc["configuration"],
            "CreationDateTime": views.ts(doc["created"]),
        }

    def delete_security_configuration(self, who: str | Caller, params: dict) -> dict:
        caller = as_caller(who)
        name = params["Name"]
        self._security_configuration(caller, name)
        active = self.store.get_clusters(self.store.active_cluster_ids())
        users = [
            c["id"]
            for c in active
            if c["account"] == caller.account_id
            and c.get("security_configuration") == name
            and c["state"] not in states.FINAL_CLUSTER_STATES
        ]
        if users:
            raise InvalidRequest(
                f"Security configuration '{name}' is used by active cluster(s) {', '.join(sorted(users))}."
            )
        self.store.delete_security_configuration(caller.account_id, name)
        return {}

    def list_security_configurations(self, who: str | Caller, params: dict) -> dict:
        docs = sorted(
            self.store.security_configurations(as_caller(who).account_id).values(),
            key=lambda d: (d["created"], d["name"]),
        )
        summaries = [{"Name": d["name"], "CreationDateTime": views.ts(d["created"])} for d in docs]
        return page(summaries, params.get("Marker"), "SecurityConfigurations")

    # -- block public access ---------------------------------------------
    def get_block_public_access_configuration(self, who: str | Caller, params: dict) -> dict:
        caller = as_caller(who)
        doc = self.store.get_block_public_access(caller.account_id)
        if doc is None:
            # EMR's default for an account that never set one: block, except SSH.
            default: BlockPublicAccessDoc = {
                "configuration": {
                    "BlockPublicSecurityGroupRules": True,
                    "PermittedPublicSecurityGroupRuleRanges": DEFAULT_PERMITTED_PORTS,
                },
                "created": time.time(),
                "created_by": f"arn:aws:iam::{caller.account_id}:root",
            }
            self.store.put_block_public_access(caller.account_id, default, only_if_absent=True)
            doc = self.store.get_block_public_access(caller.account_id) or default
        return _block_public_access_shape(doc)

    def put_block_public_access_configuration(self, who: str | Caller, params: dict) -> dict:
        caller = as_caller(who)
        configuration = params["BlockPublicAccessConfiguration"]
        ranges = []
        for item in configuration.get("PermittedPublicSecurityGroupRuleRanges", []):
            low = item["MinRange"]
            high = item.get("MaxRange", low)
            if high < low:
                raise InvalidRequest(f"Port range {low}-{high} is not valid: MaxRange is below MinRange.")
            ranges.append({"MinRange": low, "MaxRange": high})
        doc: BlockPublicAccessDoc = {
            "configuration": {
                "BlockPublicSecurityGroupRules": configuration["BlockPublicSecurityGroupRules"],
                "PermittedPublicSecurityGroupRuleRanges": ranges,
            },
            "created": time.time(),
            "created_by": caller.arn,
        }
        self.store.put_block_public_access(caller.account_id, doc)
        return {}


def _block_public_access_shape(doc: BlockPublicAccessDoc) -> dict[str, Any]:
    return {
        "BlockPublicAccessConfiguration": doc["configuration"],
        "BlockPublicAccessConfigurationMetadata": {
            "CreationDateTime": views.ts(doc["created"]),
            "CreatedByArn": doc["created_by"],
        },
    }
