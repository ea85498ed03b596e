"""Step orchestration benchmark on one real, kept-alive cluster (master only).

Measures what Resilin adds around a step, not Hadoop itself:

- step overhead: AddJobFlowSteps → COMPLETED for a step that does nothing (`true`),
  without LogUri and with it (shipping the four logs to storage through S3A);
- concurrency: wall time of N steps that each sleep S seconds, at StepConcurrencyLevel 1
  and N, and the speed-up;
- cancel latency: CancelSteps on a running step → CANCELLED (process group killed);
- idle termination lag: how long after the IdleTimeout of an auto-termination policy
  the cluster starts TERMINATING.

No peer runs these (Amazon EMR is the reference, not something to start here), so only
Resilin's figures are printed: medians and p90 over ``--repeat`` runs.

Usage: .venv/bin/python bench/steps.py [--repeat 5] [--parallel 4] [--sleep 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_resilin import running_resilin, wait_terminated  # noqa: E402

CLOUD = "bsteps"
SUBNET = "10.78.22.0/24"


def step(name: str, script: str) -> dict:
    return {
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }


def wait_state(emr, cid: str, sid: str, wanted: str, timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"]
        if state == wanted:
            return time.monotonic()
        if state in ("COMPLETED", "FAILED", "CANCELLED"):
            raise SystemExit(f"step {sid} ended {state}, not {wanted}")
        time.sleep(0.2)
    raise SystemExit(f"step {sid} not {wanted} after {timeout:.0f}s")


def cluster_state(emr, cid: str) -> str:
    return emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]


def round_trip(emr, cid: str, script: str) -> float:
    started = time.monotonic()
    (sid,) = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step("noop", script)])["StepIds"]
    return wait_state(emr, cid, sid, "COMPLETED") - started


def batch(emr, cid: str, count: int, seconds: int, level: int) -> float:
    emr.modify_cluster(ClusterId=cid, StepConcurrencyLevel=level)
    started = time.monotonic()
    ids = emr.add_job_flow_steps(
        JobFlowId=cid, Steps=[step(f"sleep-{i}", f"sleep {seconds}") for i in range(count)]
    )["StepIds"]
    for sid in ids:
        wait_state(emr, cid, sid, "COMPLETED")
    return time.monotonic() - started


def cancel(emr, cid: str) -> float:
    (sid,) = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step("to cancel", "sleep 600")])["StepIds"]
    wait_state(emr, cid, sid, "RUNNING")
    time.sleep(2)  # well into the step, its process group written
    started = time.monotonic()
    emr.cancel_steps(ClusterId=cid, StepIds=[sid])
    return wait_state(emr, cid, sid, "CANCELLED") - started


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(values):7.2f} s   p90 {p90:7.2f} s   (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--sleep", type=int, default=10)
    args = parser.parse_args()

    with running_resilin(CLOUD, SUBNET, "resilin-bench-steps-") as proc:
        endpoints = proc.endpoints()
        emr, s3 = endpoints.client("emr"), endpoints.client("s3")
        s3.create_bucket(Bucket="bench-steps")
        cid = emr.run_job_flow(
            Name="bench steps",
            ReleaseLabel="emr-7.5.0",
            Instances={
                "MasterInstanceType": "m5.xlarge",
                "InstanceCount": 1,
                "KeepJobFlowAliveWhenNoSteps": True,
            },
        )["JobFlowId"]
        print(f"cluster {cid} starting …", flush=True)
        emr.get_waiter("cluster_running").wait(ClusterId=cid, WaiterConfig={"Delay": 2, "MaxAttempts": 900})

        bare = [round_trip(emr, cid, "true") for _ in range(args.repeat)]
        print("step overhead, no LogUri:   ", stats(bare), flush=True)

        logged_cluster = emr.run_job_flow(
            Name="bench steps (LogUri)",
            ReleaseLabel="emr-7.5.0",
            LogUri="s3://bench-steps/logs/",
            Instances={
                "MasterInstanceType": "m5.xlarge",
                "InstanceCount": 1,
                "KeepJobFlowAliveWhenNoSteps": True,
            },
        )["JobFlowId"]
        emr.get_waiter("cluster_running").wait(
            ClusterId=logged_cluster, WaiterConfig={"Delay": 2, "MaxAttempts": 900}
        )
        logged = [round_trip(emr, logged_cluster, "true") for _ in range(args.repeat)]
        print("step overhead, with LogUri: ", stats(logged), flush=True)
        emr.terminate_job_flows(JobFlowIds=[logged_cluster])

        serial = batch(emr, cid, args.parallel, args.sleep, 1)
        parallel = batch(emr, cid, args.parallel, args.sleep, args.parallel)
        print(
            f"{args.parallel} steps of sleep {args.sleep}: level 1 {serial:6.1f} s, level {args.parallel} "
            f"{parallel:6.1f} s, speed-up {serial / parallel:4.2f}x (ideal {args.parallel}x)",
            flush=True,
        )
        emr.modify_cluster(ClusterId=cid, StepConcurrencyLevel=1)

        cancels = [cancel(emr, cid) for _ in range(args.repeat)]
        print("cancel latency:             ", stats(cancels), flush=True)

        emr.put_auto_termination_policy(ClusterId=cid, AutoTerminationPolicy={"IdleTimeout": 60})
        put = time.monotonic()
        while cluster_state(emr, cid) not in ("TERMINATING", "TERMINATED"):
            time.sleep(0.5)
        print(
            f"idle termination: TERMINATING {time.monotonic() - put - 60:5.1f} s after the 60 s IdleTimeout"
        )
        wait_terminated(emr, [cid, logged_cluster])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
