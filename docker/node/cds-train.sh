#!/bin/bash
# Builds the class-data sharing archive of the Hadoop launchers (/opt/hadoop/share/hadoop/hadoop.jsa).
#
# Runs inside the node rootfs during build.sh.  A JVM started by a launcher in /opt/hadoop/bin
# maps the classes it needs from this archive instead of reading, verifying and parsing them
# from 200 jars: a daemon or a `hadoop fs` command starts on about a third less CPU, which is
# most of a small cluster's start-up on a machine with few cores.
#
# Which classes: those a short training run loads — every daemon a node runs, started on
# loopback with its own configuration under $WORK, the client commands Resilin's scripts and
# steps use, and one MapReduce job submitted to that YARN.  Each JVM writes its class list
# (-XX:DumpLoadedClassList); the union is dumped with -Xshare:dump.  The archive only holds
# classes, never state: a class missing from it is loaded from its jar as before.
set -euo pipefail

HH=/opt/hadoop
ARCHIVE=$HH/share/hadoop/hadoop.jsa
WORK=$(mktemp -d /tmp/cds-train.XXXXXX)
LISTS=$WORK/lists
CONF=$WORK/conf
mkdir -p "$LISTS" "$CONF" "$WORK/logs"
log() { echo "[cds-train] $*" >&2; }

# The daemons resolve the host's own name; the rootfs has no /etc/hosts (podman provides one).
hosts_made=0
if ! getent hosts "$(hostname)" >/dev/null; then
    [ -e /etc/hosts ] && cp -p /etc/hosts "$WORK/hosts.saved"
    echo "127.0.0.1 localhost $(hostname)" >>/etc/hosts
    hosts_made=1
