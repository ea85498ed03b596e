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
export SPARK_DAEMON_JAVA_OPTS="$(. /opt/hadoop/libexec/jvm-jit.sh && echo "$HADOOP_DAEMON_JIT_OPTS") ${SPARK_DAEMON_JAVA_OPTS:-}"
