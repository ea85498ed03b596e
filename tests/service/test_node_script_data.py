"""Users' values in the scripts Resilin runs on nodes arrive intact and never run as shell.

Each test renders the real script with hostile values (quotes, ``$``, backticks, newlines, the
terminators of here-documents, an injected ``touch`` of a marker file), runs it with bash in a
temporary directory, and checks what bash produced: the files written (read back with lxml,
bash or Java), the argv a command received, and that no marker file appeared.  Where a script
calls Hadoop, a stand-in ``hadoop`` on PATH records its argv instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from resilin.applications import hadoop_config
from resilin.applications.hadoop_config import (
    ClusterSpec,
    NodeSpec,
    check_configurations,
    render_reconfigure_script,
)
from resilin.cluster import bootstrap
from resilin.errors import ValidationError
from resilin.steps import commands as steps

# Every terminator a node script has used for a here-document, each followed by a command.
TERMINATORS = (
    "RESILIN_EOF_B64",
    "RESILIN_EOF_1",
    "RESILIN_EOF_ENV",
    "RESILIN_EOF_LOG4J",
    "RESILIN_STEP_COMMAND",
    "RESILIN_EOF_BA",
)


def hostile(marker: Path, quotes: bool = True) -> str:
    """A value that runs ``touch marker`` if it is ever spliced into shell code."""
    lines = [f"a $HOME \"dq\" 'sq' `touch {marker}` $(touch {marker}) \\ <&> ]]>" if quotes else "a"]
    for terminator in TERMINATORS:
        lines += [terminator, f"touch {marker}"]
    return "\n".join(lines) + "\n"


def markers(tmp_path: Path) -> list[str]:
    return sorted(str(p) for p in tmp_path.rglob("pwned*"))


def run_bash(script: str, cwd: Path, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    # As Node.run_script runs it: the script on standard input.
    return subprocess.run(["bash", "-s"], input=script, cwd=cwd, env=env, capture_output=True, text=True)


# -- configuration files ---------------------------------------------------------------------


def cluster(configurations: list[dict]) -> ClusterSpec:
    nodes = [NodeSpec("ip-10-0-0-2", "10.0.0.2", "MASTER", "m", "m5.xlarge", "ig-M")]
    return ClusterSpec(
        "j-1", nodes, "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge", configurations
    )


def write_node_config(tmp_path: Path, monkeypatch, configurations: list[dict]) -> Path:
    """Run the real reconfiguration script (no restarts) with its /etc/hadoop moved into tmp_path."""
    check_configurations(configurations)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "hadoop-env.sh").write_text("# image\n")
    (conf / "log4j.properties").write_text("log4j.rootLogger=INFO\n")
    monkeypatch.setattr(hadoop_config, "DFS_EXCLUDE", str(conf / "dfs.exclude"))
    monkeypatch.setattr(hadoop_config, "YARN_EXCLUDE", str(conf / "yarn.exclude"))
    spec = cluster(configurations)
    script = render_reconfigure_script(spec, spec.nodes[0], [])
    assert script.count("\nconf=/etc/hadoop\n") == 1
    done = run_bash(script.replace("\nconf=/etc/hadoop\n", f"\nconf={conf}\n"), tmp_path)
    assert done.returncode == 0, done.stderr
    return conf


def site_properties(path: Path) -> dict[str, str]:
    root = etree.fromstring(path.read_bytes())
    return {p.findtext("name"): p.findtext("value") for p in root.iter("property")}


def test_site_xml_names_and_values_arrive_intact(tmp_path, monkeypatch):
    value = hostile(tmp_path / "pwned-xml") + "\r\n\t trailing "
    name = "x.name<&>\"'\nRESILIN_EOF_1"
    conf = write_node_config(
        tmp_path,
        monkeypatch,
        [
            {"Classification": "core-site", "Properties": {"x.value": value, name: "v"}},
            {"Classification": "yarn-site", "Properties": {"yarn.x": value}},
        ],
    )
    core = site_properties(conf / "core-site.xml")
    assert (core["x.value"], core[name], core["fs.s3a.access.key"]) == (value, "v", "AK")
    assert site_properties(conf / "yarn-site.xml")["yarn.x"] == value
    assert markers(tmp_path) == []


def test_env_exports_arrive_as_written_and_expand_variables(tmp_path, monkeypatch):
    # Export values are bash double-quoted strings, as EMR writes them: $VARIABLES expand,
    # everything else (quotes, backticks, backslashes, newlines) is kept.
    value = hostile(tmp_path / "pwned-env", quotes=False) + "dq\" sq' bt` bs\\"
    exports = {"YARN_X": value, "WITH_HOME": "$HOME/x"}
    conf = write_node_config(
        tmp_path,
        monkeypatch,
        [
            {"Classification": "yarn-env", "Configurations": [{"Classification": "export", "Properties": exports}]},
            {"Classification": "hadoop-env", "Configurations": [{"Classification": "export", "Properties": {"H_X": value}}]},
        ],
    )  # fmt: skip
    read = 'HADOOP_CONF_DIR="$1"; . "$1/hadoop-env.sh"; printf "%s\\0" "$YARN_X" "$WITH_HOME" "$H_X"'
    done = subprocess.run(["bash", "-c", read, "read", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\0")[:3] == [value, os.environ.get("HOME", "") + "/x", value]
    assert markers(tmp_path) == []


def log4j(tmp_path: Path) -> dict[str, str]:
    return {
        "log4j.logger.org.example.Foo$Inner": "DEBUG",
        "log4j.appender.X.layout.ConversionPattern": hostile(tmp_path / "pwned-log4j") + " é 😀\t",
    }


def test_log4j_properties_are_escaped_as_java_properties(tmp_path, monkeypatch):
    conf = write_node_config(
        tmp_path, monkeypatch, [{"Classification": "hadoop-log4j", "Properties": log4j(tmp_path)}]
    )
    text = (conf / "log4j.properties").read_text()
    image, added = text.split("# hadoop-log4j classification\n")
    assert image == "log4j.rootLogger=INFO\n"
    # One line per property: a value's newlines cannot start another property.
    lines = added.splitlines()
    assert lines[0].startswith("log4j.appender.X.layout.ConversionPattern=a $HOME")
    assert lines[0].endswith(f"\\nRESILIN_EOF_BA\\ntouch {tmp_path}/pwned-log4j\\n \\u00E9 \\uD83D\\uDE00\\t")
    assert lines[1:] == ["log4j.logger.org.example.Foo$Inner=DEBUG"]
    assert markers(tmp_path) == []


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK to read the file back")
def test_log4j_properties_read_back_by_java(tmp_path, monkeypatch):
    properties = log4j(tmp_path)
    conf = write_node_config(
        tmp_path, monkeypatch, [{"Classification": "hadoop-log4j", "Properties": properties}]
    )
    reader = tmp_path / "ReadProperties.java"
    reader.write_text(
        "public class ReadProperties { public static void main(String[] a) throws Exception {"
        " var p = new java.util.Properties();"
        " try (var in = new java.io.FileInputStream(a[0])) { p.load(in); }"  # ISO 8859-1, as log4j reads it
        ' for (String k : p.stringPropertyNames()) { System.out.print(k + "=");'
        ' for (char c : p.getProperty(k).toCharArray()) System.out.print((int) c + ",");'
        " System.out.println(); } } }"
    )
    done = subprocess.run(
        ["java", str(reader), str(conf / "log4j.properties")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    read = {}
    for line in done.stdout.splitlines():
        key, _, units = line.partition("=")
        raw = b"".join(int(u).to_bytes(2, "big") for u in units.split(",") if u)
        read[key] = raw.decode("utf-16-be")
    assert read == {"log4j.rootLogger": "INFO", **properties}


@pytest.mark.parametrize(
    ("configurations", "fragment"),
    [
        ([{"Classification": "hadoop-env", "Configurations": [
            {"Classification": "export", "Properties": {"X=1; touch /tmp/pwned; Y": "1"}}]}],
         "not a valid environment variable name"),
        ([{"Classification": "yarn-env", "Configurations": [
            {"Classification": "export", "Properties": {"1X": "1"}}]}],
         "not a valid environment variable name"),
        ([{"Classification": "hadoop-log4j", "Properties": {"log4j.x\ntouch /tmp/pwned": "1"}}],
         "is not valid"),
        ([{"Classification": "hadoop-log4j", "Properties": {"a=b": "1"}}], "is not valid"),
        ([{"Classification": "core-site", "Properties": {"x": "bell\x07"}}], "not allowed"),
        ([{"Classification": "core-site", "Properties": {"x\x00": "1"}}], "not allowed"),
        ([{"Classification": "core-site", "Properties": {"x": "\ud800"}}], "not allowed"),
    ],
)  # fmt: skip
def test_names_and_characters_a_file_cannot_hold_are_refused(configurations, fragment):
    with pytest.raises(ValidationError, match=fragment):
        check_configurations(configurations)


# -- steps ----------------------------------------------------------------------------------

# Records each call as a JSON line (argv and the environment Hadoop's launcher would read);
# `hadoop fs -put` fails, as when LogUri cannot be reached.
STAND_IN_HADOOP = """#!{python}
import json, os, sys
with open({calls!r}, "a") as out:
    keys = ("HADOOP_CLIENT_OPTS", "HADOOP_CLASSPATH")
    out.write(json.dumps({{"argv": sys.argv[1:], **{{k: os.environ.get(k) for k in keys}}}}) + "\\n")
