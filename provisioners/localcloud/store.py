"""The local cloud's records in Redis: key pairs, security groups, instances (with their tags),
private addresses, route tables and client tokens.

Containers are the state of record for what runs; Redis keeps what a container
cannot carry or outlive: key pairs, security groups, tags that may change,
launches still in flight, and terminated instances that stay visible for a
while as on EC2.  All keys start with ``localcloud:<cloud>:``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

TERMINATED_TTL = 3600  # seconds a terminated instance stays visible

# Lifecycle of a record, from the local cloud's point of view.
LAUNCHING = "launching"  # accepted; the container is being created
LAUNCHED = "launched"  # the container exists; its own state says pending/running/stopped
TERMINATING = "terminating"
TERMINATED = "terminated"

# Power of a launched instance (StopInstances / StartInstances).
POWER_ON = "on"
STOPPING = "stopping"
STOPPED = "stopped"
STARTING = "starting"  # its container is starting again; pending until its firewall is in place


@dataclass
class InstanceRecord:
    instance_id: str
    account: str
    reservation_id: str
    image_id: str
    image: str  # container image reference
    instance_type: str
    launch_time: float
    launch_index: int = 0
    key_name: str = ""
    public_key: str = ""
    user_data_b64: str = ""
    client_token: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    phase: str = LAUNCHING
    private_ip: str = ""  # allocated at launch and kept across stop/start, as on EC2
    security_groups: list[str] = field(default_factory=list)  # sg- ids
    power: str = POWER_ON
    state_reason: str = ""  # "Code: message" once something ended or stopped the instance
    terminated_at: float = 0.0
    source_dest_check: bool = (
        True  # False: the instance forwards, with a TUN device (ModifyInstanceAttribute)
    )

    @classmethod
    def from_json(cls, text: str) -> InstanceRecord:
        data: dict[str, Any] = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Store:
    def __init__(self, client: redis.Redis, cloud: str, terminated_ttl: int = TERMINATED_TTL) -> None:
        self.redis = client
        self.prefix = f"localcloud:{cloud}:"
        self.terminated_ttl = terminated_ttl

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # Key pairs ----------------------------------------------------------------

    def key_pairs(self, account: str) -> dict[str, dict[str, Any]]:
        raw = cast(dict[str, str], self.redis.hgetall(self._key("keypairs", account)))
        return {name: json.loads(value) for name, value in raw.items()}

    def add_key_pair(self, account: str, name: str, info: dict[str, Any]) -> bool:
        """False if the account already has a key pair of that name."""
        return bool(self.redis.hsetnx(self._key("keypairs", account), name, json.dumps(info)))

    def delete_key_pair(self, account: str, name: str) -> None:
        self.redis.hdel(self._key("keypairs", account), name)

    # Instances ----------------------------------------------------------------

    def save(self, record: InstanceRecord) -> None:
        key = self._key("instance", record.instance_id)
        pipe = self.redis.pipeline()
        pipe.set(key, json.dumps(asdict(record)))
        if record.phase == TERMINATED:
            pipe.expire(key, self.terminated_ttl)
        pipe.sadd(self._key("instances", record.account), record.instance_id)
        pipe.execute()
        if record.phase == TERMINATED and record.private_ip:
            self.release_ip(record.private_ip, record.instance_id)

    def get(self, instance_id: str) -> InstanceRecord | None:
        raw = cast(str | None, self.redis.get(self._key("instance", instance_id)))
        return InstanceRecord.from_json(raw) if raw else None

    def instances(self, account: str) -> list[InstanceRecord]:
        index = self._key("instances", account)
        ids = sorted(cast(set[str], self.redis.smembers(index)))
        if not ids:
            return []
        raws = cast(list[str | None], self.redis.mget([self._key("instance", i) for i in ids]))
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:  # records of terminated instances expire; drop them from the index too
            self.redis.srem(index, *gone)
        return [InstanceRecord.from_json(raw) for raw in raws if raw is not None]

    def all_instances(self) -> list[InstanceRecord]:
        out = []
        for key in self.redis.scan_iter(match=self._key("instance", "*")):
            raw = cast(str | None, self.redis.get(key))
            if raw:
                out.append(InstanceRecord.from_json(raw))
        return out

    # Private addresses ------------------------------------------------------------

    def claim_ip(self, ip: str, instance_id: str) -> bool:
        """Take ``ip`` for ``instance_id``; False if another instance holds it."""
        key = self._key("ips")
        return bool(self.redis.hsetnx(key, ip, instance_id)) or self.redis.hget(key, ip) == instance_id

    def release_ip(self, ip: str, instance_id: str) -> None:
        key = self._key("ips")
        if self.redis.hget(key, ip) == instance_id:
            self.redis.hdel(key, ip)

    def ip_cursor(self) -> int:
        """A counter that moves on at every allocation, so freed addresses are reused last."""
        return int(self.redis.incr(self._key("ip-cursor")))

    # Security groups ------------------------------------------------------------

    def groups(self, account: str) -> dict[str, dict[str, Any]]:
        raw = cast(dict[str, str], self.redis.hgetall(self._key("groups", account)))
        return {gid: json.loads(value) for gid, value in raw.items()}

    def save_group(self, account: str, group: dict[str, Any]) -> None:
        self.redis.hset(self._key("groups", account), group["GroupId"], json.dumps(group))

    def delete_group(self, account: str, group_id: str) -> None:
        self.redis.hdel(self._key("groups", account), group_id)

    # Route tables: each account's main table, its routes beside the implicit local one --------

    def route_table(self, account: str) -> dict[str, Any]:
        raw = cast(str | None, self.redis.get(self._key("routetable", account)))
        return json.loads(raw) if raw else {"Routes": []}

    def save_route_table(self, account: str, table: dict[str, Any]) -> None:
        self.redis.set(self._key("routetable", account), json.dumps(table))

    # Idempotent launches (ClientToken) -----------------------------------------

    def token_reservation(self, account: str, token: str) -> str | None:
        """The reservation a ClientToken already launched, if any."""
        return cast(str | None, self.redis.get(self._key("token", account, token)))

    def claim_token(self, account: str, token: str, reservation_id: str) -> str:
        """The reservation a ClientToken already launched, or claim it for ``reservation_id``."""
        key = self._key("token", account, token)
        if self.redis.set(key, reservation_id, nx=True, ex=7 * 24 * 3600):
            return reservation_id
        return cast(str | None, self.redis.get(key)) or reservation_id
