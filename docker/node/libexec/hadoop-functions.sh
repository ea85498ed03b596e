# Shared by the Resilin Hadoop launchers (/opt/hadoop/bin/{hadoop,hdfs,yarn,mapred}).
#
# Apache Hadoop's own shell scripts are not published to Maven Central, so the
# node image carries these small replacements.  They set up the environment,
# build the java command line and exec the right main class.
#
# Environment honoured (all optional; /etc/hadoop/hadoop-env.sh may set them):
#   JAVA_HOME, HADOOP_HOME (/opt/hadoop), HADOOP_CONF_DIR (/etc/hadoop)
#   HADOOP_HEAPSIZE_MAX   -Xmx for daemons (default 512m)
#   HADOOP_CLIENT_HEAPSIZE_MAX  -Xmx for client commands (default 512m)
#   HADOOP_OPTS           extra JVM options for every command
#   HADOOP_CLIENT_OPTS    extra JVM options for client commands
#   HDFS_NAMENODE_OPTS, HDFS_DATANODE_OPTS, HDFS_SECONDARYNAMENODE_OPTS,
#   YARN_RESOURCEMANAGER_OPTS, YARN_NODEMANAGER_OPTS, YARN_PROXYSERVER_OPTS,
#   MAPRED_HISTORYSERVER_OPTS   extra JVM options for that daemon
#   HADOOP_CLASSPATH      added to the classpath (first if HADOOP_USER_CLASSPATH_FIRST is set)
#   HADOOP_LOG_DIR (/var/log/hadoop), HADOOP_PID_DIR (/var/run/hadoop)
#   HADOOP_ROOT_LOGGER    log4j root logger (default INFO,console)

export HADOOP_HOME=${HADOOP_HOME:-/opt/hadoop}
export HADOOP_CONF_DIR=${HADOOP_CONF_DIR:-/etc/hadoop}

if [ -f "$HADOOP_CONF_DIR/hadoop-env.sh" ]; then
    # shellcheck disable=SC1091
    . "$HADOOP_CONF_DIR/hadoop-env.sh"
fi

if [ -z "${JAVA_HOME:-}" ]; then
    JAVA_HOME=$(readlink -f "$(command -v java)")
    JAVA_HOME=${JAVA_HOME%/bin/java}
fi
export JAVA_HOME

# The other *_HOME variables Hadoop (and YARN containers, through the
# NodeManager's env whitelist) look at all point at the single install.
export HADOOP_COMMON_HOME=${HADOOP_COMMON_HOME:-$HADOOP_HOME}
export HADOOP_HDFS_HOME=${HADOOP_HDFS_HOME:-$HADOOP_HOME}
export HADOOP_YARN_HOME=${HADOOP_YARN_HOME:-$HADOOP_HOME}
export HADOOP_MAPRED_HOME=${HADOOP_MAPRED_HOME:-$HADOOP_HOME}
export HADOOP_LOG_DIR=${HADOOP_LOG_DIR:-/var/log/hadoop}
export HADOOP_PID_DIR=${HADOOP_PID_DIR:-/var/run/hadoop}

HADOOP_LIB_DIR=$HADOOP_HOME/share/hadoop/common/lib
HADOOP_TOOLS_LIB_DIR=$HADOOP_HOME/share/hadoop/tools/lib

# Java 17: Hadoop (and its libraries) reflect into JDK internals.  This is the
# list Hadoop's own build uses for tests on Java 17, plus a few more.
HADOOP_JAVA17_OPTS="-XX:+IgnoreUnrecognizedVMOptions
 --add-opens=java.base/java.io=ALL-UNNAMED
 --add-opens=java.base/java.lang=ALL-UNNAMED
 --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
 --add-opens=java.base/java.math=ALL-UNNAMED
 --add-opens=java.base/java.net=ALL-UNNAMED
 --add-opens=java.base/java.nio=ALL-UNNAMED
 --add-opens=java.base/java.text=ALL-UNNAMED
 --add-opens=java.base/java.util=ALL-UNNAMED
 --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
 --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
 --add-opens=java.base/java.util.zip=ALL-UNNAMED
 --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
 --add-opens=java.base/sun.security.util=ALL-UNNAMED
 --add-opens=java.base/sun.security.x509=ALL-UNNAMED
 --add-exports=java.base/sun.net.dns=ALL-UNNAMED
 --add-exports=java.base/sun.net.util=ALL-UNNAMED"

