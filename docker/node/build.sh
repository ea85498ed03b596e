#!/usr/bin/env bash
# Build the Resilin node image: localhost/resilin-node:<tag>
#
# The image is a Debian bookworm rootfs made with debootstrap (no base image
# pull needed) plus Apache Hadoop 3.5.0 and Spark assembled from Maven Central jars,
# our own launcher scripts, and the container init (init.sh).
#
# Usage: docker/node/build.sh [--print-tag] [--force]
#   --print-tag   print the tag the current inputs would produce and exit
#   --force       rebuild the image even if the tag already exists
#
# Caching (all under docker/node/build/, which is gitignored):
#   base-<key>.tar     debootstrap rootfs with the Debian packages installed
#   hadoop-<key>/      jars from `mvn dependency:copy-dependencies` (+ ~/.m2)
#   overlay-<key>/     the overlay gateway (overlay/gateway/), built with Go 1.23
#   spark-<key>/       Spark's jars (Maven) and Resilin's Spark classes (javac)
#   pyspark-<version>/ the pyspark release from PyPI (launcher scripts, Python package)
# The image tag is a hash of every file in docker/node/ (except build/) and in
# overlay/gateway/, so editing any input produces a new tag; re-running with an
# existing tag returns immediately.
#
# Prints the built image reference (localhost/resilin-node:<tag>) on stdout;
# progress goes to stderr.  The image is also tagged :latest.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GATEWAY=$(cd "$HERE/../../overlay/gateway" && pwd)
BUILD=$HERE/build
IMAGE=${RESILIN_NODE_IMAGE:-localhost/resilin-node}
SUITE=bookworm
# Bumping BASE_REV forces a new debootstrap even if the package list is unchanged.
BASE_REV=1
# python3-distutils: mrjob (0.7) imports distutils.spawn in every task it runs.
# wireguard-tools: wg, for kernel WireGuard on VMs; iperf3: the overlay's throughput figures.
# python3-zstandard: relocation compresses what it sends between nodes (migrate/node/); debootstrap
# does not resolve its virtual dependency, so python3-cffi-backend, which provides it, is named.
PACKAGES=(
    openjdk-17-jre-headless openssh-server python3 python3-distutils procps iproute2 sudo bash
    coreutils ca-certificates curl netcat-openbsd gzip less wireguard-tools iperf3
    python3-zstandard python3-cffi-backend
)

log() { echo "[build-node] $*" >&2; }

# A hash of the files under $1 (build/ aside): their names and contents.
hash_tree() {
    (
        cd "$1"
        find . -path ./build -prune -o -type f -print | LC_ALL=C sort |
            while read -r f; do
                printf '%s\n' "$f"
                sha256sum <"$f"
            done
    ) | sha256sum | cut -c1-12
}

compute_tag() {
    printf '%s\n' "$(hash_tree "$HERE")" "$(hash_tree "$GATEWAY")" | sha256sum | cut -c1-12
}

PRINT_TAG=0
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --print-tag) PRINT_TAG=1 ;;
        --force) FORCE=1 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

TAG=$(compute_tag)
REF=$IMAGE:$TAG
if [ "$PRINT_TAG" = 1 ]; then
    echo "$TAG"
    exit 0
fi
if [ "$FORCE" = 0 ] && podman image exists "$REF"; then
    log "image $REF is up to date"
    echo "$REF"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh must run as root (debootstrap, chroot)" >&2
    exit 1
fi
for tool in debootstrap podman mvn javac jar chroot /usr/lib/go-1.23/bin/go; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see scripts/setup-podman.sh)" >&2; exit 1; }
done

mkdir -p "$BUILD"
START=$(date +%s)

# --------------------------------------------------------------------------
# Debian mirror: the one apt uses on this host.
# --------------------------------------------------------------------------

