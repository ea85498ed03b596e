"""Job-flow state in Redis.

Clusters, steps and instances are JSON documents under their own keys; indexes
keep each account's clusters by creation time and each cluster's steps in the
order they were added.  Every change to a document goes through an optimistic
transaction (WATCH/MULTI), so the API threads and the orchestrator can change
the same cluster without losing each other's writes.  State changes are checked
against the transition tables in ``states``: a cluster's and a step's by ``transition_*``,
an instance group's on every change of its cluster, an instance's whenever it is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import orjson
import redis
from redis.typing import EncodableT, FieldT

from resilin.jobflows import states
from resilin.jobflows.documents import (
    BlockPublicAccessDoc,
    ClusterDoc,
    ClusterSummaryDoc,
    InstanceDoc,
    SecurityConfigurationDoc,
    StepDoc,
)
from resilin.jobflows.states import StateConflict as StateConflict  # raised here; long imported from here

# A document of no particular kind (the typed ones are in ``documents``).
Doc = dict[str, Any]
D = TypeVar("D")

WORK_QUEUE = "resilin:work"
ACTIVE_CLUSTERS = "resilin:clusters:active"


def _cluster_key(cid: str) -> str:
    return f"resilin:cluster:{cid}"


def _steps_key(cid: str) -> str:
    return f"resilin:cluster:{cid}:steps"


def _instances_key(cid: str) -> str:
    return f"resilin:cluster:{cid}:instances"


def _step_key(sid: str) -> str:
    return f"resilin:step:{sid}"


def _account_key(account: str) -> str:
    return f"resilin:account:{account}:clusters"


def _summaries_key(account: str) -> str:
    return f"resilin:account:{account}:summaries"


def _security_configurations_key(account: str) -> str:
    return f"resilin:account:{account}:security-configurations"


def _block_public_access_key(account: str) -> str:
    return f"resilin:account:{account}:block-public-access"


# Instance group id → cluster id, for operations that name a group without its cluster.
GROUP_INDEX = "resilin:instance-groups"


def _dump(doc: Any) -> bytes:
    return orjson.dumps(doc)


_load = orjson.loads

# The members of a cluster that ListClusters shows or filters on.  They are kept beside the
# documents (rewritten with every change) so that a listing reads only a page of small ones.
_SUMMARY_FIELDS = ("id", "account", "name", "state", "state_reason", "timeline", "arn",
                   "visible_to_all_users", "created_by")  # fmt: skip


def _summary(cluster: ClusterDoc) -> bytes:
    light: dict[str, Any] = {k: cluster.get(k) for k in _SUMMARY_FIELDS}
    light["groups"] = [
        {"instance_type": g["instance_type"], "requested": g["requested"]} for g in cluster["groups"]
    ]
    relocation = cluster.get("relocation")
    if relocation:  # ListClusters' StateChangeReason says where the cluster is going
        light["relocation"] = {"destination": relocation["destination"], "phase": relocation["phase"]}
    return _dump(light)


class ClusterSummary:
    """A cluster as ListClusters needs it: a document with the summary members only."""

    __slots__ = ("doc", "raw")

    def __init__(self, raw: str | bytes) -> None:
        self.raw = raw
        self.doc: ClusterSummaryDoc = _load(raw)

    @property
    def state(self) -> str:
        return self.doc["state"]


# One round trip for what a listing reads; each call of the API costs as little waiting as it can.
_CLUSTER_WITH_STEPS = """
local cluster = redis.call('GET', KEYS[1])
if not cluster then return {} end
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
local out = {cluster}
for i, sid in ipairs(ids) do
  local step = redis.call('GET', ARGV[1] .. sid)
  if step then out[#out + 1] = step end
end
return out
"""
# An instance is written only if it is new, or its stored state is one its new state may follow
# (ARGV[3..]); otherwise the stored state is returned and nothing is written.
_PUT_INSTANCE = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local current = cjson.decode(stored)['state']
  if current then
    local allowed = false
    for i = 3, #ARGV do
      if ARGV[i] == current then allowed = true end
    end
    if not allowed then return current end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return false
"""
_SUMMARY_PAGE = """
local found = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES', 'LIMIT', ARGV[3], ARGV[4])
local out = {}
for i = 1, #found, 2 do
  out[#out + 1] = found[i]
  out[#out + 1] = found[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], found[i]) or ''
end
return out
"""


class JobFlowStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._cluster_with_steps = client.register_script(_CLUSTER_WITH_STEPS)
        self._summary_page = client.register_script(_SUMMARY_PAGE)
        self._put_instance = client.register_script(_PUT_INSTANCE)

    # -- clusters -------------------------------------------------------
    def create_cluster(self, cluster: ClusterDoc, steps: Iterable[StepDoc] = ()) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_cluster_key(cluster["id"]), _dump(cluster))
            pipe.zadd(_account_key(cluster["account"]), {cluster["id"]: cluster["timeline"]["created"]})
            pipe.hset(_summaries_key(cluster["account"]), cluster["id"], _summary(cluster))
            pipe.sadd(ACTIVE_CLUSTERS, cluster["id"])
            for group in cluster.get("groups", []):
                pipe.hset(GROUP_INDEX, group["id"], cluster["id"])
            for step in steps:
                pipe.set(_step_key(step["id"]), _dump(step))
                pipe.rpush(_steps_key(cluster["id"]), step["id"])
            pipe.execute()

    def get_cluster(self, cid: str) -> ClusterDoc | None:
        raw = self.redis.get(_cluster_key(cid))
        return _load(raw) if raw else None

    def cluster_ids(self, account: str) -> list[str]:
        """The account's cluster ids, newest first."""
        return cast(list[str], self.redis.zrevrange(_account_key(account), 0, -1))

    def cluster_ids_with_times(
        self, account: str, after: float | None, before: float | None, offset: int, count: int
    ) -> list[tuple[str, float]]:
        """(cluster id, creation time) pairs created in [after, before], newest first, a slice at a time."""
        high = "+inf" if before is None else before
        low = "-inf" if after is None else after
        found = self.redis.zrevrangebyscore(
            _account_key(account), high, low, start=offset, num=count, withscores=True
        )
        return cast(list[tuple[str, float]], found)

    def summary_page(
        self, account: str, after: float | None, before: float | None, offset: int, count: int
    ) -> list[tuple[str, float, ClusterSummary | None]]:
        """Like ``cluster_ids_with_times`` with each cluster's summary, in one round trip."""
        high = "+inf" if before is None else repr(before)
        low = "-inf" if after is None else repr(after)
        flat = self._summary_page(
            keys=[_account_key(account), _summaries_key(account)], args=[high, low, offset, count]
        )
        page: list[tuple[str, float, ClusterSummary | None]] = []
        missing = []
        for i in range(0, len(flat), 3):
            cid, score, raw = flat[i], float(flat[i + 1]), flat[i + 2]
            page.append((cid, score, ClusterSummary(raw) if raw else None))
            if not raw:
                missing.append(i // 3)
        if missing:  # stored before summaries were kept
            made = self.cluster_summaries_of(account, [page[i][0] for i in missing])
            for i, summary in zip(missing, made, strict=True):
                page[i] = (page[i][0], page[i][1], summary)
        return page

    def cluster_summaries_of(self, account: str, cids: list[str]) -> list[ClusterSummary | None]:
        """The listing summaries of ``cids``; None for a cluster that no longer exists."""
        if not cids:
            return []
        raws = self.redis.hmget(_summaries_key(account), cids)
        summaries: list[ClusterSummary | None] = []
        for cid, raw in zip(cids, raws, strict=True):
            if raw is None:
                # Stored before summaries were kept: make it from the document, once.
                cluster = self.get_cluster(cid)
                if cluster is None:
                    summaries.append(None)
                    continue
                raw = _summary(cluster)
                self.redis.hset(_summaries_key(account), cid, raw)
            summaries.append(ClusterSummary(raw))
        return summaries

    def cluster_of_group(self, group_id: str) -> str | None:
        return cast(str | None, self.redis.hget(GROUP_INDEX, group_id))

    def index_groups(self, cid: str, group_ids: Iterable[str]) -> None:
        mapping: dict[FieldT, EncodableT] = dict.fromkeys(group_ids, cid)
        if mapping:
            self.redis.hset(GROUP_INDEX, mapping=mapping)

    def get_clusters(self, cids: list[str]) -> list[ClusterDoc]:
        if not cids:
            return []
        return [_load(raw) for raw in self.redis.mget([_cluster_key(c) for c in cids]) if raw]

    def active_cluster_ids(self) -> list[str]:
        return sorted(cast(set[str], self.redis.smembers(ACTIVE_CLUSTERS)))

    def update_cluster(self, cid: str, change: Callable[[ClusterDoc], None]) -> ClusterDoc:
        """Apply ``change`` to the stored cluster atomically and return the new document.

        A change that moves one of the cluster's instance groups to a state the group's
        transition table does not allow is refused with StateConflict, and nothing is written.
        """

        def checked(cluster: ClusterDoc) -> None:
            before = {g["id"]: g["state"] for g in cluster.get("groups", [])}
            state_before = cluster["state"]
            change(cluster)
            states.require_group_transitions(before, cluster.get("groups", []))
            if cluster["state"] != state_before:  # the console draws these as the cluster's phases
                history = cluster.setdefault(
                    "state_history", [[state_before, cluster["timeline"]["created"]]]
                )
                history.append([cluster["state"], time.time()])

        return self._update(_cluster_key(cid), checked, on_write=self._index_activity)

    def _index_activity(self, pipe: redis.client.Pipeline, cluster: ClusterDoc) -> None:
        pipe.hset(_summaries_key(cluster["account"]), cluster["id"], _summary(cluster))
        if cluster["state"] in states.FINAL_CLUSTER_STATES:
            pipe.srem(ACTIVE_CLUSTERS, cluster["id"])

    def transition_cluster(
        self, cid: str, new_state: str, code: str | None = None, message: str | None = None
    ) -> ClusterDoc:
        def change(cluster: ClusterDoc) -> None:
            states.require_transition(
                states.CLUSTER_TRANSITIONS, f"cluster {cid}", cluster["state"], new_state
            )
            cluster["state"] = new_state
            if code is not None or message is not None:
                cluster["state_reason"] = {"code": code, "message": message}
            now = time.time()
            if new_state in (states.RUNNING, states.WAITING) and not cluster["timeline"].get("ready"):
                cluster["timeline"]["ready"] = now
            if new_state in states.FINAL_CLUSTER_STATES:
                cluster["timeline"]["end"] = now

        return self.update_cluster(cid, change)

    def terminate_if_no_steps_pending(self, cid: str, change: Callable[[ClusterDoc], None]) -> bool:
        """Apply ``change`` (which ends the cluster) only if the cluster has no PENDING step.

        The cluster's step list is watched too, so a step added at the same moment either
        lands before the check (and is run) or finds the cluster already TERMINATING.
        """
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(_cluster_key(cid), _steps_key(cid))
                    raw = pipe.get(_cluster_key(cid))
                    if raw is None:
                        raise KeyError(cid)
                    step_ids = cast(list[str], pipe.lrange(_steps_key(cid), 0, -1))
                    raws = pipe.mget([_step_key(s) for s in step_ids]) if step_ids else []
                    if any(r and _load(r)["state"] == states.PENDING for r in raws):
                        pipe.reset()
                        return False
                    cluster: ClusterDoc = _load(raw)
                    change(cluster)
                    pipe.multi()
                    pipe.set(_cluster_key(cid), _dump(cluster))
                    self._index_activity(pipe, cluster)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    # -- steps ----------------------------------------------------------
    def add_steps(self, cid: str, steps: list[StepDoc]) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            for step in steps:
                pipe.set(_step_key(step["id"]), _dump(step))
                pipe.rpush(_steps_key(cid), step["id"])
            pipe.execute()

    def step_ids(self, cid: str) -> list[str]:
        """The cluster's step ids in the order they were added."""
        return cast(list[str], self.redis.lrange(_steps_key(cid), 0, -1))

    def cluster_with_steps(self, cid: str) -> tuple[ClusterDoc | None, list[StepDoc]]:
        """A cluster and its steps (in the order added), read in one round trip."""
        found = self._cluster_with_steps(keys=[_cluster_key(cid), _steps_key(cid)], args=[_step_key("")])
        if not found:
            return None, []
        return _load(found[0]), [_load(raw) for raw in found[1:]]

    def steps_of(self, cid: str) -> list[StepDoc]:
        ids = self.step_ids(cid)
        if not ids:
            return []
        return [_load(raw) for raw in self.redis.mget([_step_key(s) for s in ids]) if raw]

    def get_step(self, sid: str) -> StepDoc | None:
        raw = self.redis.get(_step_key(sid))
        return _load(raw) if raw else None

    def update_step(self, sid: str, change: Callable[[StepDoc], None]) -> StepDoc:
        return self._update(_step_key(sid), change)

    def transition_step(self, sid: str, new_state: str, **fields: Any) -> StepDoc:
        def change(step: StepDoc) -> None:
            states.require_transition(states.STEP_TRANSITIONS, f"step {sid}", step["state"], new_state)
            step["state"] = new_state
            now = time.time()
            if new_state == states.STEP_RUNNING:
                step["timeline"]["start"] = now
            if new_state in states.FINAL_STEP_STATES:
                step["timeline"]["end"] = now
            step.update(cast(StepDoc, fields))

        return self.update_step(sid, change)

    # -- instances ------------------------------------------------------
    def put_instance(self, cid: str, instance: InstanceDoc) -> None:
        """Store ``instance``; StateConflict if its stored state may not be followed by its new one."""
        # Atomic in Redis: the stored state is read and the document written in one script.
        follows = states.predecessors(states.INSTANCE_TRANSITIONS, instance["state"])
        refused = self._put_instance(
            keys=[_instances_key(cid)], args=[instance["id"], _dump(instance), *follows]
        )
        if refused:
            raise StateConflict(f"instance {instance['id']} cannot go from {refused} to {instance['state']}")

    def restore_instance(self, cid: str, instance: InstanceDoc) -> None:
        """Store ``instance`` whatever its stored state: only for a relocation's roll-back, which
        gives a source instance it had swapped out (TERMINATED) back its running state."""
        self.redis.hset(_instances_key(cid), instance["id"], _dump(instance))

    def instances_of(self, cid: str) -> list[InstanceDoc]:
        docs: list[InstanceDoc] = [_load(raw) for raw in self.redis.hvals(_instances_key(cid))]
        return sorted(docs, key=lambda d: (d.get("role") != "MASTER", d["id"]))

    # -- account-wide settings ------------------------------------------
    def security_configurations(self, account: str) -> dict[str, SecurityConfigurationDoc]:
        raw = cast(dict[str, str], self.redis.hgetall(_security_configurations_key(account)))
        return {name: _load(doc) for name, doc in raw.items()}

    def get_security_configuration(self, account: str, name: str) -> SecurityConfigurationDoc | None:
        raw = self.redis.hget(_security_configurations_key(account), name)
        return _load(raw) if raw else None

    def create_security_configuration(self, account: str, doc: SecurityConfigurationDoc) -> bool:
        """Store a new configuration; False when one of that name exists."""
        return bool(self.redis.hsetnx(_security_configurations_key(account), doc["name"], _dump(doc)))

    def delete_security_configuration(self, account: str, name: str) -> bool:
        return bool(self.redis.hdel(_security_configurations_key(account), name))

    def get_block_public_access(self, account: str) -> BlockPublicAccessDoc | None:
        raw = self.redis.get(_block_public_access_key(account))
        return _load(raw) if raw else None

    def put_block_public_access(
        self, account: str, doc: BlockPublicAccessDoc, only_if_absent: bool = False
    ) -> bool:
        return bool(self.redis.set(_block_public_access_key(account), _dump(doc), nx=only_if_absent))

    # -- work notifications ---------------------------------------------
    def notify(self, cid: str) -> None:
        """Tell the orchestrator that cluster ``cid`` has something new to act on."""
        self.redis.rpush(WORK_QUEUE, cid)

    def next_notification(self, timeout: float) -> str | None:
        item = cast(tuple[str, str] | None, self.redis.blpop([WORK_QUEUE], timeout=timeout))
        return item[1] if item else None

    # -- plumbing -------------------------------------------------------
    def _update(
        self,
        key: str,
        change: Callable[[D], None],
        on_write: Callable[[redis.client.Pipeline, D], None] | None = None,
    ) -> D:
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise KeyError(key)
                    doc: D = _load(raw)
                    change(doc)
                    pipe.multi()
                    pipe.set(key, _dump(doc))
                    if on_write is not None:
                        on_write(pipe, doc)
                    pipe.execute()
                    return doc
                except redis.WatchError:
                    continue
