#!/bin/bash
# Runs inside the node rootfs (chroot) during docker/node/build.sh.
set -euo pipefail

# hadoop user: uid 1000, passwordless sudo, key-only SSH login.
if ! id hadoop >/dev/null 2>&1; then
    useradd --create-home --home-dir /home/hadoop --uid 1000 --user-group --shell /bin/bash hadoop
fi
# '*' = no password, but not "locked" (a locked account cannot log in with a key either).
usermod -p '*' hadoop
echo 'hadoop ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/90-hadoop
chmod 0440 /etc/sudoers.d/90-hadoop
install -d -m 0700 -o hadoop -g hadoop /home/hadoop/.ssh

# sshd: public keys only, no root.  (Debian's sshd_config includes
# sshd_config.d/*.conf first, so these win.)
cat >/etc/ssh/sshd_config.d/10-resilin.conf <<'CONF'
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
UseDNS no
PrintMotd no
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
CONF
# Containers have no audit loginuid; don't fail sessions because of it.
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd
rm -f /etc/ssh/ssh_host_*
mkdir -p /run/sshd

# Hadoop directories.
install -d -o hadoop -g hadoop /var/lib/hadoop /var/log/hadoop /var/run/hadoop /var/lib/resilin
chown -R hadoop:hadoop /etc/hadoop
chmod 0755 /var/lib/resilin

# Commands on the default PATH (also for non-login `ssh host cmd`).
for c in hadoop hdfs yarn mapred hadoop-daemon; do
    ln -sf "/opt/hadoop/bin/$c" "/usr/local/bin/$c"
done
cat >/etc/profile.d/hadoop.sh <<'CONF'
export JAVA_HOME=$(readlink -f /usr/bin/java | sed 's|/bin/java$||')
export HADOOP_HOME=/opt/hadoop
export HADOOP_CONF_DIR=${HADOOP_CONF_DIR:-/etc/hadoop}
case ":$PATH:" in *:/opt/hadoop/bin:*) ;; *) PATH=/opt/hadoop/bin:$PATH ;; esac
CONF

# Streaming / examples jars under their usual names, plus EMR-compatible paths.
cd /opt/hadoop/share/hadoop
streaming=$(ls tools/lib/hadoop-streaming-*.jar | head -n1)
examples=$(ls mapreduce/hadoop-mapreduce-examples-*.jar | head -n1)
version=$(ls common/lib/hadoop-common-*.jar | sed -n 's|.*/hadoop-common-\([0-9.]*\)\.jar|\1|p' | head -n1)
[ -e "tools/lib/hadoop-streaming-$version.jar" ] || ln -s "$(basename "$streaming")" "tools/lib/hadoop-streaming-$version.jar"
[ -e "mapreduce/hadoop-mapreduce-examples-$version.jar" ] || ln -s "$(basename "$examples")" "mapreduce/hadoop-mapreduce-examples-$version.jar"
mkdir -p /usr/lib/hadoop-mapreduce /home/hadoop/contrib/streaming
ln -sf "/opt/hadoop/share/hadoop/tools/lib/hadoop-streaming-$version.jar" /usr/lib/hadoop-mapreduce/hadoop-streaming.jar
ln -sf "/opt/hadoop/share/hadoop/mapreduce/hadoop-mapreduce-examples-$version.jar" /usr/lib/hadoop-mapreduce/hadoop-mapreduce-examples.jar
ln -sf "/opt/hadoop/share/hadoop/tools/lib/hadoop-distcp-$version.jar" /usr/lib/hadoop-mapreduce/hadoop-distcp.jar
ln -sf "/opt/hadoop/share/hadoop/tools/lib/hadoop-streaming-$version.jar" /home/hadoop/contrib/streaming/hadoop-streaming.jar
chown -R hadoop:hadoop /home/hadoop/contrib
ln -sfn /opt/hadoop /usr/lib/hadoop

# Lean image: no caches, docs or logs.
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /var/cache/debconf/*-old \
    /var/log/*.log /var/log/apt/* /tmp/* 2>/dev/null || true
: >/etc/machine-id

# The overlay gateway's configuration (it holds a private key): root only.
install -d -m 0700 /etc/resilin/overlay

# Spark (/usr/lib/spark): its commands on the default PATH, its directories the hadoop user's.
# Spark's launchers find their home from where they are: PATH gets small wrappers, not symlinks.
install -d -o hadoop -g hadoop /var/log/spark /var/run/spark
chown -R hadoop:hadoop /etc/spark
for c in spark-submit spark-shell spark-sql spark-class pyspark spark-example; do
    printf '#!/bin/sh\nexec /usr/lib/spark/bin/%s "$@"\n' "$c" >"/usr/local/bin/$c"
    chmod 0755 "/usr/local/bin/$c"
done
cat >/etc/profile.d/spark.sh <<'CONF'
export SPARK_HOME=/usr/lib/spark
export SPARK_CONF_DIR=${SPARK_CONF_DIR:-/etc/spark/conf}
CONF
