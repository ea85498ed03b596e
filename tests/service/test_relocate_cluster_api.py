"""RelocateCluster and DescribeClusterRelocation, Resilin's own EMR operations, from every client.

boto3 and the AWS CLI learn the operations from the model file Resilin ships (resilin.api.models,
found through botocore's data path); the API serves them over both protocols, refuses what cannot
be moved without changing anything, and shows a relocation in DescribeCluster's status.  No
orchestrator runs here: the tests write the pipeline's phases, progress and outcome into the
cluster's document as the pipeline does (resilin.migrate.pipeline), through the store.
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError
from lxml import etree

from resilin.api import models
from resilin.jobflows import states
from tests.emr_api import REGION, USERS, cluster_request, state_digest, worker_ends, worker_runs

AWS = str(Path(sys.executable).with_name("aws"))
NS = {"emr": "http://elasticmapreduce.amazonaws.com/doc/2009-03-31"}


def shipped_client(emr_api, user: str = "alice"):
    """boto3's EMR client whose botocore loader also searches the directory Resilin ships."""
    session = botocore.session.get_session()
    session.set_config_variable("data_path", models.data_path())
    creds = USERS[user]
    return boto3.Session(botocore_session=session).client(
        "emr",
        endpoint_url=emr_api.endpoint,
        region_name=REGION,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def emr(emr_api, redis_client):
    return shipped_client(emr_api)


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response["Error"]
    error["Status"] = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error


def instance_groups_request(**extra) -> dict:
    """A RunJobFlow request with a master, a core and a task group, and an empty task group."""
    return cluster_request(
        Instances={
            "InstanceGroups": [
                {"Name": "main", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
                {"Name": "task", "InstanceRole": "TASK", "InstanceType": "c5.xlarge", "InstanceCount": 2},
                {"Name": "idle", "InstanceRole": "TASK", "InstanceType": "c5.large", "InstanceCount": 0},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        **extra,
    )


_made = itertools.count()


def running_cluster(emr, store, request: dict | None = None, state: str = states.WAITING) -> tuple[str, dict]:
    """A cluster in ``state`` with its instances in cloud local, and its groups by name."""
    # Each named apart: a request signed alike in the same second would be refused as a replay.
    request = (request or instance_groups_request()) | {"Name": f"relocated {next(_made)}"}
    cid = emr.run_job_flow(**request)["JobFlowId"]
    worker_runs(store, cid, state)
    return cid, {g["name"]: g for g in store.get_cluster(cid)["groups"]}


def phase(store, cid: str, name: str, **progress) -> None:
    """What the pipeline writes as it goes."""

    def change(c: dict) -> None:
        c["relocation"]["phase"] = name
        c["relocation"]["progress"].update(progress)

    store.update_cluster(cid, change)


def finish(store, cid: str, outcome: str, message: str, **figures) -> None:
    """What the pipeline writes when the relocation ends."""

    def change(c: dict) -> None:
        relocation = c.pop("relocation")
        c.setdefault("relocations", []).append(
            {"source": "local", "destination": relocation["destination"], "groups": relocation["groups"],
             "requested": relocation["requested"], "ended": time.time(), "outcome": outcome,
             "message": message, "bytes_sent": 0, "downtime_seconds": 0.0} | figures
        )  # fmt: skip

    store.update_cluster(cid, change)


# -- the shipped model ---------------------------------------------------------------------------


def test_the_shipped_file_gives_boto3_the_operations(emr_api, redis_client):
    plain = emr_api.client("alice")
    assert not hasattr(plain, "relocate_cluster")  # botocore's own EMR model has no such operation
    shipped = shipped_client(emr_api)
    assert hasattr(shipped, "relocate_cluster") and hasattr(shipped, "describe_cluster_relocation")
    loader = botocore.session.get_session()
    loader.set_config_variable("data_path", models.data_path())
    _, path = loader.get_component("data_loader").load_data_with_path("emr/2009-03-31/service-2.sdk-extras")
    assert Path(path + ".json") == models.extras_file()  # found in the shipped directory
    assert json.loads(models.extras_file().read_text())["version"] == 1.0


def test_aws_data_path_from_resilin_models_path(emr_api, store):
    """``export AWS_DATA_PATH=$(resilin models-path)`` is all a boto3 program needs."""
    printed = subprocess.run(
        [sys.executable, "-m", "resilin", "models-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == models.data_path()
    cid, _ = running_cluster(emr_api.client("alice"), store)
    creds = USERS["alice"]
    program = (
        "import boto3, sys\n"
        f"emr = boto3.client('emr', endpoint_url={emr_api.endpoint!r}, region_name={REGION!r},\n"
        f"    aws_access_key_id={creds.access_key!r}, aws_secret_access_key={creds.secret_key!r})\n"
        f"print(emr.relocate_cluster(ClusterId={cid!r}, TargetCloud='edge')['Relocation']['Phase'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_DATA_PATH"} | {"AWS_DATA_PATH": printed}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "PENDING"), done.stderr
    assert store.get_cluster(cid)["relocation"]["destination"] == "edge"


# -- RelocateCluster and what it records ----------------------------------------------------------


def test_a_full_move_records_the_relocation(emr, store, redis_client):
    cid, groups = running_cluster(emr, store)
    redis_client.delete("resilin:work")
    before = time.time()
    answer = emr.relocate_cluster(ClusterId=cid, TargetCloud="edge")

    relocation = store.get_cluster(cid)["relocation"]
    assert before <= relocation.pop("requested") <= time.time()
    # Every group with instances moves, with its own type; the empty task group has nothing to move.
    moving = {groups[n]["id"]: groups[n]["instance_type"] for n in ("main", "core", "task")}
    assert relocation == {
        "destination": "edge",
        "groups": moving,
        "phase": "PENDING",
        "progress": {},
        "source": "local",
    }
    assert redis_client.lrange("resilin:work", 0, -1) == [cid]  # the cluster's worker is woken
    assert answer["ClusterId"] == cid and answer["TargetCloud"] == "edge"
    shown = answer["Relocation"]
    assert (shown["TargetCloud"], shown["SourceCloud"], shown["Phase"]) == ("edge", "local", "PENDING")
    assert {g["InstanceGroupId"]: g["InstanceType"] for g in shown["InstanceGroups"]} == moving
    assert abs(shown["RequestDateTime"].timestamp() - before) < 5

    status = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
    assert status["State"] == "WAITING"
    assert status["StateChangeReason"] == {"Message": "Relocating to edge: pending"}
    listed = next(c for c in emr.list_clusters()["Clusters"] if c["Id"] == cid)
    assert listed["Status"]["StateChangeReason"]["Message"] == "Relocating to edge: pending"
    (flow,) = emr.describe_job_flows(JobFlowIds=[cid])["JobFlows"]
    assert flow["ExecutionStatusDetail"]["LastStateChangeReason"] == "Relocating to edge: pending"


def test_describe_cluster_relocation_follows_the_pipeline(emr, store):
    cid, groups = running_cluster(emr, store, state=states.RUNNING)
    assert emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"] == []
    reason = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["StateChangeReason"]
    emr.relocate_cluster(ClusterId=cid, TargetCloud="edge")

    started = time.time()
    phase(store, cid, "TRANSFERRING", bytes_total=8 * 2**20, bytes_sent=2**20, chunks_total=8,
          chunks_sent=1, phase_started=started, eta_seconds=41.6)  # fmt: skip
    described = emr.describe_cluster_relocation(ClusterId=cid)
    relocation = described["Relocation"]
    assert relocation["Phase"] == "TRANSFERRING"
    assert (relocation["BytesTotal"], relocation["BytesSent"]) == (8 * 2**20, 2**20)
    assert (relocation["ChunksTotal"], relocation["ChunksSent"], relocation["EstimatedSecondsLeft"]) == (
        8,
        1,
        42,
    )
    assert abs(relocation["PhaseStartDateTime"].timestamp() - started) < 0.01
    status = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
    assert status["State"] == "RUNNING"
    assert status["StateChangeReason"]["Message"] == "Relocating to edge: transferring"
    phase(store, cid, "ROLLING_BACK")
    message = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["StateChangeReason"]["Message"]
    assert message == "Relocating to edge: rolling back"

    finish(store, cid, "ROLLED_BACK", "the transfer failed; the cluster runs in cloud local as before",
           bytes_sent=3 * 2**20, downtime_seconds=12.4)  # fmt: skip
    described = emr.describe_cluster_relocation(ClusterId=cid)
    assert "Relocation" not in described
    (past,) = described["PastRelocations"]
    assert (past["SourceCloud"], past["TargetCloud"], past["Outcome"]) == ("local", "edge", "ROLLED_BACK")
    assert (past["BytesSent"], past["DowntimeSeconds"]) == (3 * 2**20, 12)
    assert past["Message"].startswith("the transfer failed") and "Phase" not in past
    assert past["EndDateTime"] >= past["RequestDateTime"]
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["StateChangeReason"] == reason
    # Once ended, the cluster can be relocated again; the newest record comes first.
    emr.relocate_cluster(
        ClusterId=cid, TargetCloud="faraway", InstanceGroups=[{"InstanceGroupId": groups["task"]["id"]}]
    )
    finish(store, cid, "COMPLETED", "Relocated")
    outcomes = [p["Outcome"] for p in emr.describe_cluster_relocation(ClusterId=cid)["PastRelocations"]]
    assert outcomes == ["COMPLETED", "ROLLED_BACK"]


def test_some_groups_move_with_other_types(emr, store):
    cid, groups = running_cluster(emr, store)
    core, task = groups["core"]["id"], groups["task"]["id"]
    answer = emr.relocate_cluster(
        ClusterId=cid,
        TargetCloud="edge",
        InstanceGroups=[{"InstanceGroupId": core, "InstanceType": "r5.xlarge"}, {"InstanceGroupId": task}],
    )
    assert store.get_cluster(cid)["relocation"]["groups"] == {core: "r5.xlarge", task: "c5.xlarge"}
    assert answer["Relocation"]["InstanceGroups"] == [
        {"InstanceGroupId": core, "InstanceType": "r5.xlarge"},
        {"InstanceGroupId": task, "InstanceType": "c5.xlarge"},
    ]


def test_a_cloud_with_an_unknown_catalogue_takes_any_type(emr, store):
    cid, groups = running_cluster(emr, store)
    task = groups["task"]["id"]
    emr.relocate_cluster(
        ClusterId=cid,
        TargetCloud="faraway",
        InstanceGroups=[{"InstanceGroupId": task, "InstanceType": "x9.huge@faraway"}],
    )
    assert store.get_cluster(cid)["relocation"]["groups"] == {task: "x9.huge"}


def test_termination_protection_does_not_prevent_it(emr, store):
    cid, _ = running_cluster(emr, store)
    emr.set_termination_protection(JobFlowIds=[cid], TerminationProtected=True)
    emr.relocate_cluster(ClusterId=cid, TargetCloud="edge")
    assert store.get_cluster(cid)["relocation"]["destination"] == "edge"


# -- refusals ------------------------------------------------------------------------------------


def _refused(emr, redis_client, fragment: str, **request) -> dict:
    before = state_digest(redis_client)
    error = error_of(emr.relocate_cluster, **request)
    assert (error["Status"], error["Code"]) == (400, "InvalidRequestException"), error
    assert fragment in error["Message"], error["Message"]
    assert state_digest(redis_client) == before  # nothing changed
    return error


def test_unknown_and_foreign_clusters_are_answered_as_describe_cluster_answers(
    emr_api, emr, store, redis_client
):
    cid, _ = running_cluster(emr, store)
    carol = shipped_client(emr_api, "carol")
    for client, wanted in ((emr, "j-NOSUCHCLUSTER"), (carol, cid)):
        described = error_of(client.describe_cluster, ClusterId=wanted)
        refused = _refused(client, redis_client, wanted, ClusterId=wanted, TargetCloud="edge")
        assert {k: refused[k] for k in ("Code", "Message")} == {k: described[k] for k in ("Code", "Message")}
        assert (
            error_of(client.describe_cluster_relocation, ClusterId=wanted)["Message"] == described["Message"]
        )


def test_clusters_not_waiting_or_running_are_refused(emr, store, redis_client):
    starting = emr.run_job_flow(**instance_groups_request(Name="never started"))["JobFlowId"]
    _refused(
        emr, redis_client, "is STARTING: only a WAITING or RUNNING", ClusterId=starting, TargetCloud="edge"
    )
    store.transition_cluster(starting, states.BOOTSTRAPPING)
    _refused(emr, redis_client, "is BOOTSTRAPPING", ClusterId=starting, TargetCloud="edge")
    ended, _ = running_cluster(emr, store)
    emr.terminate_job_flows(JobFlowIds=[ended])
    _refused(emr, redis_client, "is TERMINATING", ClusterId=ended, TargetCloud="edge")
    worker_ends(store, ended)
    _refused(emr, redis_client, "is TERMINATED", ClusterId=ended, TargetCloud="edge")


def test_a_cluster_already_relocating_is_refused(emr, store, redis_client):
    cid, _ = running_cluster(emr, store)
    emr.relocate_cluster(ClusterId=cid, TargetCloud="edge")
    phase(store, cid, "CAPTURING")
    _refused(
        emr, redis_client, "already being relocated to edge (capturing)", ClusterId=cid, TargetCloud="faraway"
    )


def test_clouds_that_cannot_be_the_target(emr, store, redis_client):
    cid, groups = running_cluster(emr, store)
    _refused(emr, redis_client, "'nowhere' is not a configured cloud; the configured clouds are: local, edge, faraway",
             ClusterId=cid, TargetCloud="nowhere")  # fmt: skip
    _refused(
        emr, redis_client, f"Cluster {cid} is already in cloud local", ClusterId=cid, TargetCloud="local"
    )
    _refused(emr, redis_client, "The instance groups named are already in cloud local", ClusterId=cid,
             TargetCloud="local", InstanceGroups=[{"InstanceGroupId": groups["core"]["id"]}])  # fmt: skip


def test_instance_groups_that_cannot_move(emr, store, redis_client):
    cid, groups = running_cluster(emr, store)
    other, other_groups = running_cluster(emr, store)
    stranger = other_groups["core"]["id"]

    def refused(fragment: str, *configs: dict) -> None:
        _refused(emr, redis_client, fragment, ClusterId=cid, TargetCloud="edge", InstanceGroups=list(configs))

    refused(f"Instance group id '{stranger}' is not valid", {"InstanceGroupId": stranger})
    refused("Instance group id 'ig-NOSUCHGROUP' is not valid", {"InstanceGroupId": "ig-NOSUCHGROUP"})
    idle = groups["idle"]["id"]
    refused(f"Instance group '{idle}' has no instances", {"InstanceGroupId": idle})
    core = groups["core"]["id"]
    refused("named more than once", {"InstanceGroupId": core}, {"InstanceGroupId": core})
    refused("must name at least one instance group")
    refused("Cloud edge does not offer instance type x9.huge (instance group",
            {"InstanceGroupId": core, "InstanceType": "x9.huge"})  # fmt: skip
    refused(f"InstanceType 'm5.large@faraway' of instance group '{core}' names cloud faraway",
            {"InstanceGroupId": core, "InstanceType": "m5.large@faraway"})  # fmt: skip

    def end_task_group(c: dict) -> None:
        task = next(g for g in c["groups"] if g["name"] == "task")
        task["state"], task["running"] = states.GROUP_TERMINATED, 0

    store.update_cluster(cid, end_task_group)
    task = groups["task"]["id"]
    refused(f"Instance group '{task}' is terminated", {"InstanceGroupId": task})


def test_a_type_the_destination_does_not_offer_refuses_a_full_move(emr, store, redis_client):
    request = instance_groups_request()
    request["Instances"]["InstanceGroups"][2]["InstanceType"] = (
        "x9.huge"  # only a cloud without a catalogue could run it
    )
    cid, _ = running_cluster(emr, store, request)
    _refused(
        emr,
        redis_client,
        "Cloud edge does not offer instance type x9.huge",
        ClusterId=cid,
        TargetCloud="edge",
    )


def test_instance_fleets_are_refused(emr, store, redis_client):
    fleet = {"TargetOnDemandCapacity": 1, "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge"}]}
    request = cluster_request(
        Instances={
            "InstanceFleets": [
                {"InstanceFleetType": "MASTER", **fleet},
                {"InstanceFleetType": "CORE", **fleet},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        }
    )
    cid, _ = running_cluster(emr, store, request)
    _refused(
        emr, redis_client, "RelocateCluster supports instance groups only", ClusterId=cid, TargetCloud="edge"
    )


# -- the Query protocol -----------------------------------------------------------------------------


def query(emr_api, params: dict) -> tuple[int, etree._Element]:
    creds = USERS["alice"]
    request = AWSRequest(
        method="POST",
        url=emr_api.endpoint + "/",
        data={"Version": "2009-03-31"} | params,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key), "elasticmapreduce", REGION).add_auth(
        request
    )
    prepared = request.prepare()
    conn = http.client.HTTPConnection("127.0.0.1", emr_api.port, timeout=30)
    try:
        conn.request("POST", "/", body=prepared.body, headers=dict(prepared.headers))
        response = conn.getresponse()
        return response.status, etree.fromstring(response.read())
    finally:
        conn.close()


def test_the_query_protocol_reaches_both_operations(emr_api, emr, store, redis_client):
    cid, groups = running_cluster(emr, store)
    core = groups["core"]["id"]
    status, xml = query(emr_api, {"Action": "RelocateCluster", "ClusterId": cid, "TargetCloud": "edge",
                                  "InstanceGroups.member.1.InstanceGroupId": core,
                                  "InstanceGroups.member.1.InstanceType": "m5.2xlarge"})  # fmt: skip
    assert status == 200, etree.tostring(xml)
    result = xml.find("emr:RelocateClusterResult", NS)
    assert result.findtext("emr:ClusterId", namespaces=NS) == cid
    assert result.findtext("emr:Relocation/emr:Phase", namespaces=NS) == "PENDING"
    assert (
        result.findtext("emr:Relocation/emr:InstanceGroups/emr:member/emr:InstanceType", namespaces=NS)
        == "m5.2xlarge"
    )
    assert store.get_cluster(cid)["relocation"]["groups"] == {core: "m5.2xlarge"}

    phase(store, cid, "LAUNCHING")
    status, xml = query(emr_api, {"Action": "DescribeClusterRelocation", "ClusterId": cid})
    assert status == 200
    assert (
        xml.findtext("emr:DescribeClusterRelocationResult/emr:Relocation/emr:Phase", namespaces=NS)
        == "LAUNCHING"
    )

    before = state_digest(redis_client)
    status, xml = query(emr_api, {"Action": "RelocateCluster", "ClusterId": cid, "TargetCloud": "edge"})
    assert status == 400
    assert xml.findtext("emr:Error/emr:Code", namespaces=NS) == "InvalidRequestException"
    assert "already being relocated" in xml.findtext("emr:Error/emr:Message", namespaces=NS)
    assert state_digest(redis_client) == before


# -- the AWS CLI ----------------------------------------------------------------------------------------


def aws_env(tmp_path: Path, data_path: bool = True) -> dict[str, str]:
    creds = USERS["alice"]
    env = {k: v for k, v in os.environ.items() if k != "AWS_DATA_PATH"} | {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    return env | {"AWS_DATA_PATH": models.data_path()} if data_path else env


def test_the_aws_cli_gains_the_commands(emr_api, emr, store, tmp_path):
    cid, groups = running_cluster(emr, store)
    task = groups["task"]["id"]

    def aws(*args: str, data_path: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [AWS, "emr", *args, "--endpoint-url", emr_api.endpoint, "--output", "json"],
            env=aws_env(tmp_path, data_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    without = aws("relocate-cluster", "--cluster-id", cid, "--target-cloud", "edge", data_path=False)
    assert without.returncode != 0 and "invalid choice: 'relocate-cluster'" in without.stderr.lower()
    done = aws("relocate-cluster", "--cluster-id", cid, "--target-cloud", "edge",
               "--instance-groups", f"InstanceGroupId={task},InstanceType=c5.2xlarge")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["Relocation"]["InstanceGroups"] == [{"InstanceGroupId": task, "InstanceType": "c5.2xlarge"}]
    phase(store, cid, "QUIESCING")
    described = aws("describe-cluster-relocation", "--cluster-id", cid)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["Relocation"]["Phase"] == "QUIESCING"
    refused = aws("relocate-cluster", "--cluster-id", cid, "--target-cloud", "nowhere")
    assert refused.returncode in (254, 255)  # a service error: 254 from AWS CLI v2, 255 from v1
    assert (
        "An error occurred (InvalidRequestException) when calling the RelocateCluster operation"
        in refused.stderr
    )


# -- resilin clusters relocate -----------------------------------------------------------------------------


@pytest.fixture
def resilin_home(emr_api, tmp_path) -> Path:
    """A home whose resilin.toml names the API's port, as an installation's does."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "resilin.toml").write_text(
        f"api_port = {emr_api.port}\n" + (emr_api.home / "resilin.toml").read_text()
    )
    return home


def resilin(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "resilin", "--home", str(home), "clusters", "relocate", *args]


def test_the_resilin_command_without_waiting(emr, store, resilin_home):
    cid, groups = running_cluster(emr, store)
    core = groups["core"]["id"]
    done = subprocess.run(resilin(resilin_home, cid, "--to", "edge", "--instance-group", f"{core}=m5.2xlarge",
                                  "--no-wait", "--output", "json"), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["ClusterId"], answer["TargetCloud"], answer["Relocation"]["Phase"]) == (
        cid,
        "edge",
        "PENDING",
    )
    assert store.get_cluster(cid)["relocation"]["groups"] == {core: "m5.2xlarge"}

    refused = subprocess.run(
        resilin(resilin_home, cid, "--to", "faraway", "--no-wait"), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 254
    assert refused.stderr.strip().startswith(
        "An error occurred (InvalidRequestException) when calling the RelocateCluster operation: "
        f"Cluster {cid} is already being relocated"
    )


def _read_until(process: subprocess.Popen, wanted: str, seen: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any(wanted in line for line in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} not printed; printed: {seen}"
        ready, _, _ = select.select([process.stdout], [], [], left)
        if ready:
            line = process.stdout.readline()
            assert line, f"the command ended before printing {wanted!r}; printed: {seen}"
            seen.append(line.rstrip("\n"))


def test_the_resilin_command_follows_the_relocation_to_its_end(emr, store, resilin_home):
    cid, _ = running_cluster(emr, store)
    process = subprocess.Popen(
        resilin(resilin_home, cid, "--to", "edge"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    try:
        _read_until(process, f"relocating {cid} from local to edge", seen)
        _read_until(process, "pending", seen)
        phase(store, cid, "PLANNING")
        _read_until(process, "planning", seen)
        phase(store, cid, "TRANSFERRING", bytes_total=4 * 2**20, bytes_sent=2**20, chunks_total=4, chunks_sent=1,
              eta_seconds=95)  # fmt: skip
        _read_until(process, "transferring: 1.0/4.0 MiB, chunks 1/4, ETA 1m35s", seen)
        phase(store, cid, "TRANSFERRING", bytes_sent=4 * 2**20, chunks_sent=4, eta_seconds=0)
        _read_until(process, "transferring: 4.0/4.0 MiB, chunks 4/4, ETA 0s", seen)
        finish(store, cid, "COMPLETED", "Relocated from cloud local to cloud edge",
               bytes_sent=4 * 2**20, downtime_seconds=75.2)  # fmt: skip
        assert process.wait(timeout=20) == 0, process.stderr.read()
    finally:
        process.kill()
        process.wait()
    seen += [line.rstrip("\n") for line in process.stdout]
    assert seen[-1] == "COMPLETED: Relocated from cloud local to cloud edge (4.0 MiB sent, downtime 1m15s)"
    progress = [line.split(" ", 1)[1] for line in seen[1:-1]]  # without their times
    assert progress == [
        "pending",
        "planning",
        "transferring: 1.0/4.0 MiB, chunks 1/4, ETA 1m35s",
        "transferring: 4.0/4.0 MiB, chunks 4/4, ETA 0s",
    ]  # each once: a line is printed when something changed
    assert all(dt.datetime.strptime(line.split(" ", 1)[0], "%H:%M:%S") for line in seen[1:-1])


def test_the_resilin_command_fails_when_the_relocation_is_rolled_back(emr_api, emr, store, resilin_home):
    cid, _ = running_cluster(emr, store)
    process = subprocess.Popen(
        resilin(resilin_home, cid, "--to", "edge", "--output", "json", "--endpoint-url", emr_api.endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while "relocation" not in store.get_cluster(cid):
            assert time.monotonic() < deadline, "the relocation was not requested"
            time.sleep(0.1)
        finish(store, cid, "ROLLED_BACK", "the destination did not start")
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 1, err
    assert (
        json.loads(out)["Outcome"] == "ROLLED_BACK"
    )  # stdout holds the outcome alone; progress went to stderr
    assert f"relocating {cid}" in err
