"""Relocating a running cluster to another cloud: the pipeline RelocateCluster starts.

A cold move at a step boundary (live container migration is not available on Resilin's clouds):

    plan → launch → quiesce → capture → transfer → rebuild → start → release

* plan: the destination's instance types, quota and image, and whether the network can join the
  two clouds, are checked before anything stops; a refusal leaves the cluster as it was;
* launch: the destination instances start while the cluster still runs (less downtime), and the
  network joins them with the source's, so the transfer crosses clouds over the overlay;
* quiesce: steps are paused (the step scheduler starts none while ``relocation`` is set), HDFS
  enters safe mode and saves its namespace, then every daemon stops;
* capture, transfer: each source node's *state set* (HDFS name and data directories; the
  configuration is rendered again, not copied) as a manifest, indexed in Redis as Shrinker did
  (one ``SETNX`` winner per distinct content, a set of destination holders per content), sent
  once over the WAN zstd-compressed and verified on arrival (resilin.migrate.transfer);
* rebuild, start: the destination nodes are configured like new ones with their new addresses —
  the NameNode is not formatted again since its state arrived — and HDFS must come back with every
  block; the NameNode's safe-mode extension is cut short once all blocks are reported;
* release: the cluster's documents now name the destination instances; the source's are let go.

Until the source is released any failure restarts the source from its untouched state and lets
the destination go; the move's outcome is recorded in the cluster's ``relocations``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from resilin.applications.base import Application, ApplicationError
from resilin.clouds import private_ranges
from resilin.clouds.provisioning import ProvisioningFailed, ReadyInstance
from resilin.cluster.network import NetworkFailure
from resilin.cluster.node_setup import on_each
from resilin.cluster.runtime import ClusterFailure, ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc, InstanceGroupDoc
from resilin.migrate.capture import capture
from resilin.migrate.index import MoveIndex
from resilin.migrate.manifest import Manifest, ManifestError
from resilin.migrate.plan import plan_transfer
from resilin.migrate.recovery import MOVED_MESSAGE
from resilin.migrate.transfer import Endpoint, TransferError, TransferReport, transfer

log = logging.getLogger(__name__)


class RelocationRefused(Exception):
    """The plan found the move impossible; nothing was stopped or launched."""


class RelocationFailed(Exception):
    """The move failed after it began; the source was restarted from its untouched state."""


class RelocationPipeline:
    def __init__(self, runtime: ClusterRuntime, application: Application) -> None:
        self.runtime = runtime
        self.application = application
        self.cid = runtime.cid
        self.store = runtime.store
        self.report = TransferReport()
        self.new: list[ReadyInstance] = []
        self.quiesced = False
        self.swapped = False
        self.down_since: float | None = None
        self.figures: dict[str, int] = {}  # what the move carried, for its record
        self.phases: list[tuple[str, float]] = []  # each phase and when it began
        self.leaving: list[InstanceDoc] = []  # the source instances of the groups that move
        self.staying: list[InstanceDoc] = []  # the others (a partial move: the master stays)

    # -- the move's record -------------------------------------------------------------
    def _request(self) -> dict[str, Any]:
        relocation = self.runtime.cluster.get("relocation")
        assert relocation is not None
        return dict(relocation)

    def phase(self, name: str, **progress: Any) -> None:
        self.phases.append((name, time.time()))
        self._update(name, progress | {"phase_started": time.time()})
        log.info("%s: relocation: %s", self.cid, name.lower())

    def _progress(self, **values: Any) -> None:
        self._update(None, values)

    def _update(self, phase: str | None, progress: dict[str, Any]) -> None:
        """The relocation's phase (when given) and progress figures, in the cluster's document."""

        def change(c: ClusterDoc) -> None:
            relocation = c.get("relocation")
            if relocation is not None:
                if phase is not None:
                    relocation["phase"] = phase
                relocation.setdefault("progress", {}).update(progress)

        self.store.update_cluster(self.cid, change)

    def _record_members(self) -> None:
        """Which instances move and which stay, for undoing the move after a restart of Resilin."""

        def change(c: ClusterDoc) -> None:
            relocation = c.get("relocation")
            if relocation is not None:
                relocation["source_instances"] = [i["id"] for i in self.leaving]
                relocation["staying_instances"] = [i["id"] for i in self.staying]

        self.store.update_cluster(self.cid, change)

    def _finish(self, source: str, outcome: str, message: str) -> None:
        ended = time.time()
        downtime = round(ended - self.down_since, 1) if self.down_since is not None else 0.0

        def change(c: ClusterDoc) -> None:
            relocation: dict[str, Any] = dict(c.pop("relocation", None) or {})
            c.setdefault("relocations", []).append(
                {
                    "source": source,
                    "destination": relocation.get("destination", ""),
                    "groups": relocation.get("groups", {}),
                    "requested": relocation.get("requested", ended),
                    "ended": ended,
                    "outcome": outcome,
                    "message": message,
                    "bytes_sent": self.report.wan_wire,
                    **self.figures,
                    "phase_seconds": _durations(self.phases, ended),
                    "downtime_seconds": downtime if outcome == "COMPLETED" or self.quiesced else 0.0,
                }
            )

        self.store.update_cluster(self.cid, change)
        log.info("%s: relocation %s: %s", self.cid, outcome.lower(), message)

    # -- the whole move ----------------------------------------------------------------
    def run(self) -> None:
        request = self._request()
        destination = request["destination"]
        try:
            moving = self._moving_groups(request)
        except KeyError as exc:  # a group ended since the request was accepted
            self._finish(
                self.runtime.placement.cloud_name,
                "FAILED",
                f"Refused before anything stopped: no group {exc}",
            )
            return
        ids = {g["id"] for g in moving}
        self.leaving = [i for i in self.runtime.live_instances() if i["group_id"] in ids]
        self.staying = [i for i in self.runtime.live_instances() if i["group_id"] not in ids]
        source = ", ".join(sorted({i["cloud"] for i in self.leaving})) or self.runtime.placement.cloud_name
        self._record_members()
        try:
            self.phase("PLANNING")
            self._plan(source, destination, moving)
        except RelocationRefused as exc:
            self._finish(source, "FAILED", f"Refused before anything stopped: {exc}")
            return
        except Exception as exc:  # nothing was stopped or launched yet
            log.exception("%s: planning the relocation failed", self.cid)
            self._finish(source, "FAILED", f"Planning failed before anything stopped: {_reason(exc)}")
            return
        try:
            self._move(source, destination, moving)
        except Exception as exc:  # anything before the source is released: it runs again
            log.exception("%s: relocation to %s failed", self.cid, destination)
            message = _reason(exc)
            self.phase("ROLLING_BACK")
            try:
                self._roll_back()
            except Exception as again:
                log.exception("%s: restarting the source after a failed relocation failed", self.cid)
                self._finish(source, "FAILED", f"{message}; restarting the source failed: {_reason(again)}")
                raise ClusterFailure(
                    states.INTERNAL_ERROR,
                    f"Relocation failed and the cluster could not be restarted: {again}",
                ) from None
            self._finish(source, "ROLLED_BACK", f"{message}; the cluster runs as before")
            return
        self._finish(source, "COMPLETED", f"Relocated from cloud {source} to cloud {destination}")

    def _moving_groups(self, request: dict[str, Any]) -> list[InstanceGroupDoc]:
        """The groups that move, each as it will be in the destination: its type there, its size."""
        by_id = {g["id"]: g for g in self.runtime.cluster["groups"]}
        live = self.runtime.live_instances()
        moving: list[InstanceGroupDoc] = []
        for gid, instance_type in request["groups"].items():
            group: InstanceGroupDoc = dict(by_id[gid])  # type: ignore[assignment]
            group["instance_type"] = instance_type or group["instance_type"]
            group["requested"] = sum(1 for i in live if i["group_id"] == gid)
            group["cloud"] = request["destination"]
            moving.append(group)
        return moving

    # -- plan ------------------------------------------------------------------------
    def _plan(self, source: str, destination: str, moving: list[InstanceGroupDoc]) -> None:
        runtime = self.runtime
        if not self.leaving:
            raise RelocationRefused("the instance groups to move have no running instance")
        if any(i["cloud"] == destination for i in self.leaving):
            raise RelocationRefused(f"instances of the groups to move are already in cloud {destination}")
        # During the move every cloud of the cluster and the destination must reach each other.
        clouds = {i["cloud"] for i in self.leaving + self.staying} | {destination}
        refusal = runtime.network.spread_refusal(clouds)
        if refusal is not None:
            raise RelocationRefused(refusal)
        try:
            ranges = private_ranges.spread_refusal([runtime.placements(c) for c in sorted(clouds)])
        except KeyError:
            raise RelocationRefused(f"cloud {destination} is not configured") from None
        if ranges is not None:
            raise RelocationRefused(ranges)
        try:
            runtime.provisioner.check_room(destination, moving)
        except ProvisioningFailed as exc:
            raise RelocationRefused(exc.message) from None
        master_moves = any(i["role"] == "MASTER" for i in self.leaving)
        if (
            master_moves
            and runtime.placements(destination).external_storage != runtime.placement.external_storage
        ):
            raise RelocationRefused(
                f"cloud {destination} keeps cluster data on other storage than cloud {source}: "
                "the cluster's s3:// paths would point elsewhere"
            )

    # -- the move ----------------------------------------------------------------------
    def _move(self, source: str, destination: str, moving: list[InstanceGroupDoc]) -> None:
        runtime = self.runtime
        old, staying = self.leaving, self.staying
        self.phase("LAUNCHING")
        self.new = runtime.provisioner.launch_into(destination, runtime.cluster, moving)
        for ready in self.new:
            runtime.sessions.add(ready.doc["id"], ready.node)
        new_docs = [r.doc for r in self.new]
        try:
            runtime.network.join(staying + old + new_docs, runtime.network_context())
        except NetworkFailure as exc:
            raise RelocationFailed(f"the network could not join cloud {destination}: {exc}") from None
        pairs = _pair(old, new_docs)

        # All of Hadoop stops, also on the nodes that stay: HDFS's state must not change while
        # the moving nodes' part of it is read.
        self.phase("QUIESCING")
        self.quiesced = True
        self.down_since = time.time()
        self._stop(staying + old)

        self.phase("CAPTURING")
        manifests = self._capture(old)
        total = sum(m.size for m in manifests.values())
        distinct = {d for m in manifests.values() for d in m.digests()}
        self._progress(bytes_total=total, chunks_total=len(distinct), bytes_sent=0, chunks_sent=0)

        self.phase("TRANSFERRING")
        index = MoveIndex(self.store.redis, f"{self.cid}-relocation")
        won = {src: index.claim(src, manifests[src].digests()) for src in manifests}
        destinations = {src: pairs[src]["id"] for src in manifests}
        plan = plan_transfer(manifests, destinations, won, index.holders(distinct))
        endpoints = {i["id"]: Endpoint(runtime.sessions[i["id"]], i["private_ip"]) for i in old + new_docs}
        started = time.monotonic()

        def progress(what: str, report: TransferReport) -> None:
            elapsed = time.monotonic() - started
            rate = report.wan_raw / elapsed if elapsed > 0 else 0.0
            left = max(0, plan.wan_bytes - report.wan_raw)
            self._progress(
                bytes_sent=report.wan_wire, chunks_sent=report.files_sent,
                eta_seconds=round(left / rate, 1) if rate else None,
            )  # fmt: skip

        self.report = transfer(plan, manifests, destinations, endpoints, index, progress)
        progress("done", self.report)
        sizes = {e.digest: e.size for m in manifests.values() for e in m.files}
        self.figures = {
            "bytes_total": total,
            "distinct_contents": len(distinct),
            "distinct_bytes": sum(sizes.values()),
            "setnx_winners": sum(len(w) for w in won.values()),
            "wan_raw": self.report.wan_raw,
            "wan_wire": self.report.wan_wire,
            "local_wire": self.report.local_wire,
        }
        index.forget()

        self.phase("REBUILDING")
        self._swap(old, new_docs)
        self.phase("STARTING")
        self._start_destination(staying, new_docs)

        self.phase("RELEASING")
        self._release(old, whole_cloud=source if not staying else None)

    def _stop(self, old: list[InstanceDoc]) -> None:
        try:
            self.application.quiesce(self.runtime, old)
        except ApplicationError as exc:
            raise RelocationFailed(str(exc)) from None

    def _capture(self, old: list[InstanceDoc]) -> dict[str, Manifest]:
        manifests: dict[str, Manifest] = {}

        def one(instance: InstanceDoc) -> None:
            manifests[instance["id"]] = capture(
                self.runtime.sessions[instance["id"]], instance["id"], self.application.state_paths
            )

        try:
            on_each(old, one)
        except ManifestError as exc:
            raise RelocationFailed(f"capturing the state failed: {exc}") from None
        return manifests

    def _swap(self, old: list[InstanceDoc], new_docs: list[InstanceDoc]) -> None:
        """The destination instances become the cluster's; the source's stay until released."""
        for doc in new_docs:
            doc.setdefault("timeline", {"created": time.time()})
            self.store.put_instance(self.cid, doc)
        for doc in old:
            doc["state"] = states.INSTANCE_TERMINATED
            doc["state_reason"] = {"code": None, "message": MOVED_MESSAGE}
            doc.setdefault("timeline", {})["end"] = time.time()
            self.store.put_instance(self.cid, doc)
        self.swapped = True

    def _start_destination(self, staying: list[InstanceDoc], new_docs: list[InstanceDoc]) -> None:
        """Hadoop configured again on every node with the new addresses, and started."""
        runtime = self.runtime
        try:
            self.application.configure_moved(runtime, staying, new_docs)
        except ClusterFailure as exc:
            raise RelocationFailed(f"the cluster did not start in the destination: {exc.message}") from None
        except ApplicationError as exc:
            raise RelocationFailed(f"the cluster did not start in the destination: {exc}") from None
        for doc in new_docs:
            doc["state"] = states.INSTANCE_RUNNING
            doc.setdefault("timeline", {})["ready"] = time.time()
            self.store.put_instance(self.cid, doc)
        destination = new_docs[0]["cloud"]

        def placed(c: ClusterDoc) -> None:
            types = {i["group_id"]: i["instance_type"] for i in new_docs}
            for group in c["groups"]:
                if group["id"] in types:
                    group["instance_type"] = types[group["id"]]
                    group["cloud"] = destination

        self.store.update_cluster(self.cid, placed)
        if any(i["role"] == "MASTER" for i in new_docs):  # the cluster's cloud is its master's
            runtime.provisioner.placement = runtime.placements(destination)

    def _release(self, old: list[InstanceDoc], whole_cloud: str | None) -> None:
        """The source instances let go: with the cluster's key and group there when none of the
        cluster stays in that cloud (``whole_cloud``), else one by one."""
        runtime = self.runtime
        nodes = {i["ec2_id"]: node for i in old if (node := runtime.sessions.get(i["id"])) is not None}
        try:
            self.application.ship_logs(runtime, nodes)  # the source nodes' daemon logs, as at teardown
        except Exception as exc:
            log.warning("%s: shipping the source nodes' logs failed: %s", self.cid, exc)
        for instance in old:
            node = runtime.sessions.pop(instance["id"])
            if node is not None:
                node.close()
        if whole_cloud is not None and "," not in whole_cloud:
            errors = runtime.provisioner.release(whole_cloud)
            if errors:
                log.warning("%s: releasing cloud %s: %s", self.cid, whole_cloud, "; ".join(errors))
        else:
            by_cloud: dict[str, list[str]] = {}
            for instance in old:
                by_cloud.setdefault(instance["cloud"], []).append(instance["ec2_id"])
            for cloud, ec2_ids in by_cloud.items():
                client = runtime.placements(cloud).client
                try:
                    client.terminate(ec2_ids)
                    client.wait_terminated(ec2_ids, timeout=300)
                except Exception as exc:  # the teardown sweep by tag catches them at the latest
                    log.warning("%s: terminating %s in cloud %s failed: %s", self.cid, ec2_ids, cloud, exc)
        try:
            runtime.network.join(runtime.live_instances(), runtime.network_context())
        except NetworkFailure as exc:
            log.warning("%s: re-forming the network after the move failed: %s", self.cid, exc)

    # -- failure -----------------------------------------------------------------------
    def _roll_back(self) -> None:
        """The destination is let go; the source, untouched, starts again."""
        runtime = self.runtime
        for ready in self.new:
            runtime.sessions.pop(ready.doc["id"])
            ready.node.close()
            if self.swapped:
                ready.doc["state"] = states.INSTANCE_TERMINATED
                ready.doc["state_reason"] = {"code": None, "message": "Relocation rolled back"}
                self.store.put_instance(self.cid, ready.doc)
        if self.new:
            cloud = self.new[0].doc["cloud"]
            try:
                runtime.placements(cloud).client.terminate([r.doc["ec2_id"] for r in self.new])
            except Exception as exc:  # the teardown sweep by tag catches them at the latest
                log.warning("%s: terminating the destination instances failed: %s", self.cid, exc)
        if self.swapped:
            for doc in self.leaving:
                doc["state"] = states.INSTANCE_RUNNING
                doc.pop("state_reason", None)
                doc.get("timeline", {}).pop("end", None)
                self.store.restore_instance(self.cid, doc)
        everyone = self.staying + self.leaving
        try:
            runtime.network.join(everyone, runtime.network_context())
        except NetworkFailure as exc:
            log.warning("%s: re-forming the network after a failed move: %s", self.cid, exc)
        if self.quiesced:
            self._restart_source(everyone)

    def _restart_source(self, old: list[InstanceDoc]) -> None:
        try:
            self.application.resume(self.runtime, old)
        except (ApplicationError, ClusterFailure) as exc:
            raise RelocationFailed(f"the source did not start again: {exc}") from None


def _pair(old: list[InstanceDoc], new: list[InstanceDoc]) -> dict[str, InstanceDoc]:
    """Each source instance's destination instance: the same group, in order."""
    by_group: dict[str, list[InstanceDoc]] = {}
    for doc in sorted(new, key=lambda d: d["private_ip"]):
        by_group.setdefault(doc["group_id"], []).append(doc)
    pairs = {}
    for doc in sorted(old, key=lambda d: d["private_ip"]):
        pairs[doc["id"]] = by_group[doc["group_id"]].pop(0)
    return pairs


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (RelocationFailed, TransferError)):
        return str(exc)
    if isinstance(exc, ProvisioningFailed):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _durations(phases: list[tuple[str, float]], ended: float) -> dict[str, float]:
    """Seconds spent in each phase, from the times they began."""
    ends = [t for _, t in phases[1:]] + [ended]
    return {name: round(end - began, 2) for (name, began), end in zip(phases, ends, strict=True)}
