"""The web console's parts that need nothing running: sign-in checks, the UI proxy's rewriting,
the cluster details it draws."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from resilin.aws.sigv4 import Credentials
from resilin.console import cluster_details, signin, ui_proxy

ALICE = Credentials("AKIAALICE00000000000", "a" * 40, "111111111111")


def lookup(access_key: str) -> Credentials | None:
    return ALICE if access_key == ALICE.access_key else None


def test_sign_in_checks_the_secret_as_a_sigv4_signature():
    assert signin.check_secret(lookup, "us-east-1", ALICE.access_key, ALICE.secret_key) == ALICE
    with pytest.raises(signin.SignInRefused, match="does not match"):
        signin.check_secret(lookup, "us-east-1", ALICE.access_key, "b" * 40)
    with pytest.raises(signin.SignInRefused, match="not one of this Resilin's"):
        signin.check_secret(lookup, "us-east-1", "AKIAOTHER", ALICE.secret_key)
    with pytest.raises(signin.SignInRefused, match="Enter"):
        signin.check_secret(lookup, "us-east-1", ALICE.access_key, "")


def test_presigned_links_carry_no_secret_and_have_bounded_lives():
    link = signin.presigned_link("http://127.0.0.1:8996", ALICE, "us-east-1", 600)
    parts = urlsplit(link)
    assert parts.path == signin.SIGNIN_PATH
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["600"]
    assert query["X-Amz-Credential"][0].startswith(ALICE.access_key + "/")
    assert query["X-Amz-Credential"][0].endswith("/us-east-1/console/aws4_request")
    assert ALICE.secret_key not in link
    for seconds in (0, 8 * 24 * 3600):
        with pytest.raises(ValueError):
            signin.presigned_link("http://127.0.0.1:8996", ALICE, "us-east-1", seconds)


def test_ui_prefixes():
    assert ui_proxy.split_prefix("/j-ABC123/resourcemanager/cluster/apps") == (
        "j-ABC123",
        "resourcemanager",
        "/cluster/apps",
    )
    assert ui_proxy.split_prefix("/j-ABC123/namenode") == ("j-ABC123", "namenode", "/")
    assert ui_proxy.split_prefix("/cluster/apps") is None
    assert ui_proxy.split_prefix("/static/jquery.js") is None


def test_ui_answers_point_back_through_the_proxy():
    origins = ui_proxy.origins(
        ["10.9.0.5", "", "ip-10-9-0-5"], {"resourcemanager": 8088, "jobhistory": 19888}, "j-X"
    )
    assert origins == {
        "http://10.9.0.5:8088": "/j-X/resourcemanager",
        "http://10.9.0.5:19888": "/j-X/jobhistory",
        "http://ip-10-9-0-5:8088": "/j-X/resourcemanager",
        "http://ip-10-9-0-5:19888": "/j-X/jobhistory",
    }
    page = ui_proxy.UiAnswer(
        302,
        {"location": "http://10.9.0.5:19888/jobhistory/job/1", "content-type": "text/html; charset=utf-8"},
        b'<a href="http://ip-10-9-0-5:8088/cluster">rm</a> <a href="http://10.9.0.7:8042/node">nm</a>',
    )
    ui_proxy.rewrite(page, origins, "/j-X/resourcemanager")
    assert page.headers["location"] == "/j-X/jobhistory/jobhistory/job/1"
    assert (
        page.body
        == b'<a href="/j-X/resourcemanager/cluster">rm</a> <a href="http://10.9.0.7:8042/node">nm</a>'
    )

    redirect = ui_proxy.UiAnswer(302, {"location": "/cluster"}, b"")
    assert (
        ui_proxy.rewrite(redirect, origins, "/j-X/resourcemanager").headers["location"]
        == "/j-X/resourcemanager/cluster"
    )
    image = ui_proxy.UiAnswer(200, {"content-type": "image/png"}, b"http://10.9.0.5:8088")
    assert ui_proxy.rewrite(image, origins, "/j-X/resourcemanager").body == b"http://10.9.0.5:8088"


def _cluster(**extra) -> dict:
    return {
        "id": "j-X",
        "state": "TERMINATED",
        "timeline": {"created": 100.0, "ready": 160.0, "end": 400.0},
        "applications": [{"Name": "Hadoop"}],
        "groups": [{"id": "ig-1", "role": "MASTER", "cloud": None}],
    } | extra


def test_state_history_and_web_uis():
    # A cluster made before states were recorded: what its timeline tells.
    assert [h["State"] for h in cluster_details.state_history(_cluster())] == [
        "STARTING",
        "WAITING",
        "TERMINATED",
    ]
    recorded = [["STARTING", 100.0], ["BOOTSTRAPPING", 120.0], ["WAITING", 160.0]]
    assert cluster_details.state_history(_cluster(state_history=recorded)) == [
        {"State": "STARTING", "Start": 100.0},
        {"State": "BOOTSTRAPPING", "Start": 120.0},
        {"State": "WAITING", "Start": 160.0},
    ]
    assert set(cluster_details.web_uis(_cluster())) == {"namenode", "resourcemanager", "jobhistory"}
    with_spark = _cluster(applications=[{"Name": "Hadoop"}, {"Name": "Spark"}])
    assert cluster_details.web_uis(with_spark)["sparkhistory"] == ("Spark History Server", 18080)


def test_details_name_clouds_and_ui_links_only_while_reachable():
    instance = {"id": "ci-1", "cloud": "local", "role": "MASTER", "group_id": "ig-1"}
    running = cluster_details.details(_cluster(), [instance], (), "http://127.0.0.1:8995", None)
    assert running["Clouds"] == ["local"] and running["InstanceClouds"] == {"ci-1": "local"}
    assert running["GroupClouds"] == {"ig-1": ["local"]}
    assert {u["Url"] for u in running["WebUis"]} >= {"http://127.0.0.1:8995/j-X/resourcemanager/"}
    ended = cluster_details.details(_cluster(), [instance], (), None, "not running")
    assert ended["WebUis"] == [] and ended["WebUisReason"] == "not running"
