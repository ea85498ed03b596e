# The JIT options of the node's JVMs, sourced by hadoop-functions.sh (Hadoop's daemons and
# commands, yarn-container-opts) and by Spark's spark-env.sh (its history server).  Options given
# later on a JVM's command line (a daemon's, HADOOP_CLIENT_OPTS, a job's java.opts) win.

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

# The JIT of a job's tasks (yarn-container-opts), and of its client and ApplicationMaster on
# larger nodes: they mostly live for seconds, and C2 compiling their start-up code took a third
# of a small job's CPU.  C2 compiles only what is truly hot here: twenty times the usual
# invocation and loop counts, which a long task's inner loops reach within moments and start-up
# code never does.
HADOOP_JOB_JIT_OPTS="-XX:Tier4InvocationThreshold=100000 -XX:Tier4MinInvocationThreshold=12000"
HADOOP_JOB_JIT_OPTS+=" -XX:Tier4CompileThreshold=300000 -XX:Tier4BackEdgeThreshold=800000"

# The JIT of the JVMs that drive a job rather than process its records: Hadoop's commands (a
# step's job client, `hadoop fs`) and MapReduce's ApplicationMaster.  On a node of two CPUs or
# fewer they take the daemons' C1 alone, whose code needs no profiling: a `hadoop fs -cat` of an
# S3 object went from 3.5 to 2.5 CPU-seconds, and it is on the path of every step.  Elsewhere they
# take a job's.  HADOOP_CLIENT_OPTS=-XX:TieredStopAtLevel=4 gives C2 back to a command that
# computes (a local job runner, say).
HADOOP_CLIENT_JIT_OPTS=${HADOOP_DAEMON_JIT_OPTS:-$HADOOP_JOB_JIT_OPTS}
