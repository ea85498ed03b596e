#!/bin/bash
# Formats an empty HDFS namespace once, for every cluster made from this image
# (/opt/hadoop/share/hadoop/empty-namespace).
#
# Runs inside the node rootfs during build.sh.  A new cluster's master copies it into its name
# directory and gives it the cluster's own identity (configure-node.sh.j2) instead of running
# `hdfs namenode -format`, a JVM of its own that every other node waits for.  An empty image
# holds no identity: the NameNode reads its namespace, cluster and block pool ids from the
# VERSION file, which the copy rewrites, and checks the image only against its .md5.  The
# formatting user (hadoop) owns the root directory, as when the master formats it.
set -euo pipefail

HH=/opt/hadoop
OUT=$HH/share/hadoop/empty-namespace
WORK=$(mktemp -d /tmp/empty-namespace.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chown hadoop:hadoop "$WORK"

# The daemons' defaults but for the name directory; nothing else takes part in a format.
mkdir "$WORK/conf"
cp /etc/hadoop/log4j.properties "$WORK/conf/"
cat >"$WORK/conf/hdfs-site.xml" <<XML
<?xml version="1.0"?><configuration>
<property><name>dfs.namenode.name.dir</name><value>file://$WORK/name</value></property>
</configuration>
XML
echo '<?xml version="1.0"?><configuration/>' >"$WORK/conf/core-site.xml"
: >"$WORK/conf/hadoop-env.sh"

runuser -u hadoop -- env HADOOP_CONF_DIR="$WORK/conf" HADOOP_LOG_DIR="$WORK" HADOOP_ROOT_LOGGER=WARN,console \
    PATH="$HH/bin:$PATH" hdfs namenode -format -nonInteractive -force -clusterid CID-empty >"$WORK/format.out" 2>&1 ||
    { tail -20 "$WORK/format.out" >&2; exit 1; }

rm -rf "$OUT"
install -d -m 0755 "$OUT"
install -m 0644 "$WORK"/name/current/* "$OUT/"
ls "$OUT" >&2
