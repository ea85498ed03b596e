#!/usr/bin/env python3
"""resilin-s3-put-tree: uploads the files under a local folder to an s3:// prefix (every node).

    resilin-s3-put-tree LOCAL_DIR s3://BUCKET/PREFIX

Ships logs (a step's, a node's at termination) without starting a JVM: ``hadoop fs -put`` costs
a second or two of CPU per call, which on a small node is most of a step's or a teardown's
overhead.  The storage endpoint, region, addressing style and credentials are the node's S3A
settings in $HADOOP_CONF_DIR/core-site.xml, so this reaches what Hadoop reaches.  The requests
are made and signed (SigV4) by curl, all in one process with the settings on its standard
input (never on a command line).  Exit status 0 when every file was stored; otherwise 1, and
the caller falls back to ``hadoop fs -put``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlsplit


def s3a_settings(conf_dir: str) -> dict[str, str]:
    root = ET.parse(os.path.join(conf_dir, "core-site.xml")).getroot()
    found: dict[str, str] = {}
    for prop in root.iter("property"):
        name, value = prop.findtext("name"), prop.findtext("value")
        if name and name.startswith("fs.s3a.") and value is not None:
            found[name] = value.strip()
    return found


def quoted(value: str) -> str:
    """A value of curl's configuration file, in double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def object_url(settings: dict[str, str], bucket: str, key: str) -> str:
    endpoint = settings["fs.s3a.endpoint"]
    if "://" not in endpoint:
        secure = settings.get("fs.s3a.connection.ssl.enabled", "true") == "true"
        endpoint = ("https://" if secure else "http://") + endpoint
    parts = urlsplit(endpoint)
    path = quote(key, safe="/-_.~")
    if settings.get("fs.s3a.path.style.access", "false") == "true":
        return f"{parts.scheme}://{parts.netloc}/{bucket}/{path}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}/{path}"


def curl_config(settings: dict[str, str], files: list[tuple[str, str]], bucket: str) -> str:
    region = settings.get("fs.s3a.endpoint.region") or "us-east-1"
    common = [
        f"aws-sigv4 = {quoted(f'aws:amz:{region}:s3')}",
        f"user = {quoted(settings['fs.s3a.access.key'] + ':' + settings['fs.s3a.secret.key'])}",
        'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"',
        'output = "/dev/null"',
        'write-out = "%{http_code}\\n"',
        "silent",
        "show-error",
        "max-time = 120",
    ]
    token = settings.get("fs.s3a.session.token")
    if token:
        common.append(f"header = {quoted('x-amz-security-token: ' + token)}")
    blocks = []
    for local, key in files:
        blocks.append(
            "\n".join(
                [
                    *common,
                    f"upload-file = {quoted(local)}",
                    f"url = {quoted(object_url(settings, bucket, key))}",
                ]
            )
        )
    return "\nnext\n".join(blocks) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].startswith(("s3://", "s3a://", "s3n://")):
        print("usage: resilin-s3-put-tree LOCAL_DIR s3://BUCKET/PREFIX", file=sys.stderr)
        return 2
    local_dir, uri = argv
    bucket, _, prefix = uri.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/")
    files = []
    for folder, _, names in os.walk(local_dir):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                relative = os.path.relpath(path, local_dir)
                files.append((path, f"{prefix}/{relative}" if prefix else relative))
    if not files:
        return 0
    try:
        settings = s3a_settings(os.environ.get("HADOOP_CONF_DIR", "/etc/hadoop"))
        config = curl_config(settings, files, bucket)
    except (OSError, ET.ParseError, KeyError) as exc:
        print(f"resilin-s3-put-tree: no usable S3A settings: {exc}", file=sys.stderr)
        return 1
    done = subprocess.run(
        ["curl", "--parallel", "--parallel-max", "8", "--config", "-"],
        input=config, capture_output=True, text=True,
    )  # fmt: skip
    codes = done.stdout.split()
    if done.returncode != 0 or len(codes) != len(files) or any(not c.startswith("2") for c in codes):
        print(
            f"resilin-s3-put-tree: curl exit {done.returncode}, statuses {codes}: {done.stderr[-500:]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