# Print "URI" for the first apt source (one-line or deb822 format) whose suites
# include $1.
apt_source_for_suite() {
    local suite=$1 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '
            /^[[:space:]]*deb[[:space:]]/ {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && uris != "") {
                    split(uris, u, " "); print u[1]; found = 1
                }
                types = ""; suites = ""; uris = ""
            }
            /^[[:space:]]*$/ { flush(); if (found) exit; next }
            /^[[:space:]]*#/ { next }
            /^Types:/  { sub(/^Types:[[:space:]]*/, "");  types = $0 }
            /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
            /^URIs:/   { sub(/^URIs:[[:space:]]*/, "");   uris = $0 }
            END { if (!found) flush() }' "$f"
    done
}

MIRROR=${RESILIN_DEBIAN_MIRROR:-$(apt_source_for_suite "$SUITE" | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}
SECURITY_MIRROR=$(apt_source_for_suite "$SUITE-security" | head -n1)
SECURITY_MIRROR=${SECURITY_MIRROR%/}
log "Debian mirror: $MIRROR (security: ${SECURITY_MIRROR:-none})"

# --------------------------------------------------------------------------
# Helpers for chroot work: mount /proc and /dev/pts only while needed, and
# never remove a tree that still has something mounted in it.
# --------------------------------------------------------------------------
MOUNTED=()
chroot_mount() {
    local root=$1
    mkdir -p "$root/proc" "$root/dev/pts"
    mount -t proc proc "$root/proc"
    MOUNTED+=("$root/proc")
}
chroot_umount_all() {
    local m
    for m in "${MOUNTED[@]}"; do
        if mountpoint -q "$m"; then umount -l "$m" || true; fi
    done
    MOUNTED=()
}
safe_rm_tree() {
    local d=$1
    [ -e "$d" ] || return 0
    if grep -q " $(readlink -f "$d")/" /proc/mounts; then
        echo "refusing to remove $d: something is still mounted inside" >&2
        exit 1
    fi
    rm -rf --one-file-system "$d"
}
trap chroot_umount_all EXIT

# --------------------------------------------------------------------------
# Stage 1: Debian base rootfs (cached tarball).
# --------------------------------------------------------------------------
BASE_KEY=$(printf '%s\n' "$BASE_REV" "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "${PACKAGES[@]}" |
    sha256sum | cut -c1-12)
BASE_TAR=$BUILD/base-$SUITE-$BASE_KEY.tar
if [ ! -f "$BASE_TAR" ]; then
    log "stage 1: debootstrap $SUITE (minbase) -> $BASE_TAR"
    t0=$(date +%s)
    BROOT=$BUILD/base-root
    safe_rm_tree "$BROOT"
    include=$(IFS=,; echo "${PACKAGES[*]}")
    debootstrap --variant=minbase --include="$include" "$SUITE" "$BROOT" "$MIRROR" >&2
    {
        echo "deb $MIRROR $SUITE main"
        echo "deb $MIRROR $SUITE-updates main"
        if [ -n "$SECURITY_MIRROR" ]; then echo "deb $SECURITY_MIRROR $SUITE-security main"; fi
    } >"$BROOT/etc/apt/sources.list"
    # Keep docs/man pages/locales out of the image (also for later apt installs).
    cat >"$BROOT/etc/dpkg/dpkg.cfg.d/01-resilin-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$BROOT/etc/apt/apt.conf.d/01-resilin" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
    chroot_mount "$BROOT"
    # Pick up bookworm-updates / security fixes; not fatal if unreachable.
    if ! chroot "$BROOT" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive;
            apt-get update -qq && apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade' >&2; then
        log "warning: apt-get upgrade inside the rootfs failed; continuing with the $SUITE release packages"
    fi
    chroot "$BROOT" /bin/sh -c 'apt-get clean; rm -rf /var/lib/apt/lists/*
        rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/cache/debconf/*-old
        find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
        rm -f /var/log/*.log /var/log/apt/* /etc/ssh/ssh_host_*'
    chroot_umount_all
    tar -C "$BROOT" --numeric-owner -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    safe_rm_tree "$BROOT"
    # Older base tarballs are useless now.
    find "$BUILD" -maxdepth 1 -name "base-*.tar" ! -name "$(basename "$BASE_TAR")" -delete
    log "stage 1 done in $(($(date +%s) - t0))s"
else
    log "stage 1: using cached $BASE_TAR"
fi

# --------------------------------------------------------------------------
# Stage 2: Hadoop jars from Maven Central (cached per pom.xml hash).
# --------------------------------------------------------------------------
POM=$HERE/hadoop/pom.xml
HADOOP_KEY=$(sha256sum <"$POM" | cut -c1-12)
HADOOP_LIB=$BUILD/hadoop-$HADOOP_KEY
if [ ! -f "$HADOOP_LIB/.done" ]; then
    log "stage 2: resolving Hadoop jars with Maven -> $HADOOP_LIB"
    t0=$(date +%s)
    rm -rf "$HADOOP_LIB"
    mvn -B -q -Dstyle.color=never -f "$POM" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$HADOOP_LIB/jars" >&2
    touch "$HADOOP_LIB/.done"
    find "$BUILD" -maxdepth 1 -name "hadoop-*" -type d ! -name "$(basename "$HADOOP_LIB")" -exec rm -rf {} +
    log "stage 2 done in $(($(date +%s) - t0))s ($(ls "$HADOOP_LIB/jars" | wc -l) jars)"
else
    log "stage 2: using cached $HADOOP_LIB"
fi

# --------------------------------------------------------------------------
# Stage 2c: Spark (cached per hash of spark/).  Its jars from Maven Central
# (spark/pom.xml), the jars of the NodeManagers' spark_shuffle aux-service
# (profile "shuffle"), the classes Resilin adds (spark/src: the aux-service and
# the bundled examples, which Maven Central does not serve for this line),
# compiled against them; the launcher scripts and the Python package from the
# pyspark release of the same version on PyPI (cached per version: it is big).
# --------------------------------------------------------------------------
SPARK_SRC=$HERE/spark
SPARK_VERSION=$(sed -n 's|.*<spark.version>\(.*\)</spark.version>.*|\1|p' "$SPARK_SRC/pom.xml")
SPARK_KEY=$(hash_tree "$SPARK_SRC")
SPARK_LIB=$BUILD/spark-$SPARK_KEY
PYSPARK_CACHE=$BUILD/pyspark-$SPARK_VERSION
PYSPARK_SDIST=$PYSPARK_CACHE/pyspark-$SPARK_VERSION.tar.gz
if [ ! -f "$PYSPARK_SDIST" ]; then
    log "stage 2c: downloading pyspark $SPARK_VERSION from PyPI -> $PYSPARK_CACHE"
    rm -rf "$PYSPARK_CACHE"
    mkdir -p "$PYSPARK_CACHE.tmp"
    # With the project's virtualenv's pip (scripts/setup.sh makes it before the image).
    (
        cd "$HERE/../.."
        [ -x .venv/bin/pip ] || scripts/setup-venv.sh >&2
        .venv/bin/pip download -q --no-deps --no-binary :all: -d "$PYSPARK_CACHE.tmp" "pyspark==$SPARK_VERSION" >&2
    )
    mv "$PYSPARK_CACHE.tmp" "$PYSPARK_CACHE"
    find "$BUILD" -maxdepth 1 -name "pyspark-*" -type d ! -name "$(basename "$PYSPARK_CACHE")" -exec rm -rf {} +
fi
if [ ! -f "$SPARK_LIB/.done" ]; then
    log "stage 2c: resolving Spark $SPARK_VERSION jars with Maven -> $SPARK_LIB"
    t0=$(date +%s)
    rm -rf "$SPARK_LIB"
    for profile in home shuffle; do
        mvn -B -q -Dstyle.color=never -f "$SPARK_SRC/pom.xml" -P"$profile" \
            org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$SPARK_LIB/$profile" >&2
    done
    mkdir -p "$SPARK_LIB/classes"
    javac --release 17 -nowarn -d "$SPARK_LIB/classes" \
        -cp "$SPARK_LIB/home/*:$SPARK_LIB/shuffle/*:$HADOOP_LIB/jars/*" \
        $(find "$SPARK_SRC/src" -name '*.java') >&2
    jar --create --file "$SPARK_LIB/spark-examples.jar" -C "$SPARK_LIB/classes" org
    jar --create --file "$SPARK_LIB/resilin-spark-yarn-shuffle.jar" -C "$SPARK_LIB/classes" io
    touch "$SPARK_LIB/.done"
    find "$BUILD" -maxdepth 1 -name "spark-*" -type d ! -name "$(basename "$SPARK_LIB")" -exec rm -rf {} +
    log "stage 2c done in $(($(date +%s) - t0))s ($(ls "$SPARK_LIB/home" | wc -l) jars)"
else
    log "stage 2c: using cached $SPARK_LIB"
fi

# --------------------------------------------------------------------------
# Stage 2b: the overlay gateway, a static Go program (cached per source hash).
# Go 1.23 is Debian's (bookworm-backports, see scripts/setup.sh); modules come
# from the Go module proxy, checked against go.sum.
# --------------------------------------------------------------------------
OVERLAY_KEY=$(hash_tree "$GATEWAY")
OVERLAY_BIN=$BUILD/overlay-$OVERLAY_KEY
if [ ! -x "$OVERLAY_BIN/resilin-overlay" ]; then
    log "stage 2b: building the overlay gateway -> $OVERLAY_BIN"
    rm -rf "$OVERLAY_BIN"
    mkdir -p "$OVERLAY_BIN"
    (cd "$GATEWAY" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
        /usr/lib/go-1.23/bin/go build -trimpath -ldflags=-s -o "$OVERLAY_BIN/resilin-overlay.tmp" .) >&2
    mv "$OVERLAY_BIN/resilin-overlay.tmp" "$OVERLAY_BIN/resilin-overlay"
    find "$BUILD" -maxdepth 1 -name "overlay-*" -type d ! -name "$(basename "$OVERLAY_BIN")" -exec rm -rf {} +
else
    log "stage 2b: using cached $OVERLAY_BIN"
fi

# --------------------------------------------------------------------------
# Stage 3: assemble the final rootfs and import it into podman.
# --------------------------------------------------------------------------
log "stage 3: assembling rootfs"
ROOT=$BUILD/rootfs
safe_rm_tree "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xf "$BASE_TAR"

HH=$ROOT/opt/hadoop
mkdir -p "$HH/bin" "$HH/libexec" "$HH/share/hadoop/common/lib" "$HH/share/hadoop/tools/lib" \
    "$HH/share/hadoop/mapreduce"
case "$(uname -m)" in
    aarch64) NATIVE_ARCH=aarch_64 ;;
    *) NATIVE_ARCH=$(uname -m) ;;
esac
for jar in "$HADOOP_LIB"/jars/*.jar; do
    name=$(basename "$jar")
    case "$name" in
        # netty native transports for other platforms are dead weight.
        *-osx-*.jar) continue ;;
        *-linux-"$NATIVE_ARCH".jar) ;;
        *-linux-*.jar) continue ;;
    esac
    case "$name" in
        hadoop-hdfs-*-tests.jar)
            # Only the HDFS web UI resources (see hadoop/pom.xml).
            mkdir -p "$HH/share/hadoop/hdfs"
            python3 - "$jar" "$HH/share/hadoop/hdfs" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("webapps/")])
PY
            ;;
        hadoop-streaming-*.jar | hadoop-distcp-*.jar) cp "$jar" "$HH/share/hadoop/tools/lib/" ;;
        hadoop-mapreduce-examples-*.jar) cp "$jar" "$HH/share/hadoop/mapreduce/" ;;
        *) cp "$jar" "$HH/share/hadoop/common/lib/" ;;
    esac
done
# Spark in /usr/lib/spark, as on EMR (see spark/pom.xml).
SH=$ROOT/usr/lib/spark
mkdir -p "$SH/jars" "$SH/python/lib" "$SH/examples/jars" "$SH/yarn/lib" "$ROOT/etc/spark/conf"
native_jar_wanted() {  # netty's native transports for other platforms are dead weight
    case "$1" in
        *-osx-*.jar | *-windows-*.jar) return 1 ;;
        *-linux-"$NATIVE_ARCH".jar) return 0 ;;
        *-linux-*.jar) return 1 ;;
    esac
}
for jar in "$SPARK_LIB"/home/*.jar; do
    native_jar_wanted "$(basename "$jar")" && cp "$jar" "$SH/jars/"
done
# RocksDB's JNI jar carries its library for a dozen platforms (~200 MB unpacked): keep this one's.
case "$NATIVE_ARCH" in
    x86_64) ROCKSDB_NATIVE=librocksdbjni-linux64.so ;;
    *) ROCKSDB_NATIVE=librocksdbjni-linux-aarch64.so ;;
esac
for jar in "$SH"/jars/rocksdbjni-*.jar; do
    python3 - "$jar" "$ROCKSDB_NATIVE" <<'PY'
import os, sys, zipfile
path, keep = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(path) as src, zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if item.filename.startswith("librocksdbjni-") and item.filename != keep:
            continue
        dst.writestr(item, src.read(item.filename))
os.replace(path + ".tmp", path)
PY
done
# The aux-service's classpath: the same jars (linked, under their home versions), its own jar.
for jar in "$SPARK_LIB"/shuffle/*.jar; do
    name=$(basename "$jar")
    native_jar_wanted "$name" || continue
    artifact=$(printf '%s' "$name" | sed -E 's/-[0-9][0-9.]*(\.Final)?(-[a-z_0-9]+)*\.jar$//')
    if [ -f "$SH/jars/$name" ]; then
        ln -s "../../jars/$name" "$SH/yarn/lib/$name"
    elif same=$(cd "$SH/jars" && ls "$artifact"-[0-9]*.jar 2>/dev/null | head -n1) && [ -n "$same" ]; then
        ln -s "../../jars/$same" "$SH/yarn/lib/$same"
    else
        cp "$jar" "$SH/yarn/lib/"
    fi
done
cp "$SPARK_LIB/resilin-spark-yarn-shuffle.jar" "$SH/yarn/lib/"
cp "$SPARK_LIB/spark-examples.jar" "$SH/examples/jars/"
PYX=$BUILD/pyspark-extract
safe_rm_tree "$PYX"
mkdir -p "$PYX"
tar -C "$PYX" --strip-components=1 -xzf "$PYSPARK_SDIST" \
    "pyspark-$SPARK_VERSION/deps/bin" "pyspark-$SPARK_VERSION/deps/sbin" \
    "pyspark-$SPARK_VERSION/pyspark" "pyspark-$SPARK_VERSION/lib"
mkdir -p "$SH/bin" "$SH/sbin"
for f in "$PYX"/deps/bin/* "$PYX"/deps/sbin/*; do
    case "$f" in *.cmd) continue ;; esac
    install -m 0755 "$f" "$SH/$(basename "$(dirname "$f")")/"
done
install -m 0755 "$SPARK_SRC"/bin/* "$SH/bin/"
cp -r "$PYX/pyspark" "$SH/python/"
cp "$PYX"/lib/py4j-*-src.zip "$SH/python/lib/"
(cd "$SH/python" && python3 -m zipfile -c lib/pyspark.zip pyspark)
safe_rm_tree "$PYX"
install -m 0644 "$SPARK_SRC"/conf/* "$ROOT/etc/spark/conf/"
ln -sfn /etc/spark/conf "$SH/conf"
echo "Spark $SPARK_VERSION (Scala 2.13, Hadoop $(ls "$SH/jars" | sed -n 's/^hadoop-client-api-\(.*\)\.jar$/\1/p'))" >"$SH/RELEASE"
echo "$SPARK_VERSION" >"$SH/VERSION"
install -m 0755 "$HERE"/bin/* "$HH/bin/"
install -m 0644 "$HERE"/libexec/*.sh "$HH/libexec/"
install -m 0755 "$HERE/libexec/yarn-container-opts" "$HH/libexec/"
mkdir -p "$ROOT/etc/hadoop"
install -m 0644 "$HERE"/conf/* "$ROOT/etc/hadoop/"
install -m 0755 "$HERE/init.sh" "$ROOT/usr/local/sbin/resilin-init"
install -m 0755 "$OVERLAY_BIN/resilin-overlay" "$GATEWAY/resilin-overlay-gateway" "$ROOT/usr/local/sbin/"
install -m 0644 "$HERE/hadoop-required-site.md" "$HH/REQUIRED-SITE.md"
install -m 0755 "$HERE/rootfs-setup.sh" "$ROOT/tmp/rootfs-setup.sh"
echo "$TAG" >"$ROOT/etc/resilin-node-release"

chroot_mount "$ROOT"
chroot "$ROOT" /bin/bash /tmp/rootfs-setup.sh >&2
# The class-data sharing archives, from a training run of Hadoop's daemons and Spark's jobs on a
# loopback of its own.
log "stage 3: class-data sharing archives for Hadoop's and Spark's JVMs"
install -m 0755 "$HERE/cds-train.sh" "$ROOT/tmp/cds-train.sh"
unshare --net --uts chroot "$ROOT" /bin/bash -c 'ip link set lo up && hostname cds-train && /tmp/cds-train.sh' >&2
log "stage 3: an empty HDFS namespace for new clusters' NameNodes"
install -m 0755 "$HERE/empty-namespace.sh" "$ROOT/tmp/empty-namespace.sh"
unshare --net --uts chroot "$ROOT" /bin/bash -c 'ip link set lo up && hostname empty-namespace && /tmp/empty-namespace.sh' >&2
rm -rf "${ROOT:?}"/tmp/* "${ROOT:?}"/tmp/.[!.]* 2>/dev/null || true
chroot_umount_all
rm -f "$ROOT/tmp/rootfs-setup.sh"

log "stage 3: importing into podman as $REF"
JAVA_HOME_IN_IMAGE=$(chroot "$ROOT" readlink -f /usr/bin/java)
JAVA_HOME_IN_IMAGE=${JAVA_HOME_IN_IMAGE%/bin/java}
tar -C "$ROOT" --numeric-owner -c . |
    podman import \
        --change 'CMD ["/usr/local/sbin/resilin-init"]' \
        --change "ENV JAVA_HOME=$JAVA_HOME_IN_IMAGE" \
        --change 'ENV HADOOP_HOME=/opt/hadoop' \
        --change 'ENV HADOOP_CONF_DIR=/etc/hadoop' \
        --change 'ENV SPARK_HOME=/usr/lib/spark' \
        --change "LABEL io.resilin.node.spark-version=$SPARK_VERSION" \
        --change 'ENV PATH=/opt/hadoop/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL io.resilin.node.tag=$TAG" \
        --change 'EXPOSE 22' \
        --message "resilin node $TAG" \
        - "$REF" >&2
podman tag "$REF" "$IMAGE:latest"
# Drop images built from older inputs (kept if a container still uses one).
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep "^$IMAGE:" |
    grep -v -e ":$TAG\$" -e ':latest$'); do
    podman rmi "$old" >/dev/null 2>&1 && log "removed old image $old" || true
done
safe_rm_tree "$ROOT"
log "built $REF in $(($(date +%s) - START))s ($(podman image inspect --format '{{.Size}}' "$REF" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$REF"
