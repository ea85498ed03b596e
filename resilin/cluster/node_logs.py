"""A node's logs shipped to LogUri when its cluster ends, where EMR puts them.

    LogUri/<cluster-id>/node/<ec2-instance-id>/applications/hadoop/<daemon log>.gz
    LogUri/<cluster-id>/containers/<application-id>/<container-id>/<stdout|stderr|syslog>.gz

Tools such as mrjob read the containers' logs there to explain a failed task.  This
is done on the node itself (its Hadoop reaches LogUri through S3A), and is best
effort: a node that cannot ship its logs never holds up the cluster's termination.
"""

from __future__ import annotations

import shlex

DAEMON_LOGS = "/var/log/hadoop"
CONTAINER_LOGS = "/var/log/hadoop/yarn/containers"
SHIP_TIMEOUT = 300


def ship_script(log_uri: str, cluster_id: str, ec2_instance_id: str) -> str:
    prefix = log_uri.rstrip("/") + "/" + cluster_id
    dest = shlex.quote(prefix + "/")
    daemons_dest = shlex.quote(f"{prefix}/node/{ec2_instance_id}/applications/hadoop/")
    containers_dest = shlex.quote(f"{prefix}/containers/")
    node = f"node/{ec2_instance_id}"
    return f"""set -u
# One process compresses every log and uploads it, without a JVM (resilin-s3-put-tree,
# hadoop_templates/s3_put_tree.py).
resilin-s3-put-tree --gzip \\
  --include '*.log' --include '*.out' {DAEMON_LOGS} {daemons_dest} \\
  --include 'application_*/container_*/*' {CONTAINER_LOGS} {containers_dest} && exit 0
# If it cannot: compressed here, then Hadoop's `put` merges the node/ and containers/ trees into
# the cluster's prefix, made first.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/{node}/applications/hadoop"
for f in {DAEMON_LOGS}/*.log {DAEMON_LOGS}/*.out; do
  [ -f "$f" ] && [ ! -L "$f" ] && gzip -c "$f" >"$tmp/{node}/applications/hadoop/$(basename "$f").gz"
done
for c in {CONTAINER_LOGS}/application_*/container_*; do
  [ -d "$c" ] && [ ! -L "$c" ] || continue
  app=$(basename "$(dirname "$c")")
  mkdir -p "$tmp/containers/$app/$(basename "$c")"
  for f in "$c"/*; do
    [ -f "$f" ] && [ ! -L "$f" ] && gzip -c "$f" >"$tmp/containers/$app/$(basename "$c")/$(basename "$f").gz"
  done
done
hadoop fs -mkdir -p {dest} && hadoop fs -put -f "$tmp"/* {dest}
"""
