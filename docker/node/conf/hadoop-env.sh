# Sourced by the Hadoop launchers in /opt/hadoop/bin before every command.
# Cluster templates may replace this file; see /opt/hadoop/libexec/hadoop-functions.sh
# for the variables that are honoured.

# Heap of daemons (NameNode, DataNode, ResourceManager, NodeManager, ...).
: "${HADOOP_HEAPSIZE_MAX:=512m}"
# Heap of client commands (hadoop fs, hadoop jar drivers, ...).
: "${HADOOP_CLIENT_HEAPSIZE_MAX:=512m}"
