"""Failures the local cloud can be told to show, as a real cloud shows them.

Set through the admin resource (``/admin/faults``): a number of RunInstances
calls to refuse with InsufficientInstanceCapacity, a capacity (the most live
instances the cloud holds, across accounts: launches beyond it are partly
fulfilled or refused), a number of requests to throttle with
RequestLimitExceeded, and a number of instances to die while starting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class FaultsError(ValueError):
    pass


@dataclass
class Faults:
    insufficient_capacity: int = 0  # RunInstances calls still to refuse
    capacity: int | None = None  # most live instances the cloud holds; None: no limit
    throttle: int = 0  # requests still to throttle
    throttle_actions: list[str] = field(default_factory=list)  # empty: any action
    launch_failures: int = 0  # launched instances still to die before they run

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def clear(self) -> None:
        self.__dict__.update(asdict(Faults()))

    def update(self, changes: Any) -> None:
        """Apply a JSON object of new values; refuse unknown names and wrong kinds without changing anything."""
        if not isinstance(changes, dict):
            raise FaultsError("the body must be a JSON object")
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise FaultsError(
                f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(self.__dataclass_fields__)}"
            )
        for name in ("insufficient_capacity", "throttle", "launch_failures"):
            if name in changes and not _count(changes[name]):
                raise FaultsError(f"{name} must be a whole number ≥ 0")
        if "capacity" in changes and changes["capacity"] is not None and not _count(changes["capacity"]):
            raise FaultsError("capacity must be a whole number ≥ 0, or null for no limit")
        actions = changes.get("throttle_actions", [])
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            raise FaultsError("throttle_actions must be a list of action names")
        for name, value in changes.items():
            setattr(self, name, value)

    def take_throttle(self, action: str) -> bool:
        if self.throttle > 0 and (not self.throttle_actions or action in self.throttle_actions):
            self.throttle -= 1
            return True
        return False

    def take_insufficient_capacity(self) -> bool:
        if self.insufficient_capacity > 0:
            self.insufficient_capacity -= 1
            return True
        return False

    def take_launch_failure(self) -> bool:
        if self.launch_failures > 0:
            self.launch_failures -= 1
            return True
        return False


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