# Class-data sharing: the classes these launchers' JVMs load, mapped from one archive built with
# the image (docker/node/cds-train.sh).  Java uses it only while the class path starts with the
# one it was built for (the jars), and otherwise loads every class from the jars, silently.
# shellcheck disable=SC1091
. "${BASH_SOURCE[0]%/*}/jvm-cds.sh"
HADOOP_CDS_ARCHIVE=$HADOOP_HOME/share/hadoop/hadoop.jsa
HADOOP_CDS_OPTS=$(cds_options "$HADOOP_CDS_ARCHIVE")

# The JIT options of daemons and of a job's JVMs, shared with Spark's spark-env.sh.
# shellcheck disable=SC1091
. "${BASH_SOURCE[0]%/*}/jvm-jit.sh"

# hadoop_classpath: every jar of the install, then the conf dir.  The jars come first so that
# the class-data sharing archive applies (it needs directories after them); no jar carries a
# file of the conf dir's names, so the conf dir's files are still the ones found.
hadoop_classpath() {
    # share/hadoop/hdfs holds webapps/ (the HDFS web UIs), as in Apache's layout.
    local cp="$HADOOP_LIB_DIR/*:$HADOOP_CONF_DIR:$HADOOP_HOME/share/hadoop/hdfs"
    if [ -n "${HADOOP_CLASSPATH:-}" ]; then
        if [ -n "${HADOOP_USER_CLASSPATH_FIRST:-}" ]; then
            cp="$HADOOP_CLASSPATH:$cp"
        else
            cp="$cp:$HADOOP_CLASSPATH"
        fi
    fi
    echo "$cp"
}

# hadoop_print_classpath ARGS...: the `classpath` subcommand.
hadoop_print_classpath() {
    if [ $# -eq 0 ]; then
        hadoop_classpath
    else
        hadoop_exec org.apache.hadoop.util.Classpath "$@"
    fi
}

# hadoop_exec MAINCLASS ARGS...: run a client command.
hadoop_exec() {
    local class=$1
    shift
    # shellcheck disable=SC2086
    exec "$JAVA_HOME/bin/java" \
        -Xmx"${HADOOP_CLIENT_HEAPSIZE_MAX:-512m}" \
        $HADOOP_CDS_OPTS $HADOOP_CLIENT_JIT_OPTS $HADOOP_JAVA17_OPTS \
        -Djava.net.preferIPv4Stack=true \
        -Dhadoop.log.dir="$HADOOP_LOG_DIR" \
        -Dhadoop.log.file=hadoop.log \
        -Dhadoop.home.dir="$HADOOP_HOME" \
        -Dhadoop.id.str="$(id -un)" \
        -Dhadoop.root.logger="${HADOOP_ROOT_LOGGER:-INFO,console}" \
        -Dhadoop.security.logger=INFO,NullAppender \
        ${HADOOP_OPTS:-} ${HADOOP_CLIENT_OPTS:-} \
        -cp "$(hadoop_classpath)" \
        "$class" "$@"
}

# hadoop_exec_daemon NAME MAINCLASS EXTRA_OPTS ARGS...: run a daemon in the
# foreground (hadoop-daemon puts it in the background).
hadoop_exec_daemon() {
    local name=$1 class=$2 extra=$3
    shift 3
    # shellcheck disable=SC2086
    exec "$JAVA_HOME/bin/java" \
        -Dproc_"$name" \
        -Xmx"${HADOOP_HEAPSIZE_MAX:-512m}" \
        ${HADOOP_HEAPSIZE_MIN:+-Xms$HADOOP_HEAPSIZE_MIN} \
        $HADOOP_CDS_OPTS $HADOOP_DAEMON_JIT_OPTS $HADOOP_JAVA17_OPTS \
        -Djava.net.preferIPv4Stack=true \
        -Dhadoop.log.dir="$HADOOP_LOG_DIR" \
        -Dhadoop.log.file="$name.log" \
        -Dyarn.log.dir="$HADOOP_LOG_DIR" \
        -Dyarn.log.file="$name.log" \
        -Dhadoop.home.dir="$HADOOP_HOME" \
        -Dyarn.home.dir="$HADOOP_HOME" \
        -Dhadoop.id.str="$(id -un)" \
        -Dhadoop.root.logger="${HADOOP_ROOT_LOGGER:-INFO,console}" \
        -Dyarn.root.logger="${HADOOP_ROOT_LOGGER:-INFO,console}" \
        -Dhadoop.security.logger=INFO,NullAppender \
        -Dhadoop.policy.file=hadoop-policy.xml \
        ${HADOOP_OPTS:-} $extra \
        -cp "$(hadoop_classpath)" \
        "$class" "$@"
}

