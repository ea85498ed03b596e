"""How an EMR step runs on the master: the command line for a HadoopJarStep, and the script around it."""

from __future__ import annotations

import re
import shlex

from resilin.cluster import node_data
from resilin.jobflows.documents import StepDoc

STEP_LOG_ROOT = "/var/log/hadoop/steps"
STEP_WORK_ROOT = "/var/lib/hadoop/steps"
# EMR's jar that runs its arguments as a command on the master.
COMMAND_RUNNER = "command-runner.jar"
SCRIPT_RUNNER = "script-runner.jar"
_APPLICATION_ID = re.compile(r"\bapplication_\d+_\d+\b")


def is_remote(uri: str) -> bool:
    return uri.split("://", 1)[0] in ("s3", "s3n", "s3a", "hdfs") and "://" in uri


def step_command(step: StepDoc, workdir: str) -> str:
    """The shell command that runs ``step`` on the master, from ``workdir``."""
    jar: str = step["jar"]
    args: list[str] = step["args"]
    name = jar.rsplit("/", 1)[-1]
    if name == COMMAND_RUNNER:
        if not args:
            raise ValueError("command-runner.jar needs the command to run as its first argument")
        return " ".join(shlex.quote(a) for a in args)
    if name == SCRIPT_RUNNER:
        if not args:
            raise ValueError("script-runner.jar needs the script's location as its first argument")
        script, rest = args[0], args[1:]
        fetch = _fetch(script, f"{workdir}/script")
        return f"{fetch} && chmod +x {workdir}/script && {workdir}/script " + " ".join(
            shlex.quote(a) for a in rest
        )
    prefix = ""
    if is_remote(jar):
        local = shlex.quote(f"{workdir}/{name}")
        prefix = _fetch(jar, local) + " && "
        jar = local
    else:
        jar = shlex.quote(jar)
    main_class = step.get("main_class")
    quoted = " ".join(shlex.quote(a) for a in args)
    if main_class and "." in main_class:
        # A MainClass wins over the jar's manifest, as on EMR: RunJar would run the manifest's
        # Main-Class instead, so the class runs directly with the jar on the classpath.
        # (The quoted jar sits outside the double quotes, where its quotes keep their meaning.)
        return (
            f'{prefix}HADOOP_CLASSPATH={jar}"${{HADOOP_CLASSPATH:+:$HADOOP_CLASSPATH}}" '
            f"hadoop {shlex.quote(main_class)} {quoted}"
        )
    main = [main_class] if main_class else []
    return prefix + "hadoop jar " + jar + " " + " ".join(shlex.quote(a) for a in [*main, *args])


def _fetch(uri: str, local: str) -> str:
    return f"hadoop fs -copyToLocal -f {shlex.quote(uri)} {local}"


