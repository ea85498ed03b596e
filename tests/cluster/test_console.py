"""The web console against a running Resilin and a real cluster: over HTTP, and in headless Chromium.

One server with its console and two accounts, and one cluster (master only, with Spark), shared by
every test of the module.  The browser tests follow a user: sign in, watch the cluster go from
STARTING to TERMINATED in the list without a reload, read a step's stdout, add a step from the
console and see it run, open the cluster's Hadoop and Spark web UIs through Resilin, look at the
clouds page, fail to see the cluster as the other account.  Each page is saved as a screenshot in
$RESILIN_SCREENSHOTS (default: a folder under the system's temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import urllib3

from tests.clusters import cloud_and_subnet, running_resilin, wait_for

CLOUD, SUBNET = cloud_and_subnet("con", 86)
LOGS_BUCKET = "console-logs"
STEP_TEXT = "hello from the first step"
ADDED_TEXT = "added from the console"
CHROMIUM = "/usr/bin/chromium"
# Prints, then runs a YARN application (MapReduce's pi, small), then waits: long enough to be watched.
FIRST_STEP = (
    f"echo '{STEP_TEXT}'; sleep 8; "
    "hadoop jar /usr/lib/hadoop-mapreduce/hadoop-mapreduce-examples.jar pi 1 10 && sleep 5"
)

http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))


@pytest.fixture(scope="module")
def resilin():
    yield from running_resilin(CLOUD, SUBNET, console=True)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(
        os.environ.get("RESILIN_SCREENSHOTS") or Path(tempfile.gettempdir()) / "resilin-console-shots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def call(resilin, method: str, path: str, body=None, cookie: str = "", csrf: str = "", headers=None, port=0):
    sent = {"Content-Type": "application/json"} | (headers or {})
    if cookie:
        sent["Cookie"] = cookie
    if csrf:
        sent["X-Csrf-Token"] = csrf
    port = port or resilin.console_port
    data = json.dumps(body).encode() if body is not None else None
    return http.request(method, f"http://127.0.0.1:{port}{path}", body=data, headers=sent, redirect=False)


def sign_in(resilin, account: int = 0) -> tuple[str, str]:
    """The cookie and CSRF token of a new session of ``account``."""
    creds = resilin.accounts[account]
    answer = call(
        resilin, "POST", "/session", {"AccessKeyId": creds.access_key, "SecretAccessKey": creds.secret_key}
    )
    assert answer.status == 200, answer.data
    cookie = answer.headers["Set-Cookie"].split(";")[0]
    return cookie, answer.json()["CsrfToken"]


def console_url(resilin, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "resilin", "--home", str(resilin.home), "console-url", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_sign_in_sessions_and_csrf(resilin):
    page = call(resilin, "GET", "/")
    assert page.status == 200 and b"console.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    creds = resilin.accounts[0]
    wrong = call(resilin, "POST", "/session", {"AccessKeyId": creds.access_key, "SecretAccessKey": "x" * 40})
    assert wrong.status == 403 and "does not match" in wrong.json()["message"]
    unknown = call(
        resilin, "POST", "/session", {"AccessKeyId": "AKIANOSUCHKEY0000000", "SecretAccessKey": "x"}
    )
    assert unknown.status == 403 and wrong.headers.get("Set-Cookie") is None

    cookie, csrf = sign_in(resilin)
    answer = call(
        resilin, "POST", "/session", {"AccessKeyId": creds.access_key, "SecretAccessKey": creds.secret_key}
    )
    set_cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert creds.secret_key not in answer.data.decode()
    assert call(resilin, "GET", "/session", cookie=cookie).json()["AccountId"] == creds.account_id

    # No session: nothing is answered.
    assert call(resilin, "POST", "/api/ListClusters", {}).status == 401
    # A session without the CSRF token: an action is refused and changes nothing.
    run = {"Name": "csrf", "Instances": {"MasterInstanceType": "m5.xlarge", "InstanceCount": 1}}
    refused = call(resilin, "POST", "/api/RunJobFlow", run, cookie=cookie)
    assert refused.status == 403 and refused.json()["__type"] == "InvalidCsrfToken"
    refused = call(resilin, "POST", "/api/RunJobFlow", run, cookie=cookie, csrf="not-the-token")
    assert refused.status == 403
    # From another site's page, even with the token.
    other = call(resilin, "POST", "/api/ListClusters", {}, cookie=cookie, csrf=csrf,
                 headers={"Origin": "http://evil.example"})  # fmt: skip
    assert other.status == 403 and other.json()["__type"] == "CrossOriginRequest"
    listed = call(resilin, "POST", "/api/ListClusters", {}, cookie=cookie, csrf=csrf)
    assert listed.status == 200 and listed.json()["Clusters"] == []
    # An API error comes back as the API's own.
    bad = call(resilin, "POST", "/api/DescribeCluster", {"ClusterId": "j-NOSUCH"}, cookie=cookie, csrf=csrf)
    assert bad.status == 400 and bad.json()["__type"] == "InvalidRequestException"

    # Signing out needs the token too; then the session is gone.
    assert call(resilin, "DELETE", "/session", cookie=cookie).status == 403
    assert call(resilin, "DELETE", "/session", cookie=cookie, csrf=csrf).status == 204
    assert call(resilin, "GET", "/session", cookie=cookie).status == 401
    assert call(resilin, "POST", "/api/ListClusters", {}, cookie=cookie, csrf=csrf).status == 401


def test_console_url_links_are_presigned_expiring_and_single_use(resilin):
    link = console_url(resilin)
    assert link.startswith(f"{resilin.console_url}/signin?") and "X-Amz-Signature=" in link
    assert resilin.accounts[0].secret_key not in link
    first = http.request("GET", link, redirect=False)
    assert first.status == 303 and first.headers["Location"] == "/"
    cookie = first.headers["Set-Cookie"].split(";")[0]
    assert (
        call(resilin, "GET", "/session", cookie=cookie).json()["AccountId"] == resilin.accounts[0].account_id
    )
    again = http.request("GET", link, redirect=False)
    assert again.status == 403 and b"used already" in again.data

    other = console_url(resilin, "--access-key", resilin.accounts[1].access_key, "--expires-in", "60")
    forged = other.replace(resilin.accounts[1].access_key, resilin.accounts[0].access_key)
    assert http.request("GET", forged, redirect=False).status == 403
    short = console_url(resilin, "--expires-in", "1")
    time.sleep(2)
    expired = http.request("GET", short, redirect=False)
    assert expired.status == 403 and b"expired" in expired.data
    assert http.request("GET", other, redirect=False).status == 303


# -- in the browser --------------------------------------------------------------------


@pytest.fixture(scope="module")
def browsers(tmp_path_factory):
    """Start headless Chromium sessions on demand (each with a profile of its own); quit them all at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    if driver_path is None or not os.path.exists(CHROMIUM):
        pytest.fail("Chromium and chromedriver are missing: setup installs chromium and chromium-driver")
    started = []

    def start():
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        profile = tmp_path_factory.mktemp("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


class Page:
    """A browser on the console, with the waits and reads the tests use."""

    def __init__(self, driver, base: str, shots: Path) -> None:
        self.driver, self.base, self.shots = driver, base, shots

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.all(css)
        return found[0].text if found else ""

    def wait(self, what: str, check, timeout: float = 60):
        def checked():
            from selenium.common.exceptions import StaleElementReferenceException

            try:
                return check()
            except StaleElementReferenceException:
                return None  # the page redrew the element: look again

        return wait_for(what, checked, timeout=timeout, interval=0.5)

    def shot(self, name: str, whole: bool = False) -> None:
        """Save the window as ``name``.png; ``whole``: the whole page, however long."""
        if not whole:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))
            return
        size = self.driver.get_window_size()
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(size["width"], max(size["height"], height + 140))
        try:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        finally:
            self.driver.set_window_size(size["width"], size["height"])

    def sign_in(self, creds) -> None:
        self.driver.get(self.base + "/")
        self.wait("the sign-in form", lambda: self.find("#signin").is_displayed())
        self.find("#access-key").send_keys(creds.access_key)
        self.find("#secret-key").send_keys(creds.secret_key)
        self.find("#signin-button").click()
        self.wait("the account in the header", lambda: self.text("#account") == creds.account_id)
        # The secret stays nowhere in the page once sent, nor in the browser's storage.
        assert self.find("#secret-key").get_attribute("value") == ""
        stored = self.driver.execute_script(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
        )
        assert creds.secret_key not in stored


