#!/bin/bash
# Builds the class-data sharing archives of Hadoop's launchers (/opt/hadoop/share/hadoop/hadoop.jsa)
# and of Spark's JVMs (/usr/lib/spark/spark.jsa).
#
# Runs inside the node rootfs during build.sh.  A JVM started by a launcher in /opt/hadoop/bin
# maps the classes it needs from this archive instead of reading, verifying and parsing them
# from 200 jars: a daemon or a `hadoop fs` command starts on about a third less CPU, which is
# most of a small cluster's start-up on a machine with few cores.  Spark's history server,
# launcher, drivers and executors do the same with Spark's own archive (its jars are others).
#
# Which classes: those a short training run loads — every daemon a node runs, started on
# loopback with its own configuration under $WORK, the client commands Resilin's scripts and
# steps use, one MapReduce job submitted to that YARN, then two PySpark jobs (cluster and
# client mode) and the Spark history server reading their event logs.  Each JVM writes its
# class list (-XX:DumpLoadedClassList); each archive is dumped from the union of its JVMs'
# lists with -Xshare:dump.  An archive only holds classes, never state: a class missing from it
# is loaded from its jar as before.
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
# classlist <name> [<directory>]: the option that records a JVM's loaded classes in a list of its
# own (a random suffix keeps JVMs of the same name apart), in $LISTS unless told otherwise.
classlist() { echo "-XX:DumpLoadedClassList=${2:-$LISTS}/$1-$RANDOM.classlist"; }

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
    HADOOP_CLIENT_OPTS=$(classlist "$name") "$@" >>"$WORK/logs/clients.out" 2>&1
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
log "Hadoop's training run: $((SECONDS - t0))s, $(ls "$LISTS" | wc -l) class lists"

# Spark: its launcher (spark-class's org.apache.spark.launcher.Main), spark-submit, a PySpark job's
# driver, ApplicationMaster and executor on this YARN in both deploy modes, then the history
# server replaying their event logs and serving its pages and REST API.
SH=/usr/lib/spark
SPARK_ARCHIVE=$SH/spark.jsa
SPARK_LISTS=$WORK/spark-lists
SPARK_CONF=$WORK/spark-conf
mkdir -p "$SPARK_LISTS" "$SPARK_CONF"
events=hdfs://127.0.0.1:38020/spark-events
cp /etc/spark/conf/log4j2.properties "$SPARK_CONF/"
{
    echo "spark.master yarn"
    echo "spark.yarn.jars local:$SH/jars/*"
    echo "spark.yarn.populateHadoopClasspath false"
    echo "spark.eventLog.enabled true"
    echo "spark.eventLog.dir $events"
    echo "spark.history.fs.logDirectory $events"
    echo "spark.history.fs.update.interval 1s"
    echo "spark.history.ui.port 38080"
    echo "spark.ui.port 38040"
    echo "spark.driver.memory 512m"
    echo "spark.yarn.am.memory 512m"
    echo "spark.executor.memory 512m"
    echo "spark.executor.instances 1"
    echo "spark.pyspark.python python3"
    echo "spark.hadoop.fs.s3a.endpoint http://127.0.0.1:1"
    echo "spark.hadoop.fs.s3a.endpoint.region us-east-1"
    echo "spark.hadoop.fs.s3a.path.style.access true"
    echo "spark.hadoop.fs.s3a.access.key training"
    echo "spark.hadoop.fs.s3a.secret.key training"
    echo "spark.hadoop.fs.s3a.retry.limit 0"
    echo "spark.hadoop.fs.s3a.attempts.maximum 0"
    echo "spark.hadoop.fs.s3a.connection.establish.timeout 1s"
} >"$SPARK_CONF/spark-defaults.conf"
# A word count as steps run them (DataFrame and RDD), and an S3A listing where nothing listens
# (S3A's and the AWS SDK's classes in the driver).
cat >"$WORK/job.py" <<'PY'
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("class-data sharing training").getOrCreate()
words = spark.read.text(sys.argv[1]).select(F.explode(F.split("value", " ")).alias("word"))
words.groupBy("word").count().write.mode("overwrite").csv(sys.argv[2] + "/dataframe")
lines = spark.sparkContext.textFile(sys.argv[1])
lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).saveAsTextFile(sys.argv[2] + "/rdd")
try:
    spark.read.text("s3a://training/none").count()
except Exception:
    pass