def step_script(step: StepDoc, log_uri: str | None, cluster_id: str) -> str:
    """A bash script that runs the step, keeping controller/stdout/stderr/syslog like EMR.

    The step's command runs in a session (and process group) of its own, whose id is
    written to ``pid``: cancelling the step kills that group, and the script around it
    still records the exit and ships the logs.  Everything the user gave (arguments,
    properties, LogUri) reaches the node as data: the command as a file written from
    base64, the rest as single-quoted assignments, expanded only inside double quotes.
    """
    sid = step["id"]
    logs = f"{STEP_LOG_ROOT}/{sid}"
    workdir = f"{STEP_WORK_ROOT}/{sid}"
    command = step_command(step, workdir)
    write_command = node_data.write_file(f"{workdir}/command.sh", command + "\n")
    # Hadoop's launcher splits HADOOP_CLIENT_OPTS on whitespace; quotes and $ arrive as they are.
    java_props = shlex.quote(" ".join(f"-D{k}={v}" for k, v in step["properties"].items()))
    upload = ""
    if log_uri:
        dest = shlex.quote(f"{log_uri.rstrip('/')}/{cluster_id}/steps/{sid}/")
        upload = f"""
dest={dest}
ship="$logs"/ship
mkdir -p "$ship"
for f in controller stdout stderr syslog; do gzip -c "$logs/$f" >"$ship/$f.gz" 2>/dev/null; done
# Without a JVM (resilin-s3-put-tree); if that cannot, with Hadoop's `put`, which needs the
# destination made first (a fresh LogUri prefix is not there).
resilin-s3-put-tree "$ship" "$dest" 2>>"$logs"/controller ||
  {{ hadoop fs -mkdir -p "$dest" >>"$logs"/controller 2>&1 &&
     hadoop fs -put -f "$ship"/*.gz "$dest" >>"$logs"/controller 2>&1; }} ||
  echo "could not ship logs to $dest" >>"$logs"/controller
"""
    return f"""#!/bin/bash
set -u
logs={logs}
mkdir -p "$logs" {workdir}
# This script's own pid, and its exit status once the logs are shipped: a Resilin restarted while
# the step runs takes the step back from these (reattach_script).
echo $$ >"$logs"/wrapper.pid
cd {workdir}
: >"$logs"/syslog
note() {{ echo "$(date -u '+%F %T,%3N') INFO $*" >>"$logs"/controller; }}
{write_command}
note "Working dir {workdir}"
note {shlex.quote(f"startExec '{command}'")}
started=$SECONDS
# Hadoop's own log lines go to syslog, as on EMR; the command's output to stdout and stderr.
export HADOOP_ROOT_LOGGER=INFO,RFA HADOOP_LOG_DIR="$logs"
java_props={java_props}
export HADOOP_CLIENT_OPTS="${{HADOOP_CLIENT_OPTS:-}} -Dhadoop.log.file=syslog $java_props"
setsid -w bash -c 'echo $$ >"$1"; exec bash "$2"' step "$logs"/pid {workdir}/command.sh \\
    >"$logs"/stdout 2>"$logs"/stderr </dev/null
rc=$?
note "waitProcessCompletion ended with exit code $rc"
if [ $rc -eq 0 ]; then
  note "Step succeeded with exitCode 0 and took $((SECONDS - started)) seconds"
else
  note "Step failed with exitCode $rc and took $((SECONDS - started)) seconds"
fi
{upload}
echo $rc >"$logs"/exit.tmp && mv "$logs"/exit.tmp "$logs"/exit
exit $rc
"""


def reattach_script(step_id: str) -> str:
    """Waits on the master for a step started by an earlier run of Resilin, and exits with the
    step's exit status (255 when its script ended without recording one)."""
    logs = shlex.quote(f"{STEP_LOG_ROOT}/{step_id}")
    return f"""logs={logs}
while [ ! -s "$logs"/exit ]; do
  if ! kill -0 "$(cat "$logs"/wrapper.pid 2>/dev/null)" 2>/dev/null; then
    [ -s "$logs"/exit ] && break
    echo "the step's script ended without recording its exit status" >&2
    exit 255
  fi
  sleep 0.5
done
exit "$(cat "$logs"/exit)"
"""


def log_paths(step_id: str) -> dict[str, str]:
    return {
        name: f"{STEP_LOG_ROOT}/{step_id}/{name}" for name in ("controller", "stdout", "stderr", "syslog")
    }


def application_ids(*texts: str) -> list[str]:
    """The YARN application ids a step's logs mention, in order of first appearance."""
    seen: dict[str, None] = {}
    for text in texts:
        for app in _APPLICATION_ID.findall(text):
            seen.setdefault(app)
    return list(seen)


def kill_command(step_id: str) -> str:
    """Stops a running step on the master: its processes, then every YARN application it submitted."""
    logs = f"{STEP_LOG_ROOT}/{step_id}"
    return (
        f"kill -- -$(cat {logs}/pid) 2>/dev/null; "
        f"for app in $(grep -ohE 'application_[0-9]+_[0-9]+' {logs}/stderr {logs}/syslog 2>/dev/null | sort -u); do "
        f'yarn application -kill "$app" >>{logs}/controller 2>&1; done; true'
    )
