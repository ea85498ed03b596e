"""How an EMR step runs on the master: the command line for a HadoopJarStep, and the script around it."""

from __future__ import annotations

import shlex

from resilin.jobflows.store import Doc

STEP_LOG_ROOT = "/var/log/hadoop/steps"
STEP_WORK_ROOT = "/var/lib/hadoop/steps"
# EMR's jar that runs its arguments as a command on the master.
COMMAND_RUNNER = "command-runner.jar"
SCRIPT_RUNNER = "script-runner.jar"


def is_remote(uri: str) -> bool:
    return uri.split("://", 1)[0] in ("s3", "s3n", "s3a", "hdfs") and "://" in uri


def step_command(step: Doc, workdir: str) -> str:
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
        local = f"{workdir}/{shlex.quote(name)}"
        prefix = _fetch(jar, local) + " && "
        jar = local
    else:
        jar = shlex.quote(jar)
    main = [step["main_class"]] if step.get("main_class") else []
    return prefix + "hadoop jar " + jar + " " + " ".join(shlex.quote(a) for a in [*main, *args])


def _fetch(uri: str, local: str) -> str:
    return f"hadoop fs -copyToLocal -f {shlex.quote(uri)} {local}"


def step_script(step: Doc, log_uri: str | None, cluster_id: str) -> str:
    """A bash script that runs the step, keeping controller/stdout/stderr/syslog like EMR.

    The step's command runs in a session (and process group) of its own, whose id is
    written to ``pid``: cancelling the step kills that group, and the script around it
    still records the exit and ships the logs.
    """
    sid = step["id"]
    logs = f"{STEP_LOG_ROOT}/{sid}"
    workdir = f"{STEP_WORK_ROOT}/{sid}"
    command = step_command(step, workdir)
    java_props = " ".join(shlex.quote(f"-D{k}={v}") for k, v in step["properties"].items())
    upload = ""
    if log_uri:
        dest = shlex.quote(f"{log_uri.rstrip('/')}/{cluster_id}/steps/{sid}/")
        upload = f"""
ship="$logs"/ship
mkdir -p "$ship"
for f in controller stdout stderr syslog; do gzip -c "$logs/$f" >"$ship/$f.gz" 2>/dev/null; done
# `put` needs the destination's parent to exist, which a fresh LogUri prefix does not.
hadoop fs -mkdir -p {dest} >>"$logs"/controller 2>&1
hadoop fs -put -f "$ship"/*.gz {dest} >>"$logs"/controller 2>&1 || echo "could not ship logs to {dest}" >>"$logs"/controller
"""
    return f"""#!/bin/bash
set -u
logs={logs}
mkdir -p "$logs" {workdir}
cd {workdir}
: >"$logs"/syslog
note() {{ echo "$(date -u '+%F %T,%3N') INFO $*" >>"$logs"/controller; }}
cat >{workdir}/command.sh <<'RESILIN_STEP_COMMAND'
{command}
RESILIN_STEP_COMMAND
note "Working dir {workdir}"
note {shlex.quote(f"startExec '{command}'")}
started=$SECONDS
# Hadoop's own log lines go to syslog, as on EMR; the command's output to stdout and stderr.
export HADOOP_ROOT_LOGGER=INFO,RFA HADOOP_LOG_DIR="$logs"
export HADOOP_CLIENT_OPTS="${{HADOOP_CLIENT_OPTS:-}} -Dhadoop.log.file=syslog {java_props}"
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
exit $rc
"""


def log_paths(step_id: str) -> dict[str, str]:
    return {
        name: f"{STEP_LOG_ROOT}/{step_id}/{name}" for name in ("controller", "stdout", "stderr", "syslog")
    }