fi

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$hosts_made" = 1 ]; then
        if [ -e "$WORK/hosts.saved" ]; then cp -p "$WORK/hosts.saved" /etc/hosts; else rm -f /etc/hosts; fi
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Loopback only, on ports well away from Hadoop's defaults (the build host may run Hadoop).
prop() { printf '<property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }
site() {
    local file=$1
    shift
    {
        echo '<?xml version="1.0"?><configuration>'
        while [ $# -gt 0 ]; do prop "$1" "$2"; shift 2; done
        echo '</configuration>'
    } >"$CONF/$file"
}
site core-site.xml fs.defaultFS hdfs://127.0.0.1:38020 hadoop.tmp.dir "$WORK/tmp"
site hdfs-site.xml \
    dfs.replication 1 \
    dfs.namenode.name.dir "file://$WORK/name" dfs.datanode.data.dir "file://$WORK/data" \
    dfs.namenode.http-address 127.0.0.1:39870 dfs.datanode.hostname 127.0.0.1 \
    dfs.datanode.address 127.0.0.1:0 dfs.datanode.http.address 127.0.0.1:0 \
    dfs.datanode.ipc.address 127.0.0.1:0 dfs.permissions.enabled false
site yarn-site.xml \
    yarn.resourcemanager.hostname 127.0.0.1 \
    yarn.resourcemanager.address 127.0.0.1:38032 yarn.resourcemanager.scheduler.address 127.0.0.1:38030 \
    yarn.resourcemanager.resource-tracker.address 127.0.0.1:38031 \
    yarn.resourcemanager.admin.address 127.0.0.1:38033 yarn.resourcemanager.webapp.address 127.0.0.1:38088 \
    yarn.nodemanager.hostname 127.0.0.1 yarn.nodemanager.address 127.0.0.1:0 \
    yarn.nodemanager.localizer.address 127.0.0.1:0 yarn.nodemanager.webapp.address 127.0.0.1:0 \
    yarn.nodemanager.aux-services mapreduce_shuffle \
    yarn.nodemanager.aux-services.mapreduce_shuffle.class org.apache.hadoop.mapred.ShuffleHandler \
    mapreduce.shuffle.port 0 \
    yarn.nodemanager.local-dirs "$WORK/nm-local" yarn.nodemanager.log-dirs "$WORK/nm-logs" \
    yarn.nodemanager.resource.memory-mb 4096 yarn.scheduler.minimum-allocation-mb 256 \
    yarn.nodemanager.vmem-check-enabled false yarn.nodemanager.pmem-check-enabled false \
    yarn.nodemanager.env-whitelist JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,HADOOP_YARN_HOME,HADOOP_HOME,PATH,HADOOP_MAPRED_HOME \
    yarn.application.classpath "$HH/share/hadoop/common/lib/*"
site mapred-site.xml \
    mapreduce.framework.name yarn \
    mapreduce.jobhistory.address 127.0.0.1:30020 mapreduce.jobhistory.webapp.address 127.0.0.1:39888 \
    mapreduce.jobhistory.admin.address 127.0.0.1:30033 \
    mapreduce.application.classpath "$HH/share/hadoop/common/lib/*" \
    yarn.app.mapreduce.am.resource.mb 512 mapreduce.map.memory.mb 256 mapreduce.reduce.memory.mb 256 \
    yarn.app.mapreduce.am.env HADOOP_MAPRED_HOME=$HH mapreduce.map.env HADOOP_MAPRED_HOME=$HH \
    mapreduce.reduce.env HADOOP_MAPRED_HOME=$HH mapreduce.jvm.add-opens-as-default true
cp /etc/hadoop/log4j.properties /etc/hadoop/capacity-scheduler.xml "$CONF/"
: >"$CONF/hadoop-env.sh"

export HADOOP_CONF_DIR=$CONF HADOOP_LOG_DIR=$WORK/logs HADOOP_PID_DIR=$WORK
export HADOOP_ROOT_LOGGER=WARN,console
export PATH=$HH/bin:$PATH
unset HADOOP_OPTS HADOOP_CLIENT_OPTS
classlist() { echo "-XX:DumpLoadedClassList=$LISTS/$1.classlist"; }

daemon() {  # daemon <command> <subcommand> <name>: in the background, its class list recorded
    local var=$4
    env "$var=$(classlist "$3")" "$1" "$2" >"$WORK/logs/$3.out" 2>&1 &
    pids+=($!)
}
port_up() {  # port_up <port> <seconds> <pid>: false once the port's daemon has exited
    local i
    for ((i = 0; i < $2 * 4; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}
client() {  # client <name> <command...>: a client command, its class list recorded
    local name=$1
    shift
    HADOOP_CLIENT_OPTS=$(classlist "$name-$RANDOM") "$@" >>"$WORK/logs/clients.out" 2>&1
}

t0=$SECONDS
HDFS_NAMENODE_OPTS=$(classlist format) hdfs namenode -format -nonInteractive -force >"$WORK/logs/format.out" 2>&1
daemon hdfs namenode namenode HDFS_NAMENODE_OPTS
nn=$!
daemon yarn resourcemanager resourcemanager YARN_RESOURCEMANAGER_OPTS
rm=$!
daemon mapred historyserver historyserver MAPRED_HISTORYSERVER_OPTS
jhs=$!
port_up 38020 180 "$nn" || { log "the NameNode did not start"; tail -20 "$WORK/logs/namenode.out" >&2; exit 1; }
daemon hdfs datanode datanode HDFS_DATANODE_OPTS
port_up 38031 180 "$rm" || { log "the ResourceManager did not start"; tail -20 "$WORK/logs/resourcemanager.out" >&2; exit 1; }
daemon yarn nodemanager nodemanager YARN_NODEMANAGER_OPTS
port_up 30020 180 "$jhs" || log "the JobHistoryServer did not start"

# HDFS usable: a file written and read back (waits for the DataNode to register).
printf 'one two two\nthree three three\n' >"$WORK/words.txt"
for _ in $(seq 120); do
    client put hdfs dfs -put -f "$WORK/words.txt" /words.txt && break
    sleep 1
done
client cat hdfs dfs -cat /words.txt
client ls hadoop fs -ls -R /
client mkdir hadoop fs -mkdir -p /out-parent
client report hdfs dfsadmin -report
client get hadoop fs -copyToLocal -f /words.txt "$WORK/copy.txt"
client nodes yarn node -list
client version hadoop version
# S3A's and the AWS SDK's classes (steps and log shipping read and write s3://): a listing of a
# bucket at an address where nothing listens, without retries, loads most of them.
client s3a hadoop fs -D fs.s3a.endpoint=http://127.0.0.1:1 -D fs.s3a.endpoint.region=us-east-1 \
    -D fs.s3a.path.style.access=true -D fs.s3a.access.key=training -D fs.s3a.secret.key=training \
    -D fs.s3a.retry.limit=0 -D fs.s3a.attempts.maximum=0 -D fs.s3a.connection.establish.timeout=1s \
    -D fs.s3a.input.stream.type=classic -ls s3a://training/ || true

# A MapReduce job, as a step submits one: streaming, with shell commands for mapper and reducer.
# The job client's classes, and those of the ApplicationMaster and the tasks YARN starts (their
# JVMs map the archive too: libexec/yarn-container-opts).
streaming=$(ls $HH/share/hadoop/tools/lib/hadoop-streaming-*.jar | head -n1)
if ! timeout 300 env HADOOP_CLIENT_OPTS="$(classlist jobclient)" hadoop jar "$streaming" \
    -D yarn.app.mapreduce.am.command-opts="$(classlist appmaster)" \
    -D mapreduce.map.java.opts="$(classlist map)" -D mapreduce.reduce.java.opts="$(classlist reduce)" \
    -input /words.txt -output /out -mapper 'tr " " "\n"' -reducer 'uniq -c' \
    >>"$WORK/logs/job.out" 2>&1; then
    log "the training job did not complete (the archive covers the daemons and clients)"
    tail -5 "$WORK/logs/job.out" >&2 || true
fi
log "training run: $((SECONDS - t0))s, $(ls "$LISTS" | wc -l) class lists"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# The union of the lists: the class names, then the lambdas (@lambda-proxy, @lambda-form-invoker:
# the AWS SDK alone spins up hundreds in each JVM that touches S3), which Java archives only once
# the classes they name are loaded.  Lines naming a custom loader's classes are specific to one run.
cat "$LISTS"/*.classlist | grep -E '^[A-Za-z0-9_$/]+$' | LC_ALL=C sort -u >"$WORK/all.classlist"
classes=$(wc -l <"$WORK/all.classlist")
cat "$LISTS"/*.classlist | grep -E '^@(lambda-proxy|lambda-form-invoker) ' | awk '!seen[$0]++' >>"$WORK/all.classlist"
log "$classes classes, $(($(wc -l <"$WORK/all.classlist") - classes)) lambdas"
java -Xshare:dump -XX:SharedClassListFile="$WORK/all.classlist" -XX:SharedArchiveFile="$ARCHIVE.tmp" \
    -cp "$HH/share/hadoop/common/lib/*" >"$WORK/logs/dump.out" 2>&1 ||
    { log "dump failed"; tail -20 "$WORK/logs/dump.out" >&2; exit 1; }
mv "$ARCHIVE.tmp" "$ARCHIVE"
chmod 0644 "$ARCHIVE"
log "archive $(du -h "$ARCHIVE" | cut -f1) in $((SECONDS - t0))s"
