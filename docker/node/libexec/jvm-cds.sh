# Class-data sharing options, sourced by hadoop-functions.sh (Hadoop's archive) and by Spark's
# spark-env.sh (Spark's); both archives are built with the image (docker/node/cds-train.sh).
# Java maps an archive only while the class path starts with the jars it was dumped from, and
# otherwise loads every class from the jars; these options keep that silent, as they keep an
# older image without the archive file silent.

# cds_options ARCHIVE: the options that map ARCHIVE, or nothing when the file is missing.
cds_options() {
    [ -f "$1" ] && echo "-XX:SharedArchiveFile=$1 -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
    return 0
}