@pytest.fixture(scope="module")
def alice(resilin, browsers, screenshots):
    return Page(browsers(), resilin.console_url, screenshots)


@pytest.fixture(scope="module")
def cluster(resilin, alice):
    """Account 0's cluster, started once Alice's clusters page is open (so that she sees it start)."""
    alice.sign_in(resilin.accounts[0])
    alice.shot("clusters-empty")
    alice.driver.execute_script("window.resilinNoReload = 'still here'")  # lost if the page reloads
    s3 = resilin.endpoints(0).client("s3")
    s3.create_bucket(Bucket=LOGS_BUCKET)
    emr = resilin.endpoints(0).client("emr")
    cid = emr.run_job_flow(
        Name="console",
        ReleaseLabel="emr-7.5.0",
        Applications=[{"Name": "Hadoop"}, {"Name": "Spark"}],
        LogUri=f"s3://{LOGS_BUCKET}/logs/",
        Instances={
            "InstanceGroups": [
                {"Name": "Master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                # Empty until the console resizes it.
                {"Name": "Task", "InstanceRole": "TASK", "InstanceType": "m5.xlarge", "InstanceCount": 0},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        Steps=[{
            "Name": "greet",
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", FIRST_STEP]},
        }],
        Tags=[{"Key": "team", "Value": "console"}],
    )["JobFlowId"]  # fmt: skip
    return cid


def _row_state(page: Page, cid: str) -> str:
    return page.text(f'#clusters-table tr[data-cluster-id="{cid}"] td.state')


def test_clusters_list_follows_the_cluster_as_it_starts(resilin, alice, cluster):
    seen: list[str] = []

    def running() -> bool:
        state = _row_state(alice, cluster)
        if state and (not seen or seen[-1] != state):
            seen.append(state)
            if state in ("STARTING", "BOOTSTRAPPING"):
                alice.shot(f"clusters-{state.lower()}")
        return state == "RUNNING"

    alice.wait("the cluster to be RUNNING its step in the list", running, timeout=600)
    assert seen[0] in ("STARTING", "BOOTSTRAPPING") and seen[-1] == "RUNNING", seen
    row = f'#clusters-table tr[data-cluster-id="{cluster}"]'
    assert alice.text(f"{row} td.clouds") == CLOUD
    assert "emr-7.5.0" in alice.text(f"{row} td.release")
    assert "Spark" in alice.text(f"{row} td.applications")
    alice.shot("clusters")
    assert alice.driver.execute_script("return window.resilinNoReload") == "still here"


def test_a_running_steps_logs_are_tailed_live(resilin, alice, cluster):
    alice.find(f'#clusters-table tr[data-cluster-id="{cluster}"] a.cluster-link').click()
    step_row = "#steps-table tr[data-step-id]"
    alice.wait("the running step", lambda: alice.text(f"{step_row} td.step-state") == "RUNNING")
    alice.find(f"{step_row} a.step-link").click()
    alice.wait("the step's stdout", lambda: STEP_TEXT in alice.text("#log-stdout"))
    # Read on the master while the step still runs, not once it has ended.
    assert alice.text("#step-state") == "RUNNING"
    alice.shot("step-running")
    alice.wait("the step to complete", lambda: alice.text("#step-state") == "COMPLETED", timeout=300)
    alice.wait("the step's controller log", lambda: "exitCode 0" in alice.text("#log-controller"))
    # The YARN application the step started, linked to its page in the ResourceManager's UI.
    app = alice.wait("the step's YARN application", lambda: alice.all("#step-applications a"))[0]
    assert app.text.startswith("application_")
    assert f"/{cluster}/resourcemanager/cluster/app/{app.text}" in app.get_attribute("href")
    assert "Estimated value of Pi" in alice.text("#log-stdout")
    alice.shot("step")
    assert alice.driver.execute_script("return window.resilinNoReload") == "still here"


def test_cluster_page_draws_its_phases_instances_and_steps(resilin, alice, cluster):
    alice.find("#step-page a.cluster-crumb").click()
    alice.wait("the cluster to wait", lambda: alice.text("#cluster-state") == "WAITING")
    # The phase timeline draws each state the cluster went through.
    alice.wait("the phase timeline", lambda: len(alice.all("#phase-timeline rect")) >= 4)
    timeline = alice.find("#phase-timeline").text
    assert all(state in timeline for state in ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")), timeline
    assert alice.all("#instances-plot path, #instances-plot polyline, #instances-plot line")
    assert alice.all("#steps-plot rect")
    assert CLOUD in alice.text("#instances-table")
    assert "team" in alice.text("#tags-table")

    # Resize the task group from the console: its instance joins, and the plot counts it.
    task = next(r for r in alice.all("#groups-table tr[data-group-id]") if "TASK" in r.text)
    gid = task.get_attribute("data-group-id")
    count = alice.find(f'#groups-table tr[data-group-id="{gid}"] .resize-count')
    count.clear()
    count.send_keys("1")
    alice.find(f'#groups-table tr[data-group-id="{gid}"] .resize-button').click()
    emr = resilin.endpoints(0).client("emr")

    def task_running() -> bool:
        instances = emr.list_instances(ClusterId=cluster, InstanceGroupTypes=["TASK"])["Instances"]
        return [i["Status"]["State"] for i in instances] == ["RUNNING"]

    wait_for("the task instance", task_running, timeout=300)
    rows = "#instances-table tr[data-instance-id]"
    alice.wait(
        "two instances on the page", lambda: [r.text.count("RUNNING") for r in alice.all(rows)] == [1, 1]
    )
    alice.wait("the plot to count two", lambda: "peak: 2" in alice.find("#instances-plot").text)
    alice.wait("the cluster to wait", lambda: alice.text("#cluster-state") == "WAITING")
    alice.shot("cluster", whole=True)


def test_add_a_step_from_the_console_and_see_it_run(resilin, alice, cluster):
    from selenium.webdriver.support.ui import Select

    alice.driver.get(f"{resilin.console_url}/#/cluster/{cluster}")
    alice.wait("the cluster page", lambda: alice.text("#cluster-state") == "WAITING")
    alice.driver.execute_script("window.resilinNoReload = 'still here'")
    alice.find("#step-name").send_keys("from the console")
    jar = alice.find("#step-jar")
    jar.clear()
    jar.send_keys("command-runner.jar")
    alice.find("#step-args").send_keys(f'bash -c "echo {ADDED_TEXT}"')
    Select(alice.find("#step-failure")).select_by_value("CONTINUE")
    alice.find("#add-step-button").click()

    rows = "#steps-table tr[data-step-id]"
    alice.wait("the added step in the list", lambda: "from the console" in alice.text("#steps-table"))
    added = next(r for r in alice.all(rows) if "from the console" in r.text)
    sid = added.get_attribute("data-step-id")
    row = f'#steps-table tr[data-step-id="{sid}"]'
    alice.wait("the added step to complete", lambda: alice.text(f"{row} td.step-state") == "COMPLETED", 300)
    alice.find(f"{row} a.step-link").click()
    alice.wait("the added step's stdout", lambda: ADDED_TEXT in alice.text("#log-stdout"))
    assert alice.driver.execute_script("return window.resilinNoReload") == "still here"

    # The API agrees: the step is the cluster's, run with the arguments the form gave.
    step = resilin.endpoints(0).client("emr").describe_step(ClusterId=cluster, StepId=sid)["Step"]
    assert step["Config"]["Args"] == ["bash", "-c", f"echo {ADDED_TEXT}"]
    assert step["Status"]["State"] == "COMPLETED"


def test_web_uis_through_resilin(resilin, alice, cluster):
    alice.driver.get(f"{resilin.console_url}/#/cluster/{cluster}")
    alice.wait("the web UI links", lambda: len(alice.all("#web-uis a")) >= 4)
    links = {a.text: a.get_attribute("href") for a in alice.all("#web-uis a")}
    base = f"http://127.0.0.1:{resilin.console_ui_port}/{cluster}/"
    assert all(url.startswith(base) for url in links.values()), links

    alice.driver.get(links["YARN ResourceManager"])
    alice.wait("YARN's page", lambda: "About the Cluster" in alice.driver.title)
    # Its links are absolute paths of the ResourceManager's own: they come back under its prefix.
    from selenium.webdriver.common.by import By

    alice.driver.find_element(By.LINK_TEXT, "Applications").click()
    alice.wait("YARN's application list", lambda: "All Applications" in alice.driver.title)
    assert alice.driver.current_url == base + "resourcemanager/cluster/apps"
    alice.wait("the step's application", lambda: "QuasiMonteCarlo" in alice.find("body").text)
    alice.shot("ui-yarn")
    alice.driver.get(links["HDFS NameNode"])
    # The overview is filled in by the page's scripts from /jmx (absolute paths, sent back under the prefix).
    alice.wait("the NameNode overview", lambda: "Security is" in alice.find("body").text, timeout=60)
    alice.shot("ui-hdfs")
    alice.driver.get(links["Spark History Server"])
    alice.wait("Spark's history page", lambda: "History Server" in alice.driver.title)
    alice.shot("ui-spark")

    # Only with the console's session; never another account's cluster.
    path = f"/{cluster}/resourcemanager/cluster/apps"
    assert call(resilin, "GET", path, port=resilin.console_ui_port).status == 401
    bob_cookie, _ = sign_in(resilin, 1)
    assert call(resilin, "GET", path, cookie=bob_cookie, port=resilin.console_ui_port).status == 404
    alice_cookie, _ = sign_in(resilin, 0)
    assert call(resilin, "POST", path, cookie=alice_cookie, port=resilin.console_ui_port).status == 405
    answer = call(resilin, "GET", path, cookie=alice_cookie, port=resilin.console_ui_port)
    assert answer.status == 200 and b"All Applications" in answer.data
    # The master's own address never reaches the browser: links to its UIs are the proxy's.
    master = resilin.endpoints(0).client("emr").list_instances(ClusterId=cluster)["Instances"][0]
    assert f"{master['PrivateIpAddress']}:8088".encode() not in answer.data


def test_clouds_page(resilin, alice, cluster):
    alice.driver.get(f"{resilin.console_url}/#/clouds")
    row = f'#clouds-table tr[data-cloud="{CLOUD}"]'
    alice.wait("the cloud's health", lambda: alice.text(f"{row} td.health") == "healthy", timeout=90)
    assert cluster in alice.text(row)
    alice.shot("clouds")


def test_another_account_sees_nothing_of_it(resilin, browsers, screenshots, cluster):
    bob = Page(browsers(), resilin.console_url, screenshots)
    bob.sign_in(resilin.accounts[1])
    bob.wait(
        "Bob's (empty) list",
        lambda: bob.all("#clusters-empty") and bob.find("#clusters-empty").is_displayed(),
    )
    assert cluster not in bob.driver.page_source
    bob.driver.get(f"{resilin.console_url}/#/cluster/{cluster}")
    bob.wait("the refusal", lambda: "not valid" in bob.text("#error-banner"))
    assert "console" not in bob.text("#cluster-summary")
    bob.shot("other-account")

    cookie, csrf = sign_in(resilin, 1)
    for path in (f"/details/{cluster}", f"/logs/{cluster}/s-NONE/stdout"):
        assert call(resilin, "GET", path, cookie=cookie).status == 404, path
    described = call(
        resilin, "POST", "/api/DescribeCluster", {"ClusterId": cluster}, cookie=cookie, csrf=csrf
    )
    assert described.status == 400
    terminate = call(
        resilin, "POST", "/api/TerminateJobFlows", {"JobFlowIds": [cluster]}, cookie=cookie, csrf=csrf
    )
    assert terminate.status == 400
    emr = resilin.endpoints(0).client("emr")
    assert emr.describe_cluster(ClusterId=cluster)["Cluster"]["Status"]["State"] == "WAITING"


def _run_the_clone(resilin, emr, cluster: str, clone: str) -> None:
    """The clone command, run as the console shows it with the AWS CLI, asks for the same cluster."""
    aws = shutil.which("aws", path=os.path.dirname(sys.executable))
    creds = resilin.accounts[0]
    env = os.environ | {
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "RESILIN_ENDPOINT": f"http://127.0.0.1:{resilin.api_port}",
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    assert aws is not None
    done = subprocess.run(["bash", "-c", clone], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    copy = json.loads(done.stdout)["ClusterId"]
    try:
        original = emr.describe_cluster(ClusterId=cluster)["Cluster"]
        cloned = emr.describe_cluster(ClusterId=copy)["Cluster"]
        for key in ("Name", "ReleaseLabel", "LogUri", "AutoTerminate", "TerminationProtected", "Tags"):
            assert cloned[key] == original[key], key
        assert [a["Name"] for a in cloned["Applications"]] == [a["Name"] for a in original["Applications"]]
        steps = [(s["Name"], s["Config"]["Args"], s["ActionOnFailure"])
                 for s in reversed(emr.list_steps(ClusterId=copy)["Steps"])]  # fmt: skip
        assert steps[0] == ("greet", ["bash", "-c", FIRST_STEP], "CONTINUE"), steps
        groups = emr.list_instance_groups(ClusterId=copy)["InstanceGroups"]
        # The task group as it is now: resized to one instance.
        assert sorted(
            (g["InstanceGroupType"], g["InstanceType"], g["RequestedInstanceCount"]) for g in groups
        ) == [
            ("MASTER", "m5.xlarge", 1),
            ("TASK", "m5.xlarge", 1),
        ]
    finally:
        emr.set_termination_protection(JobFlowIds=[copy], TerminationProtected=False)
        emr.terminate_job_flows(JobFlowIds=[copy])


def test_terminate_respects_protection_and_the_list_follows(resilin, alice, cluster):
    from selenium.webdriver.support.ui import WebDriverWait

    alice.driver.get(f"{resilin.console_url}/#/cluster/{cluster}")
    alice.wait("the cluster page", lambda: alice.text("#cluster-state") == "WAITING")
    alice.find("#protection-button").click()
    emr = resilin.endpoints(0).client("emr")
    wait_for("protection", lambda: emr.describe_cluster(ClusterId=cluster)["Cluster"]["TerminationProtected"])
    alice.find("#clone-button").click()
    alice.wait("the clone command", lambda: "aws emr create-cluster" in alice.text("#clone-command"))
    clone = alice.find("#clone-command").get_attribute("textContent")
    assert "--release-label emr-7.5.0" in clone and "--termination-protected" in clone, clone
    _run_the_clone(resilin, emr, cluster, clone)

    def confirm_terminate() -> None:
        alice.find("#terminate-button").click()
        WebDriverWait(alice.driver, 10).until(lambda d: d.switch_to.alert).accept()

    confirm_terminate()
    alice.wait("the refusal", lambda: "protect" in alice.text("#action-message").lower())
    assert emr.describe_cluster(ClusterId=cluster)["Cluster"]["Status"]["State"] == "WAITING"
    alice.shot("cluster-protected")

    alice.find("#protection-button").click()
    wait_for(
        "no protection",
        lambda: not emr.describe_cluster(ClusterId=cluster)["Cluster"]["TerminationProtected"],
    )
    confirm_terminate()
    alice.driver.execute_script("window.location.hash = '#/clusters'")
    alice.driver.execute_script("window.resilinNoReload = 'still here'")
    seen: list[str] = []

    def ended() -> bool:
        state = _row_state(alice, cluster)
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        return state == "TERMINATED"

    alice.wait("the cluster to be TERMINATED in the list", ended, timeout=300)
    # Followed in place, in order (TERMINATING may be shorter than the list's 2 s refresh).
    assert seen == [s for s in ("WAITING", "TERMINATING", "TERMINATED") if s in seen], seen
    assert alice.driver.execute_script("return window.resilinNoReload") == "still here"
    alice.shot("clusters-terminated")
    # The filters are ListClusters' own.
    from selenium.webdriver.support.ui import Select

    Select(alice.find("#state-filter")).select_by_value("active")
    row = f'#clusters-table tr[data-cluster-id="{cluster}"]'
    alice.wait("the ended cluster to leave the active ones", lambda: not alice.all(row))
    Select(alice.find("#state-filter")).select_by_value("TERMINATED")
    alice.wait("the ended cluster among the terminated", lambda: _row_state(alice, cluster) == "TERMINATED")

    # Once the cluster is gone, the step logs come from LogUri.
    alice.find(f'#clusters-table tr[data-cluster-id="{cluster}"] a.cluster-link').click()
    alice.wait("the ended cluster's page", lambda: alice.text("#cluster-state") == "TERMINATED")
    alice.wait("the phase timeline to end", lambda: "TERMINATED" in alice.find("#phase-timeline").text)
    alice.shot("cluster-terminated")
    cookie, _ = sign_in(resilin, 0)
    steps = emr.list_steps(ClusterId=cluster)["Steps"]
    first = next(s for s in steps if s["Name"] == "greet")
    answer = call(resilin, "GET", f"/logs/{cluster}/{first['Id']}/stdout", cookie=cookie).json()
    assert answer["Source"] == "LogUri" and STEP_TEXT in answer["Data"] and answer["Complete"]
