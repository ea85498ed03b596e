# The image's Spark environment; a cluster's spark-env classification is added after it.
export SPARK_HOME=/usr/lib/spark
export SPARK_CONF_DIR=${SPARK_CONF_DIR:-/etc/spark/conf}
export HADOOP_CONF_DIR=${HADOOP_CONF_DIR:-/etc/hadoop}
export YARN_CONF_DIR=${YARN_CONF_DIR:-/etc/hadoop}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-python3}
export SPARK_LOG_DIR=${SPARK_LOG_DIR:-/var/log/spark}
export SPARK_PID_DIR=${SPARK_PID_DIR:-/var/run/spark}
# Every node has Spark's Python package: executors take it from there, nothing is uploaded.
export PYSPARK_ARCHIVES_PATH=local:/usr/lib/spark/python/lib/pyspark.zip,local:$(ls /usr/lib/spark/python/lib/py4j-*-src.zip)
# The history server's JIT is that of Hadoop's daemons (C1 alone on a node of two CPUs or
# fewer).  A cluster's spark-env setting SPARK_DAEMON_JAVA_OPTS replaces this.
daemon_jit=$(. /opt/hadoop/libexec/jvm-jit.sh && echo "$HADOOP_DAEMON_JIT_OPTS")
export SPARK_DAEMON_JAVA_OPTS="$daemon_jit ${SPARK_DAEMON_JAVA_OPTS:-}"
# Class-data sharing (docker/node/cds-train.sh): the history server and spark-class's launcher map
# Spark's classes from the image's archive rather than reading them from the jars.  Java uses it
# only while the class path starts with the jars it was built from: the history server's
# SPARK_DAEMON_CLASSPATH comes first on its class path (before the conf dirs, whose file names no
# jar carries), and the launcher's class path is the jars alone.  Drivers and executors get the
# same through spark-defaults (resilin.applications.spark.config).
spark_cds=$(. /opt/hadoop/libexec/jvm-cds.sh && cds_options "$SPARK_HOME/spark.jsa")
if [ -n "$spark_cds" ]; then
    export SPARK_DAEMON_JAVA_OPTS="$spark_cds $SPARK_DAEMON_JAVA_OPTS"
    export SPARK_DAEMON_CLASSPATH=${SPARK_DAEMON_CLASSPATH:-$SPARK_HOME/jars/*}
    export SPARK_LAUNCHER_OPTS="$spark_cds $daemon_jit ${SPARK_LAUNCHER_OPTS:-}"
fi
unset daemon_jit spark_cds
