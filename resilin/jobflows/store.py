"""Job-flow state in Redis.

Clusters, steps and instances are JSON documents under their own keys; indexes
keep each account's clusters by creation time and each cluster's steps in the
order they were added.  Every change to a document goes through an optimistic
transaction (WATCH/MULTI), so the API threads and the orchestrator can change
the same cluster without losing each other's writes.  State changes are checked
against the transition tables in ``states``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from resilin.jobflows import states

Doc = dict[str, Any]

WORK_QUEUE = "resilin:work"
ACTIVE_CLUSTERS = "resilin:clusters:active"


class StateConflict(Exception):
    """A state change that the state machine does not allow from the current state."""


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


class JobFlowStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # -- clusters -------------------------------------------------------
    def create_cluster(self, cluster: Doc, steps: Iterable[Doc] = ()) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_cluster_key(cluster["id"]), json.dumps(cluster))
            pipe.zadd(_account_key(cluster["account"]), {cluster["id"]: cluster["timeline"]["created"]})
            pipe.sadd(ACTIVE_CLUSTERS, cluster["id"])
            for step in steps:
                pipe.set(_step_key(step["id"]), json.dumps(step))
                pipe.rpush(_steps_key(cluster["id"]), step["id"])
            pipe.execute()

    def get_cluster(self, cid: str) -> Doc | None:
        raw = self.redis.get(_cluster_key(cid))
        return json.loads(raw) if raw else None

    def cluster_ids(self, account: str) -> list[str]:
        """The account's cluster ids, newest first."""
        return self.redis.zrevrange(_account_key(account), 0, -1)

    def get_clusters(self, cids: list[str]) -> list[Doc]:
        if not cids:
            return []
        return [json.loads(raw) for raw in self.redis.mget([_cluster_key(c) for c in cids]) if raw]

    def active_cluster_ids(self) -> list[str]:
        return sorted(self.redis.smembers(ACTIVE_CLUSTERS))

    def update_cluster(self, cid: str, change: Callable[[Doc], None]) -> Doc:
        """Apply ``change`` to the stored cluster atomically and return the new document."""
        return self._update(_cluster_key(cid), change, on_write=self._index_activity)

    def _index_activity(self, pipe: redis.client.Pipeline, cluster: Doc) -> None:
        if cluster["state"] in states.FINAL_CLUSTER_STATES:
            pipe.srem(ACTIVE_CLUSTERS, cluster["id"])

    def transition_cluster(
        self, cid: str, new_state: str, code: str | None = None, message: str | None = None
    ) -> Doc:
        def change(cluster: Doc) -> None:
            current = cluster["state"]
            if new_state != current and new_state not in states.CLUSTER_TRANSITIONS[current]:
                raise StateConflict(f"cluster {cid} cannot go from {current} to {new_state}")
            cluster["state"] = new_state
            if code is not None or message is not None:
                cluster["state_reason"] = {"code": code, "message": message}
            now = time.time()
            if new_state in (states.RUNNING, states.WAITING) and not cluster["timeline"].get("ready"):
                cluster["timeline"]["ready"] = now
            if new_state in states.FINAL_CLUSTER_STATES:
                cluster["timeline"]["end"] = now

        return self.update_cluster(cid, change)

    def terminate_if_no_steps_pending(self, cid: str, change: Callable[[Doc], None]) -> bool:
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
                    step_ids = pipe.lrange(_steps_key(cid), 0, -1)
                    raws = pipe.mget([_step_key(s) for s in step_ids]) if step_ids else []
                    if any(r and json.loads(r)["state"] == states.PENDING for r in raws):
                        pipe.reset()
                        return False
                    cluster = json.loads(raw)
                    change(cluster)
                    pipe.multi()
                    pipe.set(_cluster_key(cid), json.dumps(cluster))
                    self._index_activity(pipe, cluster)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    # -- steps ----------------------------------------------------------
    def add_steps(self, cid: str, steps: list[Doc]) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            for step in steps:
                pipe.set(_step_key(step["id"]), json.dumps(step))
                pipe.rpush(_steps_key(cid), step["id"])
            pipe.execute()

    def step_ids(self, cid: str) -> list[str]:
        """The cluster's step ids in the order they were added."""
        return self.redis.lrange(_steps_key(cid), 0, -1)

    def steps_of(self, cid: str) -> list[Doc]:
        ids = self.step_ids(cid)
        if not ids:
            return []
        return [json.loads(raw) for raw in self.redis.mget([_step_key(s) for s in ids]) if raw]

    def get_step(self, sid: str) -> Doc | None:
        raw = self.redis.get(_step_key(sid))
        return json.loads(raw) if raw else None

    def update_step(self, sid: str, change: Callable[[Doc], None]) -> Doc:
        return self._update(_step_key(sid), change)

    def transition_step(self, sid: str, new_state: str, **fields: Any) -> Doc:
        def change(step: Doc) -> None:
            current = step["state"]
            if new_state != current and new_state not in states.STEP_TRANSITIONS[current]:
                raise StateConflict(f"step {sid} cannot go from {current} to {new_state}")
            step["state"] = new_state
            now = time.time()
            if new_state == states.STEP_RUNNING:
                step["timeline"]["start"] = now
            if new_state in states.FINAL_STEP_STATES:
                step["timeline"]["end"] = now
            step.update(fields)

        return self.update_step(sid, change)

    # -- instances ------------------------------------------------------
    def put_instance(self, cid: str, instance: Doc) -> None:
        self.redis.hset(_instances_key(cid), instance["id"], json.dumps(instance))

    def instances_of(self, cid: str) -> list[Doc]:
        docs = [json.loads(raw) for raw in self.redis.hvals(_instances_key(cid))]
        return sorted(docs, key=lambda d: (d.get("role") != "MASTER", d["id"]))

    # -- work notifications ---------------------------------------------
    def notify(self, cid: str) -> None:
        """Tell the orchestrator that cluster ``cid`` has something new to act on."""
        self.redis.rpush(WORK_QUEUE, cid)

    def next_notification(self, timeout: float) -> str | None:
        item = self.redis.blpop([WORK_QUEUE], timeout=timeout)
        return item[1] if item else None

    # -- plumbing -------------------------------------------------------
    def _update(
        self,
        key: str,
        change: Callable[[Doc], None],
        on_write: Callable[[redis.client.Pipeline, Doc], None] | None = None,
    ) -> Doc:
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise KeyError(key)
                    doc = json.loads(raw)
                    change(doc)
                    pipe.multi()
                    pipe.set(key, json.dumps(doc))
                    if on_write is not None:
                        on_write(pipe, doc)
                    pipe.execute()
                    return doc
                except redis.WatchError:
                    continue