spark.stop()
PY
export SPARK_HOME=$SH SPARK_CONF_DIR=$SPARK_CONF YARN_CONF_DIR=$CONF SPARK_LOG_DIR=$WORK/logs SPARK_PID_DIR=$WORK
export PYSPARK_ARCHIVES_PATH=local:$SH/python/lib/pyspark.zip,local:$(ls $SH/python/lib/py4j-*-src.zip)
unset SPARK_DAEMON_JAVA_OPTS SPARK_SUBMIT_OPTS SPARK_LAUNCHER_OPTS
client mkdir-events hadoop fs -mkdir -p /spark-events
for mode in cluster client; do
    if ! timeout 300 env SPARK_LAUNCHER_OPTS="$(classlist launcher "$SPARK_LISTS")" \
        SPARK_SUBMIT_OPTS="$(classlist submit-$mode "$SPARK_LISTS")" \
        "$SH/bin/spark-submit" --deploy-mode "$mode" \
        --conf spark.driver.extraJavaOptions="$(classlist driver-$mode "$SPARK_LISTS")" \
        --conf spark.yarn.am.extraJavaOptions="$(classlist am-$mode "$SPARK_LISTS")" \
        --conf spark.executor.extraJavaOptions="$(classlist executor-$mode "$SPARK_LISTS")" \
        "$WORK/job.py" /words.txt "/spark-out-$mode" >>"$WORK/logs/spark-job.out" 2>&1; then
        log "the Spark training job ($mode mode) did not complete"
        tail -5 "$WORK/logs/spark-job.out" >&2 || true
    fi
done
SPARK_LAUNCHER_OPTS="$(classlist launcher "$SPARK_LISTS")" SPARK_DAEMON_JAVA_OPTS="$(classlist history "$SPARK_LISTS")" \
    "$SH/sbin/start-history-server.sh" >"$WORK/logs/spark-history.out" 2>&1
history_pid=$(cat "$WORK"/spark-*HistoryServer*.pid 2>/dev/null || true)
[ -n "$history_pid" ] && pids+=("$history_pid")
if port_up 38080 120 "${history_pid:-$$}"; then
    api=http://127.0.0.1:38080/api/v1
    for _ in $(seq 60); do
        [ "$(curl -sf "$api/applications?status=completed" | grep -c '"id"')" -ge 2 ] && break
        sleep 1
    done
    for app in $(curl -sf "$api/applications" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p'); do
        for page in "" /jobs /stages /executors /environment /allexecutors; do
            curl -sf -o /dev/null "$api/applications/$app$page" || true
        done
        curl -sf -o /dev/null -L "http://127.0.0.1:38080/history/$app/jobs/" || true
    done
    curl -sf -o /dev/null http://127.0.0.1:38080/ || true
else
    log "Spark's history server did not start"
fi
log "Spark's training run: $((SECONDS - t0))s, $(ls "$SPARK_LISTS" | wc -l) class lists"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# dump_archive <archive> <class path> <lists directory>: the union of the lists — the class
# names, then the lambdas (@lambda-proxy, @lambda-form-invoker: the AWS SDK alone spins up
# hundreds in each JVM that touches S3), which Java archives only once the classes they name are
# loaded; lines naming a custom loader's classes are specific to one run — dumped for that class
# path.
dump_archive() {
    local archive=$1 classpath=$2 lists=$3 classes union=$WORK/union.classlist
    cat "$lists"/*.classlist | grep -E '^[A-Za-z0-9_$/]+$' | LC_ALL=C sort -u >"$union"
    classes=$(wc -l <"$union")
    cat "$lists"/*.classlist | grep -E '^@(lambda-proxy|lambda-form-invoker) ' | awk '!seen[$0]++' >>"$union"
    log "$archive: $classes classes, $(($(wc -l <"$union") - classes)) lambdas"
    java -Xshare:dump -XX:SharedClassListFile="$union" -XX:SharedArchiveFile="$archive.tmp" \
        -cp "$classpath" >"$WORK/logs/dump.out" 2>&1 ||
        { log "dump of $archive failed"; tail -20 "$WORK/logs/dump.out" >&2; exit 1; }
    mv "$archive.tmp" "$archive"
    chmod 0644 "$archive"
    log "$archive: $(du -h "$archive" | cut -f1) in $((SECONDS - t0))s"
}
dump_archive "$ARCHIVE" "$HH/share/hadoop/common/lib/*" "$LISTS"
if ls "$SPARK_LISTS"/*.classlist >/dev/null 2>&1; then
    dump_archive "$SPARK_ARCHIVE" "$SH/jars/*" "$SPARK_LISTS"
else
    log "no Spark class lists: Spark's JVMs will load their classes from the jars"
fi
