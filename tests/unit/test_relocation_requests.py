"""RelocateCluster's pure pieces: its checks, the status and shapes it shows, and the command's
arguments and lines (with a stand-in client: nothing is started)."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from resilin import cli, clusters_cli
from resilin.errors import InvalidRequest
from resilin.jobflows import relocation_checks, relocations, states, views
from resilin.jobflows.instance_requests import new_group
from resilin.jobflows.releases import CloudOffer, OfferedType

M5 = (OfferedType("m5.xlarge", 4, 16384), OfferedType("m5.large", 2, 8192))
OFFERS = (
    CloudOffer("home", True, M5, "10.77.1.0/24"),
    CloudOffer("edge", False, M5, "10.77.2.0/24"),
    CloudOffer("wide", False, M5, "10.77.0.0/16"),  # overlaps both
    CloudOffer("aws", False, None, None),  # its catalogue is not known ahead
    CloudOffer("guarded", False, None, None, storage_accounts=frozenset({"999999999999"})),
)


def _cluster(**extra) -> dict:
    groups = [
        new_group({"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}),
        new_group({"InstanceRole": "CORE", "InstanceType": "m5.large", "InstanceCount": 2}),
    ]
    for g in groups:
        g["state"], g["running"] = states.GROUP_RUNNING, g["requested"]
    return {
        "id": "j-RELOCATED",
        "account": "111111111111",
        "state": states.WAITING,
        "terminate_requested": False,
        "instance_collection_type": "INSTANCE_GROUP",
        "groups": groups,
        "timeline": {"created": 1.0},
        "state_reason": {"code": None, "message": "Cluster ready to run steps."},
    } | extra


def _instances(cluster: dict, cloud: str = "home") -> list[dict]:
    return [
        {
            "id": f"ci-{n}",
            "group_id": g["id"],
            "role": g["role"],
            "cloud": cloud,
            "state": states.INSTANCE_RUNNING,
        }
        for g in cluster["groups"]
        for n in range(g["requested"])
    ]


def _plan(cluster: dict, target: str, named: list[dict] | None = None, cloud: str = "home") -> dict:
    return relocation_checks.plan(cluster, _instances(cluster, cloud), OFFERS, target, named, 5.0)


def test_a_full_move_records_every_group_with_its_type():
    cluster = _cluster()
    master, core = cluster["groups"]
    assert _plan(cluster, "edge") == {
        "destination": "edge",
        "groups": {master["id"]: "m5.xlarge", core["id"]: "m5.large"},
        "phase": "PENDING",
        "requested": 5.0,
        "progress": {},
        "source": "home",
    }


def test_the_source_is_where_the_instances_are():
    cluster = _cluster()
    assert _plan(cluster, "home", cloud="edge")["source"] == "edge"
    with pytest.raises(InvalidRequest, match="already in cloud edge"):
        _plan(cluster, "edge", cloud="edge")


def test_overlapping_ranges_are_refused_as_invalid_requests():
    cluster = _cluster()
    core = cluster["groups"][1]["id"]
    with pytest.raises(InvalidRequest) as refused:
        _plan(cluster, "wide", [{"InstanceGroupId": core}])  # the master stays in home, which wide overlaps
    assert refused.value.code == "InvalidRequestException" and "10.77.0.0/16" in refused.value.message
    # A full move leaves nothing behind to overlap with.
    assert _plan(cluster, "wide")["destination"] == "wide"


def test_the_masters_new_cloud_must_give_the_account_its_storage():
    cluster = _cluster()
    with pytest.raises(InvalidRequest, match="external S3 service"):
        _plan(cluster, "guarded")
    core = cluster["groups"][1]["id"]  # the master stays: the cluster's data stays where it is
    assert _plan(cluster, "guarded", [{"InstanceGroupId": core}])["groups"] == {core: "m5.large"}


def test_instance_types_in_the_destination():
    cluster = _cluster()
    core = cluster["groups"][1]["id"]
    assert _plan(cluster, "aws", [{"InstanceGroupId": core, "InstanceType": "z1d.metal"}])["groups"] == {
        core: "z1d.metal"
    }
    assert _plan(cluster, "edge", [{"InstanceGroupId": core, "InstanceType": "m5.xlarge@edge"}])[
        "groups"
    ] == {core: "m5.xlarge"}
    with pytest.raises(InvalidRequest, match="Cloud edge does not offer instance type z1d.metal"):
        _plan(cluster, "edge", [{"InstanceGroupId": core, "InstanceType": "z1d.metal"}])


def test_states_and_collections_refused():
    for state in (states.STARTING, states.BOOTSTRAPPING, states.TERMINATING, states.TERMINATED):
        with pytest.raises(InvalidRequest, match=f"is {state}: only a WAITING or RUNNING"):
            _plan(_cluster(state=state), "edge")
    with pytest.raises(InvalidRequest, match="is TERMINATING"):
        _plan(_cluster(terminate_requested=True), "edge")
    with pytest.raises(InvalidRequest, match="supports instance groups only"):
        _plan(_cluster(instance_collection_type="INSTANCE_FLEET"), "edge")
    relocating = {
        "destination": "edge",
        "phase": "ROLLING_BACK",
        "groups": {},
        "requested": 1.0,
        "progress": {},
    }
    with pytest.raises(InvalidRequest, match=r"already being relocated to edge \(rolling back\)"):
        _plan(_cluster(relocation=relocating), "aws")


# -- what the API shows ----------------------------------------------------------------------------


def test_the_status_says_where_the_cluster_is_going_and_keeps_its_code():
    relocation = {
        "destination": "edge",
        "phase": "TRANSFERRING",
        "groups": {},
        "requested": 1.0,
        "progress": {},
    }
    cluster = _cluster(state_reason={"code": "ALL_STEPS_COMPLETED", "message": "Steps completed"})
    status = views.cluster_status(cluster | {"relocation": relocation})
    assert status["State"] == "WAITING"
    assert status["StateChangeReason"] == {
        "Code": "ALL_STEPS_COMPLETED",
        "Message": "Relocating to edge: transferring",
    }
    assert views.cluster_status(cluster)["StateChangeReason"]["Message"] == "Steps completed"
    assert relocations.phase_words("ROLLING_BACK") == "rolling back"


def test_views_leave_out_what_the_model_cannot_carry():
    relocation = {
        "destination": "edge",
        "groups": {"ig-1": "m5.large"},
        "phase": "DAYDREAMING",
        "requested": 10.0,
        "progress": {
            "bytes_total": 10.6,
            "bytes_sent": "lots",
            "eta_seconds": float("nan"),
            "chunks_sent": True,
        },
    }
    assert relocations.relocation_view(relocation) == {
        "TargetCloud": "edge",
        "InstanceGroups": [{"InstanceGroupId": "ig-1", "InstanceType": "m5.large"}],
        "RequestDateTime": dt.datetime.fromtimestamp(10.0, dt.UTC),
        "BytesTotal": 11,
    }
    old = {"destination": "a", "outcome": "COMPLETED", "requested": 1.0, "ended": 2.0, "groups": {}}
    new = {
        "destination": "b",
        "outcome": "GONE_FISHING",
        "requested": 3.0,
        "ended": 4.0,
        "groups": {},
        "extra": 1,
    }
    described = relocations.describe(_cluster(relocations=[old, new]))
    assert [(r["TargetCloud"], r.get("Outcome")) for r in described["PastRelocations"]] == [
        ("b", None),
        ("a", "COMPLETED"),
    ]
    assert "Relocation" not in described


# -- resilin clusters relocate -----------------------------------------------------------------------


def test_instance_group_arguments():
    assert clusters_cli.instance_group("ig-1") == {"InstanceGroupId": "ig-1"}
    assert clusters_cli.instance_group("ig-1=m5.large") == {
        "InstanceGroupId": "ig-1",
        "InstanceType": "m5.large",
    }
    for bad in ("", "=m5.large", "ig-1="):
        with pytest.raises(argparse.ArgumentTypeError):
            clusters_cli.instance_group(bad)


def test_the_command_line_is_checked_before_anything_is_asked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(
            [
                "--home",
                str(tmp_path),
                "clusters",
                "relocate",
                "j-1",
                "--to",
                "edge",
                "--instance-group",
                "ig-1=",
            ]
        )
    assert exited.value.code == 2 and "expected ID or ID=TYPE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--home", str(tmp_path), "clusters", "relocate", "j-1"])  # --to is required
    assert cli.main(["models-path"]) == 0
    assert capsys.readouterr().out.strip().endswith("models")


def test_progress_and_outcome_lines():
    assert clusters_cli.progress_line({"Phase": "PLANNING"}) == "planning"
    line = clusters_cli.progress_line(
        {
            "Phase": "TRANSFERRING",
            "BytesTotal": 3 * 2**30,
            "BytesSent": 2**29,
            "ChunksTotal": 96,
            "ChunksSent": 16,
            "EstimatedSecondsLeft": 3725,
        }  # fmt: skip
    )
    assert line == "transferring: 512.0/3072.0 MiB, chunks 16/96, ETA 1h02m"
    assert clusters_cli.progress_line({"Phase": "CAPTURING", "BytesSent": 2**20}) == "capturing: 1.0 MiB"
    assert clusters_cli.outcome_line({"Outcome": "FAILED", "Message": "no room"}) == "FAILED: no room"
    assert (
        clusters_cli.outcome_line(
            {"Outcome": "COMPLETED", "Message": "moved", "BytesSent": 0, "DowntimeSeconds": 9}
        )
        == "COMPLETED: moved (0.0 MiB sent, downtime 9s)"
    )


T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


class Client:
    """Answers RelocateCluster once, then DescribeClusterRelocation from a script."""

    def __init__(self, described: list[dict], refuse: Exception | None = None) -> None:
        self.described, self.refuse, self.asked = described, refuse, []

    def relocate_cluster(self, **request):
        self.asked.append(request)
        if self.refuse:
            raise self.refuse
        return {
            "ClusterId": request["ClusterId"],
            "TargetCloud": request["TargetCloud"],
            "Relocation": {"Phase": "PENDING", "RequestDateTime": T0, "SourceCloud": "home",
                           "InstanceGroups": [{"InstanceGroupId": "ig-1", "InstanceType": "m5.large"}]},
            "ResponseMetadata": {"RequestId": "r"},
        }  # fmt: skip

    def describe_cluster_relocation(self, ClusterId: str):  # noqa: N803 (boto3's name)
        return self.described.pop(0)


def _run(client: Client, **options) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = clusters_cli.relocate(client, "j-1", "edge", [], out=out, err=err, sleep=lambda _: None, **options)
    return code, out.getvalue(), err.getvalue()


def _past(outcome: str, when: dt.datetime = T0) -> dict:
    return {"Outcome": outcome, "Message": outcome.lower(), "RequestDateTime": when}


def test_following_prints_changes_only_and_exits_by_outcome():
    going = {"Relocation": {"Phase": "TRANSFERRING", "BytesTotal": 2**20, "BytesSent": 0}}
    script = [going, going, {"Relocation": {"Phase": "STARTING"}}, {"PastRelocations": [_past("COMPLETED")]}]
    code, out, _ = _run(Client(script))
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "relocating j-1 from home to edge: ig-1 as m5.large"
    assert [line.split(" ", 1)[1] for line in lines[1:-1]] == ["transferring: 0.0/1.0 MiB", "starting"]
    assert lines[-1] == "COMPLETED: completed"
    # The record of this request, not an older one; anything but COMPLETED exits 1.
    older = _past("COMPLETED", T0 - dt.timedelta(hours=1))
    assert _run(Client([{"PastRelocations": [_past("ROLLED_BACK"), older]}]))[0] == 1


def test_json_output_and_errors():
    code, out, err = _run(Client([{"PastRelocations": [_past("FAILED")]}]), output="json")
    assert code == 1 and json.loads(out)["Outcome"] == "FAILED" and "relocating j-1" in err
    code, out, _ = _run(Client([]), wait=False, output="json")
    assert code == 0 and json.loads(out)["Relocation"]["RequestDateTime"] == T0.isoformat()
    refusal = ClientError({"Error": {"Code": "InvalidRequestException", "Message": "no"}}, "RelocateCluster")
    code, _, err = _run(Client([], refuse=refusal))
    assert code == 254
    assert (
        err.strip()
        == "An error occurred (InvalidRequestException) when calling the RelocateCluster operation: no"
    )
    code, _, err = _run(Client([], refuse=EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")))
    assert code == 255 and "Could not connect" in err
