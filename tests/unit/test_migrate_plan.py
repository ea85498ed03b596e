"""Relocation planning: manifests as the capture program prints them, and who sends what."""

from __future__ import annotations

import json

import pytest

from resilin.migrate.manifest import Entry, Manifest, ManifestError, capture_command, parse
from resilin.migrate.plan import plan_transfer

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _file(path: str, digest: str, size: int = 10) -> Entry:
    return Entry(path, "f", 0o644, 1000, 1000, size, digest)


def _printed(entries: list[dict], count: int | None = None) -> str:
    lines = [json.dumps(e) for e in entries]
    return "\n".join([*lines, json.dumps({"entries": len(entries) if count is None else count})]) + "\n"


def test_a_manifest_is_read_back_entry_by_entry():
    printed = _printed([
        {"path": "/data/dn", "kind": "d", "mode": 0o700, "uid": 1000, "gid": 1000},
        {"path": "/data/dn/blk_1", "kind": "f", "mode": 0o644, "uid": 1000, "gid": 1000, "size": 5, "digest": A},
        {"path": "/data/dn/current", "kind": "l", "mode": 0o777, "uid": 0, "gid": 0, "target": "v2"},
    ])  # fmt: skip
    manifest = parse("i-1", printed)
    assert [e.kind for e in manifest.entries] == ["d", "f", "l"]
    assert manifest.files == [_file("/data/dn/blk_1", A, 5)]
    assert manifest.size == 5 and manifest.digests() == {A}
    assert manifest.entries[2].target == "v2"


@pytest.mark.parametrize(
    "output, message",
    [
        ("", "unreadable"),
        (_printed([{"path": "/d", "kind": "d", "mode": 1, "uid": 0, "gid": 0}], count=2), "cut short"),
        ('{"path": "/d", "kind": "d", "mode": 1, "uid": 0, "gid": 0}\n', "unreadable"),  # no count line
        (_printed([{"path": "/p", "kind": "p", "mode": 1, "uid": 0, "gid": 0}]), "unknown entry kind"),
        (_printed([{"path": "/f", "kind": "f", "mode": 1, "uid": 0, "gid": 0, "size": 1, "digest": "ab"}]),
         "bad digest"),
    ],
)  # fmt: skip
def test_a_manifest_cut_short_or_garbled_is_refused(output, message):
    with pytest.raises(ManifestError, match=message):
        parse("i-1", output)


def test_the_capture_command_takes_only_plain_absolute_paths():
    assert capture_command(["/mnt/hdfs", "/var/lib/x"]) == "sudo -n python3 - '/mnt/hdfs' '/var/lib/x'"
    for bad in ("relative", "/a'b", "/a\nb"):
        with pytest.raises(ValueError):
            capture_command([bad])


def _three_datanodes() -> dict[str, Manifest]:
    # Replication 3 over three nodes: block A on all, B on two, C on one; the NameNode image on s1.
    return {
        "s1": Manifest("s1", (_file("/dn/A", A, 100), _file("/dn/B", B, 50), _file("/nn/fsimage", C, 7))),
        "s2": Manifest("s2", (_file("/dn/A", A, 100), _file("/dn/B", B, 50))),
        "s3": Manifest("s3", (_file("/dn/A", A, 100),)),
    }


def test_each_distinct_content_crosses_the_wan_once_and_the_rest_is_copied_inside_the_destination():
    manifests = _three_datanodes()
    destinations = {"s1": "d1", "s2": "d2", "s3": "d3"}
    won = {"s1": {A, C}, "s2": {B}, "s3": set()}
    plan = plan_transfer(manifests, destinations, won, held={})
    assert sorted((s.digest, s.source, s.dest) for s in plan.sends) == [(A, "s1", "d1"), (B, "s2", "d2"),
                                                                       (C, "s1", "d1")]  # fmt: skip
    assert sorted((c.digest, c.dest) for c in plan.copies) == [(A, "d2"), (A, "d3"), (B, "d1")]
    assert plan.wan_bytes == 157  # against 457 bytes of state on the three nodes
    assert plan.local_bytes == 250


def test_a_resumed_move_sends_only_what_no_destination_node_holds_yet():
    manifests = _three_datanodes()
    destinations = {"s1": "d1", "s2": "d2", "s3": "d3"}
    won = {"s1": {A, C}, "s2": {B}, "s3": set()}
    plan = plan_transfer(manifests, destinations, won, held={A: {"d1", "d3"}, C: {"d1"}})
    assert [(s.digest, s.dest) for s in plan.sends] == [(B, "d2")]
    assert sorted((c.digest, c.dest) for c in plan.copies) == [(A, "d2"), (B, "d1")]
    assert plan.already_there == 3


def test_one_node_holding_a_content_twice_receives_it_once_for_both_paths():
    manifests = {"s1": Manifest("s1", (_file("/x/1", A), _file("/x/2", A)))}
    plan = plan_transfer(manifests, {"s1": "d1"}, {"s1": {A}}, {})
    assert [(s.dest, s.dest_paths) for s in plan.sends] == [("d1", ("/x/1", "/x/2"))]


def test_inconsistent_inputs_are_refused():
    manifests = _three_datanodes()
    destinations = {"s1": "d1", "s2": "d2", "s3": "d3"}
    with pytest.raises(ValueError, match="every source node"):
        plan_transfer(manifests, {"s1": "d1"}, {}, {})
    with pytest.raises(ValueError, match="two senders"):
        plan_transfer(manifests, destinations, {"s1": {A}, "s2": {A}}, {})
    with pytest.raises(ValueError, match="not a source node"):
        plan_transfer(manifests, destinations, {"s9": {A}}, {})
    with pytest.raises(ValueError, match="no sender and no holder"):
        plan_transfer(manifests, destinations, {"s1": {A}}, {})
