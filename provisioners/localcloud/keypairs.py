"""Key pair operations: ImportKeyPair, DescribeKeyPairs, DeleteKeyPair, scoped per account."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from resilin.provisioners.localcloud import catalogue, filters
from resilin.provisioners.localcloud.errors import EC2Error, invalid, missing
from resilin.provisioners.localcloud.keys import parse_public_key
from resilin.provisioners.localcloud.store import Store
from resilin.provisioners.localcloud.tags import tag_list, tags_from_specs


class KeyPairs:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def import_key_pair(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params["KeyName"]
        if not name or len(name) > 255:
            raise invalid("KeyName", name, "Key names must be 1 to 255 characters.")
        text, key_type, fingerprint = parse_public_key(params["PublicKeyMaterial"])
        tags = tags_from_specs(params.get("TagSpecifications") or [], "key-pair")
        info = {
            "KeyPairId": catalogue.new_id("key"),
            "KeyName": name,
            "KeyFingerprint": fingerprint,
            "KeyType": key_type,
            "PublicKey": text,
            "CreateTime": time.time(),
            "Tags": tags,
        }
        if not self.store.add_key_pair(account, name, info):
            raise EC2Error("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
        return {
            "KeyFingerprint": fingerprint,
            "KeyName": name,
            "KeyPairId": info["KeyPairId"],
            "Tags": tag_list(tags),
        }

    KEY_FILTERS: filters.Getters = {
        "key-name": lambda k: [k["KeyName"]],
        "key-pair-id": lambda k: [k["KeyPairId"]],
        "fingerprint": lambda k: [k["KeyFingerprint"]],
        "key-type": lambda k: [k["KeyType"]],
    }

    async def describe_key_pairs(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.KEY_FILTERS, tags=lambda k: k.get("Tags") or {})
        pairs = sorted(self.store.key_pairs(account).values(), key=lambda k: k["KeyName"])
        for field, selector, what in (
            ("KeyNames", "KeyName", "key pair"),
            ("KeyPairIds", "KeyPairId", "key pair ID"),
        ):
            asked = params.get(field) or []
            if asked:
                have = {k[selector] for k in pairs}
                unknown = [a for a in asked if a not in have]
                if unknown:
                    raise EC2Error("InvalidKeyPair.NotFound", f"The {what} '{unknown[0]}' does not exist")
                pairs = [k for k in pairs if k[selector] in asked]
        pairs = [
            k for k in pairs if filters.matches(k, wanted, self.KEY_FILTERS, lambda k: k.get("Tags") or {})
        ]
        return {
            "KeyPairs": [
                {
                    "KeyPairId": k["KeyPairId"],
                    "KeyName": k["KeyName"],
                    "KeyFingerprint": k["KeyFingerprint"],
                    "KeyType": k["KeyType"],
                    "CreateTime": dt.datetime.fromtimestamp(k["CreateTime"], dt.UTC),
                    "Tags": tag_list(k.get("Tags") or {}),
                    "PublicKey": k["PublicKey"] if params.get("IncludePublicKey") else None,
                }
                for k in pairs
            ]
        }

    async def delete_key_pair(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        pairs = self.store.key_pairs(account)
        name = params.get("KeyName")
        if not name and params.get("KeyPairId"):
            name = next((n for n, k in pairs.items() if k["KeyPairId"] == params["KeyPairId"]), None)
            if name is None:
                raise EC2Error(
                    "InvalidKeyPair.NotFound", f"The key pair ID '{params['KeyPairId']}' does not exist"
                )
        if not name:
            raise missing("KeyName")
        # As on EC2, deleting a key pair that does not exist succeeds.
        pair = pairs.get(name)
        self.store.delete_key_pair(account, name)
        return {"Return": True, "KeyPairId": pair["KeyPairId"] if pair else None}