sys.exit(1 if sys.argv[1:3] == ["fs", "-put"] else 0)
"""
PRINT_ARGV = "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['HADOOP_CLIENT_OPTS']]))"


def run_step(tmp_path: Path, monkeypatch, step: dict, log_uri: str | None) -> tuple[int, Path, list[dict]]:
    """Run the real step script with its roots in tmp_path; (exit status, log dir, hadoop calls)."""
    monkeypatch.setattr(steps, "STEP_LOG_ROOT", str(tmp_path / "logs"))
    monkeypatch.setattr(steps, "STEP_WORK_ROOT", str(tmp_path / "work"))
    bin_dir, calls = tmp_path / "bin", tmp_path / "hadoop-calls.jsonl"
    bin_dir.mkdir()
    (bin_dir / "hadoop").write_text(STAND_IN_HADOOP.format(python=sys.executable, calls=str(calls)))
    (bin_dir / "hadoop").chmod(0o755)
    done = run_bash(steps.step_script(step, log_uri, "j-1"), tmp_path, bin_dir)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return done.returncode, tmp_path / "logs" / step["id"], recorded


def test_step_args_properties_and_log_uri_arrive_intact(tmp_path, monkeypatch):
    args = [hostile(tmp_path / "pwned-arg"), "$HOME", "it's", 'say "hi"', "", "EOF"]
    prop = f"v $HOME \"dq\" 'sq' $(touch {tmp_path}/pwned-prop) `touch {tmp_path}/pwned-prop`"
    log_uri = f"s3://b/logs $(touch {tmp_path}/pwned-log)\"'/"
    step = {
        "id": "s-1",
        "jar": "command-runner.jar",
        "args": [sys.executable, "-c", PRINT_ARGV, *args],
        "main_class": None,
        "properties": {"p.q": prop},
    }
    rc, logs, calls = run_step(tmp_path, monkeypatch, step, log_uri)
    assert rc == 0, (logs / "stderr").read_text()
    assert json.loads((logs / "stdout").read_text()) == [args, f" -Dhadoop.log.file=syslog -Dp.q={prop}"]
    dest = f"s3://b/logs $(touch {tmp_path}/pwned-log)\"'/j-1/steps/s-1/"
    assert [c["argv"][:3] + c["argv"][-1:] for c in calls] == [
        ["fs", "-mkdir", "-p", dest],
        ["fs", "-put", "-f", dest],
    ]
    assert f"could not ship logs to {dest}\n" in (logs / "controller").read_text()
    assert markers(tmp_path) == []


def test_a_step_jar_reaches_hadoop_as_one_word(tmp_path, monkeypatch):
    # The jar's local copy is named after the URI's last part; a command there would run in the
    # step's working directory.
    jar = "s3://b/app $(touch pwned-jar) 'q'.jar"
    step = {
        "id": "s-2",
        "jar": jar,
        "args": ["$HOME", hostile(tmp_path / "pwned-arg")],
        "main_class": "org.example.Main",
        "properties": {"k": 'it\'s "$HOME"'},
    }
    rc, logs, calls = run_step(tmp_path, monkeypatch, step, None)
    assert rc == 0, (logs / "stderr").read_text()
    local = f"{tmp_path}/work/s-2/app $(touch pwned-jar) 'q'.jar"
    fetch, run = calls
    assert fetch["argv"] == ["fs", "-copyToLocal", "-f", jar, local]
    assert run["argv"] == ["org.example.Main", *step["args"]]
    assert run["HADOOP_CLASSPATH"] == local
    assert run["HADOOP_CLIENT_OPTS"] == ' -Dhadoop.log.file=syslog -Dk=it\'s "$HOME"'
    assert markers(tmp_path) == []


# -- bootstrap actions ------------------------------------------------------------------------


def test_bootstrap_action_names_and_args_stay_data(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap, "LOG_ROOT", str(tmp_path / "ba-logs"))
    monkeypatch.setattr(bootstrap, "WORK_ROOT", str(tmp_path / "ba-work"))
    name = hostile(tmp_path / "pwned-name")
    arg = hostile(tmp_path / "pwned-ba-arg")
    body = b"#!/bin/bash\nprintf '%s' \"$1\" >args\nexit 4\n"
    actions = [{"Name": name, "ScriptBootstrapAction": {"Path": "s3://b/x.sh", "Args": [arg]}}]
    text = bootstrap.render(actions, lambda bucket, key: body)
    # The node runs this as the hadoop user, who may sudo; here sudo is not needed.
    assert text.startswith("sudo mkdir -p ") and " && sudo chown " in text.splitlines()[0]
    done = run_bash(text.split("\n", 1)[1], tmp_path)
    assert done.returncode == 4
    assert f"bootstrap action 1 ({name}) failed with exit status 4" in done.stderr
    assert (tmp_path / "ba-work/1/args").read_text() == arg
    assert markers(tmp_path) == []
