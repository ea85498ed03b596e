# The JIT options of the node's JVMs, sourced by hadoop-functions.sh (Hadoop's daemons and
# commands, yarn-container-opts) and by Spark's spark-env.sh (its history server).

# The daemons' JIT on a small node: with two CPUs or fewer, C2 compiling a daemon's start-up
# code costs more CPU than the start-up itself (a 3-node cluster's daemons: 40 CPU-seconds to
# start, 27 with C1 alone) and later competes with the node's tasks for the same cores.  C1's
# code serves a small node's daemons well; on larger nodes the JVM's default (C1, then C2)
# stays.  A cluster's hadoop-env can choose otherwise: options in HADOOP_OPTS or a daemon's own
# come later on the command line, so -XX:TieredStopAtLevel=4 there restores C2.
HADOOP_DAEMON_JIT_OPTS=""
if [ "$(nproc 2>/dev/null || echo 4)" -le 2 ]; then
    HADOOP_DAEMON_JIT_OPTS="-XX:TieredStopAtLevel=1"
fi

# The JIT of a job's JVMs (its client, ApplicationMaster and tasks; yarn-container-opts): they
# mostly live for seconds, and C2 compiling their start-up code took a third of a small job's
# CPU.  C2 compiles only what is truly hot here: twenty times the usual invocation and loop
# counts, which a long task's inner loops reach within moments and start-up code never does.
HADOOP_JOB_JIT_OPTS="-XX:Tier4InvocationThreshold=100000 -XX:Tier4MinInvocationThreshold=12000"
HADOOP_JOB_JIT_OPTS+=" -XX:Tier4CompileThreshold=300000 -XX:Tier4BackEdgeThreshold=800000"
