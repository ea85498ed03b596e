#!/usr/bin/env python3
"""resilin-s3-put-tree: uploads the files under local folders to s3:// prefixes (every node).

    resilin-s3-put-tree [--gzip] [--include GLOB]... LOCAL_DIR s3://BUCKET/PREFIX [...]

Each LOCAL_DIR's regular files (symbolic links are never followed: logs are written by users'
code) go under the s3:// prefix after it, at their path relative to LOCAL_DIR.  The --include
patterns before a LOCAL_DIR, if any, choose its files: a pattern matches a relative path of as
many parts, each part as the shell's globbing would (``*.log`` only at the top).  With --gzip,
every file is stored compressed, with ``.gz`` added to its key, as EMR keeps a node's logs.

Ships logs (a step's, a node's at termination) without starting a JVM: ``hadoop fs -put`` costs
a second or two of CPU per call, which on a small node is most of a step's or a teardown's
overhead.  The storage endpoint, region, addressing style and credentials are the node's S3A
settings in $HADOOP_CONF_DIR/core-site.xml, so this reaches what Hadoop reaches.  The requests
are made and signed (SigV4) by curl, all in one process with the settings on its standard
input (never on a command line).  Exit status 0 when every file was stored; otherwise 1, and
the caller falls back to ``hadoop fs -put``.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
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


def curl_config(settings: dict[str, str], files: list[tuple[str, str, str]]) -> str:
    """curl's configuration storing each (local path, bucket, key) with one signed PUT."""
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
    for local, bucket, key in files:
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


USAGE = "usage: resilin-s3-put-tree [--gzip] [--include GLOB]... LOCAL_DIR s3://BUCKET/PREFIX [...]"


@dataclass
class Tree:
    local_dir: str
    bucket: str
    prefix: str
    includes: list[str] = field(default_factory=list)


def parse(argv: list[str]) -> tuple[bool, list[Tree]] | None:
    """Whether to compress, and the trees to upload; None for a command line that is not one."""
    compress = argv[:1] == ["--gzip"]
    args = argv[1:] if compress else argv
    trees: list[Tree] = []
    includes: list[str] = []
    while args:
        if args[0] == "--include" and len(args) > 1:
            includes.append(args[1])
            args = args[2:]
            continue
        if len(args) < 2 or args[0].startswith("--") or not args[1].startswith(("s3://", "s3a://", "s3n://")):
            return None
        bucket, _, prefix = args[1].split("://", 1)[1].partition("/")
        trees.append(Tree(args[0], bucket, prefix.strip("/"), includes))
        includes, args = [], args[2:]
    return (compress, trees) if trees and not includes else None


def included(relative: str, patterns: list[str]) -> bool:
    return not patterns or any(_matches(relative.split(os.sep), p.split("/")) for p in patterns)


def _matches(parts: list[str], globs: list[str]) -> bool:
    """As the shell's globbing: part by part, a leading dot only matched by a pattern's own."""
    return len(parts) == len(globs) and all(
        fnmatch.fnmatchcase(part, glob) and (glob.startswith(".") or not part.startswith("."))
        for part, glob in zip(parts, globs, strict=True)
    )


def tree_files(tree: Tree) -> list[tuple[str, str]]:
    """(local path, key) of every regular file of ``tree`` its patterns include."""
    files = []
    # No deeper than the patterns reach (the daemons' logs are beside the containers' folders).
    depth = max((len(p.split("/")) for p in tree.includes), default=None)
    for folder, folders, names in os.walk(tree.local_dir):
        under = os.path.relpath(folder, tree.local_dir)
        # ``folder``'s parts below the tree: its files have one more, its subfolders' files two more.
        level = 0 if under == "." else under.count(os.sep) + 1
        if depth is not None and level + 2 > depth:
            folders.clear()
        for name in sorted(names):
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, tree.local_dir)
            if os.path.isfile(path) and not os.path.islink(path) and included(relative, tree.includes):
                files.append((path, f"{tree.prefix}/{relative}" if tree.prefix else relative))
    return files


def compressed(files: list[tuple[str, str]], into: str) -> list[tuple[str, str]]:
    """Each file gzipped into the folder ``into``, its key ending in .gz.  Opened without following
    a link swapped in since the walk; a file that is gone, or no longer a regular one, is left out."""
    done = []
    for index, (path, key) in enumerate(files):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        target = os.path.join(into, f"{index}.gz")
        try:
            with open(fd, "rb") as source:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                with gzip.open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        except OSError:
            continue  # unreadable now (the user's code may change its logs as it likes)
        done.append((target, key + ".gz"))
    return done


def upload(settings: dict[str, str], files: list[tuple[str, str, str]]) -> int:
    """(local path, bucket, key) each stored by one curl, eight at a time; 0 when all were."""
    done = subprocess.run(
        ["curl", "--parallel", "--parallel-max", "8", "--config", "-"],
        input=curl_config(settings, files), capture_output=True, text=True,
    )  # fmt: skip
    codes = done.stdout.split()
    if done.returncode != 0 or len(codes) != len(files) or any(not c.startswith("2") for c in codes):
        print(
            f"resilin-s3-put-tree: curl exit {done.returncode}, statuses {codes}: {done.stderr[-500:]}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str]) -> int:
    parsed = parse(argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    compress, trees = parsed
    found = [(tree, tree_files(tree)) for tree in trees]
    if not any(files for _, files in found):
        return 0
    try:
        settings = s3a_settings(os.environ.get("HADOOP_CONF_DIR", "/etc/hadoop"))
    except (OSError, ET.ParseError) as exc:
        settings = {}
        print(f"resilin-s3-put-tree: cannot read core-site.xml: {exc}", file=sys.stderr)
    missing = [n for n in ("fs.s3a.endpoint", "fs.s3a.access.key", "fs.s3a.secret.key") if n not in settings]
    if missing:
        print(f"resilin-s3-put-tree: no usable S3A settings: {', '.join(missing)} unset", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="resilin-s3-put-tree-") as scratch:
        uploads = []
        for tree, files in found:
            if compress:
                files = compressed(files, tempfile.mkdtemp(dir=scratch))
            uploads += [(local, tree.bucket, key) for local, key in files]
        return upload(settings, uploads) if uploads else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
