#!/usr/bin/env python3
"""s3-dist-cp: EMR's S3DistCp basics on top of Hadoop's DistCp (installed on the master).

    s3-dist-cp --src URI --dest URI [--srcPattern REGEX] [--groupBy REGEX]
               [--outputCodec gzip|none|keep] [--deleteOnSuccess]

Files under --src whose full path matches --srcPattern are copied to --dest with
their path relative to --src, by DistCp (one MapReduce job per source directory).
With --groupBy, files whose full path matches the pattern are concatenated, one
output file per distinct value of the pattern's capture groups (joined), named by
that value; files that do not match are not copied, as with EMR.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from typing import Any

CODECS = ("keep", "none", "gzip", "gz")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s3-dist-cp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--srcPattern")
    parser.add_argument("--groupBy")
    parser.add_argument("--outputCodec", default="keep", type=str.lower, choices=CODECS)
    parser.add_argument("--deleteOnSuccess", action="store_true")
    args = parser.parse_args(argv)
    if args.groupBy and re.compile(args.groupBy).groups == 0:
        parser.error("--groupBy needs at least one capture group in parentheses")
    return args


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    print("s3-dist-cp: " + " ".join(shlex.quote(c) for c in command), file=sys.stderr, flush=True)
    return subprocess.run(command, check=True, **kwargs)


def list_files(src: str) -> list[str]:
    """Every file under ``src`` (recursively), as full paths."""
    out = run(["hadoop", "fs", "-ls", "-R", src], stdout=subprocess.PIPE, text=True).stdout
    files = []
    for line in out.splitlines():
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[0].startswith("-"):
            files.append(fields[7])
    return files


def relative(path: str, root: str) -> str:
    """``path`` relative to ``root``, comparing paths without their scheme and authority quirks."""
    bare = re.sub(r"^[a-z0-9]+://", "", path)
    base = re.sub(r"^[a-z0-9]+://", "", root).rstrip("/")
    if bare.startswith(base + "/"):
        return bare[len(base) + 1 :]
    return path.rsplit("/", 1)[-1]


def copy_files(files: list[str], src: str, dest: str, workdir: str) -> None:
    """DistCp the files, keeping their directories relative to ``src``: one job per directory."""
    by_dir: dict[str, list[str]] = {}
    for f in files:
        by_dir.setdefault(os.path.dirname(relative(f, src)), []).append(f)
    staging = f"hdfs:///tmp/s3-dist-cp-{os.getpid()}"
    jobs = []
    for i, (subdir, members) in enumerate(sorted(by_dir.items())):
        with open(os.path.join(workdir, f"list-{i}"), "w") as fh:
            fh.write("\n".join(members) + "\n")
        target = dest.rstrip("/") + ("/" + subdir if subdir else "")
        if len(members) == 1:
            # DistCp makes a lone source the target itself; naming the file keeps it inside the
            # directory without creating a directory (an object store would keep a marker object).
            target += "/" + members[0].rsplit("/", 1)[-1]
        jobs.append((f"{staging}/list-{i}", target))
    run(["hadoop", "fs", "-mkdir", "-p", staging])
    try:
        run(
            [
                "hadoop",
                "fs",
                "-put",
                "-f",
                *sorted(os.path.join(workdir, n) for n in os.listdir(workdir)),
                staging,
            ]
        )
        for listing, target in jobs:
            run(["hadoop", "distcp", "-f", listing, target])
    finally:
        subprocess.run(["hadoop", "fs", "-rm", "-r", "-skipTrash", staging], stdout=subprocess.DEVNULL)


def concatenate(groups: dict[str, list[str]], dest: str, codec: str) -> None:
    """One output file per group: its members in path order, streamed through the master."""
    for name, members in sorted(groups.items()):
        target = dest.rstrip("/") + "/" + name + (".gz" if codec in ("gzip", "gz") else "")
        cat = subprocess.Popen(["hadoop", "fs", "-cat", *sorted(members)], stdout=subprocess.PIPE)
        stream = cat.stdout
        gz = None
        if codec in ("gzip", "gz"):
            gz = subprocess.Popen(["gzip", "-c"], stdin=cat.stdout, stdout=subprocess.PIPE)
            stream = gz.stdout
        print(f"s3-dist-cp: {len(members)} file(s) -> {target}", file=sys.stderr, flush=True)
        put = subprocess.run(["hadoop", "fs", "-put", "-f", "-", target], stdin=stream)
        if cat.wait() != 0 or (gz is not None and gz.wait() != 0) or put.returncode != 0:
            raise SystemExit(f"s3-dist-cp: could not write {target}")


def main(argv: list[str]) -> int:
    args = parse(argv)
    files = list_files(args.src)
    if args.srcPattern:
        pattern = re.compile(args.srcPattern)
        files = [f for f in files if pattern.fullmatch(f)]
    if not files:
        print(f"s3-dist-cp: no files under {args.src} match", file=sys.stderr)
        return 1
    if args.groupBy:
        group_by = re.compile(args.groupBy)
        groups: dict[str, list[str]] = {}
        for f in files:
            match = group_by.fullmatch(f)
            if match:
                groups.setdefault("".join(g or "" for g in match.groups()), []).append(f)
        if not groups:
            print(f"s3-dist-cp: no file matches --groupBy {args.groupBy}", file=sys.stderr)
            return 1
        concatenate(groups, args.dest, args.outputCodec)
        copied = [f for members in groups.values() for f in members]
    else:
        with tempfile.TemporaryDirectory() as workdir:
            copy_files(files, args.src, args.dest, workdir)
        copied = files
    if args.deleteOnSuccess:
        run(["hadoop", "fs", "-rm", "-skipTrash", *copied], stdout=subprocess.DEVNULL)
    print(f"s3-dist-cp: copied {len(copied)} file(s) to {args.dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
