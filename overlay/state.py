"""What a cluster's overlay made, kept in Resilin's private Redis (never in the cluster's document).

The gateways' private keys live here and nowhere else on Resilin's side: not in DescribeCluster's
answers, logs or files.  The addresses, rules and routes made in each cloud are recorded as
each is made, so that a later join, the teardown or a restart can undo exactly those.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import orjson
import redis

from resilin.overlay.keys import WireGuardKeys
from resilin.overlay.plan import Permission

_KEY = "resilin:overlay:"  # + cluster id → JSON


@dataclass
class Address:
    cloud: str
    allocation_id: str
    public_ip: str
    instance_id: str
    association_id: str = ""


@dataclass(frozen=True, order=True)
class RecordedRoute:
    cloud: str
    table_id: str
    destination: str
    target: str


@dataclass(frozen=True, order=True)
class RecordedPermission:
    cloud: str
    group_id: str
    permission: Permission


@dataclass
class OverlayState:
    keys: dict[str, WireGuardKeys] = field(default_factory=dict)  # gateway instance id → its keys
    gateways: dict[str, str] = field(default_factory=dict)  # cloud → gateway instance id
    addresses: list[Address] = field(default_factory=list)  # allocated by the overlay
    routes: list[RecordedRoute] = field(default_factory=list)
    permissions: list[RecordedPermission] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)  # gateway instance id → digest of its pushed config

    @property
    def empty(self) -> bool:
        return not (
            self.keys or self.gateways or self.addresses or self.routes or self.permissions or self.configs
        )

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "keys": {i: {"private": k.private, "public": k.public} for i, k in self.keys.items()},
                "gateways": self.gateways,
                "addresses": [asdict(a) for a in self.addresses],
                "routes": [asdict(r) for r in self.routes],
                "permissions": [
                    {"cloud": p.cloud, "group_id": p.group_id, "permission": asdict(p.permission)}
                    for p in self.permissions
                ],
                "configs": self.configs,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> OverlayState:
        data = orjson.loads(raw)
        return cls(
            keys={i: WireGuardKeys(k["private"], k["public"]) for i, k in data["keys"].items()},
            gateways=data["gateways"],
            addresses=[Address(**a) for a in data["addresses"]],
            routes=[RecordedRoute(**r) for r in data["routes"]],
            permissions=[
                RecordedPermission(p["cloud"], p["group_id"], Permission(**p["permission"]))
                for p in data["permissions"]
            ],
            configs=data["configs"],
        )


class OverlayStore:
    """One cluster's overlay state in Redis."""

    def __init__(self, client: redis.Redis, cid: str) -> None:
        self.redis = client
        self.key = _KEY + cid

    def load(self) -> OverlayState:
        raw = self.redis.get(self.key)
        return OverlayState.from_json(raw) if raw else OverlayState()  # type: ignore[arg-type]

    def save(self, state: OverlayState) -> None:
        if state.empty:
            self.redis.delete(self.key)
        else:
            self.redis.set(self.key, state.to_json())

    def forget(self) -> None:
        self.redis.delete(self.key)
